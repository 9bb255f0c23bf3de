/**
 * The abstract safety model of the migration protocol (issue 17, point 4): a
 * second model, written from protocol.md, not from the statecharts. See
 * README.md, "For testers", and the files: types.ts (rules, mistakes,
 * invariants), state.ts (the packed state), parties.ts (the parties' rules),
 * model.ts (who may do what), invariants.ts, explore.ts (exhaustive BFS),
 * conformance.ts (the real system against the model).
 */
export { explore, formatViolation, STATES_MAX } from './explore.ts';
export { SafetyModel, type Transition, type ServerOutcome } from './model.ts';
export { checkState, checkTransition, type Failure } from './invariants.ts';
export { ConformanceChecker, observe, observationKey, describeChange, modelNames, projectSystem, realNames, ProjectionError, STEPS_MAX, type Observation, type ProjectionMap, type ConformanceStep, type Names } from './conformance.ts';
export * from './types.ts';
