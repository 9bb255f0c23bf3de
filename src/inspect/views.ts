/**
 * What the inspect page shows, computed here so the page and the CLI draw
 * the same thing: statecharts (the `valmove charts` SVG export) and the
 * recorded message sequence (the `valmove trace` grouping and drawing).
 */
import { exportChart } from '../charts/index.ts';
import { MODEL_NAMES } from '../model/models.ts';
import type { RunRecord } from '../trace/records.ts';
import { sequenceOf, toJson, toSvg } from '../trace/index.ts';

const charts = new Map<string, Promise<string>>();

export function machineNames(): string[] {
  return [...MODEL_NAMES];
}

/** One machine's chart as SVG (rendered once, then cached), or null for an unknown machine. */
export function chartSvg(name: string): Promise<string | null> {
  if (!MODEL_NAMES.includes(name)) return Promise.resolve(null);
  let svg = charts.get(name);
  if (!svg) {
    svg = exportChart(name, 'svg');
    charts.set(name, svg);
    svg.catch(() => charts.delete(name));
  }
  return svg;
}

export function sequenceJson(records: readonly RunRecord[], mig?: string): unknown {
  return toJson(sequenceOf(records, { mig }));
}

export function sequenceSvg(records: readonly RunRecord[], mig?: string): string {
  return toSvg(sequenceOf(records, { mig }));
}
