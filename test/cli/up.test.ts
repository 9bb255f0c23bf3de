import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { UpReport } from '../../src/deploy/up.ts';
import { runValmove } from '../helpers/cli.ts';

/** `valmove up ARGS`: its exit code and stderr. */
const up = (args: string[]) => runValmove(['up', ...args]);

test('up refuses --no-migrate without --keep, and an empty or missing --password-file, before it starts anything (exit 2)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-up-usage-'));
  try {
    const deploy = join(dir, 'deploy');
    const noKeep = await up(['--dir', deploy, '--no-migrate']);
    assert.is(noKeep.code, 2, noKeep.stderr);
    assert.match(noKeep.stderr, /--no-migrate leaves the deployment for you to drive: add --keep/);

    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '\nsecond line\n');
    const blank = await up(['--dir', deploy, '--keep', '--no-migrate', '--password-file', empty]);
    assert.is(blank.code, 2, blank.stderr);
    assert.match(blank.stderr, /--password-file .*empty\.txt: its first line is empty/);

    const missing = await up(['--dir', deploy, '--keep', '--password-file', join(dir, 'nope.txt')]);
    assert.is(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /--password-file .*nope\.txt: cannot read it \(ENOENT\)/);
    assert.not.ok(existsSync(deploy), 'no deployment was written');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('up --cancel-at S12 --json: through real processes the user sees a rollback, the steps in order, and a receipt that verifies against trust.json (exit 0)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-up-cancel-'));
  try {
    const deploy = join(dir, 'deploy');
    const r = await runValmove(['up', '--providers', '2', '--dir', deploy, '--json', '--cancel-at', 'S12'], { timeoutMs: 180_000 });
    assert.is(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as UpReport;
    assert.is(report.outcome, 'rolledBack');
    assert.equal(report.cancel, { at: 'S12', decision: 'aborted' });
    for (const it of report.items) assert.is(it.after, it.before, `${it.provider}: back on the source`);
    assert.match(report.paymentOnSource, /^accepted/);
    const ids = report.steps!.map((s) => s.id);
    for (const [a, b] of [
      ['S1', 'S3'],
      ['S3', 'S8'],
      ['S8', 'S9'],
      ['S9', 'S12'],
      ['S12', 'rollback'],
    ]) {
      assert.ok(ids.indexOf(a!) >= 0 && ids.indexOf(a!) < ids.indexOf(b!), `${a} before ${b}: ${ids.join(' ')}`);
    }
    assert.is(report.receipt?.outcome, 'aborted');
    const v = await runValmove(['receipt', 'verify', report.receipt!.path, '--trust', join(deploy, 'trust.json')]);
    assert.is(v.code, 0, v.stderr);
    assert.match(v.stdout, /rolled back: 2 item\(s\), 2 statement\(s\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('up --lost-source --json: through real processes the new phone gets each item back from the ledgers, the lost phone is refused (exit 0)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-up-lost-'));
  try {
    const r = await runValmove(['up', '--providers', '2', '--dir', join(dir, 'deploy'), '--json', '--lost-source'], { timeoutMs: 180_000 });
    assert.is(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as UpReport;
    assert.is(report.outcome, 'completed');
    assert.is(report.items.length, 2);
    for (const it of report.items) assert.is(it.after, it.before, `${it.provider}: the ledger's value, on the new phone`);
    assert.match(report.paymentOnDestination, /^accepted/);
    assert.is(report.paymentOnSource, 'refused (AREA_REVOKED)');
    assert.equal(report.foundAgain, { pay: 'refused (AREA_ABSENT)', wiped: true }, 'found again and connected: its revoked areas wiped');
    assert.ok(
      report.steps!.some((s) => s.id === 'commit'),
      `the re-issue ran under a decision record: ${report.steps!.map((s) => s.id).join(' ')}`,
    );
    // The recovery's receipt, opened by the new phone's process with its device key, checks offline.
    assert.ok(report.receipt, 'up --lost-source wrote a receipt');
    const verified = await runValmove(['receipt', 'verify', report.receipt.path, '--trust', report.receipt.trust]);
    assert.is(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /^receipt verified: migration i-\S+ completed: 2 item\(s\), 2 statement\(s\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('up --lost-source with --only or --cancel-at is a usage error (exit 2), before anything starts', async () => {
  const r = await up(['--lost-source', '--only', 'emoney']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /--lost-source runs alone/);
});

test.run();
