/**
 * Crash recovery across real processes over WebSocket, the longer case
 * (`npm run test:deep`): the destination terminal killed with SIGKILL before
 * the commit, the user cancels, the source is spendable again; the restarted
 * terminal lets the rollback wipe the destination (protocol.md §4). `npm test`
 * kills the server and a provider mid-download
 * (test/reliability/processes.kill.test.ts).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LocalDeployment } from '../../src/deploy/up.ts';
import { deployment, waitForStep } from '../helpers/killDeployment.ts';

const run = promisify(execFile);

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
