/**
 * The benchmark still works (issue 7): a smoke run with tiny counts, in both
 * modes, that every figure is there and plausible, that the floor ratio is a
 * positive number, and that the JSON lands where it was asked. No timing is
 * asserted: a loaded machine is slow, not wrong.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { benchConfigurations, benchMatrix, runBench, type BenchReport } from '../../src/bench/run.ts';
import type { ConfigResult, Mode } from '../../src/bench/report.ts';
import { attributeTo, countCrypto, countStore, diff, snapshot } from '../../src/metrics/counters.ts';
import { backendForRole, generateIdentity, sign, systemRng, verifySignature } from '../../src/crypto/index.ts';

const t = suite('bench');
let out: string;

t.before(() => {
  out = mkdtempSync(join(tmpdir(), 'valmove-bench-test-'));
});

t.after(() => {
  rmSync(out, { recursive: true, force: true });
});

const positive = (x: number, what: string) => assert.ok(Number.isFinite(x) && x > 0, `${what} should be a positive number, got ${x}`);

function checkFigures(r: ConfigResult): void {
  const where = `${r.mode} K=${r.items} c=${r.concurrency}`;
  assert.equal(r.failures, [], `${where}: every migration completes`);
  assert.ok(r.completed >= 2, `${where}: ran at least two migrations`);
  positive(r.throughputPerS, `${where} throughput`);
  for (const q of ['p50', 'p95', 'p99'] as const) positive(r.latencyMs[q], `${where} latency ${q}`);
  assert.ok(r.latencyMs.p50 <= r.latencyMs.p99, `${where}: p50 <= p99`);
  positive(r.cpuMsPerMigration, `${where} CPU ms per migration`);
  assert.ok(Object.keys(r.cpuMsPerMigrationByProcess).length >= 1, `${where}: CPU by process`);
  positive(r.messagesPerMigration, `${where} messages per migration`);
  positive(r.bytesPerMigration, `${where} bytes per migration`);
  assert.ok(Object.keys(r.hopsPerMigration).length >= 4, `${where}: messages by hop, saw ${Object.keys(r.hopsPerMigration).join(', ')}`);
  // The protocol signs grants and receipts and verifies them; every party persists before it speaks.
  assert.ok((r.cryptoPerMigration['ed25519.verify'] ?? 0) >= 1, `${where}: at least one Ed25519 verify per migration`);
  assert.ok((r.cryptoPerMigration['ed25519.sign'] ?? 0) >= 1, `${where}: at least one Ed25519 sign per migration`);
  assert.ok(r.lmdbCommitsPerMigration >= 1, `${where}: at least one durable commit per migration`);
  for (const role of ['server', 'admin-sam', 'chip', 'terminal']) assert.ok((r.lmdbCommitsPerMigrationByRole[role] ?? 0) >= 1, `${where}: ${role} commits`);
  assert.is(r.cryptoUnattributed, 0, `${where}: every crypto operation in a migration is charged to a party`);
  positive(r.floor.cryptoMs, `${where} crypto floor`);
  positive(r.floor.floorMs, `${where} floor ms`);
  positive(r.floor.floorThroughputPerS, `${where} floor throughput`);
  positive(r.floor.throughputRatio, `${where} ratio to the floor`);
  positive(r.floor.cpuEfficiency, `${where} CPU efficiency`);
  positive(r.memory.rssPerInFlightBytes + 1, `${where} RSS per in-flight`);
  assert.ok(Number.isFinite(r.memory.heapPerInFlightBytes), `${where}: heap per in-flight migration measured`);
  assert.is(r.logins.count, 2 * r.completed, `${where}: two logins per migration, measured apart`);
}

t('counters: crypto is charged to the running party, commits to their store, and diff sees only what happened between', () => {
  const before = snapshot();
  const id = generateIdentity(systemRng);
  const msg = new Uint8Array(10);
  attributeTo('test-party', () => verifySignature(id.signPublic, msg, sign(id, msg)));
  countCrypto('hkdf');
  countStore('/tmp/some-store', 'commit');
  const d = diff(snapshot(), before);
  assert.equal(d.crypto['test-party'], { 'ed25519.sign': { n: 1, bytes: 10 }, 'ed25519.verify': { n: 1, bytes: 10 } });
  assert.is(d.crypto['-']?.hkdf?.n, 1);
  assert.is(d.stores['/tmp/some-store']?.commit?.n, 1);
});

let report: BenchReport;

t('smoke run, embedded (K 1, concurrency 1 and 2) and processes (K 1, concurrency 1): every figure, JSON where asked', async () => {
  const lines: string[] = [];
  report = await runBench({ modes: ['embedded'], concurrency: [1, 2], items: [1], quick: true, json: false, out, say: (l) => lines.push(l) });
  const procs = await runBench({ modes: ['processes'], concurrency: [1], items: [1], quick: true, json: false, out, say: (l) => lines.push(l) });
  report.results.push(...procs.results);
  assert.is(report.results.length, 3);
  for (const r of report.results) checkFigures(r);
  assert.ok(report.jsonFile?.startsWith(out), `JSON written under ${out}, got ${report.jsonFile}`);
  assert.ok(existsSync(report.jsonFile!));
  const json = JSON.parse(readFileSync(report.jsonFile!, 'utf8')) as BenchReport;
  assert.is(json.results.length, 2);
  assert.ok(typeof json.machine.cpuModel === 'string' && (json.machine.cpuCount as number) >= 1 && typeof json.machine.node === 'string');
  assert.match(String(json.machine.gitCommit), /^([0-9a-f]{40}|unknown)$/);
  assert.ok(json.floorModel.includes('floor_ms'), 'the floor model is stated in the JSON');
  for (const k of ['ed25519.sign', 'ed25519.verify', 'x25519.ecdh', 'aead.seal.session', 'hkdf'])
    positive(json.units.crypto[k as 'hkdf']!.fixedMs, `unit cost of ${k}`);
  positive(json.units.commits[0]!.wallMs, 'unit cost of a durable commit');
  // Issue 19: both backends' units, side by side in the report; the chip's operations priced at noble's.
  for (const b of ['node', 'noble'] as const) {
    for (const k of ['ed25519.sign', 'ed25519.verify', 'x25519.keygen', 'x25519.ecdh', 'aead.seal.session', 'aead.open.session'] as const) {
      positive(json.units.cryptoByBackend[b][k]!.fixedMs, `${b}'s unit cost of ${k}`);
    }
  }
  assert.match(report.markdown, /Crypto backends \(µs per operation\): sign node [\d.]+ \/ noble [\d.]+; verify node/);
  assert.ok(report.markdown.includes(`chip ${backendForRole('chip').name}`), 'the report says which backend the chip runs');
  assert.match(report.markdown, /\| embedded \| 1 \| 2 \|/);
  assert.match(procs.markdown, /\| processes \| 1 \| 1 \|/);
  // Issue 20: a line as each configuration starts and one as it ends, numbered out of the run's total.
  for (const l of [
    /^\[1\/2\] embedded K=1 c=1: starting, 2 timed migrations \([\d.]+ s\)$/,
    /^\[1\/2\] embedded K=1 c=1: 2\/2 migrations, [\d.]+\/s, p50 \d+ ms, floor ratio [\d.]+ \([\d.]+ s\)$/,
    /^\[2\/2\] embedded K=1 c=2: starting, 2 timed migrations/,
    /^\[2\/2\] embedded K=1 c=2: 2\/2 migrations/,
    /^\[1\/1\] processes K=1 c=1: starting/,
    /^\[1\/1\] processes K=1 c=1: 2\/2 migrations/,
  ])
    assert.ok(
      lines.some((x) => l.test(x)),
      `progress line ${l} is printed; got:\n${lines.join('\n')}`,
    );
});

t(
  '--quick runs a small, bounded set: five configurations (K 1 and 3 × concurrency 1 and 2; processes mode K 1 at concurrency 1), unless told otherwise',
  () => {
    const quick = { modes: ['embedded', 'processes'] as Mode[], ...benchMatrix({ quick: true }) };
    assert.equal(
      benchConfigurations(quick).map((c) => `${c.mode} K=${c.items} c=${c.concurrency}`),
      ['embedded K=1 c=1', 'embedded K=1 c=2', 'embedded K=3 c=1', 'embedded K=3 c=2', 'processes K=1 c=1'],
    );
    // What a quick check needs: every figure in both modes, two K (growth per item) and two concurrency levels (growth per doubling).
    const full = { modes: ['embedded', 'processes'] as Mode[], ...benchMatrix({ quick: false }) };
    assert.is(benchConfigurations(full).length, 24, 'the full matrix');
    const asked = { modes: ['processes'] as Mode[], ...benchMatrix({ quick: true, items: [2], concurrency: [8] }) };
    assert.equal(benchConfigurations(asked), [{ mode: 'processes', items: 2, concurrency: 8 }], '--items and --concurrency win over --quick');
  },
);

t.run();
