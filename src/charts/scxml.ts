/**
 * The chart as W3C SCXML 1.0 (https://www.w3.org/TR/scxml/), valid against
 * the W3C schema (test/charts/scxml-xsd). The machine root is the document's
 * one top state (a `<state>` or `<parallel>`), so its own transitions have a
 * place; below it `<state>`, `<parallel>`, `<final>`, `<history>`.
 *
 * - ids: the XState node id (`migration.sourcePhase.uploading`), each key
 *   reduced to XML name characters; dots are legal in an XML ID.
 * - `event`: the event type; `cond`: the guard's name (the machine's
 *   implementations decide it, as in `setup`); `target`: ids. A transition
 *   that stays inside its source (XState's default, `reenter: false`) is
 *   `type="internal"`.
 * - `always` is a transition without `event`; `after` is SCXML's own idiom: a
 *   delayed `<send>` on entry, `<cancel>` on exit, a transition on that event.
 * - actions are names, not code: `<log label="action" expr="'name {params}'"/>`.
 * - descriptions are XML comments.
 * - a state's protocol step (the migration's, from the step declarations) is
 *   the attribute `vm:step="S3"` in valmove's own namespace, which SCXML
 *   allows on every element (`scxml.extra.attribs`).
 */
import { actionText, isWithin, type Chart, type ChartAction, type ChartState, type ChartTransition } from './graph.ts';

const SCXML_NS = 'http://www.w3.org/2005/07/scxml';
/** valmove's namespace for what SCXML has no attribute of its own for: `vm:step`. */
const VALMOVE_NS = 'urn:valmove:charts';

export const xmlEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** XML comment text: `--` may not appear inside a comment, nor a trailing `-`. */
const commentText = (s: string): string => ` ${s.replace(/-(?=-)/g, '- ').replace(/-$/, '- ')} `;

/** One XML name segment: letters, digits, `_`, `-`; never empty. */
const nameSegment = (s: string): string => s.replace(/[^A-Za-z0-9_-]/g, '_') || '_';

/** XML ID-safe, document-unique ids: the machine root first, then every state by its XState-style path. */
export function scxmlIds(chart: Chart): Map<string, string> {
  const ids = new Map<string, string>();
  const used = new Set<string>();
  for (const s of chart.states.values()) {
    let base = [chart.machine, ...s.keys].map(nameSegment).join('.');
    if (!/^[A-Za-z_]/.test(base)) base = `_${base}`;
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}_${n}`;
    used.add(id);
    ids.set(s.path, id);
  }
  return ids;
}

/** An event type as SCXML's EventType: dot-separated segments of name characters. */
function eventName(type: string): string {
  if (type === '*') return '*';
  const segments = type.split('.').filter((s) => s !== '');
  return segments.map((s) => (s === '*' ? s : s.replace(/[^A-Za-z0-9_:-]/g, '_'))).join('.') || '_';
}

function jsString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\r?\n/g, '\\n')}'`;
}

function actionLines(actions: ChartAction[], indent: string): string[] {
  return actions.map((a) => `${indent}<log label="action" expr="${xmlEscape(jsString(actionText(a)))}"/>`);
}

export function toScxml(chart: Chart): string {
  return new ScxmlWriter(chart).write();
}

/** Writes one chart as an SCXML document, line by line. */
class ScxmlWriter {
  private readonly out: string[] = [];
  private readonly ids: Map<string, string>;
  private readonly byState = new Map<string, ChartTransition[]>();
  /** Each `after` transition's delayed send; the send's id is an XML ID too. */
  private readonly sendIds = new Map<ChartTransition, string>();

  constructor(private readonly chart: Chart) {
    this.ids = scxmlIds(chart);
    const used = new Set(this.ids.values());
    for (const t of chart.transitions) this.byState.set(t.source, [...(this.byState.get(t.source) ?? []), t]);
    for (const t of chart.transitions) {
      if (t.trigger.kind !== 'after') continue;
      const base = `${this.id(t.source)}.after.${nameSegment(String(t.trigger.delay))}`;
      let sid = base;
      for (let n = 2; used.has(sid); n++) sid = `${base}_${n}`;
      used.add(sid);
      this.sendIds.set(t, sid);
    }
  }

  write(): string {
    const { chart, out } = this;
    out.push(
      '<?xml version="1.0" encoding="UTF-8"?>',
      `<!--${commentText(`${chart.machine}: exported by valmove charts from the machine the runtime runs`)}-->`,
      `<scxml xmlns="${SCXML_NS}" xmlns:vm="${VALMOVE_NS}" version="1.0" name="${xmlEscape(nameSegment(chart.machine))}" initial="${this.id('')}">`,
    );
    this.element(chart.states.get('')!, '  ');
    out.push('</scxml>');
    return `${out.join('\n')}\n`;
  }

  private readonly id = (path: string): string => this.ids.get(path)!;

  private afterEvent(t: ChartTransition): string {
    return eventName(t.eventType || `xstate.after.${String((t.trigger as { delay: unknown }).delay)}.${this.chart.states.get(t.source)!.xstateId}`);
  }

  private element(s: ChartState, indent: string): void {
    const { out } = this;
    const inner = `${indent}  `;
    if (s.kind === 'history') return this.history(s, indent);
    const tag = s.kind === 'parallel' ? 'parallel' : s.kind === 'final' ? 'final' : 'state';
    const initial = s.kind === 'compound' && s.initial !== null ? ` initial="${this.id(s.initial)}"` : '';
    const step = s.step ? ` vm:step="${xmlEscape(s.step)}"` : '';
    const open = `${indent}<${tag} id="${this.id(s.path)}"${initial}${step}`;
    out.push(`${open}>`);
    const start = out.length;
    if (s.description) out.push(`${inner}<!--${commentText(s.description)}-->`);
    const transitions = this.byState.get(s.path) ?? [];
    this.entryAndExit(
      s,
      transitions.filter((t) => t.trigger.kind === 'after'),
      inner,
    );
    if (s.kind !== 'final') for (const t of transitions) this.transition(s, t, inner);
    for (const c of s.children) this.element(this.chart.states.get(c)!, inner);
    if (out.length === start) out[start - 1] = `${open}/>`;
    else out.push(`${indent}</${tag}>`);
  }

  private history(s: ChartState, indent: string): void {
    const targets = s.historyTarget?.length ? s.historyTarget : defaultEntry(this.chart.states.get(s.parent!)!);
    this.out.push(`${indent}<history id="${this.id(s.path)}" type="${s.history ?? 'shallow'}">`);
    this.out.push(`${indent}  <transition target="${targets.map(this.id).join(' ')}"/>`);
    this.out.push(`${indent}</history>`);
  }

  /** `<onentry>` and `<onexit>`: the state's actions, and each `after` transition's delayed send and its cancel. */
  private entryAndExit(s: ChartState, delayed: ChartTransition[], inner: string): void {
    const { out } = this;
    if (s.entry.length > 0 || delayed.length > 0) {
      out.push(`${inner}<onentry>`);
      out.push(...actionLines(s.entry, `${inner}  `));
      for (const t of delayed) {
        const delay = (t.trigger as { delay: number | string }).delay;
        const when = typeof delay === 'number' ? `delay="${delay}ms"` : `delayexpr="${xmlEscape(delay)}"`;
        out.push(`${inner}  <send event="${this.afterEvent(t)}" ${when} id="${this.sendIds.get(t)}"/>`);
      }
      out.push(`${inner}</onentry>`);
    }
    if (s.exit.length > 0 || delayed.length > 0) {
      out.push(`${inner}<onexit>`);
      out.push(...actionLines(s.exit, `${inner}  `));
      for (const t of delayed) out.push(`${inner}  <cancel sendid="${this.sendIds.get(t)}"/>`);
      out.push(`${inner}</onexit>`);
    }
  }

  private transition(s: ChartState, t: ChartTransition, indent: string): void {
    const attrs: string[] = [];
    if (t.trigger.kind === 'event') attrs.push(`event="${xmlEscape(eventName(t.trigger.event))}"`);
    else if (t.trigger.kind === 'after') attrs.push(`event="${this.afterEvent(t)}"`);
    else if (t.trigger.kind === 'done') attrs.push(`event="done.state.${this.id(s.path)}"`);
    if (t.guard !== null) attrs.push(`cond="${xmlEscape(t.guard)}"`);
    if (t.targets.length > 0) attrs.push(`target="${t.targets.map(this.id).join(' ')}"`);
    if (!t.reenter && s.children.length > 0 && t.targets.length > 0 && t.targets.every((p) => isWithin(p, s.path) && p !== s.path))
      attrs.push('type="internal"');
    const open = `${indent}<transition ${attrs.join(' ')}`.trimEnd();
    const body = [...(t.description ? [`${indent}  <!--${commentText(t.description)}-->`] : []), ...actionLines(t.actions, `${indent}  `)];
    if (body.length === 0) this.out.push(`${open}/>`);
    else this.out.push(`${open}>`, ...body, `${indent}</transition>`);
  }
}

/** Where a state is entered by default: its initial child, or every region of a parallel state. */
function defaultEntry(s: ChartState): string[] {
  if (s.initial !== null) return [s.initial];
  return s.kind === 'parallel' ? s.children : [];
}
