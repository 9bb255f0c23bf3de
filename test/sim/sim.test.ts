/**
 * The deterministic simulator (issue 5, simulation.md): a seed replays byte
 * for byte; the checker catches a deliberately broken build, and shrinks the
 * failing seed to one migration whose printed command fails the same way
 * (issue 20); and a few seeds
 * of 4 concurrent migrations of 1-2 items each, with every fault kind, the
 * rogue server's every attack and users paying on both phones, run with zero
 * violations. CI's 200 such seeds are in test/deep/sim.deep.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSimDir, writeTrace } from '../../src/sim/runner.ts';
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

/** What `valmove sim` printed and how it ended. */
interface CliRun {
  code: number;
  stdout: string;
}

/** Runs `valmove sim` with `args`; it must fail (exit non-zero). */
function simFails(args: string[], why: string): Promise<CliRun> {
  return run(process.execPath, ['bin/valmove.js', 'sim', ...args], { cwd: process.cwd(), maxBuffer: 16 * 1024 * 1024 }).then(
    (): CliRun => assert.unreachable(why) as never,
    (e: CliRun) => e,
  );
}

let broken: CliRun;
const shrunkTrace = join(dir, 'chosen', 'shrunk.trace');

test('the checker can fail: a build that activates the destination before the commit point is caught, with the seed and a minimal trace', async () => {
  // As a tester sees it: the command exits non-zero, names the seed and the invariant, shrinks, and prints the trace.
  broken = await simFails(
    ['--seeds', '1', '--jobs', '1', '--break', 'activate-before-commit', '--migrations', '4', '--items', '2', '--trace-out', shrunkTrace],
    'a broken build must make valmove sim exit non-zero',
  );
  const cli = broken;
  assert.is(cli.code, 1);
  assert.match(cli.stdout, /violations 1/);
  assert.match(cli.stdout, /FIRST VIOLATION: seed 0: commit-point/);
  assert.match(cli.stdout, /VIOLATION commit-point: area \S+ of chip \S+ was activated \(S16\) by m-\S+, whose decision record is pending, not committed/);
  assert.match(cli.stdout, /replay: valmove sim --seed 0 --migrations 4 --items 2 /);
  assert.match(cli.stdout, /shrunk in \d+ runs?/);
  assert.match(cli.stdout, /VIOLATION commit-point/);
});

test('issue 20: the failing seed shrinks to a story — one migration, one item, no fault — and its trace goes where the tester said', () => {
  // activate-before-commit needs no fault at all: S16 opens under a pending record in every migration. So the
  // fewest that still fail are one migration of one item, with no fault kind on.
  assert.match(broken.stdout, /shrunk in \d+ runs? to 1 migration of at most 1 item, faults none: 0 struck \(of \d+\), \d+ events; still commit-point/);
  assert.match(broken.stdout, /^ {2}minimal run: valmove sim --seed 0 --migrations 1 --items 1 --faults none --break activate-before-commit$/m);
  assert.ok(broken.stdout.includes(`its trace (`) && broken.stdout.includes(`lines) is in ${shrunkTrace};`), `the trace goes to ${shrunkTrace}`);
  const trace = readFileSync(shrunkTrace, 'utf8').trimEnd().split('\n');
  assert.ok(
    trace.some((l) => / WORLD 1 users x 1 items,/.test(l)),
    'the world of the shrunk run: one user, one item',
  );
  assert.ok(!trace.some((l) => / FAULT #/.test(l)), 'no fault strikes in the shrunk run');
  assert.match(trace.at(-2)!, /VIOLATION commit-point/);
});

test('issue 20: the printed minimal command, run as printed, fails the same way: the same invariant and the same trace hash', async () => {
  const command = /^ {2}minimal run: valmove sim (.+)$/m.exec(broken.stdout)?.[1];
  const hash = /it prints trace hash ([0-9a-f]+)/.exec(broken.stdout)?.[1];
  assert.ok(command && hash, `a command and a hash are printed:\n${broken.stdout}`);
  const again = await simFails(command.split(' '), `the minimal run must fail: valmove sim ${command}`);
  assert.is(again.code, 1);
  assert.match(again.stdout, /^seed 0: VIOLATION commit-point: /m);
  assert.ok(again.stdout.includes(`trace hash ${hash} `), `the same run (trace hash ${hash}):\n${again.stdout}`);
});

test('issue 20: a bug that needs a crash shrinks to one migration, one item and the one crash it needs; with that crash switched off too, the seed passes', async () => {
  // activate-before-commit-after-restart errs only in an admin SAM restarted mid-migration. Seed 38 of 2 migrations
  // of one item, under crashes, fails with it after 6 crashes; with one migration it still does, when the admin SAM
  // crashes before the commit (docs/testers.md shows the same seed shrink from 4 migrations of up to 2 items). (Found by running seeds; a change to the protocol may move that crash: then
  // pick another seed for which `--migrations 1 --items 1 --faults crash` fails with this break.)
  const file = join(dir, 'restart', 'shrunk.trace');
  const cli = await simFails(
    [
      '--from',
      '38',
      '--seeds',
      '1',
      '--jobs',
      '1',
      '--migrations',
      '2',
      '--items',
      '1',
      '--faults',
      'crash',
      '--break',
      'activate-before-commit-after-restart',
      '--trace-out',
      file,
    ],
    'the broken build must fail on seed 38',
  );
  assert.match(cli.stdout, /FIRST VIOLATION: seed 38: commit-point/);
  assert.match(cli.stdout, /shrunk in \d+ runs? to 1 migration of at most 1 item, faults crash: 1 struck \(of \d+\), \d+ events; still commit-point/);
  const faults = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => / FAULT #/.test(l));
  assert.is(faults.length, 1, `one fault left:\n${faults.join('\n')}`);
  assert.match(faults[0]!, / FAULT #\d+ crash admin-sam /, 'the crash it needs: the admin SAM restarts mid-migration');
  const command = /^ {2}minimal run: valmove sim (.+)$/m.exec(cli.stdout)?.[1] ?? '';
  const hash = /it prints trace hash ([0-9a-f]+)/.exec(cli.stdout)?.[1];
  assert.match(command, /^--seed 38 --migrations 1 --items 1 --faults crash --break activate-before-commit-after-restart --mask \S+$/);
  const again = await simFails(command.split(' '), `the minimal run must fail: valmove sim ${command}`);
  assert.ok(again.stdout.includes(`trace hash ${hash} `), `the same run (trace hash ${hash}):\n${again.stdout}`);
  // Fewest: the one fault left is needed. Switched off too, the same seed ends without a violation.
  const kept = / FAULT #(\d+) /.exec(faults[0]!)![1];
  const passes = await run(process.execPath, ['bin/valmove.js', 'sim', ...`${command},${kept}`.split(' ')], { cwd: process.cwd() });
  assert.match(passes.stdout, /^seed 38: ok$/m);
});

test('a trace with no path given goes to a fresh file of its own, never a fixed shared one', () => {
  const a = writeTrace(undefined, '5', ['one']);
  const b = writeTrace(undefined, '5', ['one']);
  try {
    assert.is.not(a, b);
    assert.is(readFileSync(a, 'utf8'), 'one\n');
  } finally {
    for (const f of [a, b]) rmSync(dirname(f), { recursive: true, force: true });
  }
});

test(`${SMOKE_SEEDS} seeds, 4 concurrent migrations of 1-2 items each, every fault kind, the rogue server and payments on: zero violations`, async () => {
  await rogueAndPaySeeds(SMOKE_SEEDS, 0, { everyKindStruck: false });
});

test.run();
