/**
 * Issue 17, point 1: a rogue server. The simulator's server seat on its links
 * to the admin SAM and the migration SAMs is taken by an adversary holding the
 * server's keys (src/sim/rogue.ts); it asks, by seed, for what an honest
 * server never would. One test per check: each runs simulated seeds (real
 * actors, real crypto, LMDB in a temp folder, virtual clock, no faults) until
 * the attack was tried, and asserts that every try was refused by the check it
 * was aimed at — the refusal's code names it — and that the run kept every
 * invariant (no duplication, no loss, commit point, end states, temp keys).
 *
 * Each test catches a one-line mistake that survived every other test and the
 * simulator before (the list): receipts-complete catches a commit with
 * a receipt missing (`checkReceipts` skipping an item with no receipt);
 * download-kcv a migration SAM that never compares the key check value;
 * grant-expiry a grant expiry checked in seconds against milliseconds;
 * activate-after-commit a pending record that allows S16.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSimDir } from '../../src/sim/runner.ts';
import { CHECK_OF, type RogueAttack } from '../../src/sim/rogue.ts';
import { runSeed, type SeedResult } from '../../src/sim/simulator.ts';

const dir = mkdtempSync(join(defaultSimDir(), '..', 'valmove-rogue-test-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Seeds tried at most per attack (each ~1 s): the attack is drawn at half its chances, so one or two do (the deep suite's 200 seeds try each hundreds of times). */
const SEEDS_MAX = 8;

async function attack(attacks: RogueAttack[], aimed: RogueAttack, triesWanted = 1): Promise<{ tried: number; refused: number; runs: SeedResult[] }> {
  const runs: SeedResult[] = [];
  let tried = 0;
  let refused = 0;
  for (let seed = 0; seed < SEEDS_MAX && tried < triesWanted; seed++) {
    const r = await runSeed({ seed: `rogue-${aimed}-${seed}`, migrations: 2, items: 2, faults: [], dataDir: dir, rogue: attacks });
    runs.push(r);
    assert.ok(r.ok, `seed rogue-${aimed}-${seed}: ${r.violation?.invariant}: ${r.violation?.message}`);
    const s = r.stats.rogue![aimed]!;
    tried += s.tried;
    refused += s.refused + s.unanswered;
  }
  assert.ok(tried >= 1, `${aimed} was never tried in ${SEEDS_MAX} seeds`);
  return { tried, refused, runs };
}

const cases: Array<{ attack: RogueAttack; also?: RogueAttack[]; says: string }> = [
  { attack: 'commit-receipt-missing', says: "a commit with one item's receipt left out is refused RECEIPT_REFUSED; the record stays pending" },
  { attack: 'commit-receipt-forged', says: 'a commit with a receipt whose key check value was changed is refused RECEIPT_REFUSED (its signature fails)' },
  {
    attack: 'activate-before-commit',
    says: 'an activation asked while the record is pending (or aborted) is refused DECISION_STANDS: no activate session opens',
  },
  { attack: 'restore-not-aborted', says: 'a restore of the source under a committed record is refused DECISION_STANDS' },
  { attack: 'wipe-source-pending', says: 'a wipe of the source under a pending record is refused DECISION_STANDS' },
  { attack: 'download-foreign-grant', says: 'a grant sent for another item, or to another migration SAM, is refused GRANT_BINDING' },
  {
    attack: 'download-after-fence',
    also: ['download-kcv'],
    says: 'a download with a valid grant after its migration SAM was fenced is refused MIGRATION_ABORTED',
  },
  { attack: 'download-expired-grant', says: 'a grant sent again an hour on is refused GRANT_EXPIRED, whatever became of its migration' },
  { attack: 'download-kcv', says: 'a destination chip that wrote another main key is refused KEY_CHECK_FAILED; its migration never completes' },
];

for (const c of cases) {
  test(`rogue server, ${CHECK_OF[c.attack].split(' ')[0]}: ${c.says}`, async () => {
    const r = await attack([c.attack, ...(c.also ?? [])], c.attack);
    assert.is(r.refused, r.tried, `every ${c.attack} refused by its check (or lost): ${r.refused} of ${r.tried}`);
    if (c.attack === 'download-kcv') {
      // The defective destinations' migrations all ended rolled back, none completed (the simulator's outcome check).
      assert.ok(
        r.runs.some((x) => (x.stats.outcomes.rolledBack ?? 0) > 0),
        "a defective destination's migration rolled back",
      );
    }
  });
}

test('rogue server: the same seed replays the same attacks, line for line', async () => {
  const o = {
    seed: 'rogue-replay',
    migrations: 2,
    items: 2,
    faults: ['drop', 'dup', 'crash'] as const,
    dataDir: dir,
    rogue: ['commit-receipt-missing', 'activate-before-commit', 'download-foreign-grant'] as RogueAttack[],
    keepTrace: true,
  };
  const a = await runSeed(o);
  const b = await runSeed(o);
  assert.ok(a.ok, a.violation?.message);
  assert.ok(
    a.trace.some((l) => / ROGUE /.test(l)),
    "the trace names the rogue's attacks",
  );
  assert.is(b.traceHash, a.traceHash);
});

test.run();
