/**
 * The chart as Graphviz DOT. Simple states are rounded boxes (final: double
 * border, history: a circle), composite states are clusters, a parallel
 * state's regions are dashed clusters, each initial state is pointed at from
 * a dot, and only the initial arrow leaves that dot. Arrows read `EVENT [guard]`,
 * `always [guard]`, `after N ms [guard]`, with the actions as the tooltip.
 * Transitions with the same two ends are one arrow, a label line each, and a
 * state's transitions back to itself one loop (a targetless one, actions
 * only, on a dashed loop), so labels never run into each other; a targetless transition of a composite is
 * a line in its label. The machine's own transitions (root `on`) leave an "in
 * any state" note, as does a composite's transition into its own inside.
 * A view (./views.ts) adds its notes (folded transitions, as text) and its
 * references to states outside it (dashed, grey, `name (see full chart)`).
 *
 * The id contract (a live page highlights states by these ids, so keep it):
 *   - the graph, the machine root, has `id="<machine>"`;
 *   - every state below it has `id="<machine>:<path>"`, path = the state's
 *     keys from the root, dot-joined (`migration:sourcePhase.uploading`):
 *     on its node for a simple state, on its cluster for a composite one;
 *   - Graphviz copies `id` onto the SVG `<g>` of that node or cluster, so
 *     `document.getElementById('migration:sourcePhase.uploading')` finds it
 *     (use CSS.escape for a selector: the id holds `:` and `.`);
 *   - each state's `<g>` also carries the class `state` (and `final`,
 *     `history`, `compound`, `parallel`, `region` as they apply).
 * `chartIds()` in ./index.ts lists them.
 */
import { actionText, isWithin, stateName, transitionLabel, type Chart, type ChartState, type ChartTransition } from './graph.ts';

/** A DOT string literal: quotes and backslashes escaped, newlines as DOT's `\n`. */
export const dotString = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r?\n/g, '\\n')}"`;

/** The id a state carries in DOT and SVG: `<machine>` for the root, `<machine>:<path>` below it. */
export const svgId = (machine: string, path: string): string => (path === '' ? machine : `${machine}:${path}`);

const attrs = (a: Record<string, string | number | undefined>): string =>
  `[${Object.entries(a)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? v : dotString(v as string)}`)
    .join(', ')}]`;

const isComposite = (s: ChartState) => s.kind === 'compound' || s.kind === 'parallel';

/** Node names: `s:` a simple state, `i:` a composite's initial dot, `a:` a composite's anchor (where its arrows leave), `r:` a composite's
 * "in any state" note, `n:` a view's note; clusters `cluster:`. */
const stateNode = (path: string) => `s:${path}`;
const initialNode = (path: string) => `i:${path}`;
const anchorNode = (path: string) => `a:${path}`;
const anyStateNode = (path: string) => `r:${path}`;
const noteNode = (path: string) => `n:${path}`;
const clusterName = (path: string) => `cluster:${path}`;

/** A label of several lines, each left-justified (DOT's `\l`). */
const leftLines = (lines: string[]): string => `"${lines.map((l) => dotString(l).slice(1, -1)).join('\\l')}\\l"`;

const withActions = (t: ChartTransition): string =>
  t.actions.length > 0 ? `${transitionLabel(t)} / ${t.actions.map((a) => a.type).join(', ')}` : transitionLabel(t);
const tooltipOf = (t: ChartTransition): string =>
  t.actions.length > 0 ? `${transitionLabel(t)} / ${t.actions.map(actionText).join(', ')}` : transitionLabel(t);

export function toDot(chart: Chart): string {
  return new DotWriter(chart).write();
}

/** Writes one chart as DOT, line by line. */
class DotWriter {
  private readonly out: string[] = [];
  /** Each composite's internal transitions (UML's, written inside the state): `EVENT [guard] / actions`. */
  private readonly internal = new Map<string, string[]>();
  /** Each composite's transitions drawn from its "in any state" note (the root's all, another's into its own inside). */
  private readonly fromAnyState = new Map<string, ChartTransition[]>();
  /** Each simple state's transitions back to itself: `loop` (a target), `dashed` (targetless). */
  private readonly loops = new Map<string, { loop: ChartTransition[]; dashed: ChartTransition[] }>();
  private readonly edges: ChartTransition[] = [];

  constructor(private readonly chart: Chart) {
    for (const t of chart.transitions) this.sort(t);
  }

  private sort(t: ChartTransition): void {
    const source = this.chart.states.get(t.source)!;
    const push = <K, V>(m: Map<K, V[]>, k: K, v: V) => m.set(k, [...(m.get(k) ?? []), v]);
    if (!isComposite(source)) {
      if (t.targets.length > 0 && t.targets.some((p) => p !== t.source)) return void this.edges.push(t);
      const loops = this.loops.get(t.source) ?? { loop: [], dashed: [] };
      (t.targets.length === 0 ? loops.dashed : loops.loop).push(t);
      return void this.loops.set(t.source, loops);
    }
    if (t.targets.length === 0) push(this.internal, t.source, withActions(t));
    else if (t.source === '' || t.targets.every((p) => isWithin(p, t.source) && p !== t.source)) push(this.fromAnyState, t.source, t);
    else this.edges.push(t);
  }

  write(): string {
    const { chart, out } = this;
    const root = chart.states.get('')!;
    out.push(
      `digraph ${dotString(chart.machine)} {`,
      `  id=${dotString(svgId(chart.machine, ''))}`,
      '  compound=true',
      '  fontname="Helvetica"; fontsize=12; labelloc=t',
      '  node [fontname="Helvetica", fontsize=11, shape=box, style=rounded]',
      '  edge [fontname="Helvetica", fontsize=9]',
      `  label=${dotString(chart.title ?? (root.kind === 'parallel' ? `${chart.machine} (parallel)` : chart.machine))}`,
    );
    if (root.kind === 'parallel') out.push(`  ${dotString(anchorNode(''))} [shape=point, style=invis, width=0.01]`);
    this.body(root, '  ');
    out.push(...initialEdges(chart));
    this.arrows();
    for (const [path, l] of this.loops) this.loop(path, l.loop, l.dashed);
    for (const [path, list] of this.fromAnyState) this.anyStateEdges(path, list);
    out.push('}');
    return `${out.join('\n')}\n`;
  }

  private compositeLabel(s: ChartState): string {
    const lines = this.internal.get(s.path) ?? [];
    return [s.kind === 'parallel' ? `${stateName(s)} (parallel)` : stateName(s), ...lines].join('\n');
  }

  private body(s: ChartState, indent: string): void {
    const { out } = this;
    if (s.kind === 'compound' && s.initial !== null) out.push(`${indent}${dotString(initialNode(s.path))} [shape=point, width=0.12, label=""]`);
    const root = s.path === '' ? (this.internal.get('') ?? []) : [];
    if (this.fromAnyState.has(s.path) || root.length > 0) {
      const lines = ['in any state', ...root];
      out.push(`${indent}${dotString(anyStateNode(s.path))} [shape=note, style="", class="anystate", fontsize=9, label=${leftLines(lines)}]`);
    }
    const notes = this.chart.notes?.get(s.path);
    if (notes) out.push(`${indent}${dotString(noteNode(s.path))} [shape=note, style="", class="note", fontsize=9, label=${leftLines(notes)}]`);
    for (const c of s.children) this.declare(this.chart.states.get(c)!, s, indent);
  }

  private declare(s: ChartState, parent: ChartState, indent: string): void {
    const region = parent.kind === 'parallel';
    if (s.stub) {
      const a = {
        class: 'stub',
        label: `${stateName(s)}\n(see full chart)`,
        style: 'rounded,dashed',
        color: 'grey45',
        fontcolor: 'grey30',
        tooltip: `${s.path}: outside this view`,
      };
      return void this.out.push(`${indent}${dotString(stateNode(s.path))} ${attrs(a)}`);
    }
    if (isComposite(s)) return this.cluster(s, region, indent);
    const classes = ['state', ...(s.kind === 'final' || s.kind === 'history' ? [s.kind] : []), ...(region ? ['region'] : [])].join(' ');
    const a: Record<string, string | number | undefined> = {
      id: svgId(this.chart.machine, s.path),
      class: classes,
      label: s.kind === 'history' ? (s.history === 'deep' ? 'H*' : 'H') : stateName(s),
      tooltip: s.description ?? (s.kind === 'history' ? `${s.key} (${s.history} history)` : s.step),
    };
    if (s.kind === 'final') a.peripheries = 2;
    if (s.kind === 'history') a.shape = 'circle';
    if (region) a.style = 'rounded,dashed';
    this.out.push(`${indent}${dotString(stateNode(s.path))} ${attrs(a)}`);
  }

  /** A composite state: a cluster (dashed when it is a region of a parallel state), its children inside. */
  private cluster(s: ChartState, region: boolean, indent: string): void {
    const { out } = this;
    const classes = ['state', s.kind, ...(region ? ['region'] : [])].join(' ');
    out.push(`${indent}subgraph ${dotString(clusterName(s.path))} {`);
    const inner = `${indent}  `;
    out.push(`${inner}id=${dotString(svgId(this.chart.machine, s.path))}; class=${dotString(classes)}`);
    out.push(`${inner}label=${dotString(this.compositeLabel(s))}`);
    out.push(`${inner}style=${dotString(region ? 'rounded,dashed' : s.kind === 'parallel' ? 'rounded,bold' : 'rounded')}`);
    if (s.description) out.push(`${inner}tooltip=${dotString(s.description)}`);
    // Arrows leave a composite from an invisible anchor, clipped at its border: never from its start dot.
    out.push(`${inner}${dotString(anchorNode(s.path))} [shape=point, style=invis, width=0.01]`);
    this.body(s, inner);
    out.push(`${indent}}`);
  }

  /** The node an arrow to (`head`) or from (`tail`) `path` attaches to, and the cluster it is clipped at. */
  private end(path: string, side: 'head' | 'tail'): { node: string; cluster?: string; owner: string } {
    const s = this.chart.states.get(path)!;
    if (!isComposite(s)) return { node: stateNode(path), owner: path };
    const node = s.kind === 'compound' && side === 'head' ? initialNode(path) : anchorNode(path);
    return path === '' ? { node, owner: path } : { node, cluster: clusterName(path), owner: path };
  }

  /** The arrows between states: transitions with the same two ends are one arrow, a label line each. */
  private arrows(): void {
    const arrows = new Map<string, { from: string; to: string; ltail?: string; lhead?: string; list: ChartTransition[] }>();
    for (const t of this.edges) {
      for (const target of t.targets) {
        const from = this.end(t.source, 'tail');
        const to = this.end(target, 'head');
        // Clip at a cluster only when the other end lies outside it (Graphviz refuses the clip otherwise).
        const ltail = from.cluster && !isWithin(to.owner, t.source) ? from.cluster : undefined;
        const lhead = to.cluster && !isWithin(from.owner, target) ? to.cluster : undefined;
        const key = JSON.stringify([from.node, to.node, ltail, lhead]);
        const arrow = arrows.get(key) ?? { from: from.node, to: to.node, ltail, lhead, list: [] };
        arrow.list.push(t);
        arrows.set(key, arrow);
      }
    }
    for (const { from, to, ltail, lhead, list } of arrows.values()) {
      const a = { label: list.map(transitionLabel).join('\n'), tooltip: list.map(tooltipOf).join('\n'), ltail, lhead, class: 'transition' };
      this.out.push(`  ${dotString(from)} -> ${dotString(to)} ${attrs(a)}`);
    }
  }

  /** A simple state's transitions back to itself: one loop for those with a target, one dashed for the targetless; a line each. */
  private loop(path: string, loop: ChartTransition[], dashed: ChartTransition[]): void {
    const node = dotString(stateNode(path));
    for (const [list, style, cls] of [
      [loop, undefined, 'transition loop'],
      [dashed, 'dashed', 'transition loop internal'],
    ] as const) {
      if (list.length === 0) continue;
      const label = list.map(transitionLabel).join('\n');
      this.out.push(`  ${node} -> ${node} ${attrs({ label, tooltip: list.map(tooltipOf).join('\n'), style, class: cls })}`);
    }
  }

  /** The arrows from a composite's "in any state" note: the machine's own transitions, or a composite's into its own inside. */
  private anyStateEdges(path: string, list: ChartTransition[]): void {
    for (const t of list) {
      for (const target of t.targets) {
        const to = this.end(target, 'head');
        const lhead = to.cluster && !isWithin(path, target) ? to.cluster : undefined;
        const a = { label: transitionLabel(t), tooltip: tooltipOf(t), lhead, class: 'transition anystate' };
        this.out.push(`  ${dotString(anyStateNode(path))} -> ${dotString(to.node)} ${attrs(a)}`);
      }
    }
  }
}

/** The arrows from each composite's initial dot to its initial state. */
function initialEdges(chart: Chart): string[] {
  const lines: string[] = [];
  for (const s of chart.states.values()) {
    if (s.kind !== 'compound' || s.initial === null) continue;
    const child = chart.states.get(s.initial)!;
    const head = isComposite(child) ? (child.kind === 'parallel' ? anchorNode(child.path) : initialNode(child.path)) : stateNode(child.path);
    const lhead = isComposite(child) ? `, lhead=${dotString(clusterName(child.path))}` : '';
    lines.push(`  ${dotString(initialNode(s.path))} -> ${dotString(head)} [class="initial"${lhead}]`);
  }
  return lines;
}
