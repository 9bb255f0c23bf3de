/** Test paths as a person reads them: one line per path, and the union of the paths as a Mermaid state diagram. */
import { createActor, type EventObject } from 'xstate';
import type { Model } from './models.ts';
import { type Coverage, inputOf, type ModelPath, type Strategy, STRATEGY_PROMISE, stateName } from './paths.ts';

/** "CHIP_IDENTIFIED(source, owner=alice, 2 areas)": an event as a person reads it. */
export function describeEvent(e: EventObject): string {
  const skip = new Set(['type', 'now', 'data', 'grants', 'receipt', 'message', 'request', 'session', 'deadline']);
  const parts: string[] = [];
  for (const [k, v] of Object.entries(e)) {
    if (skip.has(k) || v === undefined) continue;
    if (Array.isArray(v)) parts.push(`${v.length} ${k}`);
    else if (v && typeof v === 'object') continue;
    else parts.push(k === 'chip' || k === 'decision' || k === 'code' || k === 'op' || k === 'purpose' ? String(v) : `${k}=${String(v)}`);
  }
  return parts.length ? `${e.type}(${parts.join(', ')})` : e.type;
}

/** "states 71/71; transitions 150/150": the coverage figures of a set of paths. */
export const coverageText = (cov: Coverage): string =>
  `states ${cov.states.reached}/${cov.states.total}; transitions ${cov.transitions.reached}/${cov.transitions.total}`;

export function formatText(model: Model, paths: ModelPath[], cov: Coverage, strategy: Strategy = 'transitions'): string {
  const lines = paths.map(
    (p, i) => `${model.name} #${i + 1}${p.variant ? ` [${p.variant}]` : ''}: ${p.events.map(describeEvent).join(' → ') || '(start)'}  ⇒  ${stateName(p.state)}`,
  );
  const missing = cov.missingTransitions;
  lines.push(
    `${model.name}: ${paths.length} paths (${strategy}: ${STRATEGY_PROMISE[strategy]}); planned coverage, replayed on the chart itself: ` +
      coverageText(cov) +
      (missing.length ? `; not reached: ${missing.slice(0, 5).join('; ')}${missing.length > 5 ? ` … (${missing.length} in all)` : ''}` : ''),
  );
  return lines.join('\n');
}

/** The union of all paths as one Mermaid state diagram (states as reached, edges labelled with events). */
export function formatMermaid(model: Model, paths: ModelPath[]): string {
  const ids = new Map<string, string>();
  const id = (v: unknown) => {
    const k = stateName(v);
    if (!ids.has(k)) ids.set(k, `s${ids.size}`);
    return ids.get(k)!;
  };
  const edges = new Set<string>();
  for (const p of paths) {
    const actor = createActor(model.machine, { input: inputOf(model, p.variant) as never }).start();
    let prev = actor.getSnapshot().value;
    edges.add(`  [*] --> ${id(prev)}`);
    for (const e of p.events) {
      actor.send(e as never);
      const next = actor.getSnapshot().value;
      edges.add(`  ${id(prev)} --> ${id(next)}: ${describeEvent(e).replace(/:/g, ' ')}`);
      prev = next;
    }
    actor.stop();
  }
  const names = [...ids.entries()].map(([text, sid]) => `  state "${text.replace(/"/g, "'")}" as ${sid}`);
  return ['stateDiagram-v2', ...names, ...edges].join('\n');
}
