/**
 * `valmove charts`: every statechart, exported from the very machine object
 * the runtime runs (MODELS in src/model/models.ts), in the formats people
 * read charts in:
 *
 *   json     machine config for Stately's editor / `createMachine(json)`   (./json.ts)
 *   mermaid  stateDiagram-v2                                               (./mermaid.ts)
 *   scxml    W3C SCXML 1.0                                                 (./scxml.ts)
 *   dot      Graphviz DOT, with the state-id contract of the live page     (./dot.ts)
 *   svg      that DOT rendered locally by Graphviz WASM                    (./svg.ts)
 *
 * and, drawn (mermaid, dot, svg), in views for reading a large chart
 * (./views.ts): full, overview, and the migration's source and destination
 * phases (the patent's Fig. 3 and Fig. 4).
 */
import type { AnyStateMachine } from 'xstate';
import { migrationMachine } from '../machines/migration.machine.ts';
import { MODEL_NAMES, MODELS } from '../model/models.ts';
import { STEP_TABLE, stepOfState } from '../protocol/steps.ts';
import { toDot, svgId } from './dot.ts';
import { chartOf } from './graph.ts';
import { toJson } from './json.ts';
import { toMermaid } from './mermaid.ts';
import { toScxml } from './scxml.ts';
import { toSvg } from './svg.ts';
import { CHART_VIEWS, chartView, isChartView, PHASES, type ChartView } from './views.ts';

export { CHART_VIEWS, type ChartView } from './views.ts';

export const CHART_FORMATS = ['json', 'mermaid', 'scxml', 'dot', 'svg'] as const;
export type ChartFormat = (typeof CHART_FORMATS)[number];

/** The file extension of each format. */
export const CHART_EXTENSIONS: Record<ChartFormat, string> = { json: 'json', mermaid: 'mmd', scxml: 'scxml', dot: 'dot', svg: 'svg' };

export type ChartErrorCode = 'CHART_UNKNOWN_MACHINE' | 'CHART_UNKNOWN_FORMAT' | 'CHART_UNKNOWN_VIEW' | 'CHART_VIEW_REFUSED';

/** The formats that draw a view; json and scxml are the machine itself, whole. */
export const VIEW_FORMATS: readonly ChartFormat[] = ['mermaid', 'dot', 'svg'];

/** Bad input to the chart exporter, with a stable code and a sentence naming the valid choices. */
export class ChartError extends Error {
  constructor(
    readonly code: ChartErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ChartError';
  }
}

export function isChartFormat(format: string): format is ChartFormat {
  return (CHART_FORMATS as readonly string[]).includes(format);
}

function machineNamed(name: string): AnyStateMachine {
  const model = Object.hasOwn(MODELS, name) ? MODELS[name] : undefined;
  if (!model) throw new ChartError('CHART_UNKNOWN_MACHINE', `unknown machine "${name}"; one of ${MODEL_NAMES.join(', ')}`);
  return model.machine;
}

function formatNamed(format: string): ChartFormat {
  if (!isChartFormat(format)) throw new ChartError('CHART_UNKNOWN_FORMAT', `unknown format "${format}"; one of ${CHART_FORMATS.join(', ')}`);
  return format;
}

/**
 * The protocol step of a migration state, from the step declarations: its own
 * step (`S3`), or for a composite state the span of its states' steps in
 * protocol order (`S1-S8` for the source phase, `S5-S7` for an upload; ASCII:
 * Graphviz's WASM build has no metrics for other characters).
 */
export function migrationStepOf(path: string): string | undefined {
  const own = stepOfState(path)?.step.id;
  if (own !== undefined || path === '') return own;
  const inside = STEP_TABLE.filter((s) => Object.keys(s.states).some((p) => p.startsWith(`${path}.`))).map((s) => s.id);
  if (inside.length === 0) return undefined;
  return inside.length === 1 ? inside[0] : `${inside[0]}-${inside[inside.length - 1]}`;
}

/** A view, checked against the format and the machine: a phase view is of the migration, and only the drawings draw views. */
function viewNamed(view: string, format: ChartFormat, machine: AnyStateMachine): ChartView {
  if (!isChartView(view)) throw new ChartError('CHART_UNKNOWN_VIEW', `unknown view "${view}"; one of ${CHART_VIEWS.join(', ')}`);
  if (view !== 'full' && !VIEW_FORMATS.includes(format)) {
    throw new ChartError('CHART_VIEW_REFUSED', `the ${view} view is drawn as ${VIEW_FORMATS.join(', ')}; ${format} is the whole machine (--view full)`);
  }
  if (Object.hasOwn(PHASES, view) && machine !== migrationMachine) {
    throw new ChartError('CHART_VIEW_REFUSED', `the ${view} view is a phase of the migration (--machine migration); ${machine.id} has views full and overview`);
  }
  return view;
}

/** Exports any machine (the registry's, or one a test builds) in one format, as one view of it (./views.ts; full by default). */
export async function exportMachineChart(machine: AnyStateMachine, format: ChartFormat | string, view: ChartView | string = 'full'): Promise<string> {
  const f = formatNamed(format);
  const v = viewNamed(view, f, machine);
  const chart = chartView(chartOf(machine, machine === migrationMachine ? migrationStepOf : undefined), v);
  switch (f) {
    case 'json':
      return toJson(chart);
    case 'mermaid':
      return toMermaid(chart);
    case 'scxml':
      return toScxml(chart);
    case 'dot':
      return toDot(chart);
    case 'svg':
      return toSvg(toDot(chart));
  }
}

/** Exports the registry's machine `machineName` in one format, as one view of it. */
export async function exportChart(machineName: string, format: ChartFormat | string, view: ChartView | string = 'full'): Promise<string> {
  return exportMachineChart(machineNamed(machineName), format, view);
}

/** Every state's id in the DOT and SVG (./dot.ts): `<machine>` for the root, then `<machine>:<path>` for each state below it. */
export function machineChartIds(machine: AnyStateMachine): string[] {
  const chart = chartOf(machine);
  return [...chart.states.keys()].map((path) => svgId(chart.machine, path));
}

export function chartIds(machineName: string): string[] {
  return machineChartIds(machineNamed(machineName));
}
