/**
 * `valmove demo --lost-source --items 3 --json` as a user runs it (issue 22,
 * acceptance): the new chip holds each item with the value in its provider's
 * ledger, every normal SAM refuses the old chip, balances conserved against
 * the ledger; its receipt checks offline (`valmove receipt verify`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LostSourceReport } from '../../src/cli/demoRecovery.ts';
import { runValmove } from '../helpers/cli.ts';

test('valmove demo --lost-source --items 3 --json: re-issued from the ledgers, the old chip refused, conserved', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-demo-lost-'));
  try {
    const r = await runValmove(['demo', '--lost-source', '--items', '3', '--json', '--data', dir], { timeoutMs: 120_000 });
    assert.is(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as LostSourceReport;
    assert.is(report.outcome, 'completed');
    assert.equal(
      report.providers.map((p) => p.outcome),
      ['revoked', 'revoked', 'revoked'],
    );
    assert.is(report.items.length, 3);
    for (const it of report.items) {
      assert.is(it.newChip, it.ledger, `${it.provider}: the new chip holds the ledger's value`);
      assert.is(it.oldChip, 'AREA_REVOKED', `${it.provider}: the old chip is refused`);
    }
    assert.ok(
      report.items.some((it) => it.ledger === 'balance 4500'),
      "the old phone's payment is in the ledger, and in what was re-issued",
    );
    assert.ok(report.balances.conserved);
    assert.is(report.balances.ledger, report.balances.newChip);
    assert.ok(report.balances.ledger > 0);
    // The recovery's receipt: checked offline against the deployment's keys, one statement per re-issued item.
    assert.ok(report.receipt, 'the demo wrote a receipt');
    assert.is(report.receipt.statements, 3);
    const verified = await runValmove(['receipt', 'verify', report.receipt.path]);
    assert.is(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /^receipt verified: migration i-\S+ completed: 3 item\(s\), 3 statement\(s\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
