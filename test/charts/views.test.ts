/**
 * Charts that read like the patent: every state of the migration carries its
 * protocol step (the step declarations) in every format, as text a reader
 * sees; and the views of the migration (./src/charts/views.ts) keep what they
 * promise: the overview folds every retry state and every cancel arrow into
 * notes and keeps every other arrow; the source phase (Fig. 3) and the
 * destination phase (Fig. 4) hold the states of their steps and every arrow
 * that touches them, the rest as references.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CHART_VIEWS, exportChart, migrationStepOf } from '../../src/charts/index.ts';
import { chartOf, stateName, transitionLabel, type Chart, type ChartTransition } from '../../src/charts/graph.ts';
import { mermaidIds } from '../../src/charts/mermaid.ts';
import { renderDot } from '../../src/charts/svg.ts';
import { PHASES } from '../../src/charts/views.ts';
import { MODEL_NAMES, MODELS } from '../../src/model/models.ts';
import { STEPS, stepOfState } from '../../src/protocol/steps.ts';
import { parseMermaid } from '../helpers/mermaid.ts';
import { parseDom } from './dom.ts';
import { refusal } from './refusal.ts';

const chart: Chart = chartOf(MODELS.migration!.machine, migrationStepOf);
const simple = [...chart.states.values()].filter((s) => s.children.length === 0 && s.path !== '');
const eventOf = (t: ChartTransition) => (t.trigger.kind === 'event' ? t.trigger.event : '');
const retryStates = new Set(simple.filter((s) => chart.transitions.some((t) => t.source === s.path && eventOf(t) === 'RETRY_DUE')).map((s) => s.path));
const folded = (t: ChartTransition) => eventOf(t) === 'CANCEL_REQUESTED' || retryStates.has(t.source) || t.targets.some((p) => retryStates.has(p));

/** The label lines of a DOT's arrows between states (`class="transition…"`): one per transition drawn as an arrow. */
function arrowLines(dot: string): string[] {
  return [...dot.matchAll(/ -> "[^"]*" \[label="((?:[^"\\]|\\.)*)"[^\n]*class="transition/g)].flatMap((m) => m[1]!.split('\\n'));
}

test('every migration state with a declared step shows it, as text, in dot, svg, mermaid, json (meta.step) and scxml (vm:step)', async () => {
  const stepped = [...chart.states.values()].filter((s) => stepOfState(s.path) !== undefined);
  assert.ok(stepped.length >= 50, `${stepped.length} states with a step`);
  const dot = await exportChart('migration', 'dot');
  const svgTexts = new Set(
    Array.from((await parseDom(await exportChart('migration', 'svg'), 'image/svg+xml')).getElementsByTagName('text')).map((t) => t.textContent),
  );
  const mermaid = await exportChart('migration', 'mermaid');
  const json = JSON.parse(await exportChart('migration', 'json'));
  const scxml = await exportChart('migration', 'scxml');
  const ids = mermaidIds(chart);
  for (const s of stepped) {
    const step = stepOfState(s.path)!.step.id;
    const label = `${s.key} (${step})`;
    assert.ok(dot.includes(`label="${label}"`), `dot: ${label}`);
    assert.ok(svgTexts.has(label), `svg: a text "${label}"`);
    assert.ok(mermaid.includes(`state "${label}" as ${ids.get(s.path)}`), `mermaid: ${label}`);
    const config = s.keys.reduce((c, k) => c.states[k], json);
    assert.equal(config.meta, { step }, `json: ${s.path} meta.step`);
    assert.ok(
      scxml.includes(`id="migration.${s.path}"`) && new RegExp(`id="migration\\.${s.path.replace(/\./g, '\\.')}"[^>]*vm:step="${step}"`).test(scxml),
      `scxml: ${s.path}`,
    );
  }
  // Composites carry the span of their states' steps.
  assert.ok(dot.includes('label="sourcePhase (S1-S8)'), 'dot: sourcePhase (S1-S8)');
  assert.ok(mermaid.includes('state "transferring (S12-S14)" as destinationPhase__downloading__transferring'));
  assert.equal(json.states.destinationPhase.meta, { step: 'S9-S14' });
});

const drawable = [
  ...CHART_VIEWS.filter((v) => v !== 'full').map((v) => ['migration', v]),
  ...MODEL_NAMES.filter((n) => n !== 'migration').map((n) => [n, 'overview']),
];
for (const [machine, view] of drawable) {
  test(`the ${machine}'s ${view} view renders without a Graphviz warning and parses as mermaid`, async () => {
    const { warnings } = await renderDot(await exportChart(machine!, 'dot', view));
    assert.equal(warnings, []);
    assert.is((await parseMermaid(await exportChart(machine!, 'mermaid', view))).diagramType, 'stateDiagram');
  });
}

test('overview: no retry state, cancel arrow or relay loop; each is named in a note of its phase; a composite inside a phase is one state; every other transition is an arrow', async () => {
  assert.ok(retryStates.size >= 10, `${retryStates.size} retry states`);
  const dot = await exportChart('migration', 'dot', 'overview');
  for (const r of retryStates) assert.not.ok(dot.includes(`"s:${r}"`), `overview draws no ${r}`);
  assert.not.ok(
    arrowLines(dot).some((l) => l.startsWith('CANCEL_REQUESTED')),
    'no cancel arrow',
  );
  const notes = [...dot.matchAll(/"n:([^"]*)" \[[^\n]*label="([^"]*)"/g)].map((m) => ({ phase: m[1]!, text: m[2]!.replace(/\\l/g, '\n') }));
  assert.equal(notes.map((n) => n.phase).sort(), ['', 'destinationPhase', 'rollingBack', 'sourcePhase']);
  for (const t of chart.transitions.filter((x) => eventOf(x) === 'RETRY_DUE')) {
    const phase = notes.find((n) => n.phase === (t.source.includes('.') ? t.source.split('.')[0] : ''))!;
    assert.ok(phase.text.includes(stateName(chart.states.get(t.targets[0]!)!)), `the note of ${phase.phase || 'the machine'} names ${t.targets[0]} as retried`);
  }
  const cancels = chart.transitions.filter((t) => eventOf(t) === 'CANCEL_REQUESTED');
  for (const t of cancels)
    assert.ok(
      notes.some((n) => n.text.includes(transitionLabel(t))),
      `a note holds ${transitionLabel(t)}`,
    );
  // A composite inside a phase (two keys deep) is one state: the arrows inside it are the phase views' to draw.
  const boxes = [...chart.states.values()].filter((s) => s.keys.length === 2 && s.children.length > 0).map((s) => s.path);
  const boxOf = (p: string) => boxes.find((b) => p.startsWith(`${b}.`) || p === b) ?? p;
  for (const b of boxes)
    assert.match(
      dot,
      new RegExp(`"s:${b.replace(/\./g, '\\.')}" \\[id="migration:${b.replace(/\./g, '\\.')}", class="state", label="[^"]*, \\d+ states inside"`),
    );
  const inside = (t: ChartTransition) => boxOf(t.source) !== t.source && t.targets.every((p) => boxOf(p) === boxOf(t.source));
  const targetlessOfComposite = (t: ChartTransition) => t.targets.length === 0 && chart.states.get(t.source)!.children.length > 0;
  const relay = (t: ChartTransition) => t.targets.length === 0 && t.actions.length > 0 && t.actions.every((a) => a.type.startsWith('relay'));
  const drawn = chart.transitions.filter((t) => !folded(t) && !targetlessOfComposite(t) && !inside(t) && !relay(t));
  assert.is(arrowLines(dot).length, drawn.length, 'every transition not folded, and not inside a composite drawn as one state, is a line of an arrow');
  assert.ok(notes.some((n) => n.phase === 'sourcePhase' && /relays its session's frames \(SAM_FRAME, CHIP_FRAME\) in:\n\s+identifying \(S1\)/.test(n.text)));
});

for (const [view, phase] of Object.entries(PHASES)) {
  test(`${view} view (${phase.title}): the states of ${phase.from}-${phase.to}, every arrow that touches them, references for the rest`, async () => {
    const steps = new Set<string>(STEPS.slice(STEPS.indexOf(phase.from), STEPS.indexOf(phase.to) + 1));
    const stepped = (p: string) => {
      const step = stepOfState(p)?.step.id;
      return step !== undefined && steps.has(step);
    };
    // ... and the final states those reach (the figure's ends).
    const ends = chart.transitions.filter((t) => stepped(t.source)).flatMap((t) => t.targets.filter((p) => chart.states.get(p)!.kind === 'final'));
    const inPhase = (p: string) => stepped(p) || ends.includes(p);
    const dot = await exportChart('migration', 'dot', view);
    assert.ok(dot.includes(`label="migration: ${phase.title}"`), 'titled with its figure');
    for (const s of simple) {
      if (retryStates.has(s.path)) continue;
      const drawn = new RegExp(`"s:${s.path.replace(/\./g, '\\.')}" \\[id=`).test(dot);
      assert.is(
        drawn,
        inPhase(s.path),
        `${view}: ${s.path} (${stepOfState(s.path)?.step.id ?? 'no step'}) ${inPhase(s.path) ? 'drawn' : 'not drawn as a state'}`,
      );
    }
    const touching = chart.transitions.filter(
      (t) => !folded(t) && (inPhase(t.source) || t.targets.some(inPhase)) && !(t.targets.length === 0 && chart.states.get(t.source)!.children.length > 0),
    );
    const lines = arrowLines(dot);
    for (const t of touching) assert.ok(lines.includes(transitionLabel(t)), `${view}: ${t.source} ${transitionLabel(t)}`);
    assert.ok(/class="stub"/.test(dot), 'references to states outside the phase');
  });
}

test('the source view reads as Fig. 3: starting at S1, ending at awaitingDestination (S9) or refused; the destination view as Fig. 4: from S8 to completed', async () => {
  const source = await exportChart('migration', 'dot', 'source');
  assert.match(source, /"i:" -> "s:starting" \[class="initial"\]/);
  assert.match(source, /"s:sourcePhase\.releasingChannel" -> "s:awaitingDestination" \[label="CHANNEL_RELEASED \[forSource\]"/);
  assert.match(source, /"s:awaitingDestination" \[class="stub", label="awaitingDestination \(S9\)\\n\(see full chart\)"/);
  assert.match(source, /"s:refused" \[id="migration:refused", class="state final"/);
  const destination = await exportChart('migration', 'dot', 'destination');
  assert.not.match(destination, /"i:" \[/, 'the machine starts outside Fig. 4: no start dot of its own');
  assert.match(destination, /"s:sourcePhase\.releasingChannel" \[class="stub"/);
  assert.match(destination, /"s:releasingDestination" -> "s:completed" \[label="CHANNEL_RELEASED \[forDestination\]"/);
  const mermaid = await exportChart('migration', 'mermaid', 'destination');
  assert.ok(mermaid.startsWith('---\ntitle: "migration: destination phase, S9-S17 (Fig. 4)"\n---\nstateDiagram-v2\n'), mermaid.slice(0, 120));
});

test('views are refused where they do not apply, with the valid choices named', async () => {
  const json = await refusal(() => exportChart('migration', 'json', 'overview'));
  assert.is(json.code, 'CHART_VIEW_REFUSED');
  assert.match(json.message, /the overview view is drawn as mermaid, dot, svg; json is the whole machine \(--view full\)/);
  const area = await refusal(() => exportChart('area', 'svg', 'source'));
  assert.match(area.message, /the source view is a phase of the migration \(--machine migration\); area has views full and overview/);
  const unknown = await refusal(() => exportChart('migration', 'dot', 'sideways'));
  assert.is(unknown.code, 'CHART_UNKNOWN_VIEW');
  assert.match(unknown.message, /unknown view "sideways"; one of full, overview, source, destination/);
});

test.run();
