/**
 * The fuzz harness (issue 8, point 6; protocol.md §4.7): fast-check cases of
 * bad input, sent through a seat on a live party's link, one at a time, each
 * judged on what the party answered and on its durable state:
 *
 *  - it answers as the protocol says: a request or notice it refuses gets one
 *    `error` envelope with a code of src/protocol/errors.ts and a sentence that names
 *    what was wrong and where (for decode failures: the field); a reply, or
 *    anything that says it is an `error`, is never answered (no error
 *    ping-pong); a repeated request id gets the replies stored for it; a chip
 *    answers a `frame` inside the session, with an `err` chip frame;
 *  - a refusal changes no record: the party's LMDB image is byte-identical
 *    before and after (a chip's session refusal adds only the frame's inbox
 *    record, which is how a hop deduplicates, and its sequence number);
 *  - it does not crash: no party stops, no rejection or exception escapes.
 *
 * Requests the seat's real peer may make (`commands`) are sent too; the party
 * may serve those and change its state, but must not crash, and a refusal of
 * them must still change nothing. Not a test file.
 */
import fc from 'fast-check';
import { fromB64 } from '../../src/crypto/index.ts';
import { ERROR_CODES, ProtocolError } from '../../src/protocol/errors.ts';
import { decodeChipFrame } from '../../src/transport/chip.frames.ts';
import { decodeEnvelope, peekHeader, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { kindOf } from '../../src/transport/messages.ts';
import { parseRequestId } from '../../src/actors/runtime.ts';
import { MESSAGE_TYPES } from '../property/arbitraries.ts';
import type { World } from '../helpers/world.ts';
import { CATEGORIES, inputsFor, materialize, type Spec, type Target } from './inputs.ts';
import { storeOf, type Received, type Seat } from './seats.ts';
import { changes, describeChanges, imageOf, type Change, type Image } from './state.ts';

/** Event-loop turns the harness waits for a world to go quiet after one case before it calls the world stuck. */
export const QUIESCE_TURNS_MAX = 2_000;
/** Consecutive turns with every party idle that count as quiet (a message hop is one turn). */
const QUIET_TURNS = 3;
/** Codes a chip puts in an `err` frame besides src/protocol/errors.ts codes: the session layer's (src/crypto/errors.ts). */
const SESSION_CODES = ['FRAME_REPLAY', 'FRAME_REORDER', 'FRAME_TAMPERED', 'FRAME_TOO_LARGE', 'BAD_ENCODING', 'AUTH_FAILED'];

type Expect =
  | { kind: 'refuse'; code?: string; corr?: string; why: string }
  | { kind: 'silent'; why: string }
  | { kind: 'duplicate'; replies: AnyEnvelope[] }
  | { kind: 'chip-frame'; id: string; session: string; code?: string }
  | { kind: 'served'; why: string; id?: string; type?: string };

/** What the protocol says the party must do with these bytes, from its state before it sees them. */
function predict(seat: Seat, bytes: Uint8Array): Expect {
  const party = seat.party;
  let env: AnyEnvelope;
  try {
    env = decodeEnvelope(bytes);
  } catch (e) {
    const head = peekHeader(bytes);
    if (head.type === 'error') return { kind: 'silent', why: 'what calls itself an error is never answered' };
    return { kind: 'refuse', code: (e as ProtocolError).code, corr: head.id, why: 'it does not decode' };
  }
  const kind = kindOf(env.type);
  if (env.to !== party.id)
    return kind === 'reply'
      ? { kind: 'silent', why: 'a reply is never answered' }
      : { kind: 'refuse', code: 'BAD_ENVELOPE', corr: env.id, why: 'addressed elsewhere' };
  if (env.from !== seat.self)
    return kind === 'reply'
      ? { kind: 'silent', why: 'a reply is never answered' }
      : { kind: 'refuse', code: 'BAD_SENDER', corr: env.id, why: 'from another party than the link' };
  const store = storeOf(party);
  // An answer to a request the party sent this seat acknowledges it. One naming a request sent to another
  // peer must not (found.test.ts, skipped: runtime.ts takes it today); the fuzz worlds keep no such request.
  if (env.corr !== undefined && store.outbox.get(env.corr)?.peer === seat.link)
    return { kind: 'served', why: 'it answers a request the party is waiting on', id: env.id };
  if (kind === 'reply') return { kind: 'silent', why: 'a reply the party is not waiting on is dropped' };
  if (kind === 'notice') {
    if (seat.noticeIds.has(env.id)) return { kind: 'silent', why: 'a notice id seen before is dropped' };
    seat.noticeIds.add(env.id);
  }
  if (kind === 'request') {
    // A request id names its sender and a sequence number (runtime.ts): one that does not is refused first.
    const sent = parseRequestId(env.id);
    if (!sent || sent.from !== env.from) return { kind: 'refuse', code: 'BAD_ENVELOPE', corr: env.id, why: 'its id is not its sender\'s "<from>#<seq>"' };
    const seen = store.inbox.get(env.id);
    if (seen) {
      return seen.from === env.from
        ? { kind: 'duplicate', replies: seen.replies }
        : { kind: 'refuse', code: 'BAD_ENVELOPE', corr: env.id, why: 'its id was used by another sender' };
    }
  }
  if (env.type === 'frame') {
    const { session, data } = env.body;
    let code: string | undefined;
    try {
      decodeChipFrame(fromB64(data));
    } catch (e) {
      code = e instanceof ProtocolError ? e.code : 'FRAME_REJECTED';
    }
    if (seat.chip) return { kind: 'chip-frame', id: env.id, session, code };
    if (seat.openSessions.includes(session)) {
      return code
        ? { kind: 'refuse', code, corr: env.id, why: 'a malformed chip frame in an open session' }
        : { kind: 'served', why: 'a chip frame in an open session', id: env.id, type: 'frame' };
    }
    // A session a served case opened may have ended since: the party may take the frame or refuse it, changing nothing.
    if (seat.liveSessions.has(session)) return { kind: 'served', why: 'a frame in a session the party opened with this seat', id: env.id, type: 'frame' };
  }
  if (seat.commands.has(env.type)) return { kind: 'served', why: `${env.type} is a request this peer may make`, id: env.id, type: env.type };
  return { kind: 'refuse', corr: env.id, why: `${env.type} is not expected here` };
}

/** Whether a refusal's sentence names what was wrong and where. */
function sentenceProblem(code: string, message: string): string | undefined {
  if (!(ERROR_CODES as readonly string[]).includes(code)) return `code ${code} is not one of src/protocol/errors.ts`;
  if (message.trim().length < 15) return `the sentence "${message}" is too short to act on`;
  const must: Partial<Record<string, RegExp>> = {
    BAD_JSON: /not valid UTF-8 JSON/,
    BAD_BODY: /^[a-z.-]+ body is invalid: body(\.[^:\s]+)*: /,
    UNKNOWN_TYPE: /^message type ".*" is not part of protocol v1/s,
    TOO_LARGE: /is \d+ bytes; the limit is \d+/,
  };
  if (code === 'BAD_ENVELOPE' && /^envelope is malformed/.test(message) && !/^envelope is malformed: [^:]+: /.test(message))
    return 'a malformed envelope without the field it is about';
  const re = must[code];
  if (re && !re.test(message)) return `a ${code} sentence should match ${re}`;
  return undefined;
}

export interface Tally {
  party: string;
  cases: number;
  ms: number;
  byCategory: Record<string, number>;
  answers: Record<string, number>;
  /** Message types whose body schema a case broke. */
  bodiesBroken: Set<string>;
}

interface Judged {
  answer: string;
  problem?: string;
}

/** An envelope as it crosses the wire, keys in a fixed order (a stored reply and the same reply decoded compare equal). */
function canonical(env: AnyEnvelope): string {
  const sort = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v)
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([k, x]) => [k, sort(x)]),
        )
      : Array.isArray(v)
        ? v.map(sort)
        : v;
  return JSON.stringify(sort(env));
}

/** The inbox record a served request leaves: its entry, and its place in the by-time index (a key that holds the id). */
function recordOf(c: Change, id: string | undefined): boolean {
  if (id === undefined || c.how !== 'added') return false;
  return (c.db === 'inbox' && c.key === id) || (c.db === 'inbox-by-time' && c.key.includes(id));
}

function judge(seat: Seat, expect: Expect, got: Received[], cs: Change[], chipWasIdle: boolean): Judged {
  const party = seat.party;
  for (const r of got) {
    if (r.undecodable) return { answer: 'undecodable', problem: `the party sent bytes that do not decode: ${r.undecodable}` };
    if (r.env!.from !== party.id || r.env!.to !== seat.self)
      return { answer: 'misaddressed', problem: `the party sent ${r.env!.type} from ${r.env!.from} to ${r.env!.to}` };
  }
  const envs = got.map((r) => r.env!);
  const changed = () => `state changed: ${describeChanges(cs)}`;
  switch (expect.kind) {
    case 'silent':
      if (envs.length > 0) return { answer: 'answered', problem: `expected no answer (${expect.why}), got ${envs.map((e) => e.type).join(', ')}` };
      return cs.length > 0 ? { answer: 'silent', problem: changed() } : { answer: 'silent' };
    case 'duplicate':
      if (envs.map(canonical).join('\n') !== expect.replies.map(canonical).join('\n'))
        return {
          answer: 'duplicate',
          problem: `a repeated request should get its stored replies (${expect.replies.map((e) => e.type).join(', ')}), got ${envs.map((e) => e.type).join(', ')}`,
        };
      return cs.length > 0 ? { answer: 'duplicate', problem: changed() } : { answer: 'duplicate' };
    case 'refuse': {
      if (envs.length !== 1 || envs[0]!.type !== 'error')
        return {
          answer: envs.map((e) => e.type).join('+') || 'silent',
          problem: `expected one error envelope (${expect.why}), got ${envs.map((e) => e.type).join(', ') || 'nothing'}`,
        };
      const err = envs[0] as Extract<AnyEnvelope, { type: 'error' }>;
      const answer = `error ${err.body.code}`;
      if (expect.code && err.body.code !== expect.code)
        return { answer, problem: `expected ${expect.code} (${expect.why}), got ${err.body.code}: ${err.body.message}` };
      if (err.corr !== expect.corr) return { answer, problem: `the error's corr is ${err.corr}, the refused message's id is ${expect.corr}` };
      const bad = sentenceProblem(err.body.code, err.body.message);
      if (bad) return { answer, problem: `${bad}: "${err.body.message}"` };
      return cs.length > 0 ? { answer, problem: changed() } : { answer };
    }
    case 'served': {
      const mine = envs.filter((e) => e.corr === expect.id);
      const refusal = mine.length === 1 && mine[0]!.type === 'error' ? (mine[0] as Extract<AnyEnvelope, { type: 'error' }>) : undefined;
      if (!refusal) return { answer: `served ${mine.map((e) => e.type).join('+') || (envs.length > 0 ? envs.map((e) => e.type).join('+') : 'quietly')}` };
      const answer = `error ${refusal.body.code}`;
      const bad = sentenceProblem(refusal.body.code, refusal.body.message);
      if (bad) return { answer, problem: `${bad}: "${refusal.body.message}"` };
      // A request the party serves may be answered with an error as its reply, kept like any reply (so a repeat
      // gets it again); a refusal at the door keeps nothing. Either way no other record moves, unless this
      // request's refusals are meant to count (failed logins).
      const may = new Set(seat.refusalMayTouch[expect.type ?? ''] ?? []);
      const kept = (c: Change) => recordOf(c, expect.id) || (c.db === 'meta' && c.key === 'seq');
      const unexpected = cs.filter((c) => !may.has(c.db) && !kept(c));
      return unexpected.length > 0 ? { answer, problem: `a refusal changed state: ${describeChanges(unexpected)}` } : { answer };
    }
    case 'chip-frame': {
      const frames = envs.filter((e) => e.type === 'frame');
      if (frames.length !== 1 || envs.length !== 1) {
        return {
          answer: envs.map((e) => e.type).join('+') || 'silent',
          problem: `a chip answers a frame once, in the session (frames are notices: no acknowledgement); got ${envs.map((e) => e.type).join(', ') || 'nothing'}`,
        };
      }
      const f = frames[0] as Extract<AnyEnvelope, { type: 'frame' }>;
      if (f.body.session !== expect.session) return { answer: 'frame', problem: `the chip answered in session ${f.body.session}, not ${expect.session}` };
      const inner = decodeChipFrame(fromB64(f.body.data));
      if (inner.t !== 'err') {
        if (expect.code) return { answer: `frame ${inner.t}`, problem: `a malformed chip frame (${expect.code}) was answered with ${inner.t}` };
        return { answer: `served frame ${inner.t}` };
      }
      const answer = `frame err ${inner.code}`;
      if (expect.code && inner.code !== expect.code) return { answer, problem: `expected ${expect.code}, got ${inner.code}: ${inner.message}` };
      if (!(ERROR_CODES as readonly string[]).includes(inner.code) && !SESSION_CODES.includes(inner.code))
        return { answer, problem: `code ${inner.code} is not a known code` };
      if (inner.message.trim().length < 15) return { answer, problem: `the sentence "${inner.message}" is too short to act on` };
      // A frame is a notice: nothing of it is kept; a session the chip had open may end.
      const allowed = (c: Change) => !chipWasIdle && c.db === 'snapshots';
      const other = cs.filter((c) => !allowed(c));
      return other.length > 0 ? { answer, problem: `a chip's refusal changed state: ${describeChanges(other)}` } : { answer };
    }
  }
}

/** Waits until every party is idle and no message is in flight, for a bounded number of event-loop turns. */
export async function quiesce(world: World): Promise<void> {
  let quiet = 0;
  for (let turn = 0; turn < QUIESCE_TURNS_MAX; turn++) {
    await new Promise((r) => setImmediate(r));
    const parties = world.system.parties();
    if (parties.some((p) => p.busy)) {
      quiet = 0;
      await Promise.all(parties.map((p) => p.idle()));
    } else if (++quiet >= QUIET_TURNS) return;
  }
  throw new Error(`the world did not go quiet within ${QUIESCE_TURNS_MAX} event-loop turns`);
}

/** Rejections and exceptions no one caught, while the fuzzer runs (a party that throws out of its queue). */
export function watchProcess(): { problems: string[]; stop(): void } {
  const problems: string[] = [];
  const onRejection = (e: unknown) => problems.push(`unhandled rejection: ${String(e)}`);
  const onException = (e: unknown) => problems.push(`uncaught exception: ${String(e)}`);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    problems,
    stop() {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}

function preview(bytes: Uint8Array): string {
  const text = Buffer.from(bytes).toString('utf8');
  return `${JSON.stringify(text.slice(0, 400))}${text.length > 400 ? ` (${bytes.length} bytes)` : ''}`;
}

export interface FuzzRun {
  world: World;
  seats: Array<{ seat: Seat; target: Target }>;
  runs: number;
  seed?: number;
}

/**
 * Runs `runs` cases against the party behind the seats (one party; every
 * seat must sit on it), and returns the tally. Throws at the first case the
 * party gets wrong, with the case, what it answered and what changed.
 */
export async function fuzzParty(run: FuzzRun): Promise<Tally> {
  const party = run.seats[0]!.seat.party;
  if (run.seats.some((s) => s.seat.party !== party)) throw new Error('fuzzParty: every seat must sit on the same party');
  const tally: Tally = {
    party: party.id,
    cases: 0,
    ms: 0,
    byCategory: Object.fromEntries(CATEGORIES.map((c) => [c, 0])),
    answers: {},
    bodiesBroken: new Set(),
  };
  const watch = watchProcess();
  const started = performance.now();
  await quiesce(run.world);
  let before: Image = imageOf(party);
  let failure: string | undefined;
  const cases = fc.oneof(...run.seats.map(({ seat, target }) => inputsFor(target).map((spec) => ({ seat, spec }))));
  const property = fc.asyncProperty(cases, async ({ seat, spec }: { seat: Seat; spec: Spec }) => {
    const n = ++tally.cases;
    const id = `${seat.self}#${n}`;
    const bytes = materialize(spec, id);
    const expect = predict(seat, bytes);
    const chipWasIdle = JSON.stringify(party.states()) === JSON.stringify({ chip: 'idle' });
    seat.got.length = 0;
    for (const other of run.seats) other.seat.got.length = 0;
    seat.send(bytes);
    await quiesce(run.world);
    const after = imageOf(party);
    const cs = changes(before, after);
    before = after;
    tally.byCategory[spec.cat] = (tally.byCategory[spec.cat] ?? 0) + 1;
    if (spec.broke) tally.bodiesBroken.add(spec.broke);
    const claimProblem = claimCheck(spec, bytes);
    const j = judge(seat, expect, seat.got, cs, chipWasIdle);
    if (expect.kind === 'served') for (const r of seat.got) if (r.env?.type === 'frame') seat.liveSessions.add(r.env.body.session);
    tally.answers[j.answer] = (tally.answers[j.answer] ?? 0) + 1;
    const crash = party.isStopped ? `${party.id} stopped` : watch.problems.length > 0 ? watch.problems.join('; ') : undefined;
    const problem = crash ?? claimProblem ?? j.problem;
    if (problem) {
      failure = `${party.id}, case ${n} via ${seat.label} (${spec.cat}: ${spec.what}): ${problem}.\n  input: ${preview(bytes)}\n  answered: ${seat.got.map((r) => (r.env ? `${r.env.type} ${JSON.stringify(r.env.body).slice(0, 200)}` : 'undecodable')).join(' | ') || 'nothing'}`;
      return false;
    }
    return true;
  });
  try {
    const out = await fc.check(property, { numRuns: run.runs, seed: run.seed, endOnFailure: true });
    if (out.failed) {
      throw new Error(
        `${failure ?? (out.errorInstance as Error | undefined)?.message ?? 'a property failed'}\n  (fast-check seed ${out.seed}, path ${out.counterexamplePath}; VALMOVE_FUZZ_SEED=${out.seed} makes the same choices again, in a world with new random ids)`,
      );
    }
  } finally {
    watch.stop();
    tally.ms = performance.now() - started;
  }
  return tally;
}

/** A generator that says it breaks something must break exactly that. */
function claimCheck(spec: Spec, bytes: Uint8Array): string | undefined {
  if (!spec.claims) return undefined;
  try {
    decodeEnvelope(bytes);
    return `the generator claimed ${spec.claims.join('/')}, but the input decodes`;
  } catch (e) {
    const code = (e as ProtocolError).code;
    return spec.claims.includes(code) ? undefined : `the generator claimed ${spec.claims.join('/')}, but the decoder says ${code}`;
  }
}

/** One line per party for the report: cases, time, categories, answers by code. */
export function describeTally(t: Tally): string {
  const cats = Object.entries(t.byCategory)
    .filter(([, n]) => n > 0)
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  const answers = Object.entries(t.answers)
    .sort((a, b) => b[1] - a[1])
    .map(([a, n]) => `${a} ${n}`)
    .join(', ');
  const types = `malformed bodies of ${t.bodiesBroken.size} of the ${MESSAGE_TYPES.length} message types`;
  return `fuzz ${t.party}: ${t.cases} cases in ${(t.ms / 1000).toFixed(1)} s\n  inputs: ${cats}; ${types}\n  answers: ${answers}`;
}
