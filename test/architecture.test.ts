/**
 * The code's shape, checked: folders import only downward, machines stay
 * pure, test doubles stay in src/testing, and every source file is used.
 * Read from the files themselves (import statements), so a new upward import
 * or an orphan file fails here, naming the file and the import.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tsFilesUnder } from './helpers/sourceFiles.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');

/**
 * The layers, lowest first: a folder of src/ imports only from its own layer's
 * folder or a lower one. The root files (clock, errors, limits, log, timing)
 * are the bottom; the command line is the top.
 */
const LAYERS = [
  '(root)',
  'protocol',
  'metrics',
  'crypto',
  'transport',
  'machines',
  'store',
  'runtime',
  'actors',
  'fixtures',
  'model',
  'testing',
  'trace',
  'charts',
  'inspect',
  'sim',
  'deploy',
  'bench',
  'attack',
  'cli',
];

const folderOf = (file: string): string => {
  const rel = relative(src, file);
  return rel.includes('/') ? rel.split('/')[0]! : '(root)';
};

interface Import {
  from: string;
  to: string;
  typeOnly: boolean;
  line: number;
}

/** Every relative import and re-export of a file, resolved to a path. */
function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const out: Import[] = [];
  const re = /^(import|export)\s+(type\s+)?[^;]*?\sfrom\s+'(\.[^']+)'|^import\s+'(\.[^']+)'/gms;
  for (const m of text.matchAll(re)) {
    const spec = m[3] ?? m[4]!;
    const typeOnly = m[2] !== undefined;
    out.push({ from: file, to: normalize(join(dirname(file), spec)), typeOnly, line: text.slice(0, m.index).split('\n').length });
  }
  // import('…') in type positions: a type import too.
  for (const m of text.matchAll(/import\('(\.[^']+)'\)/g)) {
    out.push({ from: file, to: normalize(join(dirname(file), m[1]!)), typeOnly: true, line: text.slice(0, m.index).split('\n').length });
  }
  return out;
}

const sources = tsFilesUnder(src);
const at = (i: Import) => `${relative(root, i.from)}:${i.line} imports ${relative(root, i.to)}`;

test('layers: every folder of src/ is in the layer list', () => {
  const folders = [...new Set(sources.map(folderOf))].sort();
  const unknown = folders.filter((f) => !LAYERS.includes(f));
  assert.equal(unknown, [], `folders not placed in LAYERS (test/architecture.test.ts): ${unknown.join(', ')}`);
});

test('the protocol table is pure data: src/protocol imports only its own files and the limits, and they import nothing', () => {
  const outside = sources
    .filter((f) => folderOf(f) === 'protocol')
    .flatMap(importsOf)
    .filter((i) => folderOf(i.to) !== 'protocol' && i.to !== join(src, 'limits.ts'))
    .map(at);
  assert.equal(outside, [], `the protocol table importing from elsewhere:\n${outside.join('\n')}`);
  assert.equal(importsOf(join(src, 'limits.ts')).map(at), []);
});

test('layers: no folder imports from a folder above it', () => {
  const upward = sources
    .flatMap(importsOf)
    .filter((i) => {
      const a = LAYERS.indexOf(folderOf(i.from));
      const b = LAYERS.indexOf(folderOf(i.to));
      return b > a;
    })
    .map(at);
  assert.equal(upward, [], `upward imports:\n${upward.join('\n')}`);
});

/**
 * The error registry (src/protocol/errors.ts: each code's sentence and whether
 * a retry may help) is the one value a machine may import from the protocol
 * table; everything else it reads from there is a type. Crypto, stores and
 * sockets never.
 */
const MACHINE_VALUE_IMPORTS = new Set([join(src, 'protocol', 'errors.ts')]);

test('machines are pure: a file in src/machines imports its own folder and the protocol table (types, and the error registry) only', () => {
  const impure = sources
    .filter((f) => folderOf(f) === 'machines')
    .flatMap(importsOf)
    .filter((i) => folderOf(i.to) !== 'machines' && (folderOf(i.to) !== 'protocol' || (!i.typeOnly && !MACHINE_VALUE_IMPORTS.has(i.to))))
    .map(at);
  assert.equal(impure, [], `machines importing from outside src/machines and the protocol table:\n${impure.join('\n')}`);
});

test('test doubles stay in src/testing: nothing else in src/ says it is only for tests', () => {
  const said = sources
    .filter((f) => folderOf(f) !== 'testing')
    .flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .map((line, i) => ({ line, at: `${relative(root, f)}:${i + 1}` }))
        .filter(({ line }) => /TEST ONLY|test-only|for tests\b|only tests\b|tests only\b/i.test(line))
        .map(({ at, line }) => `${at}: ${line.trim()}`),
    );
  assert.equal(said, [], `test scaffolding outside src/testing:\n${said.join('\n')}`);
});

/** The formatter (biome.json, lineWidth) lays code out within this; strings and comments it cannot break are held to it here. */
const LINE_CHARS_MAX = 160;

test(`lines: no line in src/ is longer than ${LINE_CHARS_MAX} characters`, () => {
  const long = sources.flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .map((line, i) => ({ n: [...line].length, at: `${relative(root, f)}:${i + 1}` }))
      .filter(({ n }) => n > LINE_CHARS_MAX)
      .map(({ n, at }) => `${at} (${n})`),
  );
  assert.equal(long, [], `lines over ${LINE_CHARS_MAX} characters:\n${long.join('\n')}`);
});

test('sizes: runtime.ts at most 300 lines, no other file in src/actors over 400', () => {
  const lines = (f: string) => readFileSync(f, 'utf8').split('\n').length - 1;
  const big = sources
    .filter((f) => folderOf(f) === 'actors')
    .filter((f) => lines(f) > (f.endsWith(`${join('actors', 'runtime.ts')}`) ? 300 : 400))
    .map((f) => `${relative(root, f)} (${lines(f)} lines)`);
  assert.equal(big, [], `files over their size:\n${big.join('\n')}`);
});

test('no orphans: every file in src/ is imported by another, or is an entry point', () => {
  const entries = new Set([join(src, 'cli', 'main.ts')]);
  const imported = new Set<string>();
  const scan = [...sources, ...tsFilesUnder(join(root, 'test'))];
  for (const f of scan) for (const i of importsOf(f)) imported.add(i.to.replace(/\.js$/, '.ts'));
  // The package's exports (package.json: valmove/testing) are entry points too.
  const exported = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).exports as Record<string, string>;
  for (const target of Object.values(exported)) if (target.endsWith('.ts')) entries.add(join(root, target));
  for (const f of readdirSync(join(root, 'bin'))) {
    for (const m of readFileSync(join(root, 'bin', f), 'utf8').matchAll(/'\.\.\/(src\/[^']+\.ts)'/g)) entries.add(join(root, m[1]!));
  }
  const orphans = sources.filter((f) => !imported.has(f) && !entries.has(f)).map((f) => relative(root, f));
  assert.equal(orphans, [], `files nothing imports:\n${orphans.join('\n')}`);
});

test.run();
