/**
 * The chart as a mermaid `stateDiagram-v2`. The machine is the outer
 * composite state; nested states are `state X { ... }` blocks, a parallel
 * state's regions are separated by `--`, `[*] -->` marks each initial state and
 * `--> [*]` each final one. Arrows read `EVENT [guard]`, `always [guard]`,
 * `after N ms [guard]`; an arrow between two children of one block is
 * written in that block, every other arrow at the top level. A targetless transition (actions only) is a self-loop on
 * a simple state and a note on a composite one. Transitions between the same
 * two states are one arrow with a line (`<br/>`) per transition: mermaid's
 * layout keeps one self-loop per state and drops the rest, so each must
 * be a line of that one. A view's notes (./views.ts) are notes on their
 * composite; its references to states outside it are dashed states `name (see full chart)`.
 *
 * Mermaid ids cannot hold dots, dashes or spaces, and some words are
 * keywords, so every state gets a safe unique id (`sourcePhase__uploading`)
 * and its real name as the label (`state "uploading" as sourcePhase__uploading`).
 */
import { arrowScope, stateName, transitionLabel, type Chart, type ChartState, type ChartTransition } from './graph.ts';

/** Words mermaid's state-diagram lexer takes as keywords at the start of a statement. */
const MERMAID_KEYWORDS = new Set([
  'click',
  'href',
  'default',
  'state',
  'note',
  'class',
  'classdef',
  'style',
  'scale',
  'direction',
  'hide',
  'acctitle',
  'accdescr',
  'end',
  'statediagram',
]);

/** Where arrows outside the machine's outer box are collected (no state path starts with a NUL). */
const TOP = '\u0000top';

/** Safe, unique mermaid ids for every state of a chart (the root too: it is the outer box). */
export function mermaidIds(chart: Chart): Map<string, string> {
  const ids = new Map<string, string>();
  const used = new Set<string>();
  for (const s of chart.states.values()) {
    const parts = s.path === '' ? [chart.machine] : s.keys;
    let base = parts.map((k) => k.replace(/[^A-Za-z0-9_]/g, '_') || '_').join('__');
    if (MERMAID_KEYWORDS.has(base.toLowerCase()) || /^\d/.test(base)) base = `s_${base}`;
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}_${n}`;
    used.add(id);
    ids.set(s.path, id);
  }
  return ids;
}

/** A label mermaid keeps whole: no quote (ends the label), no `;` (ends the statement), no `:` (starts a label), one line. */
const labelText = (s: string): string =>
  s
    .replace(/["]/g, "'")
    .replace(/[;:\r\n]+/g, ' ')
    .trim();

function stateLabel(chart: Chart, s: ChartState): string {
  if (s.path === '') return labelText(chart.machine);
  if (s.kind === 'history') return labelText(`${s.key} (${s.history === 'deep' ? 'H*' : 'H'})`);
  return labelText(s.stub ? `${stateName(s)} (see full chart)` : stateName(s));
}

export function toMermaid(chart: Chart): string {
  const ids = mermaidIds(chart);
  const id = (path: string) => ids.get(path)!;
  const notesOf = new Map<string, string[]>();
  const add = (m: Map<string, string[]>, key: string, line: string) => m.set(key, [...(m.get(key) ?? []), line]);
  /** Each arrow's label lines, by where it is written, then by `source --> target`. */
  const arrows = new Map<string, Map<string, string[]>>();

  for (const t of chart.transitions) {
    const label = labelText(transitionLabel(t));
    const source = chart.states.get(t.source)!;
    if (t.targets.length === 0 && source.children.length > 0) {
      add(notesOf, t.source, `${label}${actionsSuffix(t)}`);
      continue;
    }
    for (const target of t.targets.length > 0 ? t.targets : [t.source]) {
      const place = arrowPlace(t.source, target);
      if (!arrows.has(place)) arrows.set(place, new Map());
      add(arrows.get(place)!, `${id(t.source)} --> ${id(target)}`, label);
    }
  }
  for (const [path, lines] of chart.notes ?? []) for (const line of lines) add(notesOf, path, labelText(line));
  const arrowsIn = new Map<string, string[]>(
    [...arrows].map(([place, byEnds]) => [place, [...byEnds].map(([ends, labels]) => `${ends} : ${labels.join('<br/>')}`)]),
  );

  // A view's title is mermaid's front matter, which renderers draw above the diagram.
  const title = chart.title ? ['---', `title: "${chart.title.replace(/["\\\r\n]/g, ' ')}"`, '---'] : [];
  const out: string[] = [...title, 'stateDiagram-v2', `  %% ${chart.machine}: exported by valmove charts from the machine the runtime runs`];
  const root = chart.states.get('')!;
  out.push(`  [*] --> ${id('')}`);
  declare(root, '  ');
  for (const line of arrowsIn.get(TOP) ?? []) out.push(`  ${line}`);
  const stubs = [...chart.states.values()].filter((s) => s.stub).map((s) => id(s.path));
  if (stubs.length > 0) out.push('  classDef stub stroke-dasharray: 4 4,color:#555', `  class ${stubs.join(',')} stub`);
  return `${out.join('\n')}\n`;

  /**
   * Where an arrow is written. Mermaid files a state under the composite block
   * that last names it (outside the top level), so an arrow goes inside a
   * block only when both its ends are that block's own children; every other
   * arrow (crossing blocks, touching the root) is written at the top level.
   */
  function arrowPlace(source: string, target: string): string {
    if (source === '' || target === '') return TOP;
    const scope = arrowScope(chart, source, target);
    return chart.states.get(source)!.parent === scope && chart.states.get(target)!.parent === scope ? scope : TOP;
  }

  function declare(s: ChartState, indent: string): void {
    out.push(`${indent}state "${stateLabel(chart, s)}" as ${id(s.path)}`);
    if (s.children.length > 0) {
      out.push(`${indent}state ${id(s.path)} {`);
      body(s, `${indent}  `);
      out.push(`${indent}}`);
    }
    const notes = notesOf.get(s.path);
    if (notes) {
      out.push(`${indent}note right of ${id(s.path)}`);
      for (const n of notes) out.push(`${indent}  ${n}`);
      out.push(`${indent}end note`);
    }
  }

  function body(s: ChartState, indent: string): void {
    if (s.initial !== null) out.push(`${indent}[*] --> ${id(s.initial)}`);
    s.children.forEach((c, i) => {
      if (s.kind === 'parallel' && i > 0) out.push(`${indent}--`);
      declare(chart.states.get(c)!, indent);
    });
    if (s.kind !== 'parallel') {
      for (const c of s.children) if (chart.states.get(c)!.kind === 'final') out.push(`${indent}${id(c)} --> [*]`);
      for (const line of arrowsIn.get(s.path) ?? []) out.push(`${indent}${line}`);
    }
  }
}

function actionsSuffix(t: ChartTransition): string {
  return t.actions.length === 0 ? '' : ` / ${labelText(t.actions.map((a) => a.type).join(', '))}`;
}
