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
import { GRANT_TTL_MS } from '../actors/server.actor.ts';
import { spendableWorth } from './invariants.ts';
import { checkConservation, checkEnded, checkEndStates, checkOutcomes, checkSamsEmpty } from './checks.ts';
import { Payments } from './payments.ts';
import { SimRecovery } from './recovery.ts';
import { SeedRun } from './seedRun.ts';
import type { SeedResult, SimOptions } from './types.ts';
import { SimUsers } from './users.ts';
import { Weather } from './weather.ts';

export { drawMix, SIM_TIMING } from './seedRun.ts';
export { FAULT_KINDS, type FaultKind, type FaultMix, type SeedResult, type SimOptions } from './types.ts';

/** Virtual time of the safety phase (faults on), after the world is built. */
const SAFETY_MS = 6_000;
/** Virtual time the liveness phase may take before a migration that has not ended is a violation. */
const LIVENESS_MS = 120_000;

export async function runSeed(o: SimOptions): Promise<SeedResult> {
  const wallStart = performance.now();
  const run = new SeedRun(o);
  await run.start();
  try {
    const payments = o.pay ? new Payments(run) : undefined;
    const users = new SimUsers(run, payments, new SimRecovery(run));
    const totalWorth = await buildWorld(run, users);
    users.start();
    const weather = new Weather(run, users.list);
    weather.start();
    await safetyPhase(run, users);
    if (!run.violation) await livenessPhase(run, users, weather);
    if (!run.violation && payments && users.allEnded()) await payments.everywhere(users.list);
    if (!run.violation) {
      await run.settle();
      checkEnded(run, users, LIVENESS_MS);
    }
    if (!run.violation) checkEnd(run, users, payments, totalWorth);
    await rogueEpilogue(run);
    finish(run);
    return run.result(Math.round(performance.now() - wallStart), payments?.counts);
  } finally {
    await run.stop();
  }
}

/** The world: M users, each with a source chip holding 1 to K items, an empty destination and two phones. */
async function buildWorld(run: SeedRun, users: SimUsers): Promise<number> {
  for (let i = 0; i < run.o.migrations; i++) await users.add(i);
  const totalWorth = spendableWorth(run.system);
  run.line(`WORLD ${run.o.migrations} users x ${run.o.items} items, worth ${totalWorth}, mix ${JSON.stringify(run.mix)}`);
  return totalWorth;
}

/** Faults on: the invariants are checked after every delivered message, until every migration ended or time is up. */
async function safetyPhase(run: SeedRun, users: SimUsers): Promise<void> {
  run.phase = 'safety';
  run.faultsOn();
  await run.pump(() => users.allEnded(), run.clock.now() + SAFETY_MS, true);
}

/** Faults off, partitions healed, every crashed party back: run until every migration ended. */
async function livenessPhase(run: SeedRun, users: SimUsers, weather: Weather): Promise<void> {
  run.phase = 'liveness';
  weather.stop();
  run.system.setFaults(null);
  run.net.heal(true);
  run.line('LIVENESS faults off, partitions healed');
  for (const id of [...run.down]) run.restart(id);
  await run.pump(() => users.allEnded(), run.clock.now() + LIVENESS_MS, true);
  users.stop();
}

/** Once every migration ended: the outcomes and end states, value conserved (or the payments' ledger kept), the SAMs empty. */
function checkEnd(run: SeedRun, users: SimUsers, payments: Payments | undefined, totalWorth: number): void {
  checkOutcomes(run, users);
  checkEndStates(run, users);
  checkConservation(run, totalWorth, payments !== undefined);
  if (!run.violation && payments) payments.check(users.list);
  checkSamsEmpty(run, users);
}

/**
 * The rogue's epilogue: an hour on, every download grant the honest server used, sent again. Each must be
 * refused as expired (whatever became of its migration): the grant-expiry check, exercised.
 */
async function rogueEpilogue(run: SeedRun): Promise<void> {
  const { rogue, clock } = run;
  if (run.violation || !rogue || !run.o.rogue?.includes('download-expired-grant')) return;
  clock.advanceTo(clock.now() + GRANT_TTL_MS + 1);
  run.line(`ROGUE epilogue: the clock moved on ${GRANT_TTL_MS} ms`);
  await run.pump(() => false, clock.now() + 1, false);
  const sent = rogue.replayExpired();
  run.line(`ROGUE epilogue: ${sent} expired grant(s) sent again`);
  await run.pump(() => false, clock.now() + 1_000, false);
  if (rogue.finding && !run.violation) run.fail({ invariant: 'rogue', message: rogue.finding.message });
}

/** The seed's last word: an exception that escaped a party late, the rogue's tally, and the END line. */
function finish(run: SeedRun): void {
  run.failOnEscape();
  const { rogue } = run;
  if (rogue) {
    // A defective destination whose user cancelled before any download reached it: tried, no verdict.
    const kcv = rogue.stats['download-kcv'];
    kcv.unanswered = kcv.tried - kcv.refused;
  }
  run.line(run.violation ? 'END violation' : `END ok ${JSON.stringify(run.outcomes)}${rogue ? ` rogue ${rogue.summary()}` : ''}`);
}
