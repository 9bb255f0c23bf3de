#!/usr/bin/env node
/**
 * The test runner of `npm test` and `npm run test:deep`: uvu, a process per
 * test file (small files share one), several processes at once.
 *
 *   node test/run.mjs [dir] [pattern] [--jobs N] [--save-timings]
 *
 * Each file runs in a `node --import tsx --import ./test/helpers/guard.mjs uvu
 * <dir> <file>` of its own, exactly as `npx uvu` would run it alone, so a
 * file's tests, its hooks and the guard (a hang or an escaped exception names
 * the file) behave as before; only files that took under SMALL_MS last time
 * and start no process share one, a few in a row (as `npx uvu test` runs
 * every file in one): starting a process and loading the sources through tsx
 * costs about a second, more than most of those files take. N processes run at once
 * (default: the machine's cores, or VALMOVE_TEST_JOBS); the slowest files of
 * the last run start first (their times are kept in
 * node_modules/.cache/valmove-tests.json; a fresh clone's first run uses
 * test/timings.json, a baseline measured here and refreshed with
 * --save-timings), so the run ends when its longest file does. Each process's output is printed whole when it ends, never
 * interleaved. The last lines are uvu's totals over every file
 * (CI reads them): a process that dies without its counts counts as one failed
 * test, naming its files.
 *
 * The files' temp folders (os.tmpdir(): the tests' LMDB stores, the real
 * processes' data folders) are in a fresh folder under /dev/shm when the
 * machine has it, removed at the end: memory-backed, so LMDB's syncs cost
 * nothing (on the VM's disk they were most of the embedded suites' time). No
 * test depends on a sync reaching a disk: a crash is a party stopped and
 * restarted from its files, never a power cut.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const jobsAt = args.indexOf('--jobs');
const jobsArg = jobsAt >= 0 ? args.splice(jobsAt, 2)[1] : process.env.VALMOVE_TEST_JOBS;
const jobs = Math.max(1, Number(jobsArg ?? availableParallelism()) || 1);
const [dir = 'test', pattern = '\\.test\\.ts$'] = args;
const match = new RegExp(pattern, 'i'); // as uvu: case-insensitive, on the path relative to dir
const cacheFile = join(root, 'node_modules', '.cache', 'valmove-tests.json');
/** The files' times as measured once here, kept in the repository: `node test/run.mjs --save-timings` (both suites) refreshes it. */
const baselineFile = join(root, 'test', 'timings.json');
const saveAt = args.indexOf('--save-timings');
const saveTimings = saveAt >= 0 && args.splice(saveAt, 1).length > 0;

/** A fresh temp folder for the files under /dev/shm (memory-backed), or undefined: the OS's own. */
function memoryTmp() {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return mkdtempSync('/dev/shm/valmove-tests-');
  } catch {
    return undefined;
  }
}

/** Script files under `dir` whose path relative to it matches the pattern (as uvu picks them; a pattern may be loose: test data is skipped). */
function filesUnder(base) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.name === 'node_modules' || e.name.startsWith('.git')) continue;
      if (e.isDirectory()) walk(p);
      else if (/\.[mc]?[jt]s$/.test(e.name) && match.test(relative(base, p))) out.push(relative(base, p));
    }
  };
  walk(base);
  return out.sort();
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return {};
  }
}

/** Each file's time (ms) of the last run here, else of the baseline the repository keeps (a fresh clone's first run). */
function readTimes() {
  return { ...readJson(baselineFile), ...readJson(cacheFile) };
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// biome-ignore lint/suspicious/noControlCharactersInRegex: ESC (\x1b) opens the ANSI colour codes this strips from a runner's output
const plain = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
const countOf = (text, label) => Number(new RegExp(`^\\s*${label}:\\s*(\\d+)`, 'm').exec(plain(text))?.[1] ?? NaN);

/** A file that took less than this last time shares its process with others (ms). */
const SMALL_MS = 6_000;
/** Small files share a process until their times of last run add up to this (ms). */
const BATCH_MS = 15_000;

/** Lines of one failure uvu prints that the summary repeats (its stack is left in the file's own output above). */
const FAILURE_LINES_MAX = 12;
/** Characters of one such line the summary keeps. */
const FAILURE_LINE_CHARS_MAX = 400;

/**
 * What failed in a file, from uvu's `FAIL "name"` blocks (name, message, diff;
 * no stack), indented for the summary: the end of a long run (all a CI log's
 * reader may get) then says why, not only where.
 */
function failuresOf(output) {
  const lines = plain(output).split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*FAIL\s/.test(lines[i])) continue;
    const block = [lines[i].trim()];
    for (let j = i + 1; j < lines.length && !/^\s*at /.test(lines[j]) && !/^\s*FAIL\s/.test(lines[j]); j++) {
      if (lines[j].trim() !== '' && block.length < FAILURE_LINES_MAX) block.push(`  ${lines[j].trim().slice(0, FAILURE_LINE_CHARS_MAX)}`);
    }
    out.push(...block);
  }
  return out.map((l) => `\n      ${l}`).join('');
}

/** Runs one process: uvu on the files of a unit (one file, or a few small ones). */
function runUnit(unit) {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--import', './test/helpers/guard.mjs', 'node_modules/uvu/bin.js', dir, `^(?:${unit.map(escapeRe).join('|')})$`],
      { cwd: root, env: { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? '1', ...(tmp ? { TMPDIR: tmp } : {}) }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code, signal) => resolve({ unit, code: code ?? 1, signal, output, ms: performance.now() - started }));
  });
}

const base = join(root, dir);
const files = filesUnder(base);
if (files.length === 0) {
  console.error(`no test files under ${dir} match ${pattern}`);
  process.exit(1);
}
const tmp = memoryTmp();
const times = readTimes();
const timeOf = (file) => times[join(dir, file)];

/**
 * A file that starts processes of its own keeps a process to itself, as when it ran alone: `valmove inspect`
 * stopped with SIGTERM now and then reported no exit status to a test that shared its process.
 */
const startsProcesses = (file) => /from 'node:child_process'/.test(readFileSync(join(base, file), 'utf8'));

/** Every file alone, but the small ones (known from the last run) a few to a process, in name order. */
function unitsOf(list) {
  const units = [];
  let batch = [];
  let batchMs = 0;
  for (const file of list) {
    const ms = timeOf(file);
    if (ms === undefined || ms >= SMALL_MS || startsProcesses(file)) {
      units.push([file]);
      continue;
    }
    batch.push(file);
    batchMs += ms;
    if (batchMs >= BATCH_MS) {
      units.push(batch);
      [batch, batchMs] = [[], 0];
    }
  }
  if (batch.length > 0) units.push(batch);
  return units;
}

const unitMs = (unit) => unit.reduce((sum, f) => sum + (timeOf(f) ?? Infinity), 0);
const queue = unitsOf(files).sort((a, b) => unitMs(b) - unitMs(a) || a[0].localeCompare(b[0]));
const units = queue.length;
const started = performance.now();
const results = [];
const totals = { total: 0, passed: 0, skipped: 0 };
const broken = [];

async function worker() {
  for (let unit = queue.shift(); unit !== undefined; unit = queue.shift()) {
    const r = await runUnit(unit);
    results.push(r);
    const name = unit.map((f) => join(dir, f)).join(', ');
    process.stdout.write(`\n── ${name} (${(r.ms / 1000).toFixed(1)} s)\n${r.output}`);
    const total = countOf(r.output, 'Total');
    const passed = countOf(r.output, 'Passed');
    const skipped = countOf(r.output, 'Skipped');
    if (Number.isNaN(total) || Number.isNaN(passed)) {
      // It died before uvu counted (a crash, a kill): one failed test, named.
      totals.total += 1;
      broken.push(`${name}: exited ${r.signal ?? r.code} without its counts`);
      continue;
    }
    totals.total += total;
    totals.passed += passed;
    totals.skipped += Number.isNaN(skipped) ? 0 : skipped;
    if (r.code !== 0 && passed === total) {
      totals.total += 1;
      broken.push(`${name}: every test passed, but it exited ${r.code}`);
    } else if (passed < total) broken.push(`${name}: ${total - passed} of ${total} failed${failuresOf(r.output)}`);
  }
}

await Promise.all(Array.from({ length: Math.min(jobs, units) }, worker));
if (tmp) rmSync(tmp, { recursive: true, force: true });

const wall = performance.now() - started;
const cache = readJson(cacheFile);
const measured = {};
// A shared process's time is split evenly among its files (a file grown slow soon runs alone again).
for (const r of results) for (const f of r.unit) measured[join(dir, f)] = Math.round(r.ms / r.unit.length);
try {
  mkdirSync(dirname(cacheFile), { recursive: true });
  writeFileSync(cacheFile, `${JSON.stringify({ ...cache, ...measured }, null, 1)}\n`);
} catch {
  // a read-only checkout: the next run orders files as the baseline does
}
if (saveTimings) {
  // Only files that still exist, in name order, so the file's diff shows what moved.
  const all = { ...readJson(baselineFile), ...measured };
  const kept = Object.fromEntries(
    Object.keys(all)
      .filter((f) => existsSync(join(root, f)))
      .sort()
      .map((f) => [f, all[f]]),
  );
  writeFileSync(baselineFile, `${JSON.stringify(kept, null, 1)}\n`);
}

const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 8);
const label = (r) => (r.unit.length === 1 ? join(dir, r.unit[0]) : `${r.unit.length} files from ${join(dir, r.unit[0])}`);
console.log(
  `\n${files.length} files in ${units} processes, ${jobs} at a time; slowest: ${slowest.map((r) => `${label(r)} ${(r.ms / 1000).toFixed(1)} s`).join(', ')}`,
);
if (broken.length > 0) console.log(`\nFAILED:\n${broken.map((b) => `  ${b}`).join('\n')}`);
console.log(`\n  Total:     ${totals.total}\n  Passed:    ${totals.passed}\n  Skipped:   ${totals.skipped}\n  Duration:  ${wall.toFixed(2)}ms\n`);
process.exit(broken.length > 0 ? 1 : 0);
