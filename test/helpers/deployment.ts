/**
 * The deployment the real-process suites launch (test/deploy/, test/deep/):
 * the user alice, one item per provider of `demoProviders(n)` (its area named
 * after its provider), and scrypt cheap enough for tests. `extra` adds or
 * overrides any launch option (an embedded admin SAM, limits, recording, an
 * extra trusted server).
 */
import { systemRng, toHex } from '../../src/crypto/index.ts';
import type { LaunchOptions } from '../../src/deploy/up.ts';
import { demoProviders, demoValue } from '../../src/fixtures/demo.ts';

/** scrypt for test users: the real function at a cost a test can pay many times. */
export const TEST_SCRYPT = { N: 2 ** 10, r: 8, p: 1 };

export function testDeployment(dir: string, providers: number, password: string, extra: Partial<LaunchOptions> = {}): LaunchOptions {
  const plan = demoProviders(providers);
  return {
    dir,
    providers: plan.map((p) => p.provider),
    user: 'alice',
    password,
    items: plan.map((p, i) => ({ area: p.provider, provider: p.provider, value: demoValue(p.kind, i, toHex(systemRng.bytes(16))) })),
    scrypt: TEST_SCRYPT,
    ...extra,
  };
}
