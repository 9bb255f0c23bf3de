/**
 * protocol.md §4.5, crash safety, enumerated in full (`npm run test:deep`):
 * every (party, step, crash point) that fires in a 2-item migration, each in a
 * fresh world, must end `completed` with nothing duplicated or lost (see
 * test/helpers/crashPoints.ts). `npm test` tries a sample of them
 * (test/reliability/crash.test.ts).
 */
import { test } from 'uvu';
import { crashEnumeration } from '../helpers/crashPoints.ts';

test('every (party, step, crash point) of a 2-item migration ends completed, nothing duplicated or lost', () => crashEnumeration(1));

test.run();
