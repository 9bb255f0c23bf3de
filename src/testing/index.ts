/**
 * valmove/testing: the tester library (docs/testers.md).
 *
 *   - the machines: the very statecharts the parties run, and their test
 *     models (the events to try in each state, payloads of the real shape);
 *   - path generation with coverage: `paths(machine, strategy)`, strategies
 *     `transitions` (every transition), `shortest` (a shortest path to every
 *     reachable state), `simple` (every path without a repeated state, at
 *     most `limit`);
 *   - the JSON path document (`pathsJson`, schema `pathsDocumentSchema`):
 *     what `valmove paths --format json` prints;
 *   - the runner: `runMigrationPath` drives one migration path against a
 *     real embedded system (real LMDB in a temp folder, real actors) and
 *     checks the real actor's state after each event; `runMigrationPaths`
 *     runs many and measures the transitions the real actors took.
 */
import { MODEL_NAMES, MODELS, type Model } from '../model/models.ts';
import { type MachineResult, machineResult, type PathsDocument, pathsDocument } from '../model/paths.json.ts';
import { type Coverage, type ModelPath, type PathOptions, PathSearchError, type Strategy, STRATEGY_PROMISE } from '../model/paths.ts';

export { adminSessionMachine } from '../machines/adminSession.machine.ts';
export { areaMachine } from '../machines/area.machine.ts';
export { chipMachine } from '../machines/chip.machine.ts';
export { decisionMachine } from '../machines/decision.machine.ts';
export { migrationMachine } from '../machines/migration.machine.ts';
export { migrationSamMachine } from '../machines/migrationSam.machine.ts';
export { normalSamMachine } from '../machines/normalSam.machine.ts';
export { registrationMachine } from '../machines/registration.machine.ts';
export { terminalMachine } from '../machines/terminal.machine.ts';
export { MODEL_NAMES, MODELS, type Model } from '../model/models.ts';
export { describeEvent, formatMermaid, formatText } from '../model/paths.format.ts';
export {
  type MachinePathsJson,
  machinePathsSchema,
  PATHS_SCHEMA,
  type PathJson,
  pathFromJson,
  pathSchema,
  type PathStepJson,
  type PathsDocument,
  pathsDocumentSchema,
  pathStepSchema,
} from '../model/paths.json.ts';
export {
  type Coverage,
  coverage,
  generatePaths,
  machineGraph,
  type ModelPath,
  type PathOptions,
  PathSearchError,
  replay,
  SIMPLE_PATHS_MAX,
  STRATEGIES,
  STRATEGY_PROMISE,
  type Strategy,
} from '../model/paths.ts';
export { checkInvariants } from './invariants.ts';
export { PATH_TIMEOUT_MS, type PathOutcome, type RunOptions, runMigrationPath } from './model.run.ts';
export { PATHS_CONCURRENCY, runMigrationPaths, type SuiteOptions, type SuiteReport } from './model.suite.ts';
export { type Steering, steering } from './steering.ts';

/** The machine of each test model, by name (`MODEL_NAMES`). */
export const MACHINES = Object.fromEntries(MODEL_NAMES.map((n) => [n, MODELS[n]!.machine]));

function modelNamed(machine: string): Model {
  const model = MODELS[machine];
  if (!model) throw new PathSearchError('UNKNOWN_MACHINE', `unknown machine "${machine}"; one of ${MODEL_NAMES.join(', ')}`);
  return model;
}

export interface MachinePaths {
  machine: string;
  strategy: Strategy;
  /** What the strategy promises, in words. */
  promise: string;
  paths: ModelPath[];
  /** Planned coverage: the paths replayed on the chart itself. */
  coverage: Coverage;
}

/** The test paths of one machine by a strategy, and what they cover; throws PathSearchError past a bound (`limit` for simple). */
export function paths(machine: string, strategy: Strategy = 'transitions', options: PathOptions = {}): MachinePaths {
  const r = machineResult(modelNamed(machine), strategy, options);
  if ('error' in r) throw r.error;
  return { machine, strategy, promise: STRATEGY_PROMISE[strategy], paths: r.paths, coverage: r.cov };
}

/** The JSON document `valmove paths --format json` prints, for one machine or 'all'; a machine past a bound is listed in `errors`. */
export function pathsJson(machine: string, strategy: Strategy = 'transitions', options: PathOptions = {}): PathsDocument {
  const names = machine === 'all' ? MODEL_NAMES : [modelNamed(machine).name];
  const results: MachineResult[] = names.map((n) => machineResult(MODELS[n]!, strategy, options));
  return pathsDocument(results);
}
