/**
 * Issue 18, point 6: a README that is a README. README.md stays short (at most
 * 250 lines) and keeps the two commands verbatim; everything else lives under
 * docs/, every page of which a reader reaches from the README by links. Every
 * relative link in the README and the pages resolves to a file of this
 * repository (anchors to a heading that exists), and nothing points outside
 * it. The command table and `valmove --help` list the same commands; the
 * folder map names every folder. (The step index, docs/steps.md, is
 * generated from the protocol table and checked by test/protocol/steps.test.ts.)
 *
 * The checks are plain functions of the repository's root, so the second half
 * of this file runs each of them on a small broken repository in a temp folder
 * and shows that it fails, naming what broke.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const README_LINES_MAX = 250;
const TWO_COMMANDS = [
  '```sh',
  'npm ci && npm start      # installs, then runs a full migration (all parties embedded, LMDB under ./data/…)',
  'npm ci && npm test       # installs, then runs the test suite',
  '```',
].join('\n');
/** Top-level folders that are never part of the repository, whatever .gitignore says. */
const NEVER_TRACKED = [/^\.git$/, /^node_modules$/, /^data$/, /^reports$/, /^\.stryker-tmp/];
/** Text that names a place outside this repository (the design notes beside it, the machine's own paths). */
const OUTSIDE = [/\.\.\/shared\b/, /\bshared\/(design|seed|hooks)\//, /\/work\//];

const read = (root: string, rel: string): string => readFileSync(join(root, rel), 'utf8');
const toRel = (root: string, abs: string): string => relative(root, abs).split(sep).join('/');

/** `wc -l`: the number of newline characters. */
function lineCount(text: string): number {
  return (text.match(/\n/g) ?? []).length;
}

/** The text with fenced code blocks blanked out (line numbers kept), so their content is not read as markdown. */
function withoutFences(md: string): string {
  let fence: string | null = null;
  return md
    .split('\n')
    .map((line) => {
      const m = /^\s*(```+|~~~+)/.exec(line);
      if (m) {
        const mark = m[1]!;
        if (fence === null) fence = mark[0]!.repeat(mark.length);
        else if (mark.startsWith(fence)) fence = null;
        return '';
      }
      return fence === null ? line : '';
    })
    .join('\n');
}

/** Inline code spans removed (a link inside backticks is text, not a link). */
function withoutCodeSpans(line: string): string {
  return line.replace(/(`+)[\s\S]*?\1/g, '');
}

interface Link {
  file: string;
  line: number;
  target: string;
}

/** Every inline link, image and reference definition of a markdown file, outside code. */
function linksOf(md: string, file: string): Link[] {
  const out: Link[] = [];
  withoutFences(md)
    .split('\n')
    .forEach((raw, i) => {
      const line = withoutCodeSpans(raw);
      for (const m of line.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ file, line: i + 1, target: m[1]! });
      const def = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(line);
      if (def) out.push({ file, line: i + 1, target: def[1]! });
    });
  return out;
}

/** GitHub's anchor for a heading: lowercase, punctuation dropped (not '-' or '_'), spaces to '-'. */
function slugOf(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`/g, '')
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** Every anchor the headings of a markdown file give (a repeated heading gets -1, -2, ...). */
function anchorsOf(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of withoutFences(md).split('\n')) {
    const m = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slugOf(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

const isWebLink = (t: string): boolean => /^(https?:|mailto:)/i.test(t);

/** Where a relative link of `file` leads, or why it is not a link this repository may have. */
function resolveLink(root: string, link: Link): { abs: string; anchor: string | null } | { problem: string } {
  const hash = link.target.indexOf('#');
  const pathPart = decodeURI(hash < 0 ? link.target : link.target.slice(0, hash));
  const anchor = hash < 0 ? null : link.target.slice(hash + 1);
  if (/^[a-z][a-z0-9+.-]*:/i.test(pathPart))
    return { problem: `a link with scheme ${pathPart.split(':')[0]}: (only http, https and mailto leave the repository)` };
  if (isAbsolute(pathPart) || pathPart.startsWith('/')) return { problem: 'an absolute path (it points outside the repository)' };
  const abs = pathPart === '' ? join(root, link.file) : resolve(root, dirname(link.file), pathPart);
  const rel = relative(root, abs);
  if (rel.startsWith('..') || isAbsolute(rel)) return { problem: `it resolves outside the repository (${rel})` };
  return { abs, anchor };
}

/** Every problem with the links of these markdown files: dead, outside the repository, or to a heading that is not there. */
function linkProblems(root: string, files: string[]): string[] {
  const problems: string[] = [];
  for (const file of files) {
    for (const link of linksOf(read(root, file), file)) {
      if (isWebLink(link.target)) continue;
      const where = `${link.file}:${link.line}: ${link.target}`;
      const r = resolveLink(root, link);
      if ('problem' in r) {
        problems.push(`${where}: ${r.problem}`);
        continue;
      }
      if (!existsSync(r.abs)) {
        problems.push(`${where}: no such file ${toRel(root, r.abs)}`);
        continue;
      }
      if (r.anchor !== null && r.anchor !== '') {
        if (!r.abs.endsWith('.md') || statSync(r.abs).isDirectory()) {
          problems.push(`${where}: an anchor into a file that is not markdown`);
          continue;
        }
        const anchors = anchorsOf(readFileSync(r.abs, 'utf8'));
        if (!anchors.has(r.anchor)) problems.push(`${where}: ${toRel(root, r.abs)} has no heading #${r.anchor}`);
      }
    }
  }
  return problems;
}

/** The markdown files a reader reaches from `start` by following relative links. */
function reachableFrom(root: string, start: string): Set<string> {
  const seen = new Set<string>([start]);
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const link of linksOf(read(root, file), file)) {
      if (isWebLink(link.target)) continue;
      const r = resolveLink(root, link);
      if ('problem' in r || !r.abs.endsWith('.md') || !existsSync(r.abs)) continue;
      const rel = toRel(root, r.abs);
      if (!seen.has(rel)) {
        seen.add(rel);
        queue.push(rel);
      }
    }
  }
  return seen;
}

/** The markdown pages under docs/. */
function docsPages(root: string): string[] {
  const dir = join(root, 'docs');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`)
    .sort();
}

/** Text in these files that names a place outside the repository (code blocks included). */
function outsideReferences(root: string, files: string[]): string[] {
  const problems: string[] = [];
  for (const file of files) {
    read(root, file)
      .split('\n')
      .forEach((line, i) => {
        for (const re of OUTSIDE) {
          const m = re.exec(line);
          if (m) problems.push(`${file}:${i + 1}: "${m[0]}" names a place outside the repository`);
        }
      });
  }
  return problems;
}

/** The rows of the first table under the heading `## <title>` (cells, `\|` unescaped), header and separator left out. */
function tableUnder(md: string, title: string): string[][] {
  const lines = md.split('\n');
  const at = lines.findIndex((l) => l.trim() === `## ${title}`);
  if (at < 0) return [];
  const rows: string[][] = [];
  let inTable = false;
  for (const line of lines.slice(at + 1)) {
    if (line.startsWith('## ')) break;
    if (!line.startsWith('|')) {
      if (inTable) break;
      continue;
    }
    inTable = true;
    const cells = line
      .replace(/\\\|/g, '\u0000')
      .split('|')
      .slice(1, -1)
      .map((c) => c.replaceAll('\u0000', '|').trim());
    rows.push(cells);
  }
  return rows.slice(2);
}

interface CommandList {
  /** Top-level command → its subcommands (empty when it has none). */
  commands: Map<string, Set<string>>;
  npmScripts: Set<string>;
}

/** What the README's command table lists: `valmove X [Y|<a|b>]` and `npm run X` in each row's first cell. */
function tableCommands(readme: string): CommandList {
  const commands = new Map<string, Set<string>>();
  const npmScripts = new Set<string>();
  for (const row of tableUnder(readme, 'Commands')) {
    const cell = row[0] ?? '';
    const npm = /`npm run ([\w:-]+)`/.exec(cell);
    if (npm) npmScripts.add(npm[1]!);
    const m = /valmove ([a-z][\w-]*)(?: (<[^>]+>|[a-z][\w-]*))?/.exec(cell);
    if (!m) continue;
    const subs = commands.get(m[1]!) ?? new Set<string>();
    commands.set(m[1]!, subs);
    const sub = m[2];
    if (sub === undefined) continue;
    if (sub.startsWith('<')) for (const s of sub.slice(1, -1).split('|')) subs.add(s);
    else subs.add(sub);
  }
  return { commands, npmScripts };
}

/** The commands a commander help text lists (`help` left out), each with whether it has options or arguments. */
function helpCommands(help: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  const at = help.indexOf('\nCommands:\n');
  if (at < 0) return out;
  for (const line of help.slice(at + 11).split('\n')) {
    const m = /^ {2}([a-z][\w-]*)((?: (?:\[[^\]]+\]|<[^>]+>))*)(?:\s|$)/.exec(line);
    if (m && m[1] !== 'help') out.set(m[1]!, m[2]!.trim() !== '');
  }
  return out;
}

/**
 * The table against the CLI: every command (and subcommand of a group) the
 * CLI lists is in the table, and every command the table names is in the CLI.
 * `cli` maps each top-level command to its subcommands (empty: not a group).
 */
function commandProblems(table: CommandList, cli: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  for (const [cmd, subs] of cli) {
    const listed = table.commands.get(cmd);
    if (!listed) {
      problems.push(`valmove ${cmd} is a command (valmove --help) but not in the README's command table`);
      continue;
    }
    for (const s of subs) if (!listed.has(s)) problems.push(`valmove ${cmd} ${s} is a command (valmove ${cmd} --help) but not in the README's command table`);
  }
  for (const [cmd, subs] of table.commands) {
    const real = cli.get(cmd);
    if (!real) {
      problems.push(`the README's command table lists valmove ${cmd}, which valmove --help does not know`);
      continue;
    }
    for (const s of subs) {
      if (real.size > 0 && !real.has(s)) problems.push(`the README's command table lists valmove ${cmd} ${s}, which valmove ${cmd} --help does not know`);
    }
  }
  return problems;
}

/** The folders the README's folder map names (first cell, in backticks, trailing slash dropped). */
function folderMap(readme: string): Set<string> {
  const out = new Set<string>();
  for (const row of tableUnder(readme, 'Where things are')) {
    const m = /^`([^`]+?)\/?`$/.exec(row[0] ?? '');
    if (m) out.add(m[1]!);
  }
  return out;
}

/** Top-level names .gitignore leaves out (simple patterns only: a name, maybe a trailing '*' or '/'). */
function ignoredTopLevel(root: string): RegExp[] {
  const file = join(root, '.gitignore');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('!'))
    .map((l) => l.replace(/^\//, '').replace(/\/$/, ''))
    .filter((l) => !l.includes('/'))
    .map((l) => new RegExp(`^${l.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`));
}

/** Every folder the map must name: each top-level folder of the repository, and every folder under src/ and test/. */
function foldersToMap(root: string): string[] {
  const ignored = [...NEVER_TRACKED, ...ignoredTopLevel(root)];
  const top = readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !ignored.some((re) => re.test(d.name)))
    .map((d) => d.name);
  const out: string[] = [...top];
  const walk = (rel: string): void => {
    for (const d of readdirSync(join(root, rel), { withFileTypes: true })) {
      if (!d.isDirectory() || d.name === 'node_modules') continue;
      out.push(`${rel}/${d.name}`);
      walk(`${rel}/${d.name}`);
    }
  };
  for (const base of ['src', 'test']) if (top.includes(base)) walk(base);
  return out.sort();
}

function folderProblems(root: string, readme: string): string[] {
  const map = folderMap(readme);
  const problems: string[] = [];
  for (const f of foldersToMap(root)) if (!map.has(f)) problems.push(`${f}/ is not in the README's folder map ("Where things are")`);
  for (const f of map)
    if (!existsSync(join(root, f)) || !statSync(join(root, f)).isDirectory()) problems.push(`the README's folder map names ${f}/, which is not a folder`);
  return problems;
}

const run = promisify(execFile);

/** What `valmove --help` lists, with the subcommands of each group (a command listed without options or arguments). */
async function cliCommands(root: string): Promise<Map<string, Set<string>>> {
  const help = async (...args: string[]): Promise<string> =>
    (await run(process.execPath, [join(root, 'bin', 'valmove.js'), ...args, '--help'], { cwd: root, encoding: 'utf8' })).stdout;
  const top = helpCommands(await help());
  const out = new Map<string, Set<string>>();
  await Promise.all(
    [...top].map(async ([cmd, leaf]) => {
      out.set(cmd, leaf ? new Set() : new Set(helpCommands(await help(cmd)).keys()));
    }),
  );
  return out;
}

const noProblems = (problems: string[]): void => assert.ok(problems.length === 0, `\n  ${problems.join('\n  ')}`);

// ---- the repository ----

test(`README.md is at most ${README_LINES_MAX} lines`, () => {
  const n = lineCount(read(ROOT, 'README.md'));
  assert.ok(n <= README_LINES_MAX, `README.md has ${n} lines; move detail into docs/`);
});

test('README.md keeps the two commands verbatim, under "The two commands"', () => {
  const readme = read(ROOT, 'README.md');
  const at = readme.indexOf('\n## The two commands\n');
  assert.ok(at >= 0, 'README.md has no "## The two commands" section');
  const section = readme.slice(at, readme.indexOf('\n## ', at + 1));
  assert.ok(section.includes(TWO_COMMANDS), `the two commands are not verbatim in "The two commands":\n${TWO_COMMANDS}`);
});

test('every page under docs/ is reachable from README.md through relative links', () => {
  const reached = reachableFrom(ROOT, 'README.md');
  noProblems(
    docsPages(ROOT)
      .filter((p) => !reached.has(p))
      .map((p) => `${p} is not reachable from README.md`),
  );
});

test('every relative link in README.md, docs/ and the pages they reach resolves inside the repository, anchors included', () => {
  const files = [...new Set([...reachableFrom(ROOT, 'README.md'), ...docsPages(ROOT)])].sort();
  noProblems(linkProblems(ROOT, files));
});

test('no text in README.md or docs/ names a place outside the repository', () => {
  const files = [...new Set([...reachableFrom(ROOT, 'README.md'), ...docsPages(ROOT)])].sort();
  noProblems(outsideReferences(ROOT, files));
});

test('the command table and `valmove --help` list the same commands; its npm scripts exist', async () => {
  const table = tableCommands(read(ROOT, 'README.md'));
  const scripts = Object.keys((JSON.parse(read(ROOT, 'package.json')) as { scripts: Record<string, string> }).scripts);
  const problems = commandProblems(table, await cliCommands(ROOT));
  for (const s of table.npmScripts) if (!scripts.includes(s)) problems.push(`the README's command table lists npm run ${s}, which package.json does not have`);
  noProblems(problems);
});

test('the folder map names every top-level folder and every folder under src/ and test/, and nothing else', () => {
  noProblems(folderProblems(ROOT, read(ROOT, 'README.md')));
});

// ---- each check can fail: a small repository, broken one way per check ----

function fixture(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'valmove-docs-'));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}

const GOOD_README = [
  '# x',
  '',
  '## The two commands',
  '',
  TWO_COMMANDS,
  '',
  '## Where things are',
  '',
  '| folder | what |',
  '|---|---|',
  '| `docs/` | pages |',
  '| `src/` | sources |',
  '| `src/a/` | a |',
  '| `test/` | tests |',
  '',
  'See [a](docs/a.md#part-two) and [b](docs/b.md).',
  '',
].join('\n');

function goodRepo(): string {
  return fixture({
    'README.md': GOOD_README,
    'docs/a.md': '# A\n\n## Part two\n\nBack to the [README](../README.md#where-things-are).\n',
    'docs/b.md': '# B\n\nSee [a](a.md).\n\n```sh\n[not a link](nowhere.md)\n```\n',
    'src/a/x.ts': '',
    'test/t.test.ts': '',
    '.gitignore': 'data/\nbuild-*/\n',
    'data/x': '',
    'build-1/x': '',
  });
}

test('checker: the good fixture passes every check', () => {
  const root = goodRepo();
  try {
    const files = [...reachableFrom(root, 'README.md')].sort();
    assert.equal(files, ['README.md', 'docs/a.md', 'docs/b.md']);
    assert.equal(linkProblems(root, files), []);
    assert.equal(outsideReferences(root, files), []);
    assert.equal(folderProblems(root, GOOD_README), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('checker: a dead link, a missing anchor, a link out of the repository and an absolute path are each named', () => {
  const root = goodRepo();
  try {
    writeFileSync(
      join(root, 'docs/b.md'),
      '# B\n\n[dead](gone.md) [anchor](a.md#no-such-part) [out](../../elsewhere/protocol.md) [abs](/etc/passwd) [web](https://example.org/x)\n',
    );
    const problems = linkProblems(root, ['docs/b.md']);
    assert.is(problems.length, 4, problems.join('\n'));
    assert.match(problems[0]!, 'docs/b.md:3: gone.md: no such file docs/gone.md');
    assert.match(problems[1]!, 'docs/a.md has no heading #no-such-part');
    assert.match(problems[2]!, 'resolves outside the repository');
    assert.match(problems[3]!, 'an absolute path');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('checker: a page no link reaches is found', () => {
  const root = goodRepo();
  try {
    writeFileSync(join(root, 'docs/orphan.md'), '# Orphan\n');
    const reached = reachableFrom(root, 'README.md');
    assert.equal(
      docsPages(root).filter((p) => !reached.has(p)),
      ['docs/orphan.md'],
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('checker: text naming the design notes outside the repository, or this machine, is found', () => {
  const root = goodRepo();
  try {
    writeFileSync(join(root, 'docs/b.md'), '# B\n\nAs in `../shared/design/simulation.md`.\n\n```\ncat /work/main/x\n```\n');
    const problems = outsideReferences(root, ['docs/b.md']);
    assert.is(problems.length, 3, problems.join('\n'));
    assert.match(problems[0]!, 'docs/b.md:3: "../shared"');
    assert.match(problems[1]!, 'docs/b.md:3: "shared/design/"');
    assert.match(problems[2]!, 'docs/b.md:6: "/work/"');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('checker: a README over the limit, or with a command changed, is caught', () => {
  assert.is(lineCount('a\nb\n'), 2);
  assert.ok(lineCount(`${'x\n'.repeat(README_LINES_MAX + 1)}`) > README_LINES_MAX);
  assert.not.ok(GOOD_README.replace('npm ci && npm test ', 'npm ci; npm test  ').includes(TWO_COMMANDS));
});

test('checker: a folder missing from the map, and a map entry that is no folder, are named; ignored folders are not', () => {
  const root = goodRepo();
  try {
    mkdirSync(join(root, 'src/a/deeper'));
    mkdirSync(join(root, 'tools'));
    const readme = GOOD_README.replace('| `test/` | tests |', '| `test/` | tests |\n| `gone/` | gone |');
    assert.equal(folderProblems(root, readme), [
      'src/a/deeper/ is not in the README\'s folder map ("Where things are")',
      'tools/ is not in the README\'s folder map ("Where things are")',
      "the README's folder map names gone/, which is not a folder",
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('checker: a command missing from the table, or one the CLI does not know, is named', () => {
  const readme = [
    '## Commands',
    '',
    '| command | what |',
    '|---|---|',
    '| `valmove demo [--items N]` | a demo |',
    '| `valmove user add --config F` | add |',
    '| `valmove terminal <login\\|pay> --config F` | a phone |',
    '| `valmove teleport` | no such thing |',
    '| `npm run test:deep` | deep |',
    '',
  ].join('\n');
  const table = tableCommands(readme);
  assert.equal([...table.commands.keys()], ['demo', 'user', 'terminal', 'teleport']);
  assert.equal([...table.commands.get('terminal')!], ['login', 'pay']);
  assert.equal([...table.npmScripts], ['test:deep']);
  const cli = new Map<string, Set<string>>([
    ['demo', new Set()],
    ['user', new Set(['add', 'unlock'])],
    ['terminal', new Set(['login', 'pay'])],
    ['sim', new Set()],
  ]);
  assert.equal(commandProblems(table, cli), [
    "valmove user unlock is a command (valmove user --help) but not in the README's command table",
    "valmove sim is a command (valmove --help) but not in the README's command table",
    "the README's command table lists valmove teleport, which valmove --help does not know",
  ]);
  const help =
    'Commands:\n  demo [options]          run\n  user                    operator\n                          continued\n  help [command]          help\n';
  assert.equal(
    [...helpCommands(`x\n${help}`)],
    [
      ['demo', true],
      ['user', false],
    ],
  );
});

test('slugs follow GitHub: lowercase, punctuation dropped, spaces to dashes, repeats numbered', () => {
  assert.is(slugOf('3. The migration, step by step'), '3-the-migration-step-by-step');
  assert.is(slugOf('`valmove attack`: a flood, measured'), 'valmove-attack-a-flood-measured');
  assert.is(slugOf('For testers: paths — and more'), 'for-testers-paths--and-more');
  assert.equal([...anchorsOf('# A\n## Notes\n## Notes\n```\n# not a heading\n```\n')], ['a', 'notes', 'notes-1']);
});

test.run();
