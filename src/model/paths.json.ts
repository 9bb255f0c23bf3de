/**
 * The JSON form of test paths (`valmove paths --format json`, `pathsDocument`
 * in valmove/testing), and its schema. One document holds one entry per
 * machine; each path lists its steps with the state before and after each
 * event (as "phase.state" text; a parallel state's regions joined by " | ")
 * and the chart transitions the event took, and each event whole, with the
 * payload the machine receives (grants, receipts, frames, orders of the real
 * shape: src/model/samples.ts). `schema` changes when a field's meaning does.
 * docs/testers.md shows it.
 */
import { z } from 'zod';
import type { EventObject } from 'xstate';
import type { Model } from './models.ts';
import { describeEvent } from './paths.format.ts';
import {
  type Coverage,
  coverage,
  generatePaths,
  inputOf,
  machineGraph,
  type ModelPath,
  type PathOptions,
  PathSearchError,
  replay,
  type Strategy,
  STRATEGIES,
  STRATEGY_PROMISE,
} from './paths.ts';

export const PATHS_SCHEMA = 'valmove.paths/1';

const count = z.object({ reached: z.number().int().min(0), total: z.number().int().min(0) });

export const pathStepSchema = z.object({
  /** The event as the machine receives it: `type` and its payload. */
  event: z.looseObject({ type: z.string().min(1) }),
  /** The event as a person reads it. */
  text: z.string(),
  from: z.string(),
  to: z.string(),
  /** The chart transitions the event took ("source --EVENT--> target"), eventless ones that followed included. */
  transitions: z.array(z.string()),
});

export const pathSchema = z.object({
  /** "<machine>#<n>", n from 1 in the order of the list. */
  id: z.string(),
  /** The input the path starts from: null for the model's main one, else a variant's name. */
  variant: z.string().nullable(),
  input: z.unknown(),
  start: z.string(),
  steps: z.array(pathStepSchema),
  /** The state the path ends in (the last step's `to`, or `start`). */
  state: z.string(),
});

export const machinePathsSchema = z.object({
  machine: z.string(),
  strategy: z.enum(STRATEGIES),
  /** What the strategy promises (STRATEGY_PROMISE). */
  promise: z.string(),
  coverage: z.object({ states: count, transitions: count, missingTransitions: z.array(z.string()) }),
  paths: z.array(pathSchema),
});

export const pathsDocumentSchema = z.object({
  schema: z.literal(PATHS_SCHEMA),
  machines: z.array(machinePathsSchema),
  /** Machines whose search stopped at a bound (simple paths past `limit`): the machine, a code and what to do. */
  errors: z.array(z.object({ machine: z.string(), code: z.string(), message: z.string() })),
});

export type PathStepJson = z.infer<typeof pathStepSchema>;
export type PathJson = z.infer<typeof pathSchema>;
export type MachinePathsJson = z.infer<typeof machinePathsSchema>;
export type PathsDocument = z.infer<typeof pathsDocumentSchema>;

/** One path with its intermediate states, replayed on the machine. */
export function pathJson(model: Model, path: ModelPath, n: number): PathJson {
  const labels = machineGraph(model.machine).transitions;
  const r = replay(model, path.events, path.variant);
  return {
    id: `${model.name}#${n}`,
    variant: path.variant ?? null,
    input: inputOf(model, path.variant) ?? null,
    start: r.start,
    steps: r.steps.map((s) => ({
      event: s.event as PathStepJson['event'],
      text: describeEvent(s.event),
      from: s.from,
      to: s.to,
      transitions: s.transitions.map((t) => labels.get(t)?.label ?? String(t.eventType)),
    })),
    state: r.steps.at(-1)?.to ?? r.start,
  };
}

export function machinePathsJson(model: Model, strategy: Strategy, paths: ModelPath[], cov: Coverage): MachinePathsJson {
  return { machine: model.name, strategy, promise: STRATEGY_PROMISE[strategy], coverage: cov, paths: paths.map((p, i) => pathJson(model, p, i + 1)) };
}

/** A path read back from JSON, as the runner takes it (its events, in order, from its variant's input). */
export function pathFromJson(p: PathJson): ModelPath {
  return { variant: p.variant ?? undefined, events: p.steps.map((s) => s.event as EventObject), state: p.state };
}

/** A machine's paths and their coverage, or why its search stopped (a bound passed). */
export type MachineResult = { model: Model; strategy: Strategy; paths: ModelPath[]; cov: Coverage } | { model: Model; error: PathSearchError };

export function machineResult(model: Model, strategy: Strategy, options: PathOptions = {}): MachineResult {
  try {
    const paths = generatePaths(model, strategy, options);
    return { model, strategy, paths, cov: coverage(model, paths) };
  } catch (e) {
    if (!(e instanceof PathSearchError)) throw e;
    return { model, error: e };
  }
}

/** The JSON document of some machines' results (schema PATHS_SCHEMA). */
export function pathsDocument(results: MachineResult[]): PathsDocument {
  const doc: PathsDocument = { schema: PATHS_SCHEMA, machines: [], errors: [] };
  for (const r of results) {
    if ('error' in r) doc.errors.push({ machine: r.model.name, code: r.error.code, message: r.error.message });
    else doc.machines.push(machinePathsJson(r.model, r.strategy, r.paths, r.cov));
  }
  return doc;
}
