/**
 * The chart as Graphviz DOT. Simple states are rounded boxes (final: double
 * border, history: a circle), composite states are clusters, a parallel
 * state's regions are dashed clusters, each initial state is pointed at from
 * a dot. Arrows read `EVENT [guard]`, `always [guard]`, `after N ms [guard]`,
 * with the actions as the tooltip; a targetless transition (actions only) is
 * a dashed self-loop on a simple state, a line in the label of a composite.
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
import { actionText, isWithin, transitionLabel, type Chart, type ChartState, type ChartTransition } from './graph.ts';

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

/** Node names: `s:` a simple state, `i:` a composite's initial dot, `a:` a parallel state's anchor; clusters `cluster:`. */
const stateNode = (path: string) => `s:${path}`;
const initialNode = (path: string) => `i:${path}`;
const anchorNode = (path: string) => `a:${path}`;
const clusterName = (path: string) => `cluster:${path}`;

export function toDot(chart: Chart): string {
  return new DotWriter(chart).write();
}

/** Writes one chart as DOT, line by line. */
class DotWriter {
  private readonly out: string[] = [];
  /** Each composite's internal transitions (UML's, written inside the state): `EVENT [guard] / actions`. */
  private readonly internal = new Map<string, string[]>();

  constructor(private readonly chart: Chart) {
    for (const t of chart.transitions) {
      if (t.targets.length === 0 && isComposite(chart.states.get(t.source)!)) {
        const line = t.actions.length > 0 ? `${transitionLabel(t)} / ${t.actions.map((a) => a.type).join(', ')}` : transitionLabel(t);
        this.internal.set(t.source, [...(this.internal.get(t.source) ?? []), line]);
      }
    }
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
      `  label=${dotString(this.compositeLabel(chart.machine, root))}`,
    );
    if (root.kind === 'parallel') out.push(`  ${dotString(anchorNode(''))} [shape=point, style=invis, width=0.01]`);
    this.body(root, '  ');
    out.push(...initialEdges(chart));
    for (const t of chart.transitions) this.edges(t);
    out.push('}');
    return `${out.join('\n')}\n`;
  }

  private compositeLabel(name: string, s: ChartState): string {
    const lines = this.internal.get(s.path) ?? [];
    return [s.kind === 'parallel' ? `${name} (parallel)` : name, ...lines].join('\n');
  }

  private body(s: ChartState, indent: string): void {
    if (s.kind === 'compound' && s.initial !== null) this.out.push(`${indent}${dotString(initialNode(s.path))} [shape=point, width=0.12, label=""]`);
    for (const c of s.children) this.declare(this.chart.states.get(c)!, s, indent);
  }

  private declare(s: ChartState, parent: ChartState, indent: string): void {
    const region = parent.kind === 'parallel';
    if (isComposite(s)) return this.cluster(s, region, indent);
    const classes = ['state', ...(s.kind === 'final' || s.kind === 'history' ? [s.kind] : []), ...(region ? ['region'] : [])].join(' ');
    const a: Record<string, string | number | undefined> = {
      id: svgId(this.chart.machine, s.path),
      class: classes,
      label: s.kind === 'history' ? (s.history === 'deep' ? 'H*' : 'H') : s.step ? `${s.key} (${s.step})` : s.key,
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
    out.push(`${inner}label=${dotString(this.compositeLabel(s.key, s))}`);
    out.push(`${inner}style=${dotString(region ? 'rounded,dashed' : s.kind === 'parallel' ? 'rounded,bold' : 'rounded')}`);
    if (s.description) out.push(`${inner}tooltip=${dotString(s.description)}`);
    if (s.kind === 'parallel') out.push(`${inner}${dotString(anchorNode(s.path))} [shape=point, style=invis, width=0.01]`);
    this.body(s, inner);
    out.push(`${indent}}`);
  }

  /** The node an arrow to or from `path` attaches to, and the cluster it is clipped at. */
  private end(path: string): { node: string; cluster?: string; owner: string } {
    const s = this.chart.states.get(path)!;
    if (!isComposite(s)) return { node: stateNode(path), owner: path };
    const node = s.kind === 'parallel' ? anchorNode(path) : initialNode(path);
    return path === '' ? { node, owner: path } : { node, cluster: clusterName(path), owner: path };
  }

  private edges(t: ChartTransition): void {
    const label = transitionLabel(t);
    const tooltip = t.actions.length > 0 ? `${label} / ${t.actions.map(actionText).join(', ')}` : label;
    const source = this.chart.states.get(t.source)!;
    if (t.targets.length === 0) {
      if (!isComposite(source))
        this.out.push(
          `  ${dotString(stateNode(t.source))} -> ${dotString(stateNode(t.source))} ` +
            `${attrs({ label, tooltip, style: 'dashed', class: 'transition internal' })}`,
        );
      return;
    }
    for (const target of t.targets) {
      const from = this.end(t.source);
      const to = this.end(target);
      // Clip at a cluster only when the other end lies outside it (Graphviz refuses the clip otherwise).
      const ltail = from.cluster && !isWithin(to.owner, t.source) ? from.cluster : undefined;
      const lhead = to.cluster && !isWithin(from.owner, target) ? to.cluster : undefined;
      this.out.push(`  ${dotString(from.node)} -> ${dotString(to.node)} ${attrs({ label, tooltip, ltail, lhead, class: 'transition' })}`);
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
