/**
 * The world a party is fuzzed in: test/helpers/world.ts with two providers,
 * after one real, recorded migration (old phone -> new phone), plus a spare
 * phone with an empty chip for the migration that proves, after the fuzzing,
 * that the party still serves (new phone -> spare). The recorded envelopes
 * are the corpus the mutations start from; their ids, migration ids and
 * session ids fill the header pools. Not a test file.
 */
import * as assert from 'uvu/assert';
import type { ChipRuntime } from '../../src/actors/chip.actor.ts';
import type { PartyRuntime } from '../../src/actors/runtime.ts';
import type { TerminalRuntime } from '../../src/actors/terminal.actor.ts';
import { systemRng, toB64 } from '../../src/crypto/index.ts';
import { createLogger } from '../../src/log.ts';
import { DEFAULT_TIMING, type Timing } from '../../src/timing.ts';
import { decodeEnvelope, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { kindOf } from '../../src/transport/messages.ts';
import { buildWorld, type World } from '../helpers/world.ts';
import type { Target } from './inputs.ts';
import { storeOf, type Seat } from './seats.ts';

/**
 * Sessions the fuzzer opens toward a seat (to reach a SAM's chip-frame
 * decoder) must not time out in the middle of a run, which would change
 * the party's state under a case: a session deadline far past any run.
 */
export const FUZZ_TIMING: Timing = { ...DEFAULT_TIMING, sessionMs: 24 * 3_600_000 };

export interface FuzzWorld {
  world: World;
  corpus: AnyEnvelope[];
  /** Notices the parties took from real peers after the corpus was closed (ids only). */
  heard: Heard[];
  spareChip: ChipRuntime;
  sparePhone: TerminalRuntime;
  cleanup(): Promise<void>;
}

/** A login proof is as good as the password for this run: the corpus keeps the shape, not the value. */
function sanitized(env: AnyEnvelope): AnyEnvelope {
  if (env.type === 'login.proof') return { ...env, body: { ...env.body, proof: toB64(systemRng.bytes(32)) } };
  return env;
}

export async function fuzzWorld(): Promise<FuzzWorld> {
  const world = await buildWorld({ items: 2, record: true, system: { timing: FUZZ_TIMING, log: createLogger({ level: 'silent' }) } });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is(out.outcome, 'uploaded', 'the recorded migration uploads');
    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed', 'the recorded migration completes');
    const seen = new Set<string>();
    const corpus: AnyEnvelope[] = [];
    for (const r of world.envelopes) {
      const key = Buffer.from(r.bytes).toString('base64');
      if (seen.has(key)) continue;
      seen.add(key);
      corpus.push(sanitized(decodeEnvelope(r.bytes)));
    }
    // From here on the fuzzer's own messages would pile up in the recording: stop it. Notices the parties
    // still take from one another (the spare phone's registration, say) move each receiver's notice window
    // on, so the oracle keeps hearing their ids (a recorded notice may be too old for the window by then).
    world.envelopes.length = 0;
    const heard: Heard[] = [];
    world.envelopes.push = (r) => {
      if (r.direction !== 'in') return 0;
      let env: AnyEnvelope;
      try {
        env = decodeEnvelope(r.bytes);
      } catch {
        return 0; // the party refuses it: nothing to remember
      }
      if (kindOf(env.type) === 'notice' && heard.length < HEARD_MAX) heard.push({ party: r.party, from: env.from, id: env.id });
      return 0;
    };
    const spareChip = await world.system.addChip('DST-2');
    const sparePhone = await world.system.addTerminal('spare');
    world.system.insertChip(sparePhone, spareChip);
    world.system.connectToServer(sparePhone);
    await sparePhone.login(world.user, world.password);
    await sparePhone.register();
    return { world, corpus, heard, spareChip, sparePhone, cleanup: () => world.cleanup() };
  } catch (e) {
    await world.cleanup();
    throw e;
  }
}

interface Heard {
  party: string;
  from: string;
  id: string;
}
/** Heard notices kept at most (a fuzz world hears a few dozen). */
const HEARD_MAX = 10_000;

/** What a seat on `party` may borrow from the recorded run. */
export function targetFor(fw: FuzzWorld, seat: Seat): Target {
  const party: PartyRuntime = seat.party;
  const store = storeOf(party);
  const migs = new Set<string>();
  const sessions = new Set<string>();
  const ids = new Set<string>();
  for (const e of fw.corpus) {
    if (e.mig) migs.add(e.mig);
    if (e.type === 'frame') sessions.add(e.body.session);
    if ((e.from === party.id || e.to === party.id) && kindOf(e.type) !== 'reply') ids.add(e.id);
  }
  for (const { key } of store.outbox.getRange()) ids.add(key);
  for (const e of fw.corpus) {
    if (kindOf(e.type) === 'notice' && e.to === party.id && e.from === seat.self) seat.noticeIds.add(e.id);
  }
  for (const h of fw.heard) if (h.party === party.id && h.from === seat.self) seat.noticeIds.add(h.id);
  return {
    self: seat.self,
    party: party.id,
    openSessions: seat.openSessions,
    migs: [...migs],
    ids: [...ids].slice(0, 300),
    sessions: [...sessions].slice(0, 100),
    corpus: fw.corpus,
  };
}

/** A phase not over by then has hung (here one takes well under a second): the test fails rather than hold CI. */
export const PHASE_HANG_MS = 120_000;

function unlessHung<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${PHASE_HANG_MS} ms`)), PHASE_HANG_MS);
  });
  return Promise.race([p, hung]).finally(() => clearTimeout(timer));
}

/**
 * The party still serves: the items move on, new phone -> spare, and end
 * spendable on the spare chip and locked on the new phone's.
 */
export async function migrateAgain(fw: FuzzWorld): Promise<void> {
  const { world } = fw;
  const out = await unlessHung('the source phase after the fuzzing', world.newPhone.migrateOut({ destination: fw.spareChip.serial }));
  assert.is(out.outcome, 'uploaded', `the migration after the fuzzing uploads: ${out.reason ?? ''}`);
  const done = await unlessHung('the destination phase after the fuzzing', fw.sparePhone.migrateIn({ mig: out.mig }));
  assert.is(done.outcome, 'completed', `the migration after the fuzzing completes: ${done.reason ?? ''}`);
  const areas = (chip: ChipRuntime) =>
    chip.memory
      .list()
      .filter((a) => world.providers.includes(a.area))
      .map((a) => a.state);
  assert.equal(
    areas(fw.spareChip),
    world.providers.map(() => 'mainActive'),
    'every item is spendable on the spare chip',
  );
  assert.equal(
    areas(world.destination),
    world.providers.map(() => 'locked'),
    'and locked on the chip it left',
  );
}
