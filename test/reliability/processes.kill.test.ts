/**
 * Crash recovery across real processes over WebSocket: the server and a
 * provider killed with SIGKILL in the middle of a live migration and started
 * again with `valmove start` pick up from their LMDB folders, and the
 * migration completes (protocol.md §4). Every process is stopped at the end,
 * even on failure. A destination terminal killed before the commit, with the
 * user cancelling: `npm run test:deep` (test/deep/kill.deep.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LocalDeployment } from '../../src/deploy/up.ts';
import { deployment, waitForStep } from '../helpers/killDeployment.ts';

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

test.run();
