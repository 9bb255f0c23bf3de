/**
 * Crash recovery across real processes over WebSocket: a party killed with
 * SIGKILL in the middle of a live migration and started again with
 * `valmove start` picks up from its LMDB folder, and the migration ends as
 * protocol.md §4 says: completed when nobody cancelled, rolled back (source
 * spendable again) when the user cancelled. Every process is stopped at the
 * end, even on failure.
 *
 * In `npm run test:deep` (each test starts a deployment of ten processes):
 * `npm test` restarts parties from their LMDB at crash points in one process
 * (test/reliability/crash.test.ts) and runs a deployment of real processes
 * (test/deploy/processes.test.ts).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { demoProviders, demoValue } from '../../src/fixtures/demo.ts';
import { systemRng, toHex } from '../../src/crypto/index.ts';
import type { TerminalControl } from '../../src/deploy/control.client.ts';
import { launchDeployment, type LocalDeployment } from '../../src/deploy/up.ts';

const run = promisify(execFile);
const TIMING = { sessionMs: 2_000, retransmitMs: 100, retransmitCapMs: 1_000, retryBaseMs: 100, retryCapMs: 1_000 };

async function deployment(
  dir: string,
): Promise<{ d: LocalDeployment; plan: ReturnType<typeof demoProviders>; oldPhone: TerminalControl; newPhone: TerminalControl }> {
  const plan = demoProviders(3);
  const d = await launchDeployment({
    dir,
    providers: plan.map((p) => p.provider),
    user: 'alice',
    password: 'pw',
    items: plan.map((p, i) => ({ area: p.provider, provider: p.provider, value: demoValue(p.kind, i, toHex(systemRng.bytes(16))) })),
    scrypt: { N: 2 ** 10, r: 8, p: 1 },
    timing: TIMING,
  });
  const oldPhone = d.terminal('old');
  const newPhone = d.terminal('new');
  try {
    for (const t of [oldPhone, newPhone]) {
      await t.login('alice', 'pw');
      await t.register();
    }
  } catch (e) {
    // The caller never gets `d` to stop: stop every process here.
    await d.stop();
    throw e;
  }
  return { d, plan, oldPhone, newPhone };
}

async function waitForStep(t: TerminalControl, step: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if ((await t.status()).progress.some((p) => p.step === step)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`step ${step} not seen within ${timeoutMs} ms`);
}

test('SIGKILL the server and a provider mid-download; `valmove start` brings them back and the migration completes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-kill-'));
  let d: LocalDeployment | undefined;
  try {
    const w = await deployment(dir);
    d = w.d;
    const out = await w.oldPhone.migrateOut({ destination: 'DST' });
    assert.is(out.outcome, 'uploaded');
    const finishing = w.newPhone.migrateIn({ mig: out.mig });
    await waitForStep(w.newPhone, 'S13');
    const provider = `provider-${w.plan[1]!.provider}`;
    await Promise.all([d.kill('server'), d.kill(provider)]);
    await new Promise((r) => setTimeout(r, 300));
    await d.restart('server');
    await d.restart(provider);
    const done = await finishing;
    assert.is(done.outcome, 'completed');
    for (const p of w.plan) {
      const r = await w.newPhone.normal(p.provider, 'balance');
      assert.ok(r.balance !== undefined || r.state !== undefined, `${p.provider} readable on the destination`);
    }
    let code = '';
    await w.oldPhone.normal(w.plan[0]!.provider, 'pay', 1).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'AREA_LOCKED', 'the source stays the locked backup');
  } finally {
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGKILL the destination terminal before the commit; the user cancels; the source is spendable again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-kill-'));
  let d: LocalDeployment | undefined;
  try {
    const w = await deployment(dir);
    d = w.d;
    const provider = w.plan[0]!.provider;
    const before = (await w.oldPhone.normal(provider, 'balance')).balance!;
    const out = await w.oldPhone.migrateOut({ destination: 'DST' });
    void w.newPhone.migrateIn({ mig: out.mig }).catch(() => {});
    await waitForStep(w.newPhone, 'S12');
    await d.kill('terminal-new');

    const cancelled = await w.oldPhone.cancel(out.mig);
    assert.is(cancelled.decision, 'aborted');
    // The source comes back: main keys restored, SAM copies cleared.
    const back = await w.oldPhone.migrateOut();
    assert.is(back.outcome, 'rolledBack');
    const paid = await w.oldPhone.normal(provider, 'pay', 10);
    assert.is(paid.balance, before - 10, 'the source is spendable again');

    // Until the destination comes back, the rollback waits to wipe its unused areas: status says so.
    const status = await run(process.execPath, ['bin/valmove.js', 'status', '--config', join(dir, 'config', 'server.json'), '--json'], { timeout: 60_000 });
    const [m] = JSON.parse(status.stdout) as Array<{ state: string; waitingFor: string; decision: string }>;
    assert.is(m!.decision, 'aborted');
    assert.is(m!.state, 'rollingBack.awaitingDestinationWipe');
    assert.match(m!.waitingFor, /destination chip to come back/);

    // The destination terminal comes back; its user asks in again: the destination is wiped, the rollback ends.
    await d.restart('terminal-new');
    const newPhone = d.terminal('new');
    // The restarted terminal first hears how its interrupted request ended, then its user logs in again.
    for (let i = 0; i < 200 && JSON.stringify((await newPhone.status()).state).includes('working'); i++) await new Promise((r) => setTimeout(r, 25));
    await newPhone.login('alice', 'pw');
    const wiped = await newPhone.migrateIn({ mig: out.mig });
    assert.is(wiped.outcome, 'rolledBack');
    const after = await run(process.execPath, ['bin/valmove.js', 'status', '--config', join(dir, 'config', 'server.json'), '--json'], { timeout: 60_000 });
    assert.is((JSON.parse(after.stdout) as Array<{ state: string }>)[0]!.state, 'rolledBack');
  } finally {
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
