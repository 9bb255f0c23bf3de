/**
 * npm run mutate: mutation testing of the safety-critical code against fast
 * protocol tests (docs/mutation.md). The scope is named by the code it holds
 * (a function, or the lines from one statement to another), not by line
 * numbers, so it follows the code when lines move; a name that is no longer
 * found stops the run, saying which.
 *
 * tsconfigFile names a file that does not exist on purpose: Stryker's
 * tsconfig rewrite needs the TypeScript 5 JS API, which TypeScript 7 has not,
 * and tsconfig.json has no extends/references to rewrite.
 */
import { readFileSync } from 'node:fs';

/** 1-based line of the first line of `file` containing `text` (after line `from`). */
function lineOf(file, lines, text, from = 0) {
  const i = lines.findIndex((l, n) => n >= from && l.includes(text));
  if (i < 0) throw new Error(`stryker.config.mjs: "${text}" is no longer in ${file}; update the mutation scope`);
  return i + 1;
}

/** A function or method: from its signature to the closing brace at the signature's indentation. */
function fn(file, signature) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const start = lineOf(file, lines, signature);
  const indent = /^\s*/.exec(lines[start - 1])[0];
  const end = lines.findIndex((l, n) => n >= start && l === `${indent}}`);
  if (end < 0) throw new Error(`stryker.config.mjs: no end of "${signature}" in ${file}`);
  return `${file}:${start}-${end + 1}`;
}

/** The lines from the one containing `first` to the next one containing `last`. */
function span(file, first, last) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const start = lineOf(file, lines, first);
  return `${file}:${start}-${lineOf(file, lines, last, start - 1)}`;
}

const DECISIONS = 'src/actors/adminDecisions.ts';
const MSAM = 'src/actors/migrationSam.actor.ts';
/** The migration SAM's chip-session frames (moved out of MSAM for its line limit). */
const FRAMES = 'src/actors/migrationSamFrames.ts';
const KEYS = 'src/crypto/keys.ts';

export default {
  $schema: './node_modules/@stryker-mutator/core/schema/stryker-schema.json',
  packageManager: 'npm',
  testRunner: 'command',
  commandRunner: { command: 'node test/mutation/command.mjs' },
  mutate: [
    'src/machines/decision.machine.ts',
    'src/machines/area.machine.ts',
    'src/crypto/grant.ts',
    // key check values: computed, and compared in constant time
    fn(KEYS, 'export function keyCheckValue('),
    fn(KEYS, 'function kcvBytes('),
    fn(KEYS, 'export function sameKcv('),
    // the admin SAM's commit: a valid receipt for every item
    fn(DECISIONS, 'checkReceipts('),
    // the migration SAMs' rights, grants, the temp key's serial and the download's key check
    fn(MSAM, 'private rightsOf('),
    fn(MSAM, 'private requireRight('),
    span(MSAM, 'const right = RIGHT_OF[env.type];', "turn.reply(env, 'msam.ready'"),
    fn(MSAM, 'private checkGrant('),
    span(FRAMES, "if (snap.matches({ uploading: 'authenticating' })", 'serial === w.grant.serial ? w.tempKey : null'),
    span(FRAMES, '// Download: the key check value', 'verified: sameKcv('),
  ],
  ignorePatterns: ['bench', 'docs', 'data', 'test-artifacts', 'reports', '.valmove'],
  coverageAnalysis: 'off',
  concurrency: 1,
  timeoutMS: 10000,
  timeoutFactor: 1.5,
  disableTypeChecks: 'src/**/*.ts',
  tsconfigFile: '.stryker-tsconfig-rewrite-off.json',
  checkers: [],
  plugins: ['@stryker-mutator/*', './test/mutation/ndjson-reporter.mjs'],
  reporters: ['clear-text', 'json', 'html', 'progress', 'ndjson'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  clearTextReporter: { allowColor: false, logTests: false, reportMutants: true, reportScoreTable: true },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
  thresholds: { high: 95, low: 90, break: null },
};
