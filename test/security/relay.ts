/**
 * The attacker's tools for test/security/: what a hostile relay (the server,
 * or a phone's terminal) can do with the bytes it carries. Everything here
 * drives the real parties of an embedded world through links, as the relay
 * would; nothing reaches into a party's memory.
 *
 *  - `recording(world)`: the envelopes every party received or sent, as the
 *    runtime's tap saw them (world built with `record: true`), decoded.
 *  - `asServer(world, party)`: the test takes the server's place on a SAM's
 *    link (the channel handshake is the server's; what is under test is what
 *    the SAM does with what the server sends). `giveBack()` restarts the SAM
 *    from its store, which links it to the real server again.
 *  - `state(world)`: every record a replay must not change, as one string.
 */
import { ChipConsole } from '../../src/actors/chipConsole.ts';
import type { PartyRuntime } from '../../src/actors/runtime.ts';
import { decodeValue } from '../../src/actors/value.ts';
import { fromB64, toB64 } from '../../src/crypto/index.ts';
import { decodeChipFrame, type ChipFrame } from '../../src/transport/chip.frames.ts';
import { decodeEnvelope, encodeEnvelope, PROTOCOL_VERSION, type AnyEnvelope, type Envelope } from '../../src/transport/envelope.ts';
import { memoryLinkPair } from '../../src/transport/memory.transport.ts';
import type { BodyOf, MessageType } from '../../src/transport/messages.ts';
import { systemNeedles, type Needle } from '../helpers/secrets.ts';
import type { World } from '../helpers/world.ts';

/** How long the attacker waits for a party's answer before the test fails. */
export const ANSWER_TIMEOUT_MS = 5_000;

export interface Seen {
  party: string;
  direction: 'in' | 'out';
  peer: string;
  env: AnyEnvelope;
  bytes: Uint8Array;
}

export function recording(world: World): Seen[] {
  return world.envelopes.map((r) => ({ ...r, env: decodeEnvelope(r.bytes) }));
}

/** The chip frame inside a recorded `frame` envelope. */
export function chipFrameOf(env: AnyEnvelope): ChipFrame {
  if (env.type !== 'frame') throw new Error(`${env.type} is not a frame`);
  return decodeChipFrame(fromB64(env.body.data));
}

/**
 * The session frames a chip received in one recorded session, in order, once
 * each (a frame the terminal sent again is one frame), and what the chip answered.
 */
export function chipSession(
  seen: Seen[],
  chipId: string,
  session: string,
): { toChip: Array<{ env: Envelope<'frame'>; frame: ChipFrame; bytes: Uint8Array }>; fromChip: ChipFrame[] } {
  const toChip: Array<{ env: Envelope<'frame'>; frame: ChipFrame; bytes: Uint8Array }> = [];
  const fromChip: ChipFrame[] = [];
  const data = new Set<string>();
  for (const s of seen) {
    if (s.party !== chipId || s.env.type !== 'frame' || s.env.body.session !== session) continue;
    if (s.direction === 'in' && !data.has(s.env.body.data)) {
      data.add(s.env.body.data);
      toChip.push({ env: s.env, frame: chipFrameOf(s.env), bytes: s.bytes });
    }
    if (s.direction === 'out') fromChip.push(chipFrameOf(s.env));
  }
  if (toChip.length === 0) throw new Error(`no frames of session ${session} reached ${chipId}`);
  return { toChip, fromChip };
}

/** The session id of the first recorded session at `step` of `mig` that reached `chipId`. */
export function sessionAt(seen: Seen[], chipId: string, mig: string, step: string): string {
  const hit = seen.find((s) => s.party === chipId && s.direction === 'in' && s.env.type === 'frame' && s.env.body.session.startsWith(`${mig}:${step}:`));
  if (hit?.env.type !== 'frame') throw new Error(`no ${step} session of ${mig} reached ${chipId}`);
  return hit.env.body.session;
}

/** The first recorded request of `type` that `party` received for `mig` (and item). */
export function requestTo<T extends MessageType>(seen: Seen[], party: string, type: T, mig: string, item?: number): Envelope<T> {
  const hit = seen.find(
    (s) => s.party === party && s.direction === 'in' && s.env.type === type && s.env.mig === mig && (item === undefined || s.env.item === item),
  );
  if (!hit) throw new Error(`${party} never received ${type} for ${mig}${item === undefined ? '' : ` item ${item}`}`);
  return hit.env as unknown as Envelope<T>;
}

let terminalSeq = 0;

/**
 * A hostile terminal held against a chip: sends recorded frame bytes in fresh
 * envelopes, one at a time. Each gets a new name, so its message ids are new
 * (a chip answers a message id it has seen from its inbox, and runs nothing).
 */
export function hostileTerminal(chip: PartyRuntime): ChipConsole {
  return ChipConsole.open(chip as Parameters<typeof ChipConsole.open>[0], `terminal/evil-${++terminalSeq}`);
}

export interface ServerSeat {
  /** Sends an envelope as the server would (header filled in; `id` fresh unless given). */
  send<T extends MessageType>(type: T, body: BodyOf<T>, header?: { id?: string; mig?: string; step?: Envelope['step']; item?: number; corr?: string }): string;
  /** Sends recorded bytes exactly as they were. */
  sendBytes(bytes: Uint8Array): void;
  /** Resolves with the first envelope from the SAM that matches. */
  next(what: string, match: (env: AnyEnvelope) => boolean): Promise<AnyEnvelope>;
  /** The answer (reply or error) to the request with this id. */
  answerTo(id: string): Promise<AnyEnvelope>;
  got: AnyEnvelope[];
  /**
   * Session frames the SAM sent for sessions the test named (frames of the real
   * server's sessions, still waiting in the SAM's outbox, are resent to whoever
   * holds the seat; they are not the attack's doing).
   */
  framesOfOurSessions(): AnyEnvelope[];
  /** Restarts the SAM from its store; the restart links it to the real server again. */
  giveBack(): Promise<void>;
}

let attackSeq = 0;
const ATTACK_SEQ_FROM = 900_000_000_000_000;

/**
 * A fresh request id for a test that speaks as `as`. Ids are "<sender>#<seq>"
 * (runtime.ts), and a party's own count starts at its clock (~1.7e12 ms): the
 * tests count far above it, so an attack's id never collides with a real one
 * nor falls below a floor the real sender left (STALE_REQUEST).
 */
export function attackId(as: string): string {
  return `${as}#${ATTACK_SEQ_FROM + ++attackSeq}`;
}

/** Whether a request id is one a test made up (`attackId`), not one a party sent. */
export function isAttackId(id: string): boolean {
  const seq = Number(/#(\d+)$/.exec(id)?.[1] ?? 0);
  return seq > ATTACK_SEQ_FROM;
}

export function asServer(world: World, partyId: string, as = 'server'): ServerSeat {
  const party = world.system.party(partyId);
  const [mine, theirs] = memoryLinkPair(as, partyId);
  const got: AnyEnvelope[] = [];
  const ours = new Set<string>();
  const waiters: Array<{ match: (env: AnyEnvelope) => boolean; resolve: (env: AnyEnvelope) => void }> = [];
  mine.onMessage((bytes) => {
    const env = decodeEnvelope(bytes);
    got.push(env);
    for (const w of [...waiters]) {
      if (w.match(env)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(env);
      }
    }
  });
  // Takes the name the real server's link has at this SAM: the SAM now hears the test instead.
  // (Another name `as` is a link of its own beside the real server's: a peer no handshake vouched for.)
  party.attach(as, theirs, as);
  const next = (what: string, match: (env: AnyEnvelope) => boolean): Promise<AnyEnvelope> => {
    const already = got.find(match);
    if (already) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${partyId} sent no ${what} within ${ANSWER_TIMEOUT_MS} ms; it sent ${got.map((e) => e.type).join(', ')}`)),
        ANSWER_TIMEOUT_MS,
      );
      waiters.push({
        match,
        resolve: (env) => {
          clearTimeout(timer);
          resolve(env);
        },
      });
    });
  };
  return {
    got,
    send(type, body, header = {}) {
      const id = header.id ?? attackId(as);
      if (type !== 'frame' && typeof (body as { session?: unknown }).session === 'string') ours.add((body as { session: string }).session);
      const env = { v: PROTOCOL_VERSION, ...header, id, from: as, to: partyId, type, body } as unknown as AnyEnvelope;
      mine.send(encodeEnvelope(env));
      return id;
    },
    sendBytes(bytes) {
      mine.send(bytes);
    },
    next,
    answerTo: (id) => next(`answer to ${id}`, (env) => env.corr === id),
    framesOfOurSessions: () => got.filter((e) => e.type === 'frame' && ours.has(e.body.session)),
    async giveBack() {
      mine.close('the test gives the seat back');
      await world.system.restart(partyId);
      // A migration SAM knows the server by the key its channel proved; the restart's new channel
      // shakes hands asynchronously, and a seat taken before that would find no server key (NOT_TRUSTED).
      const links = (world.system as unknown as { serverLinks: Map<string, Map<string, { peerId?: string }>> }).serverLinks.get(partyId);
      for (const end = Date.now() + ANSWER_TIMEOUT_MS; links && !links.get('server')?.peerId; ) {
        if (Date.now() > end) throw new Error(`${partyId}: the real server's channel did not come back within ${ANSWER_TIMEOUT_MS} ms`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

/** The test relays a frame the SAM sent to it on to a chip (as the server and terminal would), and the chip's answer back. */
export async function relay(seat: ServerSeat, console_: ChipConsole, frame: AnyEnvelope): Promise<ChipFrame> {
  if (frame.type !== 'frame') throw new Error(`relay: ${frame.type} is not a frame`);
  const answer = await console_.exchange(frame.body.session, fromB64(frame.body.data));
  seat.send('frame', { session: frame.body.session, data: toB64(new TextEncoder().encode(JSON.stringify(answer))) });
  return answer;
}

const bytesAsB64 = (_k: string, v: unknown): unknown => (v instanceof Uint8Array ? toB64(v) : v);

/**
 * Every record a replay must leave as it was: each chip's areas (data, keys,
 * counter, holder, last command), each migration SAM's held items and fences,
 * and the admin SAM's temp keys and decision records.
 */
export function state(world: World): string {
  const out: Record<string, unknown> = {};
  for (const [serial, chip] of world.system.chips) out[`chip ${serial}`] = chip.memory.list();
  for (const [p, prov] of world.system.providers) {
    out[`msam ${p} items`] = prov.migrationSam.held();
    out[`msam ${p} fenced`] = [...prov.migrationSam.records.fenced.getRange()].map((e) => e.value);
  }
  const admin = world.system.adminSam.records;
  out['admin temp keys'] = [...admin.tempKeys.getRange()].map((e) => e.value);
  out['admin decisions'] = [...admin.decisions.getRange()].map((e) => e.value);
  return JSON.stringify(out, bytesAsB64);
}

/** The code and message of a refusal, whichever form it came in (an error envelope, or a chip err frame). */
export function refusalOf(x: AnyEnvelope | ChipFrame): { code: string; message: string } {
  if ('t' in x) {
    if (x.t !== 'err') throw new Error(`expected a refusal, the chip answered ${x.t}`);
    return { code: x.code, message: x.message };
  }
  if (x.type !== 'error') throw new Error(`expected a refusal, got ${x.type}: ${JSON.stringify(x.body).slice(0, 200)}`);
  return x.body;
}

/**
 * protocol.md §4.1 and §4.2 for a world where migrations chain (a destination
 * becomes the next source): no item spendable on two chips; every item
 * spendable somewhere, locked in an area whose migration is not committed, or
 * held by a migration SAM. (test/helpers/invariants.ts knows one source only.)
 */
export function checkChained(world: World): void {
  if (world.system.restarting.size > 0) return;
  const admin = world.system.adminSam;
  const where = new Map<string, { spendable: string[]; backup: boolean; held: boolean }>();
  const at = (ref: string) => where.get(ref) ?? where.set(ref, { spendable: [], backup: false, held: false }).get(ref)!;
  for (const chip of world.system.chips.values()) {
    for (const area of chip.memory.list()) {
      if (!area.data) continue;
      const w = at(decodeValue(area.data).ref);
      if (area.state === 'mainActive') w.spendable.push(chip.serial);
      if (area.state === 'locked' && area.holder !== null && admin.decisionOf(area.holder) !== 'committed') w.backup = true;
    }
  }
  for (const prov of world.system.providers.values()) {
    for (const h of prov.migrationSam.held()) if (h.data) at(decodeValue(h.data).ref).held = true;
  }
  for (const v of world.values) {
    const w = at(v.ref);
    if (w.spendable.length > 1) throw new Error(`DUPLICATION: item ${v.ref} is spendable on ${w.spendable.join(' and ')}`);
    if (w.spendable.length === 0 && !w.backup && !w.held) throw new Error(`LOSS: item ${v.ref} is not recoverable: ${JSON.stringify(w)}`);
  }
}

/**
 * Every secret of a world, as needles for test/helpers/secrets.ts
 * (`systemNeedles`: the user's password first, login proof and verifier,
 * masters, identities, K_chip and K_main of every chip, temp keys, items).
 * `extra` adds more (a guessed password).
 */
export function secretNeedles(world: World, extra: Needle[] = []): Needle[] {
  const [password, ...rest] = systemNeedles(world.system, { users: [{ user: world.user, password: world.password }], values: world.values });
  return [password!, ...extra, ...rest];
}
