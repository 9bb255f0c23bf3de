/**
 * Model-based suite (issue 5), in `npm test`: every fifth of the paths
 * xstate/graph generates through the migration statechart is run against the
 * real embedded system — real crypto, real LMDB, real parties — with the
 * environment's choices steered into the real world. At each step the real
 * server's migration actor must reach the state the model reached,
 * protocol.md §4.1/§4.2 are checked after every delivered message, and every
 * step the real system takes must be one the abstract safety model
 * (src/model/safety/) allows (test/model/migrationModel.ts, through valmove/testing: src/testing/model.run.ts).
 * Every path, and 100 % of the transitions taken by the real actor:
 * `npm run test:deep` (test/deep/model.deep.ts).
 */
import { test } from 'uvu';
import { runMigrationModel } from './migrationModel.ts';

test('every fifth migration path runs on the real system as the model says, each step one the safety model allows', () => runMigrationModel(5, false));

test.run();
