/**
 * Model-based suite for the chip's area key lifecycle (issue 5): every path
 * xstate/graph generates through the area statechart (one per transition)
 * is executed on a real chip — its real command path, real session
 * authentication with the real keys, real LMDB in a temp folder — and after
 * every event the area's state in the chip's store must be the model's.
 * At the end of each path, every event the model does not allow in that
 * state is tried on the chip too: refused, and nothing changes. A
 * transition counts as covered when the real chip took it on a path that
 * matched the model from start to end.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor, type AnyTransitionDefinition } from 'xstate';
import { seededRng } from '../../src/crypto/index.ts';
import { AREA_COMMANDS, AREA_SESSION_EVENTS, areaMachine, areaTransition, type AreaState } from '../../src/machines/area.machine.ts';
import { MODELS } from '../../src/model/models.ts';
import { generatePaths, machineGraph } from '../../src/model/paths.ts';
import { ChipBench, type AreaEventType } from '../helpers/chipBench.ts';

const AREA = 'emoney';
const rng = seededRng('area-model');

/** Operations a rollback repeats on an area it never reached: the chip answers ok and changes nothing (no arrow in the lifecycle). */
const ALREADY_SO = (state: AreaState, event: string) =>
  (state === 'mainActive' && event === 'RESTORE') || (state === 'absent' && (event === 'WIPE' || event === 'WIPE_REVOKED'));

test('every area-lifecycle path runs on a real chip as the model says; every forbidden event is refused; transition coverage 100%', async () => {
  const model = MODELS.area!;
  const paths = generatePaths(model, 'transitions');
  const graph = machineGraph(areaMachine);
  const covered = new Set<AnyTransitionDefinition>();
  const problems: string[] = [];
  let refusalsChecked = 0;
  for (const [i, path] of paths.entries()) {
    const bench = await ChipBench.open({ serial: 'AREA-MODEL', areas: [AREA], rng });
    const taken = new Set<AnyTransitionDefinition>();
    const expect = createActor(areaMachine, {
      inspect: (ev) => {
        if (ev.type === '@xstate.microstep') for (const t of (ev as unknown as { _transitions: AnyTransitionDefinition[] })._transitions) taken.add(t);
      },
    }).start();
    try {
      let ok = true;
      for (const [k, ev] of path.events.entries()) {
        const before = expect.getSnapshot().value as AreaState;
        expect.send(ev as never);
        const want = expect.getSnapshot().value as AreaState;
        const reply = await bench.apply(AREA, ev.type as AreaEventType);
        const got = bench.state(AREA);
        if (!reply.ok || got !== want) {
          problems.push(`path #${i} step ${k + 1} ${before} --${ev.type}-->: the model says ${want}; the chip answered ${JSON.stringify(reply)} and is ${got}`);
          ok = false;
          break;
        }
      }
      if (ok) {
        // The forbidden events of the state the path ended in: refused by the real chip, nothing changed.
        const state = bench.state(AREA);
        for (const ev of [...AREA_COMMANDS, ...AREA_SESSION_EVENTS]) {
          if (expect.getSnapshot().can({ type: ev })) continue;
          const record = bench.chip.memory.get(AREA);
          const keys = bench.keys.get(AREA)!;
          const saved = { ...keys };
          const reply = await bench.apply(AREA, ev);
          Object.assign(keys, saved);
          refusalsChecked++;
          const unchanged = JSON.stringify(bench.chip.memory.get(AREA)) === JSON.stringify(record);
          if (ALREADY_SO(state, ev)) {
            if (!reply.ok || !unchanged) problems.push(`path #${i}: ${ev} on ${state} should be answered ok and change nothing; got ${JSON.stringify(reply)}`);
          } else if (reply.ok || !unchanged) {
            problems.push(
              `path #${i}: ${ev} is not allowed in ${state}, yet the chip answered ${JSON.stringify(reply)}${unchanged ? '' : ' and the area changed'}`,
            );
          }
        }
        for (const t of taken) covered.add(t);
      }
    } finally {
      expect.stop();
      await bench.close();
    }
  }
  // The lifecycle table the chip enforces is the statechart's.
  for (const t of covered) assert.ok(graph.transitions.has(t));
  const total = graph.transitions.size;
  const reached = [...graph.transitions.keys()].filter((t) => covered.has(t)).length;
  console.log(
    `  area lifecycle: ${paths.length} model paths executed on a real chip, ${paths.length - new Set(problems.map((p) => p.split(' ')[1])).size} matched; ` +
      `${refusalsChecked} forbidden events refused; transitions covered ${reached}/${total} (${((reached / total) * 100).toFixed(0)}%)`,
  );
  assert.equal(problems, []);
  assert.is(reached, total);
  void areaTransition;
});

test.run();
