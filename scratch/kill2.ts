import { rmSync } from 'node:fs';
import { demoProviders, demoValue } from '../src/cli/demo.ts';
import { systemRng, toHex } from '../src/crypto/index.ts';
import { launchDeployment } from '../src/deploy/up.ts';
const dir = '/tmp/kill2';
rmSync(dir, { recursive: true, force: true });
const plan = demoProviders(2);
const d = await launchDeployment({ dir, providers: plan.map((p) => p.provider), user: 'alice', password: 'pw',
  items: plan.map((p, i) => ({ area: p.provider, provider: p.provider, value: demoValue(p.kind, i, toHex(systemRng.bytes(16))) })),
  scrypt: { N: 2 ** 10, r: 8, p: 1 }, timing: { sessionMs: 2000, retransmitMs: 100, retransmitCapMs: 1000, retryBaseMs: 100, retryCapMs: 1000 } });
try {
  const o = d.terminal('old'), n = d.terminal('new');
  for (const t of [o, n]) { await t.login('alice', 'pw'); await t.register(); }
  const out = await o.migrateOut({ destination: 'DST' });
  void n.migrateIn({ mig: out.mig }).catch(() => {});
  for (let i = 0; i < 400; i++) { if ((await n.status()).progress.some((p) => p.step === 'S12')) break; await new Promise((r) => setTimeout(r, 25)); }
  await d.kill('terminal-new');
  console.log('cancel', await o.cancel(out.mig));
  await new Promise((r) => setTimeout(r, 1000));
  const back = o.migrateOut();
  const t = setTimeout(() => console.log('STUCK'), 8000);
  console.log('back', await Promise.race([back, new Promise((r) => setTimeout(() => r('timeout'), 10000))]));
  clearTimeout(t);
} finally { await d.stop(); }
