/**
 * protocol.md §4.5, crash safety: a sample of the (party, step, crash point)
 * triples of a 2-item migration, each tried in a fresh world: the party
 * crashes there, is restarted from its LMDB, and the run goes on to
 * `completed` with invariants 1 and 2 after every delivered message (see
 * test/helpers/crashPoints.ts). Here every 11th point of each party, its
 * first included (about 18 of some 126: every party crashes, and as 11 is
 * prime to the 3 points of a step, each kind of point comes round); `npm run
 * test:deep` tries them all (test/deep/crash.deep.ts).
 * VALMOVE_CRASH_SAMPLE=N tries every N-th instead.
 */
import { test } from 'uvu';
import { crashEnumeration } from '../helpers/crashPoints.ts';

const SAMPLE = Number(process.env.VALMOVE_CRASH_SAMPLE ?? 11);

test(`every ${SAMPLE}th (party, step, crash point) of each party in a 2-item migration ends completed, nothing duplicated or lost`, () =>
  crashEnumeration(SAMPLE));

test.run();
