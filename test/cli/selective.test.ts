/**
 * `valmove demo --only emoney` as a user runs it (a real process, real LMDB,
 * real crypto): e-money moves, the others stay spendable on the source (read
 * there after the migration, and counted there); the flags' usage errors exit 2.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { DemoReport } from '../../src/cli/demo.ts';
import { runValmove } from '../helpers/cli.ts';

test('valmove demo --only emoney --json: emoney moves; transit and tickets stay mainActive on the source and read there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-demo-only-'));
  try {
    const r = await runValmove(['demo', '--items', '3', '--only', 'emoney', '--json', '--data', dir], { timeoutMs: 120_000 });
    assert.is(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as DemoReport;
    assert.is(report.outcome, 'completed');
    const [emoney, transit, tickets] = report.items;
    assert.equal([emoney!.sourceAfter, emoney!.destinationAfter, emoney!.after], ['locked', 'mainActive', emoney!.before]);
    for (const it of [transit!, tickets!]) {
      assert.is(it.sourceAfter, 'mainActive', `${it.provider} stayed spendable on the source`);
      assert.is(it.destinationAfter, 'absent', `${it.provider} never reached the destination`);
      assert.is(it.after, `not chosen, on the source: ${it.before}`, `${it.provider} reads on the source after the migration`);
    }
    assert.ok(report.paymentOnDestination.ok, 'the moved e-money pays on the destination');
    assert.ok(report.balances.conserved, 'balances conserved, the items not chosen counted on the source');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('usage errors exit 2 and do nothing: --only naming a provider the demo does not have, or none; --leave-behind other than unavailable', async () => {
  const unknown = await runValmove(['demo', '--items', '2', '--only', 'tickets']);
  assert.is(unknown.code, 2);
  assert.match(unknown.stderr, /unknown provider\(s\) tickets; this run has emoney, transit/);
  const none = await runValmove(['demo', '--only', ',']);
  assert.is(none.code, 2);
  assert.match(none.stderr, /--only names no provider/);
  const leave = await runValmove(['terminal', 'migrate-out', '--config', 'no-such.json', '--leave-behind', 'everything']);
  assert.is(leave.code, 2);
  assert.match(leave.stderr, /the one choice is "unavailable"/);
  const badName = await runValmove(['terminal', 'migrate-out', '--config', 'no-such.json', '--only', 'e money']);
  assert.is(badName.code, 2);
  assert.match(badName.stderr, /not a provider name/);
});

test.run();
