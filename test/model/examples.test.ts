/**
 * The tester library as a tester uses it (issue 20, point 5): docs/testers.md
 * shows two suites, one with uvu and one with node:test, each the very file
 * under examples/ (checked here, byte for byte). Both run here as a tester's
 * project would run them: in a project of its own (a temp folder) that
 * depends on valmove (node_modules/valmove links this repository, as a
 * `file:` dependency installs it) and imports `valmove/testing` by name.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const EXAMPLES = ['examples/uvu/migration.test.ts', 'examples/node-test/migration.test.ts'];
const run = promisify(execFile);

test('docs/testers.md shows each example file verbatim, in a ts code block', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'testers.md'), 'utf8');
  for (const f of EXAMPLES) {
    const code = readFileSync(join(ROOT, f), 'utf8');
    assert.ok(doc.includes(`\`\`\`ts\n${code}\`\`\``), `${f} is not in docs/testers.md as it is`);
  }
});

/** A tester's project: package.json depending on valmove, node_modules with it, tsx and uvu, the examples under test/. */
function testerProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-tester-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'my-suite', private: true, type: 'module', dependencies: { valmove: `file:${ROOT}` } }));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'valmove'), 'dir');
  for (const dep of ['tsx', 'uvu']) symlinkSync(join(ROOT, 'node_modules', dep), join(dir, 'node_modules', dep), 'dir');
  cpSync(join(ROOT, 'examples'), join(dir, 'test'), { recursive: true });
  return dir;
}

test('a tester project that depends on valmove runs both example suites, and they pass', async () => {
  const dir = testerProject();
  try {
    const env = { ...process.env, NODE_OPTIONS: '' };
    const uvu = await run(process.execPath, ['--import', 'tsx', 'node_modules/uvu/bin.js', 'test/uvu'], { cwd: dir, env });
    assert.match(uvu.stdout, /Passed:\s+3/);
    const nodeTest = await run(process.execPath, ['--import', 'tsx', '--test', 'test/node-test/migration.test.ts'], { cwd: dir, env });
    assert.match(nodeTest.stdout, /# pass 2/);
    assert.match(nodeTest.stdout, /# fail 0/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
