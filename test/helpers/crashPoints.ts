/**
 * protocol.md §4.5, crash safety, enumerated: for a 2-item migration, every
 * (party, step, crash point) that fires in a run is tried in a fresh world:
 * the party crashes there (before-persist, after-persist, after-send), is
 * restarted from its LMDB, and the run goes on. Each must end `completed`
 * (no cancel, no deadline) with invariants 1 and 2 after every delivered
 * message, balances conserved and every migration SAM store empty.
 *
 * `npm test` tries every N-th point of each party (test/reliability/crash.test.ts),
 * `npm run test:deep` every one (test/deep/crash.deep.ts).
 */
import * as assert from 'uvu/assert';
import { CrashSignal, type TurnPoint } from '../../src/actors/runtime.ts';
import { FAST_TIMING } from '../../src/timing.ts';
import { driveMigration } from './driver.ts';
import { checkInvariants, spendableWorth } from './invariants.ts';
import { buildWorld, type World } from './world.ts';

const POINTS: TurnPoint[] = ['before-persist', 'after-persist', 'after-send'];
const ITEMS = 2;

interface Armed {
  enabled: boolean;
  party?: string;
  step?: string;
  point?: TurnPoint;
  fired: boolean;
  seen: Set<string>;
}

async function world(armed: Armed): Promise<World> {
  let w: World | undefined;
  w = await buildWorld({
    items: ITEMS,
    system: {
      timing: FAST_TIMING,
      onTurnPoint: (party, point, info) => {
        if (!armed.enabled || !info.step) return;
        if (point === 'before-persist') armed.seen.add(`${party}|${info.step}`);
        if (!armed.fired && party === armed.party && info.step === armed.step && point === armed.point) {
          armed.fired = true;
          w!.system.restarting.add(party);
          setImmediate(() => void w!.system.restart(party));
          throw new CrashSignal(`${party} at ${info.step} ${point}`);
        }
      },
    },
  });
  return w;
}

async function run(armed: Armed): Promise<{ outcome: string; violations: string[]; ms: number }> {
  const w = await world(armed);
  const violations: string[] = [];
  w.onMessage.push(() => {
    try {
      checkInvariants(w);
    } catch (e) {
      violations.push((e as Error).message);
    }
  });
  try {
    const worth = spendableWorth(w);
    armed.enabled = true;
    const r = await driveMigration(w, { timeoutMs: 30_000 });
    armed.enabled = false;
    if (spendableWorth(w) !== worth) violations.push(`balances not conserved: ${worth} -> ${spendableWorth(w)}`);
    for (const [p, prov] of w.system.providers) if (prov.migrationSam.held().length > 0) violations.push(`${p}'s migration SAM store is not empty`);
    return { outcome: r.state, violations, ms: r.ms };
  } finally {
    await w.cleanup();
  }
}

/**
 * Finds every (party, step) a 2-item migration passes (a run without crashes), then crashes it at every
 * `sample`-th crash point of each party (its first included, so every party crashes somewhere), one fresh
 * world each, and checks each run. 1: every point.
 */
export async function crashEnumeration(sample: number): Promise<void> {
  const discovery: Armed = { enabled: false, fired: true, seen: new Set() };
  const base = await run(discovery);
  assert.is(base.outcome, 'completed');
  const pairs = [...discovery.seen].sort();
  const cases = pairs.flatMap((p) => POINTS.map((point) => ({ party: p.split('|')[0]!, step: p.split('|')[1]!, point })));
  const nth = new Map<string, number>();
  const chosen = cases.filter((c) => {
    const i = nth.get(c.party) ?? 0;
    nth.set(c.party, i + 1);
    return i % sample === 0;
  });
  const table: Array<{ party: string; step: string; point: string; outcome: string; violations: number; ms: number }> = [];
  for (const c of chosen) {
    const armed: Armed = { enabled: false, ...c, fired: false, seen: new Set() };
    const r = await run(armed);
    assert.ok(armed.fired, `the crash point ${c.party} ${c.step} ${c.point} fired`);
    table.push({ ...c, outcome: r.outcome, violations: r.violations.length, ms: r.ms });
    assert.equal(r.violations, [], `${c.party} ${c.step} ${c.point}: ${r.violations.join('; ')}`);
    assert.is(r.outcome, 'completed', `${c.party} ${c.step} ${c.point}`);
  }
  const byOutcome: Record<string, number> = {};
  for (const r of table) byOutcome[r.outcome] = (byOutcome[r.outcome] ?? 0) + 1;
  console.log(
    `\n  crash points: ${table.length} of ${cases.length} (${pairs.length} party/step pairs x 3 points), outcomes ${JSON.stringify(byOutcome)}, violations 0`,
  );
  for (const party of [...new Set(table.map((r) => r.party))]) {
    const rows = table.filter((r) => r.party === party);
    console.log(`    ${party.padEnd(24)} ${rows.length} points, slowest recovery ${Math.max(...rows.map((r) => r.ms))} ms`);
  }
}
