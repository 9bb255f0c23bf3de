/**
 * Model-based suite (issue 5), in full (`npm run test:deep`): every path
 * xstate/graph generates through the migration statechart (one per
 * transition) runs on the real embedded system as the model says, every step
 * one the abstract safety model allows, and the real server's migration actor
 * takes every transition of the chart: coverage 100 %
 * (test/model/migrationModel.ts). `npm test` runs every fifth path
 * (test/model/migration.model.test.ts).
 */
import { test } from 'uvu';
import { runMigrationModel } from '../model/migrationModel.ts';

test('every migration path runs on the real system as the model says; transition coverage 100%', () => runMigrationModel(1, true));

test.run();
