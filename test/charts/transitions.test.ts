/**
 * No export drops a transition: for every machine and every format
 * `valmove charts` offers, the transitions a reader finds in the export are
 * counted and equal the machine's own, walked from XState's state nodes (not
 * from src/charts/graph.ts, which the exporters share). What counts as one:
 *
 *   json     an entry of `on`, `after`, `always` or `onDone`
 *   scxml    a `<transition>` (not a history state's default)
 *   mermaid  a line of an arrow's label (transitions between two states share
 *            an arrow, a `<br>`-separated line each), or a line of a note
 *   dot      the same in Graphviz's own reading of the DOT (its json0 output):
 *            a label line of an arrow of class `transition`, a line under a
 *            cluster's name, a line under "in any state"
 *   svg      the same in the rendered drawing: a `<text>` of such an arrow,
 *            cluster or note
 *
 * And only a composite's initial arrow leaves its start dot (`i:` nodes):
 * the machine's own transitions leave an "in any state" note instead.
 */
import { instance } from '@viz-js/viz';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { CHART_FORMATS, exportMachineChart } from '../../src/charts/index.ts';
import { MODEL_NAMES, MODELS } from '../../src/model/models.ts';
import { mermaidStateData } from '../helpers/mermaid.ts';
import { classesOf, parseDom, type DomElement } from './dom.ts';
import { syntheticMachine } from './fixtures.ts';

const machines: Array<[string, AnyStateMachine]> = [
  ...MODEL_NAMES.map((n): [string, AnyStateMachine] => [n, MODELS[n]!.machine]),
  ['synthetic', syntheticMachine],
];

/** The machine's transitions, from XState's own state nodes: every entry of `node.transitions` (on, after, onDone) and `always`. */
function machineTransitions(machine: AnyStateMachine): { count: number; targetsMax: number; compoundInitials: number } {
  let count = 0;
  let targetsMax = 0;
  let compoundInitials = 0;
  const visit = (node: AnyStateNode) => {
    if (node.type === 'compound') compoundInitials++;
    for (const t of [...[...node.transitions.values()].flat(), ...(node.always ?? [])]) {
      count++;
      targetsMax = Math.max(targetsMax, t.target?.length ?? 0);
    }
    for (const child of Object.values(node.states as Record<string, AnyStateNode>)) visit(child);
  };
  visit(machine.root);
  return { count, targetsMax, compoundInitials };
}

type Json = { on?: Record<string, unknown[]>; after?: Record<string, unknown[]>; always?: unknown[]; onDone?: unknown[]; states?: Record<string, Json> };

function countJson(state: Json): number {
  const lists = [...Object.values(state.on ?? {}), ...Object.values(state.after ?? {}), state.always ?? [], state.onDone ?? []];
  return lists.reduce((n, l) => n + l.length, 0) + Object.values(state.states ?? {}).reduce((n, s) => n + countJson(s), 0);
}

async function countScxml(xml: string): Promise<number> {
  const doc = await parseDom(xml, 'application/xml');
  return Array.from(doc.getElementsByTagName('transition')).filter((t) => t.parentElement?.localName !== 'history').length;
}

const lines = (label: string | undefined, split: RegExp): number => (label ?? '').split(split).filter((l) => l !== '').length;

async function countMermaid(text: string): Promise<number> {
  const { nodes, edges } = await mermaidStateData(text);
  const shape = new Map(nodes.map((n) => [n.id, n.shape]));
  const arrows = edges.filter((e) => shape.get(e.start) !== 'stateStart' && shape.get(e.end) !== 'stateEnd');
  const notes = nodes.filter((n) => n.shape === 'note');
  const br = /<br\s*\/?>|\n/;
  return arrows.reduce((n, e) => n + lines(e.label, br), 0) + notes.reduce((n, note) => n + lines(note.label, br), 0);
}

interface GvObject {
  name: string;
  label?: string;
  class?: string;
}
interface GvEdge {
  tail: number;
  label?: string;
  class?: string;
}

/** Graphviz's own reading of the DOT (json0: every node, cluster and edge with its attributes as written). */
async function graphvizReading(dot: string): Promise<{ objects: GvObject[]; edges: GvEdge[] }> {
  const result = (await instance()).render(dot, { format: 'json0', engine: 'dot' });
  assert.is(result.status, 'success');
  const json = JSON.parse(result.output ?? '{}') as { objects?: GvObject[]; edges?: GvEdge[] };
  return { objects: json.objects ?? [], edges: json.edges ?? [] };
}

async function countDot(dot: string): Promise<number> {
  const { objects, edges } = await graphvizReading(dot);
  const dotLines = /\\[nl]/;
  const has = (o: { class?: string }, c: string) => (o.class ?? '').split(/\s+/).includes(c);
  const arrows = edges.filter((e) => has(e, 'transition')).reduce((n, e) => n + lines(e.label, dotLines), 0);
  const underName = objects.filter((o) => o.name.startsWith('cluster') || has(o, 'anystate')).reduce((n, o) => n + lines(o.label, dotLines) - 1, 0);
  return arrows + underName;
}

async function countSvg(svg: string): Promise<number> {
  const doc = await parseDom(svg, 'image/svg+xml');
  const texts = (g: DomElement) => g.getElementsByTagName('text').length;
  let n = 0;
  for (const g of Array.from(doc.getElementsByTagName('g'))) {
    const c = classesOf(g);
    if (c.includes('edge') && c.includes('transition')) n += texts(g);
    else if ((c.includes('cluster') && c.includes('state')) || (c.includes('node') && c.includes('anystate'))) n += texts(g) - 1;
  }
  return n;
}

const COUNTERS: Record<(typeof CHART_FORMATS)[number], (text: string) => number | Promise<number>> = {
  json: (text) => countJson(JSON.parse(text) as Json),
  scxml: countScxml,
  mermaid: countMermaid,
  dot: countDot,
  svg: countSvg,
};

for (const [name, machine] of machines) {
  test(`${name}: every format holds each of the machine's transitions (${CHART_FORMATS.join(', ')})`, async () => {
    const own = machineTransitions(machine);
    assert.ok(own.count > 0, `${name} has transitions`);
    // One arrow per transition: a transition with several targets would be several arrows and need its own rule here.
    assert.ok(own.targetsMax <= 1, `${name}: no transition has more than one target`);
    for (const format of CHART_FORMATS) {
      const counted = await COUNTERS[format](await exportMachineChart(machine, format));
      assert.is(counted, own.count, `${name} as ${format}: ${counted} transitions exported, the machine has ${own.count}`);
    }
  });

  test(`${name}: only the initial arrows leave a start dot, in the DOT and the SVG`, async () => {
    const own = machineTransitions(machine);
    const { objects, edges } = await graphvizReading(await exportMachineChart(machine, 'dot'));
    const fromDot = edges.filter((e) => objects[e.tail]!.name.startsWith('i:'));
    assert.ok(
      fromDot.every((e) => e.class === 'initial'),
      `${name}: arrows leaving a start dot: ${fromDot.map((e) => e.label).join(', ')}`,
    );
    assert.is(fromDot.length, own.compoundInitials, `${name}: one initial arrow per compound state`);

    const doc = await parseDom(await exportMachineChart(machine, 'svg'), 'image/svg+xml');
    const svgEdges = Array.from(doc.getElementsByTagName('g')).filter((g) => classesOf(g).includes('edge'));
    const title = (g: DomElement) => g.getElementsByTagName('title')[0]?.textContent ?? '';
    const svgFromDot = svgEdges.filter((g) => title(g).startsWith('i:'));
    assert.ok(
      svgFromDot.every((g) => classesOf(g).includes('initial') && g.getElementsByTagName('text').length === 0),
      `${name}: svg arrows leaving a start dot are unlabelled initial arrows`,
    );
    assert.is(svgFromDot.length, own.compoundInitials);
  });
}

test('the chip chart: one arrow leaves its start dot, to idle; AUTH_REQUESTED and POWER_ON leave "in any state"', async () => {
  const dot = await exportMachineChart(MODELS.chip!.machine, 'dot');
  const fromStart = dot.split('\n').filter((l) => /^\s*"i:[^"]*" ->/.test(l));
  assert.equal(fromStart, ['  "i:" -> "s:idle" [class="initial"]']);
  for (const event of ['AUTH_REQUESTED', 'AUTH_REQUESTED [authRefused]', 'POWER_ON']) {
    assert.match(dot, new RegExp(`\\n\\s*"r:" -> "s:\\w+" \\[label="${event.replace(/[[\]]/g, '\\$&')}"`), `${event} from "in any state"`);
  }
});

test("self-loops are one arrow per state, a label line each: the area's mainActive and locked, the decision's pending", async () => {
  const area = await exportMachineChart(MODELS.area!.machine, 'dot');
  assert.match(area, /"s:mainActive" -> "s:mainActive" \[label="OPEN_NORMAL\\nUSE"/);
  assert.match(area, /"s:locked" -> "s:locked" \[label="OPEN_UPLOAD\\nUPLOAD"/);
  const decision = await exportMachineChart(MODELS.decision!.machine, 'dot');
  assert.is((decision.match(/"s:pending" -> "s:pending"/g) ?? []).length, 1);
  const mermaid = await exportMachineChart(MODELS.area!.machine, 'mermaid');
  assert.ok(mermaid.includes('mainActive --> mainActive : OPEN_NORMAL<br/>USE'), 'mermaid: one self-loop on mainActive, both events');
  assert.ok(mermaid.includes('locked --> locked : OPEN_UPLOAD<br/>UPLOAD'), 'mermaid: one self-loop on locked, both events');
});

test.run();
