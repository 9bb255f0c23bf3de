/**
 * protocol.md §4.7 under fast-check (issue 8, point 6), at CI's size (`npm run
 * test:deep`): 500 cases per party kind of malformed envelopes and bodies,
 * each refused with a code and a sentence, changing nothing, crashing
 * nothing, and a migration after (test/helpers/partyFuzz.ts). `npm test` runs
 * 50 per party (test/fuzz/parties.fuzz.test.ts); VALMOVE_FUZZ_RUNS and
 * VALMOVE_FUZZ_SEED set the count and the seed here too.
 */
import { test } from 'uvu';
import { budgetFromEnv, partyFuzzTests } from '../helpers/partyFuzz.ts';

partyFuzzTests(budgetFromEnv(500));

test.run();
