/**
 * A local deployment for the SIGKILL tests (test/reliability/processes.kill.test.ts and
 * test/deep/kill.deep.ts): every party its own process on 127.0.0.1 (`valmove start`, as `valmove up` spawns
 * them), three providers, alice logged in and registered on both phones, short timeouts.
 */
import { demoProviders, demoValue } from '../../src/fixtures/demo.ts';
import { systemRng, toHex } from '../../src/crypto/index.ts';
import type { TerminalControl } from '../../src/deploy/control.client.ts';
import { launchDeployment, type LocalDeployment } from '../../src/deploy/up.ts';

const TIMING = { sessionMs: 2_000, retransmitMs: 100, retransmitCapMs: 1_000, retryBaseMs: 100, retryCapMs: 1_000 };

export async function deployment(dir: string): Promise<{ d: LocalDeployment; plan: ReturnType<typeof demoProviders>; oldPhone: TerminalControl; newPhone: TerminalControl }> {
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

export async function waitForStep(t: TerminalControl, step: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if ((await t.status()).progress.some((p) => p.step === step)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`step ${step} not seen within ${timeoutMs} ms`);
}
