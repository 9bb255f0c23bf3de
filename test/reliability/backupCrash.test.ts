/**
 * The end of the backup under crashes (protocol.md §4.5; issue 22, point 3):
 * the user confirms a committed migration, and a party crashes at a turn of
 * the backup's wipe (its messages carry the wipe's step): before its commit,
 * after it, or after it spoke. The party is restarted from its LMDB and the
 * backup must still end `wiped`: the source areas absent, read from the
 * chip's store, and no temp-key record of the migration in the admin SAM's
 * store; the items stay spendable on the destination throughout (the
 * invariants, after every delivered message).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AdminSamRuntime } from '../../src/actors/adminSam.actor.ts';
import type { ChipRuntime } from '../../src/actors/chip.actor.ts';
import { CrashSignal, type TurnPoint } from '../../src/actors/runtime.ts';
import { adminStepOf } from '../../src/protocol/adminOps.ts';
import { FAST_TIMING } from '../../src/timing.ts';
import { checkInvariants, spendableWorth } from '../helpers/invariants.ts';
import { buildWorld, type World } from '../helpers/world.ts';

const POINTS: TurnPoint[] = ['before-persist', 'after-persist', 'after-send'];
/** Each party at each point; the phone and its chip, which relay or answer frames, at one point each (the suite's time). */
const CASES: Array<[string, TurnPoint]> = [
  ...['server', 'admin-sam'].flatMap((p) => POINTS.map((at): [string, TurnPoint] => [p, at])),
  ['terminal/old', 'after-persist'],
  ['chip/SRC-1', 'after-persist'],
];
const WIPE_STEP = adminStepOf('wipe');

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.unreachable(`never: ${what}`);
}

async function crashDuringWipe(party: string, point: TurnPoint): Promise<boolean> {
  const armed = { enabled: false, fired: false };
  let w: World | undefined;
  const world = (w = await buildWorld({
    items: 2,
    system: {
      timing: FAST_TIMING,
      onTurnPoint: (p, at, info) => {
        if (!armed.enabled || armed.fired || p !== party || at !== point) return;
        // A chip's turns carry no step: once armed (after the commit), its turn that writes is the wipe's.
        if (!p.startsWith('chip/') && info.step !== WIPE_STEP) return;
        armed.fired = true;
        w!.system.restarting.add(p);
        setImmediate(() => void w!.system.restart(p));
        throw new CrashSignal(`${p} at the backup's wipe, ${at}`);
      },
    },
  }));
  const violations: string[] = [];
  world.onMessage.push(() => {
    try {
      checkInvariants(world);
    } catch (e) {
      violations.push((e as Error).message);
    }
  });
  try {
    const worth = spendableWorth(world);
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is((await world.newPhone.migrateIn({ mig: out.mig })).outcome, 'completed');
    armed.enabled = true;
    await world.newPhone.endBackup(out.mig);
    const state = () => world.system.server.statuses().find((m) => m.mig === out.mig)?.backup?.state;
    await until(() => state() === 'wiped' && !world.system.restarting.size, `${party} crashed ${point}: the backup is wiped`);
    const chip = world.system.party<ChipRuntime>('chip/SRC-1');
    const areas = [...chip.memory.areas.getRange()].map((e) => e.value);
    assert.ok(areas.length === 2 && areas.every((a) => a.state === 'absent'), `${party} ${point}: ${areas.map((a) => a.state).join(', ')}`);
    const admin = world.system.party<AdminSamRuntime>('admin-sam');
    assert.equal(
      [...admin.records.tempKeys.getRange()].filter((e) => e.value.mig === out.mig),
      [],
      `${party} ${point}: temp keys left`,
    );
    assert.equal(violations, [], `${party} ${point}`);
    assert.is(spendableWorth(world), worth);
    return armed.fired;
  } finally {
    await world.cleanup();
  }
}

test('a crash of any party at a turn of the backup wipe still ends wiped: source areas absent, no temp key left', async () => {
  const fired: string[] = [];
  for (const [party, point] of CASES) if (await crashDuringWipe(party, point)) fired.push(`${party} ${point}`);
  // Every case crashed its party (a crash point never reached would prove nothing).
  assert.equal(
    fired,
    CASES.map(([p, at]) => `${p} ${at}`),
  );
});

test.run();
