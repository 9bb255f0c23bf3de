/**
 * The deterministic simulator (issue 5, simulation.md): a seed replays byte
 * for byte; the checker catches a deliberately broken build; and a few seeds
 * of 4 concurrent migrations of 1-2 items each, with every fault kind, the
 * rogue server's every attack and users paying on both phones, run with zero
 * violations. CI's 200 such seeds are in test/deep/sim.deep.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSimDir } from '../../src/sim/runner.ts';
import { FAULT_KINDS, runSeed } from '../../src/sim/simulator.ts';
import { rogueAndPaySeeds, SMOKE_SEEDS } from '../helpers/simSeeds.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(defaultSimDir(), '..', 'valmove-sim-test-'));

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('a seed replays the same run: the same trace, line for line, and the same hash; another seed runs differently', async () => {
  const o = { seed: '7', migrations: 2, items: 2, faults: FAULT_KINDS, dataDir: dir, keepTrace: true };
  const a = await runSeed(o);
  const b = await runSeed(o);
  assert.ok(a.ok, a.violation?.message);
  assert.ok(a.trace.length > 500, `a real run: ${a.trace.length} trace lines`);
  assert.is(b.traceHash, a.traceHash);
  assert.equal(b.trace, a.trace);
  assert.equal(b.stats.faults, a.stats.faults);
  const c = await runSeed({ ...o, seed: '8' });
  assert.is.not(c.traceHash, a.traceHash);
});

test('the checker can fail: a build that activates the destination before the commit point is caught, with the seed and a minimal trace', async () => {
  // As a tester sees it: the command exits non-zero, names the seed and the invariant, shrinks, and prints the trace.
  const cli = await run(process.execPath, ['bin/valmove.js', 'sim', '--seeds', '1', '--jobs', '1', '--break', 'activate-before-commit', '--migrations', '4'], {
    cwd: process.cwd(),
    maxBuffer: 16 * 1024 * 1024,
  }).then(
    (): { code: number; stdout: string } => assert.unreachable('a broken build must make valmove sim exit non-zero') as never,
    (e: { code: number; stdout: string }) => e,
  );
  assert.is(cli.code, 1);
  assert.match(cli.stdout, /violations 1/);
  assert.match(cli.stdout, /FIRST VIOLATION: seed 0: commit-point/);
  assert.match(cli.stdout, /VIOLATION commit-point: area \S+ of chip \S+ was activated \(S16\) by m-\S+, whose decision record is pending, not committed/);
  assert.match(cli.stdout, /replay: valmove sim --seed 0 /);
  assert.match(cli.stdout, /shrunk in \d+ runs/);
  assert.match(cli.stdout, /VIOLATION commit-point/);
});

test(`${SMOKE_SEEDS} seeds, 4 concurrent migrations of 1-2 items each, every fault kind, the rogue server and payments on: zero violations`, async () => {
  await rogueAndPaySeeds(SMOKE_SEEDS, 0, { everyKindStruck: false });
});

test.run();
