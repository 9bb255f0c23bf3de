/**
 * Deterministic simulation (simulation.md): the whole system — every party,
 * real crypto, real LMDB stores — runs in this process on a virtual clock and
 * a pooled network, and every choice (which message goes next and when, which
 * fault strikes, which party crashes where, which link is cut, what each user
 * does when) is drawn from generators seeded by one seed. A seed therefore
 * replays the same run: the same trace, line for line, and the same trace
 * hash.
 *
 * One seed: build a world of M users (each a source chip with K items and an
 * empty destination, on two phones), then a safety phase with faults on in
 * which the invariants of protocol.md §4 are checked after every delivered
 * message, then a liveness phase (faults off, crashed parties restarted,
 * partitions healed) in which every migration must end: completed, unless
 * its user cancelled or gave it a deadline, and then possibly rolled back;
 * balances conserved; migration SAM stores empty.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { brokenAdminSam, type BreakProtocol } from '../testing/broken.ts';
import { tampering } from '../testing/tamper.link.ts';
import type { ChipRuntime } from '../actors/chip.actor.ts';
import { CrashSignal, ONE_TURN_PER_COMMIT, type TurnPoint } from '../actors/runtime.ts';
import { statePath } from '../actors/status.ts';
import { EmbeddedSystem } from '../actors/system.ts';
import type { TerminalRuntime } from '../actors/terminal.actor.ts';
import { decodeValue, worth, type ValueItem } from '../actors/value.ts';
import { demoValue } from '../fixtures/demo.ts';
import { seededRng, toHex, type SeededRng } from '../crypto/index.ts';
import { utf8 } from '../crypto/bytes.ts';
import { createLogger } from '../log.ts';
import { FAST_TIMING, type Timing } from '../timing.ts';
import { peekHeader } from '../transport/envelope.ts';
import type { FaultPolicy } from '../transport/faulty.link.ts';
import { observable, SafetyChecker, spendableWorth, type Violation } from './invariants.ts';
import { makeDefective, RogueServer, type RogueAttack, type RogueStats } from './rogue.ts';
import { SimNetwork, VirtualClock } from './world.ts';
import { GRANT_TTL_MS } from '../actors/server.actor.ts';

export const FAULT_KINDS = ['drop', 'dup', 'reorder', 'delay', 'crash', 'partition'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * The protocol's timeouts in simulation: FAST_TIMING, on the virtual clock,
 * with inbox records kept 2 s: above the longest partition (1.5 s) and a
 * restart, so a seed prunes inboxes in its safety phase, under faults.
 */
export const SIM_TIMING: Timing = { ...FAST_TIMING, inboxRetentionMs: 2_000 };
/** scrypt cost of user passwords in simulation (logins are not what is under test). */
const SIM_SCRYPT = { N: 2 ** 10, r: 8, p: 1 };
/** A message's latency on a link: 0 to this many virtual ms. */
const LATENCY_MAX_MS = 4;
/** Virtual time of the safety phase (faults on), after the world is built. */
const SAFETY_MS = 6_000;
/** Virtual time the liveness phase may take before a migration that has not ended is a violation. */
const LIVENESS_MS = 120_000;
/** Deliveries and timer firings a seed may take in all (a run that loops forever is a violation, not a hang). */
const EVENTS_MAX = 400_000;
/** How often, in virtual ms, a user looks at the phones again (plus up to as much again, drawn). */
const USER_TICK_MS = 60;
/** A user who got no answer on a phone for this long (virtual ms) taps again. */
const USER_PATIENCE_MS = 3_000;
/**
 * A user whose migration was refused (a preflight that timed out under faults, or a stale repeat of a
 * request that the server took up after the phone had already given up on it) starts another, until this
 * many of their migrations were refused. Refusals are counted, not taps: a tap on a phone that is down, or
 * one answered with a transport error, starts nothing and costs nothing.
 */
const USER_REFUSALS_MAX = 4;

export interface SimOptions {
  seed: string;
  /** Concurrent migrations (one user each). */
  migrations: number;
  /** Most value items per migration (each user's count is drawn from 1 to this), each from its own provider. */
  items: number;
  faults: readonly FaultKind[];
  /** Parent folder for the seed's LMDB stores (one subfolder per seed, removed after). */
  dataDir: string;
  /** Fault numbers that must not strike (shrinking). */
  mask?: ReadonlySet<number>;
  breakProtocol?: BreakProtocol;
  /**
   * The rogue server's attacks on (src/sim/rogue.ts): the server's seat on its links to the SAMs is an
   * adversary's, which now and then asks for what an honest server never would. 'download-kcv' makes some
   * users' destination chips defective instead (their migrations must never complete).
   */
  rogue?: readonly RogueAttack[];
  /**
   * Users try to pay (spend an item, or use a ticket) on both phones, before, during and after their
   * migration, and across crashes; each phone is a reader its providers enrolled. An item spent on both sides
   * of its move is a violation ('spent-twice'), checked on the receipts the phones got.
   */
  pay?: boolean;
  /** Keep the trace lines (they are always hashed). */
  keepTrace?: boolean;
}

export interface FaultMix {
  drop: number;
  dup: number;
  reorder: number;
  delay: number;
  delayMaxMs: number;
  /** Probability that a party crashes at a turn point. */
  crash: number;
  /** Partitions started per virtual second. */
  partition: number;
}

export interface SeedResult {
  seed: string;
  ok: boolean;
  violation?: Violation & { atMs: number; event: number };
  traceHash: string;
  trace: string[];
  mix: FaultMix;
  /** Fault numbers that struck, in order (the shrinker switches them off). */
  struck: number[];
  stats: {
    delivered: number;
    events: number;
    virtualMs: number;
    faults: Record<string, number>;
    crashes: number;
    restarts: number;
    partitions: number;
    outcomes: Record<string, number>;
    wallMs: number;
    /** Payments users tried: accepted (a receipt), refused or unanswered. */
    payments?: { tried: number; accepted: number; failed: number };
    /** The rogue server's attacks: tried, refused by their check, unanswered (lost to faults). */
    rogue?: Record<string, RogueStats>;
  };
}

interface User {
  name: string;
  index: number;
  source: string;
  destination: string;
  oldPhone: string;
  newPhone: string;
  items: ValueItem[];
  deadlineMs?: number;
  /** Virtual time before which the user does not bring the destination (to let a deadline pass). */
  arriveAfter: number;
  cancelAt?: number;
  cancelled: boolean;
  migs: string[];
  /** Its destination chip writes wrong main keys (rogue mode, 'download-kcv'): the migration must not complete. */
  defective: boolean;
  /** When the user last tapped cancel. */
  cancelTriedAt: number;
  /** What each phone is busy with for this user: the runtime asked, and since when (a crashed phone forgets). */
  inFlight: Map<string, { runtime: TerminalRuntime; since: number }>;
  lastAction: number;
}

/** Probability that a user, looking at the phones, first tries to pay with one of them. */
const PAY_RATE = 0.25;
/** A payment's amount: 1 to this many units (a ticket is used whole). */
const PAY_AMOUNT_MAX = 40;

/** What the phones were told of the payments of one item: receipts, and attempts that got none. */
interface PayLedger {
  /** Units spent with a receipt. */
  receipted: number;
  /** Units of attempts with no receipt: refused, failed or never answered (the chip may or may not have written them). */
  unknown: number;
  /** Ticket uses with a receipt. */
  uses: number;
  /** Chips on which a payment of this item got a receipt. */
  on: Set<string>;
}

/** Parties whose stores hold what the invariants read. */
const OBSERVED = /^(chip\/|migration-sam\/|admin-sam$)/;

const FINAL = new Set(['completed', 'rolledBack', 'refused']);

function pick<T>(rng: SeededRng, xs: readonly T[]): T {
  return xs[Math.floor(rng.nextFloat() * xs.length)]!;
}

/** Draws this seed's fault mix (swarm testing: some seeds lose a third of their messages, some nothing). */
export function drawMix(rng: SeededRng, kinds: readonly FaultKind[]): FaultMix {
  const on = (k: FaultKind) => kinds.includes(k);
  return {
    drop: on('drop') ? pick(rng, [0, 0.01, 0.05, 0.15, 0.3]) : 0,
    dup: on('dup') ? pick(rng, [0, 0.02, 0.1, 0.3]) : 0,
    reorder: on('reorder') ? pick(rng, [0, 0.02, 0.1, 0.3]) : 0,
    delay: on('delay') ? pick(rng, [0, 0.05, 0.2, 0.5]) : 0,
    delayMaxMs: pick(rng, [5, 20, 100]),
    crash: on('crash') ? pick(rng, [0, 0.0005, 0.002, 0.006]) : 0,
    partition: on('partition') ? pick(rng, [0, 0.5, 2]) : 0,
  };
}

function account(t: TerminalRuntime): string {
  const a = (t.state() as { account?: unknown } | undefined)?.account;
  return typeof a === 'string' ? a : a && typeof a === 'object' ? Object.keys(a)[0]! : 'unknown';
}

export async function runSeed(o: SimOptions): Promise<SeedResult> {
  const wallStart = performance.now();
  // Independent streams from the one seed: the protocol's random bytes, the scheduler and weather, the link faults.
  const protoRng = seededRng(`${o.seed}/protocol`);
  const rng = seededRng(`${o.seed}/scheduler`);
  const faultRng = seededRng(`${o.seed}/faults`);
  const mix = drawMix(rng, o.faults);
  const clock = new VirtualClock();
  const net = new SimNetwork(clock, rng, LATENCY_MAX_MS);
  const dir = join(o.dataDir, `seed-${o.seed.replace(/[^A-Za-z0-9_-]/g, '_')}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });

  const hash = sha256.create();
  const trace: string[] = [];
  const t0 = clock.now();
  const line = (s: string) => {
    const l = `${String(clock.now() - t0).padStart(7)} ${s}`;
    hash.update(utf8(`${l}\n`));
    if (o.keepTrace) trace.push(l);
  };

  let phase: 'setup' | 'safety' | 'liveness' = 'setup';
  let faultNo = 0;
  const struck: number[] = [];
  const faults: Record<string, number> = {};
  const down = new Set<string>();
  const pending = new Set<Promise<unknown>>();
  let crashes = 0;
  let restarts = 0;
  let partitions = 0;
  /** Numbers a fault; false when the shrinker switched this one off. */
  const strike = (kind: string, where: string): boolean => {
    const n = faultNo++;
    if (o.mask?.has(n)) return false;
    struck.push(n);
    faults[kind] = (faults[kind] ?? 0) + 1;
    line(`FAULT #${n} ${kind} ${where}`);
    return true;
  };

  const track = (p: Promise<unknown>) => {
    const q = p.catch(() => {}).finally(() => pending.delete(q));
    pending.add(q);
  };

  const rogue = o.rogue && o.rogue.length > 0 ? new RogueServer(seededRng(`${o.seed}/rogue`), clock, new Set(o.rogue), line) : undefined;
  const rogueRng = seededRng(`${o.seed}/rogue-chips`);
  const payRng = seededRng(`${o.seed}/payments`);
  const ledger = new Map<string, PayLedger>();
  const payments = { tried: 0, accepted: 0, failed: 0 };
  /** Destination chips made defective (made so again at each restart). */
  const defective = new Set<string>();

  // Persist, then speak (architecture.md): a party sends a new envelope only between the commit of the turn that
  // made it and that turn's end. One sent at any other time (a resend of what is on disk is not new) is told to a
  // peer before it is durable: a crash there makes what the party remembers and what its peers were told disagree.
  const speaking = new Set<string>();
  const sentIds = new Map<string, Set<string>>();
  let unpersisted: Violation | undefined;
  const spoke = (party: string, peer: string, h: { id?: string; type?: string }, bytes: Uint8Array) => {
    if (h.id === undefined || phase === 'setup') return;
    let ids = sentIds.get(party);
    if (!ids) sentIds.set(party, (ids = new Set()));
    if (ids.has(h.id)) return;
    ids.add(h.id);
    // Outside a turn's send: a refusal (it changed nothing), or what is on disk already (the outbox, or a reply in
    // the inbox record of its request), sent now because its link was down when its turn spoke.
    if (speaking.has(party) || h.type === 'error' || durable(party, h.id, bytes)) return;
    unpersisted ??= { invariant: 'persist-then-speak', message: `${party} sent ${h.type ?? '?'} ${h.id} to ${peer} before it was on disk: a peer was told what ${party} would not remember after a crash` };
  };
  /** Whether an envelope a party sends is in its store (or deliberately kept off disk: a login proof). */
  const durable = (party: string, id: string, bytes: Uint8Array): boolean => {
    const corr = (JSON.parse(new TextDecoder().decode(bytes)) as { corr?: string }).corr;
    return system.party(party).remembers(id, corr);
  };

  // A party that throws outside its turns (an intent handler's mistake, a turn that failed after a state change)
  // would end the process with an uncaught exception: here it ends the seed with a named violation instead.
  let escaped: Violation | undefined;
  const onEscape = (e: unknown) => {
    escaped ??= { invariant: 'uncaught', message: `an exception escaped a party: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}` };
  };
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);

  let system!: EmbeddedSystem;
  const restart = (id: string) => {
    track(
      system.restart(id).then(() => {
        down.delete(id);
        stale = true;
        restarts++;
        line(`RESTART ${id}`);
      }),
    );
  };

  system = await EmbeddedSystem.start({
    dataDir: dir,
    providers: Array.from({ length: Math.max(2, o.items) }, (_, i) => `p${i}`),
    rng: protoRng,
    clock,
    scheduler: net,
    faultRng,
    // VALMOVE_SIM_LOG=debug|info|warn: the parties' logs on stderr, with virtual timestamps (for a replayed seed).
    log: createLogger({
      level: (process.env.VALMOVE_SIM_LOG as 'info' | undefined) ?? 'silent',
      now: () => clock.now(),
      sink: { write: (s: string) => void process.stderr.write(s) },
    }),
    scrypt: SIM_SCRYPT,
    timing: SIM_TIMING,
    adminSam: o.breakProtocol ? brokenAdminSam(o.breakProtocol) : undefined,
    wrapSender: rogue ? tampering(rogue.tamper) : undefined,
    onPartyStarted: (party) => {
      if (defective.has(party.id)) makeDefective(party as ChipRuntime);
    },
    commits: 'sync',
    commitPolicy: ONE_TURN_PER_COMMIT,
    envelopeTap: (party, direction, peer, bytes) => {
      const h = peekHeader(bytes);
      if (direction === 'out') return spoke(party, peer, h, bytes);
      line(`${party} <- ${peer} ${h.type ?? '?'} ${h.id ?? ''}`);
    },
    onTurnPoint: (party: string, point: TurnPoint, info) => {
      if (point === 'after-persist') speaking.add(party);
      else speaking.delete(party);
      if (phase !== 'safety' || mix.crash === 0 || down.has(party)) return;
      if (rng.nextFloat() >= mix.crash || !strike('crash', `${party} ${point} ${info.type ?? ''}`)) return;
      crashes++;
      down.add(party);
      const back = clock.now() + 5 + Math.floor(rng.nextFloat() * 400);
      clock.schedule(back, () => restart(party));
      throw new CrashSignal(`${party} at ${point}`);
    },
  });

  // ---- the loop: deliver the next message or fire the next timer, then wait until every party is idle --------
  let events = 0;
  const busy = () => pending.size > 0 || system.parties().some((p) => p.busy);
  const settle = async () => {
    for (;;) {
      if (busy()) {
        await Promise.all([...system.parties().map((p) => p.idle()), ...pending]);
        continue;
      }
      await new Promise<void>((r) => setImmediate(r));
      if (!busy()) return;
    }
  };
  let violation: SeedResult['violation'];
  const refs: string[] = [];
  let checker: SafetyChecker | undefined;
  /** A party restarted since the last check: read every store again. */
  let stale = true;
  const fail = (v: Violation) => {
    violation ??= { ...v, atMs: clock.now() - t0, event: events };
    line(`VIOLATION ${v.invariant}: ${v.message}`);
  };
  /** Runs until `done`, quiescence, the virtual time `endAt`, or a violation. */
  const pump = async (done: () => boolean, endAt: number, check: boolean) => {
    for (;;) {
      await settle();
      if (rogue?.finding && !violation) return fail({ invariant: 'rogue', message: rogue.finding.message });
      if (unpersisted && !violation) return fail(unpersisted);
      if (escaped && !violation) return fail(escaped);
      if (violation || done()) return;
      const tn = net.nextAt();
      const tc = clock.nextAt();
      if (tn === undefined && tc === undefined) return;
      const next = Math.min(tn ?? Infinity, tc ?? Infinity);
      if (next > endAt) return;
      if (++events > EVENTS_MAX) return fail({ invariant: 'liveness', message: `no end after ${EVENTS_MAX} events` });
      clock.advanceTo(next);
      if (tn !== undefined && tn <= (tc ?? Infinity)) {
        const m = net.take()!;
        m.fn();
        // Only chips, migration SAMs and the admin SAM keep what the invariants read: check after what reaches them.
        if (check && OBSERVED.test(m.delivery.to)) {
          await settle();
          if (observable(system, down)) {
            checker ??= new SafetyChecker(system, new Set(refs));
            if (stale) {
              checker.refreshAll();
              stale = false;
            } else checker.refresh(m.delivery.to);
            const v = checker.check();
            if (v) return fail(v);
          }
        }
      } else clock.fireNext();
    }
  };
  const until = async <T>(p: Promise<T>, what: string): Promise<T> => {
    let settled = false;
    let value: T | undefined;
    let error: unknown;
    p.then(
      (v) => ((settled = true), (value = v)),
      (e) => ((settled = true), (error = e)),
    );
    // The issuing desk's console talks to a chip outside the simulated network (on the event loop): let it.
    for (let spins = 0; !settled && spins < 10_000; spins++) {
      await pump(() => settled, clock.now() + 60_000, false);
      if (!settled) await new Promise<void>((r) => setImmediate(r));
    }
    if (!settled) throw new Error(`simulation setup: ${what} did not finish`);
    if (error) throw error;
    return value as T;
  };

  const outcomes: Record<string, number> = {};
  const users: User[] = [];
  let result: SeedResult | undefined;
  try {
    // ---- the world ----------------------------------------------------------------------------------
    const providers = Array.from({ length: Math.max(2, o.items) }, (_, i) => `p${i}`);
    const kinds = ['emoney', 'transit', 'ticket', 'points'] as const;
    for (let i = 0; i < o.migrations; i++) {
      const name = `u${i}`;
      await until(system.server.createUser(name, 'pw'), `user ${name}`);
      const src = await system.addChip(`S${i}`);
      const dst = await system.addChip(`D${i}`);
      // Swarm: each user's chip holds 1 to K items.
      const count = 1 + Math.floor(rng.nextFloat() * o.items);
      const items = Array.from({ length: count }, (_, k) => demoValue(kinds[k % kinds.length]!, i * 10 + k, toHex(protoRng.bytes(16))));
      await until(system.issue(src, items.map((value, k) => ({ area: providers[k]!, provider: providers[k]!, value }))), `issuing ${name}`);
      const phone = async (role: string, chip: ChipRuntime) => {
        const t = await system.addTerminal(`${role}${i}`);
        system.insertChip(t, chip);
        system.connectToServer(t);
        await until(t.login(name, 'pw'), `login ${t.id}`);
        await until(t.register(), `register ${chip.id}`);
        return t.id;
      };
      const oldPhone = await phone('old', src);
      const newPhone = await phone('new', dst);
      if (o.pay) {
        // Each phone is a reader its providers enrolled (a phone spends; it tops up only with a voucher).
        for (const id of [oldPhone, newPhone]) for (let k = 0; k < count; k++) system.connectReader(system.party<TerminalRuntime>(id), providers[k]!);
        for (const it of items) ledger.set(it.ref, { receipted: 0, unknown: 0, uses: 0, on: new Set() });
      }
      const isDefective = o.rogue?.includes('download-kcv') === true && rogueRng.nextFloat() < 0.3;
      if (isDefective) {
        defective.add(dst.id);
        makeDefective(dst);
        rogue!.stats['download-kcv'].tried++;
      }
      const hasDeadline = rng.nextFloat() < 0.2;
      const deadlineMs = hasDeadline ? 100 + Math.floor(rng.nextFloat() * 2_000) : undefined;
      const cancels = rng.nextFloat() < 0.2;
      users.push({
        name,
        index: i,
        source: `S${i}`,
        destination: `D${i}`,
        oldPhone,
        newPhone,
        items,
        deadlineMs,
        arriveAfter: deadlineMs ? clock.now() + Math.floor(rng.nextFloat() * 2 * deadlineMs) : 0,
        // A defective destination never takes a download (its key check fails each time): its user gives up
        // once the attempts have had time to be refused, and cancels.
        cancelAt: isDefective ? clock.now() + 3_000 + Math.floor(rogueRng.nextFloat() * 3_000) : cancels ? clock.now() + Math.floor(rng.nextFloat() * 2_000) : undefined,
        cancelled: false,
        migs: [],
        defective: isDefective,
        cancelTriedAt: -Infinity,
        inFlight: new Map(),
        lastAction: -Infinity,
      });
      for (const it of items) refs.push(it.ref);
    }
    const totalWorth = spendableWorth(system);
    line(`WORLD ${o.migrations} users x ${o.items} items, worth ${totalWorth}, mix ${JSON.stringify(mix)}`);

    // ---- users: look at the phones every so often, and do the next thing ---------------------------------
    const latest = (u: User) => {
      if (system.server.isStopped) return undefined;
      for (const m of system.server.migrationIds()) {
        if (!u.migs.includes(m) && system.server.migration(m)?.user === u.name) u.migs.push(m);
      }
      return u.migs[u.migs.length - 1];
    };
    const stateOf = (m: string) => statePath(system.server.migrationState(m));
    /** How many of this user's migrations were refused (the user gives up after USER_REFUSALS_MAX). */
    const refusals = (u: User) => u.migs.filter((m) => stateOf(m) === 'refused').length;
    const ended = (u: User) => {
      const m = latest(u);
      if (!m) return false;
      const s = stateOf(m);
      return s === 'completed' || s === 'rolledBack' || (s === 'refused' && (u.cancelled || refusals(u) >= USER_REFUSALS_MAX));
    };
    const allEnded = () => !system.server.isStopped && users.every(ended);
    /** One action at a time per phone: the next waits until the last one is answered (or its phone crashed). */
    const busyPhone = (u: User, phoneId: string) => {
      const f = u.inFlight.get(phoneId);
      return f !== undefined && f.runtime === system.party<TerminalRuntime>(phoneId) && clock.now() - f.since < USER_PATIENCE_MS;
    };
    const act = (u: User, phoneId: string, what: string, fn: (t: TerminalRuntime) => Promise<unknown>) => {
      if (busyPhone(u, phoneId) || down.has(phoneId)) return;
      const t = system.party<TerminalRuntime>(phoneId);
      if (t.isStopped) return;
      u.lastAction = clock.now();
      const mine = { runtime: t, since: clock.now() };
      u.inFlight.set(phoneId, mine);
      const a = account(t);
      const run = a === 'loggedOut' ? t.login(u.name, 'pw') : a === 'loggedIn' ? fn(t) : Promise.resolve();
      line(`USER ${u.name} ${a === 'loggedOut' ? 'login' : what} on ${phoneId}`);
      void run.catch(() => {}).finally(() => u.inFlight.get(phoneId) === mine && u.inFlight.delete(phoneId));
    };
    /** The user pays with one phone (or uses a ticket), for one of the items, as a reader of its provider. */
    const pay = (u: User, phoneId: string, k: number) => {
      if (busyPhone(u, phoneId) || down.has(phoneId)) return undefined;
      const t = system.party<TerminalRuntime>(phoneId);
      if (t.isStopped) return undefined;
      const item = u.items[k]!;
      const provider = providers[k]!;
      const ticket = item.kind === 'ticket';
      const amount = ticket ? undefined : 1 + Math.floor(payRng.nextFloat() * PAY_AMOUNT_MAX);
      const serial = phoneId === u.oldPhone ? u.source : u.destination;
      const mine = { runtime: t, since: clock.now() };
      u.inFlight.set(phoneId, mine);
      u.lastAction = clock.now();
      payments.tried++;
      line(`USER ${u.name} ${ticket ? 'uses' : `pays ${amount} of`} item ${k} on ${phoneId}`);
      const l = ledger.get(item.ref)!;
      // Unknown until a receipt comes: a phone that crashes mid-payment never hears (its promise never settles).
      if (!ticket) l.unknown += amount!;
      return t
        .normalUse(provider, ticket ? 'use' : 'pay', provider, amount)
        .then(
          () => {
            payments.accepted++;
            l.on.add(serial);
            if (ticket) l.uses++;
            else {
              l.receipted += amount!;
              l.unknown -= amount!;
            }
            line(`PAID ${u.name} item ${k} on ${serial}`);
          },
          (e: unknown) => {
            payments.failed++;
            line(`PAY REFUSED ${u.name} item ${k} on ${serial}: ${(e as { code?: string }).code ?? (e as Error).message}`);
          },
        )
        .finally(() => u.inFlight.get(phoneId) === mine && u.inFlight.delete(phoneId));
    };
    const tick = (u: User) => {
      if (system.server.isStopped || down.has('server')) return;
      if (o.pay && payRng.nextFloat() < PAY_RATE) {
        const phoneId = payRng.nextFloat() < 0.5 ? u.oldPhone : u.newPhone;
        if (pay(u, phoneId, Math.floor(payRng.nextFloat() * u.items.length))) return;
      }
      const m = latest(u);
      const s = m ? stateOf(m) : undefined;
      if (u.cancelAt !== undefined && !u.cancelled && clock.now() >= u.cancelAt && m && !FINAL.has(s!)) {
        u.cancelled = true;
        u.cancelTriedAt = clock.now();
        act(u, u.oldPhone, `cancel ${m}`, (t) => t.cancel(m));
        return;
      }
      // The user of a defective destination taps cancel until the migration ends (a cancel lost to faults is tried again).
      if (u.defective && u.cancelled && m && !FINAL.has(s!) && !s!.startsWith('rollingBack') && clock.now() - u.cancelTriedAt > USER_PATIENCE_MS) {
        u.cancelTriedAt = clock.now();
        act(u, u.oldPhone, `cancel ${m} (again)`, (t) => t.cancel(m));
        return;
      }
      if (!m || (s === 'refused' && !u.cancelled && refusals(u) < USER_REFUSALS_MAX)) {
        act(u, u.oldPhone, 'migrate-out', (t) => t.migrateOut({ destination: u.destination, ...(u.deadlineMs ? { deadlineMs: u.deadlineMs } : {}) }));
      } else if (s === 'awaitingDestination' || s === 'rollingBack.awaitingDestinationWipe') {
        if (clock.now() >= u.arriveAfter || s !== 'awaitingDestination') act(u, u.newPhone, 'migrate-in', (t) => t.migrateIn({ mig: m }));
      } else if (s === 'rollingBack.awaitingSource') {
        act(u, u.oldPhone, 'migrate-out (source back)', (t) => t.migrateOut());
      }
    };
    let usersOn = true;
    for (const u of users) {
      const again = () => {
        if (!usersOn) return;
        tick(u);
        clock.schedule(clock.now() + USER_TICK_MS + Math.floor(rng.nextFloat() * USER_TICK_MS), again);
      };
      clock.schedule(clock.now() + Math.floor(rng.nextFloat() * USER_TICK_MS), again);
    }

    // ---- weather: partitions ------------------------------------------------------------------------------
    let weatherOn = true;
    const pairs: Array<[string, string]> = [['server', 'admin-sam']];
    for (const p of providers) pairs.push(['server', `migration-sam/${p}`], [`migration-sam/${p}`, `normal-sam/${p}`]);
    for (const u of users) pairs.push([u.oldPhone, 'server'], [u.newPhone, 'server'], [u.oldPhone, `chip/${u.source}`], [u.newPhone, `chip/${u.destination}`]);
    if (mix.partition > 0) {
      const storm = () => {
        if (!weatherOn) return;
        const [a, b] = pick(rng, pairs);
        const ms = 20 + Math.floor(rng.nextFloat() * 1_500);
        if (strike('partition', `${a} | ${b} for ${ms} ms`)) {
          partitions++;
          const untilAt = clock.now() + ms;
          net.partitions.push({ a, b, until: untilAt });
          clock.schedule(untilAt, () => net.heal());
        }
        clock.schedule(clock.now() + Math.floor((rng.nextFloat() * 2_000) / mix.partition), storm);
      };
      clock.schedule(clock.now() + Math.floor((rng.nextFloat() * 1_000) / mix.partition), storm);
    }

    // ---- safety: faults on -----------------------------------------------------------------------------------
    phase = 'safety';
    const policy: FaultPolicy = {
      drop: mix.drop,
      duplicate: mix.dup,
      reorder: mix.reorder,
      delay: mix.delay,
      delayMaxMs: mix.delayMaxMs,
      strike: (kind, link) => strike(kind === 'duplicate' ? 'dup' : kind, link),
    };
    system.setFaults(policy);
    const safetyEnd = clock.now() + SAFETY_MS;
    await pump(allEnded, safetyEnd, true);

    // ---- liveness: faults off, everyone back, run until every migration ended ----------------------------------
    if (!violation) {
      phase = 'liveness';
      weatherOn = false;
      system.setFaults(null);
      net.heal(true);
      line('LIVENESS faults off, partitions healed');
      for (const id of [...down]) restart(id);
      await pump(allEnded, clock.now() + LIVENESS_MS, true);
      usersOn = false;
    }
    if (!violation && o.pay && allEnded()) {
      // After: every user pays once more with each item, on both phones; only the side the item ended on may accept.
      line('AFTER every user pays with every item on both phones');
      for (const u of users) {
        for (const [k] of u.items.entries()) {
          for (const phoneId of [u.oldPhone, u.newPhone]) {
            u.inFlight.delete(phoneId);
            if (pay(u, phoneId, k)) {
              await pump(() => !u.inFlight.has(phoneId), clock.now() + 30_000, true);
            }
          }
        }
      }
    }
    if (!violation) {
      await settle();
      const stuck = users.filter((u) => !ended(u));
      if (stuck.length > 0) {
        fail({
          invariant: 'liveness',
          message: stuck.map((u) => `${u.name}: ${latest(u) ? stateOf(latest(u)!) : 'no migration'}`).join('; ') + ` after ${LIVENESS_MS} virtual ms without faults`,
        });
      }
    }
    if (!violation) {
      const where = new Map<string, string[]>();
      for (const chip of system.chips.values()) {
        for (const a of chip.memory.list()) {
          if (a.state === 'mainActive' && a.data) {
            const ref = decodeValue(a.data).ref;
            where.set(ref, [...(where.get(ref) ?? []), chip.serial]);
          }
        }
      }
      for (const u of users) {
        const s = stateOf(latest(u)!);
        outcomes[s] = (outcomes[s] ?? 0) + 1;
        if (u.defective && s === 'completed') {
          fail({ invariant: 'rogue', message: `check download-kcv did not hold: ${u.name}'s migration completed onto ${u.destination}, whose chip wrote another main key than the provider derived (its key check value was not that key's)` });
          break;
        }
        if (s !== 'completed' && !u.cancelled && !u.deadlineMs && !u.defective) {
          fail({ invariant: 'outcome', message: `${u.name}'s migration ended ${s}, though nobody cancelled it and it had no deadline (${system.server.migration(latest(u)!)?.reason ?? 'no reason recorded'})` });
          break;
        }
        const home = s === 'completed' ? u.destination : u.source;
        for (const it of u.items) {
          const at = where.get(it.ref) ?? [];
          if (at.length !== 1 || at[0] !== home) {
            fail({ invariant: 'outcome', message: `${u.name}'s migration ended ${s}, but item ${it.ref} is spendable on [${at.join(', ')}], not on ${home}` });
            break;
          }
        }
      }
      // Issue 17: the end state of every area a migration touched, on both chips, not only where its value is spendable
      // (a rollback that answers "wiped" without wiping leaves a loaded area on the destination, spendable nowhere).
      const chipBySerial = new Map([...system.chips.values()].map((c) => [c.serial, c] as const));
      const areaState = (serial: string, area: string) => chipBySerial.get(serial)?.memory.get(area)?.state ?? 'absent';
      const WANT: Record<string, { source: string; destination: string }> = {
        completed: { source: 'locked', destination: 'mainActive' },
        rolledBack: { source: 'mainActive', destination: 'absent' },
        refused: { source: 'mainActive', destination: 'absent' },
      };
      for (const u of users) {
        const s = stateOf(latest(u)!);
        const want = WANT[s];
        if (violation || !want) continue;
        for (const k of u.items.keys()) {
          const area = providers[k]!;
          const got = { source: areaState(u.source, area), destination: areaState(u.destination, area) };
          if (got.source !== want.source || got.destination !== want.destination) {
            fail({
              invariant: 'end-state',
              message: `${u.name}'s migration ended ${s}: area ${area} is ${got.source} on the source ${u.source} and ${got.destination} on the destination ${u.destination}; it must be ${want.source} and ${want.destination}`,
            });
            break;
          }
        }
      }
      const after = spendableWorth(system);
      if (!violation && !o.pay && after !== totalWorth) fail({ invariant: 'conservation', message: `balances sum to ${after}, not ${totalWorth}` });
      if (!violation && o.pay) {
        // Each item: what it holds at the end, plus what the phones were given receipts for, is what it started
        // with, less at most the attempts that got no receipt (the chip may have written them). More is value
        // spent twice (a payment accepted on both sides of the move); less is value lost.
        const final = new Map<string, ValueItem>();
        for (const chip of system.chips.values()) {
          for (const a of chip.memory.list()) if (a.state === 'mainActive' && a.data) final.set(decodeValue(a.data).ref, decodeValue(a.data));
        }
        for (const u of users) {
          for (const it of u.items) {
            const l = ledger.get(it.ref)!;
            const end = final.get(it.ref);
            if (violation || !end) continue;
            const sides = [...l.on].join(' and ');
            if (it.kind === 'ticket') {
              if (l.uses > 1) fail({ invariant: 'spent-twice', message: `${u.name}'s ticket ${it.ref} was used ${l.uses} times with a receipt (on ${sides})` });
              else if (l.uses === 1 && !(end as { used: boolean }).used) fail({ invariant: 'spent-twice', message: `${u.name}'s ticket ${it.ref} was used (on ${sides}) and is unused again on the chip it ended on` });
              continue;
            }
            const spent = worth(it) - worth(end);
            if (l.receipted > spent) {
              fail({ invariant: 'spent-twice', message: `${u.name}'s item ${it.ref} started at ${worth(it)} and ends at ${worth(end)}, yet payments of ${l.receipted} got receipts (on ${sides}): ${l.receipted - spent} spent twice` });
            } else if (spent - l.receipted > l.unknown) {
              fail({ invariant: 'conservation', message: `${u.name}'s item ${it.ref} started at ${worth(it)} and ends at ${worth(end)}: ${spent - l.receipted - l.unknown} more than every payment tried (${l.receipted} with receipts, ${l.unknown} without) is gone` });
            }
          }
        }
      }
      for (const [p, prov] of system.providers) {
        const held = prov.migrationSam.held().length;
        if (!violation && held > 0) fail({ invariant: 'sam-stores-empty', message: `migration SAM ${p} still holds ${held} item(s) after every migration ended` });
      }
      // Issue 16: a temp key ends with its migration (the admin SAM deletes it when it answers the activation or the
      // source's restore), read from the admin SAM's store like every check here. The message names no key.
      for (const { value } of system.adminSam.records.tempKeys.getRange()) {
        const s = stateOf(value.mig);
        if (violation || value.key === null || (s !== 'completed' && s !== 'rolledBack')) continue;
        fail({ invariant: 'temp-keys-ended', message: `the admin SAM still holds the temp key of ${value.mig} item ${value.item} after its migration ended ${s}` });
      }
    }
    // The rogue's epilogue: an hour on, every download grant the honest server used, sent again. Each must be
    // refused as expired (whatever became of its migration): the grant-expiry check, exercised.
    if (!violation && rogue && o.rogue?.includes('download-expired-grant')) {
      clock.advanceTo(clock.now() + GRANT_TTL_MS + 1);
      line(`ROGUE epilogue: the clock moved on ${GRANT_TTL_MS} ms`);
      await pump(() => false, clock.now() + 1, false);
      const sent = rogue.replayExpired();
      line(`ROGUE epilogue: ${sent} expired grant(s) sent again`);
      await pump(() => false, clock.now() + 1_000, false);
      if (rogue.finding && !violation) fail({ invariant: 'rogue', message: rogue.finding.message });
    }
    if (escaped && !violation) fail(escaped);
    if (rogue) {
      // A defective destination whose user cancelled before any download reached it: tried, no verdict.
      const kcv = rogue.stats['download-kcv'];
      kcv.unanswered = kcv.tried - kcv.refused;
    }
    line(violation ? 'END violation' : `END ok ${JSON.stringify(outcomes)}${rogue ? ` rogue ${rogue.summary()}` : ''}`);
    void worth;
    result = {
      seed: o.seed,
      ok: !violation,
      violation,
      traceHash: bytesToHex(hash.digest()).slice(0, 32),
      trace,
      mix,
      struck,
      stats: {
        delivered: net.delivered,
        events,
        virtualMs: clock.now() - t0,
        faults,
        crashes,
        restarts,
        partitions,
        outcomes,
        wallMs: Math.round(performance.now() - wallStart),
        ...(rogue ? { rogue: rogue.stats } : {}),
        ...(o.pay ? { payments } : {}),
      },
    };
    return result;
  } finally {
    await Promise.allSettled([...pending]);
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
    system.setFaults(null);
    await system.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Shrinks a failing seed (simulation.md: drop faults while it still fails):
 * switches off halves, then quarters, ... of the faults that struck, keeping
 * every switch-off after which the seed still violates the same invariant.
 * Returns the smallest failing run found and the mask that produces it.
 */
export async function shrink(o: SimOptions, failing: SeedResult, budgetRuns = 24): Promise<{ result: SeedResult; mask: number[]; runs: number }> {
  let best = failing;
  let mask = new Set<number>(o.mask ?? []);
  let runs = 0;
  let chunk = Math.max(1, Math.ceil(best.struck.length / 2));
  while (runs < budgetRuns && best.struck.length > 0) {
    let improved = false;
    for (let start = 0; start < best.struck.length && runs < budgetRuns; start += chunk) {
      const trial = new Set([...mask, ...best.struck.slice(start, start + chunk)]);
      runs++;
      const r = await runSeed({ ...o, mask: trial, keepTrace: true });
      if (!r.ok && r.violation?.invariant === failing.violation?.invariant) {
        best = r;
        mask = trial;
        improved = true;
        break;
      }
    }
    if (!improved) {
      if (chunk === 1) break;
      chunk = Math.max(1, Math.floor(chunk / 2));
    }
  }
  return { result: best, mask: [...mask].sort((a, b) => a - b), runs };
}
