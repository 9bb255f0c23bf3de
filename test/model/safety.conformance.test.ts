/**
 * Conformance of the real system to the abstract safety model
 * (src/model/safety/conformance.ts): a real migration of two items, one that
 * completes and one the user cancels, is projected onto the model after
 * every delivered message, and every change must be one or a few steps the
 * model allows. (test/model/migration.model.test.ts does the same on every
 * path of the migration statechart.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConformanceWatch } from '../../src/testing/conformance.watch.ts';
import { buildWorld, settle, type World } from '../helpers/world.ts';

function watch(world: World): ConformanceWatch {
  const w = new ConformanceWatch(world.system, {
    chips: [world.source.serial, world.destination.serial],
    areas: world.providers,
    providers: world.providers,
    tokens: world.values.map((v) => v.ref),
  });
  world.onMessage.push(() => w.note('a delivered message'));
  return w;
}

test('a completed migration of two items takes only steps the abstract model allows', async () => {
  const world = await buildWorld({ items: 2 });
  try {
    const w = watch(world);
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
    await settle(world);
    assert.is(await w.finish('the end of the run'), undefined);
    console.log(`  conformance, completed: ${w.observations} projections, ${w.changes} changes, at most ${w.stepsMax} abstract steps per change`);
    assert.ok(w.changes >= 10, `changes seen: ${w.changes}`);
  } finally {
    await world.cleanup();
  }
});

test('a cancelled migration of two items, rolled back, takes only steps the abstract model allows', async () => {
  const world = await buildWorld({ items: 2 });
  try {
    const w = watch(world);
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is((await world.oldPhone.cancel(out.mig)).decision, 'aborted');
    const back = await world.oldPhone.migrateOut();
    assert.is(back.outcome, 'rolledBack');
    await settle(world);
    assert.is(await w.finish('the end of the run'), undefined);
    console.log(`  conformance, rolled back: ${w.observations} projections, ${w.changes} changes, at most ${w.stepsMax} abstract steps per change`);
    assert.ok(w.changes >= 8, `changes seen: ${w.changes}`);
  } finally {
    await world.cleanup();
  }
});

test("a real change the model forbids is named: a destination area made spendable behind the protocol's back", async () => {
  const world = await buildWorld({ items: 1 });
  try {
    const w = watch(world);
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    await settle(world);
    w.check('after the source phase');
    assert.is(w.problem, undefined);
    // A "chip" that makes a copy of the item spendable on the destination while the record is pending.
    const src = world.source.memory.list()[0]!;
    await world.destination.memory.store.commit(() =>
      world.destination.memory.areas.put(src.area, { ...src, state: 'mainActive', tempKey: null, holder: null }),
    );
    assert.is(world.system.adminSam.decisionOf(out.mig), 'pending');
    const problem = await w.finish('a forged write');
    assert.ok(problem, 'the change is refused');
    assert.match(problem, /DST-1 area p0-emoney: absent -> mainActive with item/);
  } finally {
    await world.cleanup();
  }
});

test.run();
