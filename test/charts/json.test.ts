/**
 * The JSON export is the machine config Stately's editor imports: fed back
 * to `createMachine`, it must give the same machine — every state node id,
 * and every transition with its source, event type, targets and guard name,
 * in the order XState tries them. Checked on XState's own state nodes of both
 * machines, for every machine the runtime runs and for a synthetic one with
 * after/always/parallel/final/history/onDone.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMachine, type AnyStateMachine, type AnyStateNode } from 'xstate';
import { exportChart, exportMachineChart } from '../../src/charts/index.ts';
import { guardName } from '../../src/charts/graph.ts';
import { MODEL_NAMES, MODELS } from '../../src/model/models.ts';
import { syntheticMachine } from './fixtures.ts';

/** What a machine is, read from XState's state nodes (not from the exporter's walk). */
function shape(machine: AnyStateMachine) {
  const states: string[] = [];
  const transitions: string[] = [];
  const visit = (node: AnyStateNode) => {
    states.push(`${node.id} ${node.type}${node.type === 'compound' ? ` initial=${node.initial.target.map((t: AnyStateNode) => t.id)}` : ''}`);
    const all = [...[...node.transitions.values()].flat(), ...(node.always ?? [])];
    for (const t of all) {
      transitions.push(
        `${node.id} | ${t.eventType || '(always)'} -> ${(t.target ?? []).map((x: AnyStateNode) => x.id).join(',') || '(none)'} [${guardName(t.guard) ?? ''}]${t.reenter ? ' reenter' : ''}`,
      );
    }
    for (const child of Object.values(node.states as Record<string, AnyStateNode>)) visit(child);
  };
  visit(machine.root);
  return { states, transitions };
}

const machines: Array<[string, AnyStateMachine, () => Promise<string>]> = [
  ...MODEL_NAMES.map((n): [string, AnyStateMachine, () => Promise<string>] => [n, MODELS[n]!.machine, () => exportChart(n, 'json')]),
  ['synthetic', syntheticMachine, () => exportMachineChart(syntheticMachine, 'json')],
];

for (const [name, machine, exportJson] of machines) {
  test(`json of ${name} re-imports with createMachine into the same states and transitions`, async () => {
    const json = JSON.parse(await exportJson());
    assert.is(json.id, name, 'the config carries the machine id');
    const original = shape(machine);
    const again = shape(createMachine(json));
    assert.ok(original.transitions.length > 0, `${name} has transitions`);
    assert.equal(again.states, original.states, `${name}: state nodes`);
    assert.equal(again.transitions, original.transitions, `${name}: transitions`);
  });
}

test('every project machine id equals its registry name (the chart files are named by it)', () => {
  for (const n of MODEL_NAMES) assert.is(MODELS[n]!.machine.id, n);
});

test('json keeps guards and actions by name, with their params, and the after/always/onDone/history forms', async () => {
  const json = JSON.parse(await exportMachineChart(syntheticMachine, 'json'));
  assert.equal(json.states.default.on.BUMP[0].guard, { type: 'above', params: { limit: 3 } });
  assert.equal(json.states.default.entry, [{ type: 'log', params: { text: 'idle "again"' } }]);
  assert.equal(json.states.default.after['1000'], [{ target: '#synthetic.timed-out' }]);
  assert.is(json.states.running.type, 'parallel');
  assert.is(json.states.running.on.ABORT[0].guard, 'not(ready)');
  assert.is(json.states.running.on.RESTART[0].reenter, true);
  assert.equal(json.states.running.states.motor.onDone, [{ target: '#synthetic.checking' }]);
  assert.equal(json.states.running.states.motor.states.spinning.after.slow[0].guard, 'lateEnough');
  assert.equal(json.states.running.states.light.states.hist, { type: 'history', target: ['#synthetic.running.light.off'] });
  assert.equal(json.states.checking.always, [{ target: '#synthetic.done', guard: 'ready' }, { target: '#synthetic.default' }]);
  assert.is(json.states.done.type, 'final');
  assert.is(json.states.default.description, 'Waiting -- for START, or for a second to pass.');
});

test('json of the terminal shows its parallel root and its combined guard by structure', async () => {
  const json = JSON.parse(await exportChart('terminal', 'json'));
  assert.is(json.type, 'parallel');
  assert.equal(Object.keys(json.states), ['account', 'reader']);
  assert.is(json.states.account.states.working.states.channelReserved.on.CHIP_FRAME[0].guard, 'not(readerSession)');
});

test.run();
