/**
 * protocol.md §4.7 under fast-check (issue 8, point 6), in `npm test`: every
 * party kind gets malformed envelopes and bodies of every message type through
 * its own link, is refused with a code and a sentence, changes nothing,
 * crashes nothing, and serves a migration after (test/helpers/partyFuzz.ts).
 *
 * Cases per party: 50 here, 500 in `npm run test:deep` (test/deep/fuzz.deep.ts),
 * 10,000 in `npm run fuzz`; VALMOVE_FUZZ_RUNS sets the count, VALMOVE_FUZZ_SEED
 * fast-check's seed.
 */
import { test } from 'uvu';
import { budgetFromEnv, partyFuzzTests } from '../helpers/partyFuzz.ts';

partyFuzzTests(budgetFromEnv(50));

test.run();
