/**
 * Issue 22's acceptance, through real processes as a user meets it: a
 * provider's process is stopped when the user migrates; the user leaves it
 * behind (`migrate-out --leave-behind unavailable`) and the rest move; its
 * item stays on the old phone; once its process is started again, a second
 * migration moves it. Balances are read through each provider's normal SAM
 * before and after: nothing lost, nothing spendable twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TerminalControl } from '../../src/deploy/control.client.ts';
import { launchDeployment, type LocalDeployment } from '../../src/deploy/up.ts';
import { testDeployment } from '../helpers/deployment.ts';

const TIMING = { sessionMs: 2_000, retransmitMs: 100, retransmitCapMs: 1_000, retryBaseMs: 100, retryCapMs: 1_000, preflightMs: 1_500 };
const WAIT_ROUNDS = 200;

/** What a normal SAM answers for the item: its balance, or the refusal's code. */
async function read(t: TerminalControl, provider: string, op: 'balance' | 'pay' = 'balance'): Promise<string> {
  try {
    const r = await t.normal(provider, op, op === 'pay' ? 1 : undefined);
    return `balance ${r.balance}`;
  } catch (e) {
    return `refused ${(e as { code?: string }).code}`;
  }
}

/** Tries `fn` until it answers without throwing (a process just started: the server links to it within seconds). */
async function whenBack<T>(what: string, fn: () => Promise<T>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < WAIT_ROUNDS; i++) {
    try {
      return await fn();
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${what}: ${(last as Error)?.message}`);
}

test('a provider process stopped at the preflight is left behind at the user’s choice, the rest move; started again, a second migration moves it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-leave-'));
  const opts = testDeployment(dir, 2, 'pw', { timing: TIMING });
  const [moving, down] = opts.providers as [string, string];
  let d: LocalDeployment | undefined;
  try {
    d = await launchDeployment(opts);
    const [oldPhone, newPhone] = [d.terminal('old'), d.terminal('new')];
    for (const t of [oldPhone, newPhone]) {
      await t.login('alice', 'pw');
      await t.register();
    }
    const before = { moving: await read(oldPhone, moving), down: await read(oldPhone, down) };
    assert.match(before.down, /^balance \d+$/);

    await d.kill(`provider-${down}`);
    const out = await oldPhone.migrateOut({ destination: 'DST', leaveBehind: 'unavailable' });
    assert.is(out.outcome, 'uploaded', out.reason);
    assert.equal(
      out.outcomes?.map((o) => [o.provider, o.outcome]),
      [
        [moving, 'uploaded'],
        [down, 'leftBehind'],
      ],
    );
    const first = await newPhone.migrateIn({ mig: out.mig });
    assert.is(first.outcome, 'completed', first.reason);
    assert.is(await read(newPhone, moving), before.moving, `${moving} moved`);

    await d.restart(`provider-${down}`);
    assert.is(
      await whenBack(`${down} back`, () => oldPhone.normal(down, 'balance')).then((r) => `balance ${r.balance}`),
      before.down,
      'left behind: still on the old phone',
    );
    const again = await whenBack('a second migration', async () => {
      const r = await oldPhone.migrateOut({ destination: 'DST', only: [down] });
      if (r.outcome !== 'uploaded') throw new Error(`${r.outcome}: ${r.reason}`);
      return r;
    });
    const second = await newPhone.migrateIn({ mig: again.mig });
    assert.is(second.outcome, 'completed', second.reason);
    assert.is(await read(newPhone, down), before.down, `${down} moved by the second migration`);
    for (const p of [moving, down]) assert.match(await read(oldPhone, p, 'pay'), /^refused AREA_LOCKED$/, `${p}: the old phone's backup is not spendable`);
  } finally {
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
