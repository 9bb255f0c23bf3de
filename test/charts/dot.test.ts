/**
 * The DOT export and its SVG: Graphviz (WASM, local) renders every chart
 * without a warning, and the SVG keeps the id contract the live page relies
 * on — `<machine>` on the graph, `<machine>:<path>` on the node of every
 * simple state and on the cluster of every composite one (./src/charts/dot.ts).
 * Parallel regions are dashed clusters; guards, always and after are on
 * the arrows.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyStateMachine } from 'xstate';
import { chartIds, exportChart, exportMachineChart, machineChartIds } from '../../src/charts/index.ts';
import { chartOf } from '../../src/charts/graph.ts';
import { svgId } from '../../src/charts/dot.ts';
import { renderDot } from '../../src/charts/svg.ts';
import { MODEL_NAMES, MODELS } from '../../src/model/models.ts';
import { parseDom } from './dom.ts';
import { syntheticMachine } from './fixtures.ts';
import { refusal } from './refusal.ts';

const svgDocument = (svg: string) => parseDom(svg, 'image/svg+xml');

const machines: Array<[string, AnyStateMachine]> = [
  ...MODEL_NAMES.map((n): [string, AnyStateMachine] => [n, MODELS[n]!.machine]),
  ['synthetic', syntheticMachine],
];

for (const [name, machine] of machines) {
  test(`svg of ${name} renders locally and carries the id of every state (<machine>:<path>)`, async () => {
    const dot = await exportMachineChart(machine, 'dot');
    const { svg, warnings } = await renderDot(dot);
    assert.equal(warnings, [], `${name}: Graphviz warnings`);
    assert.equal(svg, await exportMachineChart(machine, 'svg'), `${name}: the svg format is this rendering`);

    const doc = await svgDocument(svg);
    assert.is(doc.documentElement.localName, 'svg');
    const chart = chartOf(machine);
    const ids = machineChartIds(machine);
    assert.is(ids.length, chart.states.size);
    for (const s of chart.states.values()) {
      const id = svgId(name, s.path);
      assert.ok(ids.includes(id), `chartIds lists ${id}`);
      const el = doc.getElementById(id);
      assert.ok(el, `${name}: an element with id ${id}`);
      assert.is(el!.localName, 'g');
      const classes = (el!.getAttribute('class') ?? '').split(/\s+/);
      const expected = s.path === '' ? 'graph' : s.children.length > 0 ? 'cluster' : 'node';
      assert.ok(classes.includes(expected), `${name}: ${id} is a ${expected} (class="${classes.join(' ')}")`);
      if (s.path !== '') assert.ok(classes.includes('state'), `${name}: ${id} has class state`);
    }
  });
}

test('chartIds of a registry machine name the root and every state below it', () => {
  const ids = chartIds('migration');
  assert.is(ids[0], 'migration');
  assert.ok(ids.includes('migration:sourcePhase.uploading'));
  assert.ok(ids.includes('migration:sourcePhase.uploading.transferring.copying'));
  assert.ok(ids.every((id, i) => i === 0 || id.startsWith('migration:')));
});

test('dot marks parallel regions as dashed clusters, finals with a double border, and labels guards, always and after', async () => {
  const dot = await exportMachineChart(syntheticMachine, 'dot');
  assert.match(dot, /subgraph "cluster:running" \{\n\s*id="synthetic:running"; class="state parallel"\n\s*label="running \(parallel\)\\nNOTE \/ beep"/);
  assert.match(
    dot,
    /subgraph "cluster:running\.motor" \{\n\s*id="synthetic:running\.motor"; class="state compound region"\n\s*label="motor"\n\s*style="rounded,dashed"/,
  );
  assert.match(dot, /"s:done" \[id="synthetic:done", class="state final", label="done", peripheries=2\]/);
  assert.match(dot, /"i:" -> "s:default" \[class="initial"\]/);
  for (const label of ['START [ready]', 'after 1000 ms', 'after slow [lateEnough]', 'always [ready]', 'ABORT [not(ready)]', 'BUMP [above]', 'done']) {
    assert.ok(dot.includes(`label="${label}"`), `edge label ${label}`);
  }
});

test('dot of the terminal draws its two parallel regions dashed, and the migration its guarded always transitions', async () => {
  const terminal = await exportChart('terminal', 'dot');
  assert.match(terminal, /label="terminal \(parallel\)"/);
  assert.match(terminal, /id="terminal:account"; class="state compound region"\n\s*label="account"\n\s*style="rounded,dashed"/);
  assert.match(terminal, /id="terminal:reader"; class="state compound region"\n\s*label="reader"\n\s*style="rounded,dashed"/);
  assert.match(terminal, /label="[^"]*CHIP_FRAME \[not\(readerSession\)\]/);
  const migration = await exportChart('migration', 'dot');
  assert.match(migration, /label="always \[allUploaded\]"/);
});

test('an unknown machine or format is refused with a stable code and the valid choices named', async () => {
  const machine = await refusal(() => exportChart('nope', 'dot'));
  assert.is(machine.code, 'CHART_UNKNOWN_MACHINE');
  assert.match(
    machine.message,
    /unknown machine "nope"; one of area, migration, chip, terminal, adminSession, decision, migrationSam, normalSam, backup, registration/,
  );
  const format = await refusal(() => exportChart('area', 'png'));
  assert.is(format.code, 'CHART_UNKNOWN_FORMAT');
  assert.match(format.message, /unknown format "png"; one of json, mermaid, scxml, dot, svg/);
});

test.run();
