import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runDemo, type DemoReport } from '../../src/cli/demo.ts';

const run = promisify(execFile);

test('valmove demo --json, as a user runs it: a completed migration and its report', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-demo-'));
  try {
    const { stdout } = await run(process.execPath, ['bin/valmove.js', 'demo', '--items', '3', '--json', '--data', dir], { timeout: 120_000 });
    const report = JSON.parse(stdout) as DemoReport;
    assert.is(report.outcome, 'completed');
    assert.is(report.items.length, 3);
    assert.equal(
      report.items.map((i) => i.kind),
      ['emoney', 'transit', 'ticket'],
    );
    for (const it of report.items) {
      assert.is(it.after, it.before, `${it.provider}: the destination holds what the source held`);
      assert.is(it.sourceAfter, 'locked');
      assert.is(it.destinationAfter, 'mainActive');
    }
    assert.ok(report.paymentOnDestination.ok, 'a payment on the destination succeeds');
    assert.not.ok(report.paymentOnSource.ok, 'a payment on the source fails');
    assert.match(report.paymentOnSource.detail, /AREA_LOCKED/);
    assert.ok(report.balances.conserved);
    assert.ok(report.messagesByHop['terminal->server']! > 0 && report.messagesByHop['server->migration-sam']! > 0);
    assert.is(Object.keys(report.chips).length, 2);
    assert.ok(report.elapsedMs > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('valmove demo --crash-at: the crash fires in the migration (not the issuance that filled the source), the party restarts, and the migration completes with every balance kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-demo-'));
  try {
    const args = ['bin/valmove.js', 'demo', '--json', '--data', dir, '--crash-at', 'server:S7:after-persist'];
    const { stdout } = await run(process.execPath, args, { timeout: 120_000 });
    const report = JSON.parse(stdout) as DemoReport;
    assert.is(report.outcome, 'completed');
    assert.match(report.mig, /^m-/, 'the migration, not the issuance (i-...)');
    assert.equal(report.faults?.crashes, ['server at S7 after-persist']);
    for (const it of report.items) assert.is(it.after, it.before, `${it.provider}: the destination holds what the source held`);
    assert.ok(report.balances.conserved);
    assert.ok((report.messagesByHop['server->migration-sam'] ?? 0) > 0, 'the migration ran');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('valmove demo prints every step S1-S17 and the tables', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-demo-'));
  const lines: string[] = [];
  try {
    const report = await runDemo({ items: 2, json: false, data: dir, out: (l) => lines.push(l) });
    assert.is(report.outcome, 'completed');
    const text = lines.join('\n');
    for (let s = 1; s <= 17; s++) assert.match(text, new RegExp(`\\[S${s}\\s*\\]`), `step S${s} is shown`);
    assert.match(text, /before \(source\)\s+after \(destination\)/);
    assert.match(text, /pay 300 on the source:\s+refused \(AREA_LOCKED/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('valmove demo refuses --items outside 1-20 with a clear error', async () => {
  const err = await run(process.execPath, ['bin/valmove.js', 'demo', '--items', '21'], { timeout: 60_000 }).catch((e: { code: number; stderr: string }) => e);
  assert.is((err as { code: number }).code, 2);
  assert.match((err as { stderr: string }).stderr, /--items must be from 1 to 20/);
});

test('a VALMOVE_CRYPTO that names no backend: one line (what was given, what is allowed), exit 2 as a usage error, no stack', async () => {
  const err = await run(process.execPath, ['bin/valmove.js', 'demo', '--items', '1'], {
    timeout: 60_000,
    env: { ...process.env, VALMOVE_CRYPTO: 'openssl' },
  }).catch((e: { code: number; stderr: string }) => e);
  assert.is((err as { code: number }).code, 2);
  assert.is((err as { stderr: string }).stderr, 'error: VALMOVE_CRYPTO must be node or noble (or unset); got "openssl"\n');
});

test.run();
