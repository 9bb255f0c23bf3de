#!/usr/bin/env node
/**
 * The test runner of `npm test` and `npm run test:deep`: uvu, one process per
 * test file, several files at once.
 *
 *   node test/run.mjs [dir] [pattern] [--jobs N]
 *
 * Each file runs in its own `node --import tsx --import ./test/helpers/guard.mjs
 * uvu <dir> <that file>`, exactly as `npx uvu` would run it alone, so a file's
 * tests, its hooks and the guard (a hang or an escaped exception names the file)
 * behave as before. N files run at once (default: the machine's cores, or
 * VALMOVE_TEST_JOBS); the slowest files of the last run start first (their
 * times are kept in node_modules/.cache/valmove-tests.json), so the run ends
 * when its longest file does. Each file's output is printed whole when it ends,
 * never interleaved. The last lines are uvu's totals over every file (CI reads
 * them): a file that dies without its counts counts as one failed test.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/** Files under `dir` whose path relative to it matches, as uvu picks them. */
function filesUnder(base) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.name === 'node_modules' || e.name.startsWith('.git')) continue;
      if (e.isDirectory()) walk(p);
      else if (match.test(relative(base, p))) out.push(relative(base, p));
    }
  };
  walk(base);
  return out.sort();
}

function readTimes() {
  try {
    return JSON.parse(readFileSync(cacheFile, 'utf8'));
  } catch {
    return {};
  }
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// eslint-disable-next-line no-control-regex
const plain = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
const countOf = (text, label) => Number(new RegExp(`^\\s*${label}:\\s*(\\d+)`, 'm').exec(plain(text))?.[1] ?? NaN);

function runFile(file) {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--import', './test/helpers/guard.mjs', 'node_modules/uvu/bin.js', dir, `^${escapeRe(file)}$`],
      { cwd: root, env: { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code, signal) => resolve({ file, code: code ?? 1, signal, output, ms: performance.now() - started }));
  });
}

const base = join(root, dir);
const files = filesUnder(base);
if (files.length === 0) {
  console.error(`no test files under ${dir} match ${pattern}`);
  process.exit(1);
}
const times = readTimes();
const queue = [...files].sort((a, b) => (times[join(dir, b)] ?? Infinity) - (times[join(dir, a)] ?? Infinity) || a.localeCompare(b));
const started = performance.now();
const results = [];
const totals = { total: 0, passed: 0, skipped: 0 };
const broken = [];

async function worker() {
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const r = await runFile(file);
    results.push(r);
    process.stdout.write(`\n── ${join(dir, file)} (${(r.ms / 1000).toFixed(1)} s)\n${r.output}`);
    const total = countOf(r.output, 'Total');
    const passed = countOf(r.output, 'Passed');
    const skipped = countOf(r.output, 'Skipped');
    if (Number.isNaN(total) || Number.isNaN(passed)) {
      // It died before uvu counted (a crash, a kill): one failed test, named.
      totals.total += 1;
      broken.push(`${join(dir, file)}: exited ${r.signal ?? r.code} without its counts`);
      continue;
    }
    totals.total += total;
    totals.passed += passed;
    totals.skipped += Number.isNaN(skipped) ? 0 : skipped;
    if (r.code !== 0 && passed === total) {
      totals.total += 1;
      broken.push(`${join(dir, file)}: every test passed, but it exited ${r.code}`);
    } else if (passed < total) broken.push(`${join(dir, file)}: ${total - passed} of ${total} failed`);
  }
}

await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, worker));

const wall = performance.now() - started;
const cache = readTimes();
for (const r of results) cache[join(dir, r.file)] = Math.round(r.ms);
try {
  mkdirSync(dirname(cacheFile), { recursive: true });
  writeFileSync(cacheFile, `${JSON.stringify(cache, null, 1)}\n`);
} catch {
  // a read-only checkout: the next run orders files by name
}

const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 8);
console.log(`\n${files.length} files, ${jobs} at a time; slowest: ${slowest.map((r) => `${join(dir, r.file)} ${(r.ms / 1000).toFixed(1)} s`).join(', ')}`);
if (broken.length > 0) console.log(`\nFAILED:\n${broken.map((b) => `  ${b}`).join('\n')}`);
console.log(`\n  Total:     ${totals.total}\n  Passed:    ${totals.passed}\n  Skipped:   ${totals.skipped}\n  Duration:  ${wall.toFixed(2)}ms\n`);
process.exit(broken.length > 0 ? 1 : 0);
