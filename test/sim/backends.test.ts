/**
 * Issue 19 in a whole run: one simulator seed (2 migrations, every fault
 * kind) under the default choice (the chips on noble, every other party on
 * node), then with VALMOVE_CRYPTO=node and =noble. The same trace hash: the
 * backends are byte-identical (Ed25519 signatures are deterministic). The
 * same crypto operations counted, party by party. And each party's calls went
 * to the backend it was meant to use.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CRYPTO_ENV } from '../../src/crypto/index.ts';
import { diff, snapshot, UNATTRIBUTED, type Counters } from '../../src/metrics/counters.ts';
import { defaultSimDir } from '../../src/sim/runner.ts';
import { FAULT_KINDS, runSeed } from '../../src/sim/simulator.ts';

const dir = mkdtempSync(join(defaultSimDir(), '..', 'valmove-sim-backends-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function seedUnder(choice: string | undefined): Promise<{ hash: string; counters: Counters }> {
  const prev = process.env[CRYPTO_ENV];
  if (choice === undefined) delete process.env[CRYPTO_ENV];
  else process.env[CRYPTO_ENV] = choice;
  try {
    const before = snapshot();
    const r = await runSeed({ seed: '3', migrations: 2, items: 2, faults: FAULT_KINDS, dataDir: dir });
    assert.ok(r.ok, r.violation?.message);
    return { hash: r.traceHash, counters: diff(snapshot(), before) };
  } finally {
    if (prev === undefined) delete process.env[CRYPTO_ENV];
    else process.env[CRYPTO_ENV] = prev;
  }
}

/** Each party's backends, as "party: names", parties sorted. */
function backendsByParty(c: Counters): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [party, row] of Object.entries(c.backends).sort(([a], [b]) => a.localeCompare(b))) out[party] = Object.keys(row).sort().join('+');
  return out;
}

test('one seed under the default choice, VALMOVE_CRYPTO=node and =noble: the same trace, the same operations, each party on its backend', async () => {
  const mixed = await seedUnder(undefined);
  const node = await seedUnder('node');
  const noble = await seedUnder('noble');
  assert.is(node.hash, mixed.hash, 'all node: the same trace hash');
  assert.is(noble.hash, mixed.hash, 'all noble: the same trace hash');
  assert.equal(node.counters.crypto, mixed.counters.crypto, 'the same crypto operations, by party and kind');
  assert.equal(noble.counters.crypto, mixed.counters.crypto, 'the same crypto operations, by party and kind');

  const parties = backendsByParty(mixed.counters);
  const chips = Object.keys(parties).filter((p) => p.startsWith('chip/'));
  const servers = Object.keys(parties).filter((p) => !p.startsWith('chip/') && p !== UNATTRIBUTED);
  assert.ok(chips.length >= 4, `every chip did crypto: ${chips.join(', ')}`);
  for (const role of ['server', 'admin-sam', 'migration-sam/', 'normal-sam/', 'terminal/']) {
    assert.ok(
      servers.some((p) => p.startsWith(role)),
      `${role} did crypto`,
    );
  }
  for (const p of chips) assert.is(parties[p], 'noble', `${p} runs noble`);
  for (const p of servers) assert.is(parties[p], 'node', `${p} runs node`);
  for (const p of Object.values(backendsByParty(node.counters))) assert.is(p, 'node');
  for (const p of Object.values(backendsByParty(noble.counters))) assert.is(p, 'noble');
});

test.run();
