/**
 * The mermaid export is a state diagram mermaid itself accepts (its real
 * parser, in a jsdom window), and mermaid reads it as the machine: every
 * state a node under the right parent (a parallel state's regions under
 * `--` dividers), every transition an edge with its `EVENT [guard]` label,
 * initial and final markers where they belong.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyStateMachine } from 'xstate';
import { exportMachineChart } from '../../src/charts/index.ts';
import { chartOf, transitionLabel } from '../../src/charts/graph.ts';
import { mermaidIds } from '../../src/charts/mermaid.ts';
import { MODEL_NAMES, MODELS } from '../../src/model/models.ts';
import { mermaidStateData, parseMermaid } from '../helpers/mermaid.ts';
import { syntheticMachine } from './fixtures.ts';

const machines: Array<[string, AnyStateMachine]> = [
  ...MODEL_NAMES.map((n): [string, AnyStateMachine] => [n, MODELS[n]!.machine]),
  ['synthetic', syntheticMachine],
];

for (const [name, machine] of machines) {
  test(`mermaid of ${name} parses with mermaid and holds every state under its parent and every transition`, async () => {
    const text = await exportMachineChart(machine, 'mermaid');
    assert.ok(text.startsWith('stateDiagram-v2\n'));
    assert.is((await parseMermaid(text)).diagramType, 'stateDiagram');

    const chart = chartOf(machine);
    const ids = mermaidIds(chart);
    const data = await mermaidStateData(text);
    const nodes = new Map(data.nodes.map((n) => [n.id, n]));
    for (const s of chart.states.values()) {
      const id = ids.get(s.path)!;
      assert.ok(/^[A-Za-z0-9_]+$/.test(id), `safe id ${id}`);
      const node = nodes.get(id);
      assert.ok(node, `${name}: state ${s.path || '(root)'} is a node ${id}`);
      // A parallel state's regions sit in the divider sections mermaid makes for `--`.
      let parent = node!.parentId;
      if (parent !== undefined && nodes.get(parent)?.shape === 'divider') parent = nodes.get(parent)!.parentId;
      assert.is(parent, s.parent === null ? undefined : ids.get(s.parent), `${name}: parent of ${s.path}`);
      assert.is(node!.isGroup ?? false, s.children.length > 0, `${name}: ${s.path} is a composite iff it has children`);
      if (s.kind === 'final')
        assert.ok(
          data.edges.some((e) => e.start === id && nodes.get(e.end)?.shape === 'stateEnd'),
          `${name}: final ${s.path} --> [*]`,
        );
      if (s.initial !== null) {
        assert.ok(
          data.edges.some((e) => e.end === ids.get(s.initial!) && nodes.get(e.start)?.shape === 'stateStart'),
          `${name}: [*] --> ${s.initial}`,
        );
      }
    }

    // Transitions between the same two states share one arrow, a line (`<br/>`) each.
    const edges = data.edges.flatMap((e) => (e.label ?? '').split(/<br\s*\/?>/).map((l) => `${e.start} -> ${e.end} : ${l}`));
    for (const t of chart.transitions) {
      const source = chart.states.get(t.source)!;
      if (t.targets.length === 0 && source.children.length > 0) {
        assert.ok(
          text.includes(`note right of ${ids.get(t.source)}`) && text.includes(transitionLabel(t)),
          `${name}: internal ${transitionLabel(t)} noted on ${t.source}`,
        );
        continue;
      }
      for (const target of t.targets.length > 0 ? t.targets : [t.source]) {
        const edge = `${ids.get(t.source)} -> ${ids.get(target)} : ${transitionLabel(t)}`;
        const at = edges.indexOf(edge);
        assert.ok(at >= 0, `${name}: edge ${edge}`);
        edges.splice(at, 1);
      }
    }
  });
}

test('mermaid labels guards, after and always, and marks parallel regions with --', async () => {
  const text = await exportMachineChart(syntheticMachine, 'mermaid');
  for (const line of [
    's_default --> running : START [ready]',
    's_default --> timed_out : after 1000 ms',
    'running__motor__spinning --> running__motor__stopped : after slow [lateEnough]',
    'checking --> done : always [ready]',
    'checking --> s_default : always',
    'running --> s_default : ABORT [not(ready)]',
    'done --> [*]',
    'state "timed-out" as timed_out',
  ]) {
    assert.ok(text.includes(line), `has: ${line}`);
  }
  assert.match(text, /state running \{[\s\S]*state running__motor \{[\s\S]*\n\s*--\n[\s\S]*state running__light \{/);
});

test('mermaid of the migration shows its always transitions and guards', async () => {
  const text = await exportMachineChart(MODELS.migration!.machine, 'mermaid');
  assert.match(text, / : always \[allUploaded\]/);
  assert.match(text, /sourcePhase__uploading/);
});

test('a broken diagram is refused by the parser (the check is not vacuous)', async () => {
  let refused = false;
  try {
    await parseMermaid('stateDiagram-v2\n  a.b --> c-d :: x\n');
  } catch {
    refused = true;
  }
  assert.ok(refused);
});

test.run();
