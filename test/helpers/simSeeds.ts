/**
 * Many simulation seeds with the rogue server and payments on, as CI runs them (issues 5 and 17): 4 concurrent
 * migrations of 1-2 items each, every fault kind, the rogue server's every attack, users paying on both phones.
 * `npm test` runs a few (test/sim/sim.test.ts), `npm run test:deep` the CI budget (test/deep/sim.deep.ts); both
 * check the report the same way here.
 */
import * as assert from 'uvu/assert';
import { formatReport } from '../../src/cli/sim.command.ts';
import { ROGUE_ATTACKS } from '../../src/sim/rogue.ts';
import { runSeeds, type RunReport } from '../../src/sim/runner.ts';
import { FAULT_KINDS } from '../../src/sim/simulator.ts';

const MIGRATIONS = 4;
const ITEMS = 2;
/** The seeds `npm test` runs (0 to 3); the deep run's 200 start after them. */
export const SMOKE_SEEDS = 2;

/** Runs seeds `from` … `from + seeds - 1` in 2 worker processes, prints the report, and checks it. */
export async function rogueAndPaySeeds(seeds: number, from: number, opts: { everyKindStruck: boolean }): Promise<RunReport> {
  const report = await runSeeds({
    seeds,
    from,
    migrations: MIGRATIONS,
    items: ITEMS,
    faults: FAULT_KINDS,
    jobs: 2,
    shrink: false,
    rogue: ROGUE_ATTACKS,
    pay: true,
  });
  for (const l of formatReport(report, { faults: [...FAULT_KINDS], items: ITEMS })) console.log(`  sim: ${l}`);
  assert.is(report.seeds, seeds);
  assert.is(report.migrations, seeds * MIGRATIONS);
  assert.is(
    report.violations,
    0,
    report.firstViolation && `seed ${report.firstViolation.seed}: ${report.firstViolation.violation?.invariant}: ${report.firstViolation.violation?.message}`,
  );
  // Every attack tried was refused by its check (or lost to the network: no answer, no verdict).
  for (const a of ROGUE_ATTACKS) {
    const r = report.rogue[a]!;
    assert.is(r.refused + r.unanswered, r.tried, `rogue attack ${a}: ${r.refused} refused, ${r.unanswered} unanswered, of ${r.tried}`);
  }
  assert.ok(
    ROGUE_ATTACKS.some((a) => report.rogue[a]!.tried > 0),
    'the rogue server attacked',
  );
  assert.ok(report.payments.tried > 0, 'the users paid');
  if (opts.everyKindStruck) {
    // Over many seeds every fault kind strikes, every attack is tried, and payments are both accepted and refused.
    for (const k of ['drop', 'dup', 'reorder', 'delay', 'crash', 'partition']) assert.ok((report.faults[k] ?? 0) > 0, `fault kind ${k} struck`);
    for (const a of ROGUE_ATTACKS) assert.ok(report.rogue[a]!.tried > 0, `rogue attack ${a} tried`);
    assert.ok(report.payments.accepted > 0 && report.payments.failed > 0, `payments accepted and refused: ${JSON.stringify(report.payments)}`);
  }
  return report;
}
