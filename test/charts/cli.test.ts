/**
 * `valmove charts`: files per machine and format under --out (the directory
 * made, one line printed per file), every machine's chart on stdout one after
 * another, and bad input refused with exit code 2 and the valid choices.
 * The success cases run the real command in process (buildCli); the refusals
 * and one full run go through bin/valmove.js as a user would.
 */

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CHART_EXTENSIONS, CHART_FORMATS, exportChart } from '../../src/charts/index.ts';
import { buildCli } from '../../src/cli/main.ts';
import { MODEL_NAMES } from '../../src/model/models.ts';
import { runValmove } from '../helpers/cli.ts';

async function charts(...args: string[]): Promise<string[]> {
  const lines: string[] = [];
  await buildCli((l) => lines.push(l)).parseAsync(['node', 'valmove', 'charts', ...args]);
  return lines;
}

const valmove = (...args: string[]) => runValmove(args);

test('charts --machine all --out DIR writes <machine>.<ext> for every machine in every format, one line per file', async () => {
  const root = mkdtempSync(join(tmpdir(), 'valmove-charts-'));
  try {
    for (const format of CHART_FORMATS) {
      const dir = join(root, 'out', format); // not there yet: the command makes it
      const lines = await charts('--machine', 'all', '--format', format, '--out', dir);
      const files = MODEL_NAMES.map((n) => `${n}.${CHART_EXTENSIONS[format]}`);
      assert.equal(readdirSync(dir).sort(), [...files].sort(), `${format}: files`);
      assert.equal(
        lines,
        files.map((f) => `wrote ${join(dir, f)}`),
        `${format}: one line per file`,
      );
      for (const n of MODEL_NAMES) {
        assert.is(readFileSync(join(dir, `${n}.${CHART_EXTENSIONS[format]}`), 'utf8'), await exportChart(n, format), `${format}/${n}`);
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  assert.not.ok(existsSync(root));
});

test('charts prints every machine one after another, each under a heading comment of its format', async () => {
  const mermaid = (await charts('--format', 'mermaid')).join('\n');
  for (const n of MODEL_NAMES) assert.ok(mermaid.includes(`%% ==== machine: ${n} ====\nstateDiagram-v2\n`), `mermaid heading for ${n}`);
  const dot = (await charts('--format', 'dot')).join('\n');
  for (const n of MODEL_NAMES) assert.ok(dot.includes(`// ==== machine: ${n} ====\ndigraph "${n}" {`), `dot heading for ${n}`);
  const scxml = (await charts('--machine', 'all', '--format', 'scxml')).join('\n');
  for (const n of MODEL_NAMES) assert.ok(scxml.includes(`<!-- ==== machine: ${n} ==== -->\n<?xml`), `scxml heading for ${n}`);
  // JSON stays one document: an object keyed by machine.
  const json = JSON.parse((await charts('--format', 'json')).join('\n'));
  assert.equal(Object.keys(json), MODEL_NAMES);
  assert.is(json.migration.id, 'migration');
});

test('charts --machine NAME prints that machine only, exactly its export', async () => {
  assert.equal(await charts('--machine', 'terminal', '--format', 'dot'), [(await exportChart('terminal', 'dot')).trimEnd()]);
  const svg = await charts('--machine', 'chip', '--format', 'svg');
  assert.is(svg.length, 1);
  assert.match(svg[0]!, /<svg[\s\S]*id="chip:open"/);
});

test('valmove charts refuses an unknown machine, an unknown format, and svg of every machine without --out (exit 2)', async () => {
  const machine = await valmove('charts', '--machine', 'wallet');
  assert.is(machine.code, 2);
  assert.match(
    machine.stderr,
    /unknown machine "wallet"; one of area, migration, chip, terminal, adminSession, decision, migrationSam, normalSam, backup, registration, all/,
  );
  const format = await valmove('charts', '--machine', 'area', '--format', 'png');
  assert.is(format.code, 2);
  assert.match(format.stderr, /unknown format "png"; one of json, mermaid, scxml, dot, svg/);
  const svg = await valmove('charts', '--format', 'svg');
  assert.is(svg.code, 2);
  assert.match(svg.stderr, /svg of every machine needs --out <dir>/);
  assert.is(svg.stdout, '');
});

test('charts --view: the migration in each view, <machine>.<view>.<ext> under --out; a view a format or machine has not is refused (exit 2)', async () => {
  for (const view of ['overview', 'source', 'destination']) {
    assert.equal(await charts('--machine', 'migration', '--format', 'dot', '--view', view), [(await exportChart('migration', 'dot', view)).trimEnd()]);
  }
  const root = mkdtempSync(join(tmpdir(), 'valmove-charts-'));
  try {
    const lines = await charts('--machine', 'migration', '--format', 'svg', '--view', 'source', '--out', root);
    assert.equal(lines, [`wrote ${join(root, 'migration.source.svg')}`]);
    assert.match(readFileSync(join(root, 'migration.source.svg'), 'utf8'), /source phase, S1(-|&#45;)S8 \(Fig\. 3\)/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const json = await valmove('charts', '--machine', 'migration', '--format', 'json', '--view', 'overview');
  assert.is(json.code, 2);
  assert.match(json.stderr, /the overview view is drawn as mermaid, dot, svg; json is the whole machine \(--view full\)/);
  const area = await valmove('charts', '--machine', 'area', '--view', 'destination');
  assert.is(area.code, 2);
  assert.match(area.stderr, /the destination view is a phase of the migration/);
});

test('valmove charts --machine migration --format mermaid prints the chart from the command line', async () => {
  const { code, stdout } = await valmove('charts', '--machine', 'migration', '--format', 'mermaid');
  assert.is(code, 0);
  assert.is(stdout, await exportChart('migration', 'mermaid'));
});

test.run();
