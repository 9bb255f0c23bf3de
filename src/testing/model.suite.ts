/**
 * Many model paths of the migration statechart, each on its own real
 * embedded system (model.run.ts), a few side by side (much of a path is
 * waiting on timeouts and retries), and the chart transitions the real
 * actors took on the paths that matched.
 */
import type { AnyTransitionDefinition } from 'xstate';
import { MODELS } from '../model/models.ts';
import type { PathJson } from '../model/paths.json.ts';
import { machineGraph, type ModelPath } from '../model/paths.ts';
import { type PathOutcome, runMigrationPath } from './model.run.ts';

/** Paths run side by side by default. */
export const PATHS_CONCURRENCY = 3;

export interface SuiteOptions {
  /** Paths run side by side (default PATHS_CONCURRENCY). */
  concurrency?: number;
  /** The seed of path i (default `model-path-<i>`: a path keeps its seed whichever subset runs it). */
  seedOf?: (i: number) => string;
  /** Called as each path ends. */
  onOutcome?: (i: number, outcome: PathOutcome) => void;
}

export interface SuiteReport {
  outcomes: PathOutcome[];
  /** "path #i (EVENT > EVENT …): problem", one per path that did not do what it says. */
  failures: string[];
  /** Chart transitions the real migration actors took on paths that matched, of all the chart has. */
  transitions: { reached: number; total: number; missing: string[] };
}

/** Runs the paths (`indexes[i]` numbers path i in seeds and failures; default its place in the list). */
export async function runMigrationPaths(paths: Array<ModelPath | PathJson>, options: SuiteOptions = {}, indexes?: number[]): Promise<SuiteReport> {
  const covered = new Set<AnyTransitionDefinition>();
  const outcomes: PathOutcome[] = new Array(paths.length);
  const number = (k: number) => indexes?.[k] ?? k;
  const seedOf = options.seedOf ?? ((i: number) => `model-path-${i}`);
  let next = 0;
  const worker = async () => {
    for (let k = next++; k < paths.length; k = next++) {
      outcomes[k] = await runMigrationPath(paths[k]!, { covered, seed: seedOf(number(k)) });
      options.onOutcome?.(number(k), outcomes[k]!);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? PATHS_CONCURRENCY }, worker));
  const typesOf = (p: ModelPath | PathJson) => ('steps' in p ? p.steps.map((s) => s.event.type) : p.events.map((e) => e.type));
  const failures = outcomes.flatMap((o, k) => (o.ok ? [] : [`path #${number(k)} (${typesOf(paths[k]!).join(' > ')}): ${o.problem}`]));
  const graph = machineGraph(MODELS.migration!.machine);
  const missing = [...graph.transitions.entries()].filter(([t]) => !covered.has(t)).map(([, v]) => v.label);
  return { outcomes, failures, transitions: { reached: graph.transitions.size - missing.length, total: graph.transitions.size, missing } };
}
