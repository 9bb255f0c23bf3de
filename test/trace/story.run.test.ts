/**
 * Issue 20, point 4, on real runs: `valmove trace` of a recorded 3-item demo
 * (its file also holds both phones' registrations, the issuing of the value
 * and normal use) tells the migration's story by default, and a demo whose
 * links deliver copies shows them marked. What the architect found: one
 * migration titled "3 migrations", 48 issuing frames on top, a registration
 * reply filed under S1, no repeat marked, a 2,250 x 19,424 px SVG.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runDemo, type DemoReport } from '../../src/cli/demo.ts';
import { drawTrace, type TraceFlags, traceOptions } from '../../src/cli/trace.command.ts';
import { loadRun, type SequenceJson } from '../../src/trace/index.ts';
import { parseMermaid, parseSvg } from './drawings.ts';

const run = promisify(execFile);
const t = suite('valmove trace tells one story');

let dir: string;
let file: string;
let faulty: string;
let report: DemoReport;
let faultyReport: DemoReport;

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'valmove-story-'));
  file = join(dir, 'run.jsonl');
  faulty = join(dir, 'faulty.jsonl');
  report = await runDemo({ items: 3, json: true, data: join(dir, 'data'), out: () => {}, record: file });
  faultyReport = await runDemo({ items: 1, json: true, data: join(dir, 'faulty'), out: () => {}, record: faulty, faults: 'dup=0.3', seed: 7 });
});

t.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** What `valmove trace FILE` with these flags prints, drawn in this process (the CLI's own option handling and drawing). */
const trace = (path: string, flags: TraceFlags = {}) => drawTrace(loadRun(path), traceOptions(flags)).text;
const json = (path: string, flags: TraceFlags = {}) => JSON.parse(trace(path, { ...flags, format: 'json' })) as SequenceJson;
/** The real command, in its own process. */
const cli = async (...args: string[]) =>
  (await run(process.execPath, ['bin/valmove.js', 'trace', ...args], { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 })).stdout;
const messages = (seq: SequenceJson) => seq.steps.flatMap((g) => g.messages.map((m) => ({ ...m, step: g.step })));

t('by default the trace holds the migration only; --include and --all add registration, issuing and normal use', async () => {
  assert.is(report.outcome, 'completed');
  const seq = json(file);
  assert.equal([seq.totals.migrations, seq.totals.registrations, seq.totals.issuings], [[report.mig], [], []]);
  assert.ok(
    messages(seq).every((m) => m.mig === report.mig),
    'every message is the migration',
  );
  assert.is(seq.totals.messages, report.messagesTotal, 'as many messages as the demo counted for its migration');
  const more = json(file, { include: 'registration,issuing' });
  assert.is(more.totals.registrations.length, 2, 'both phones registered');
  assert.is(more.totals.issuings.length, 1, 'the value was issued once');
  assert.equal(more.totals.migrations, [report.mig]);
  assert.not.ok(more.totals.steps.includes('normal'));
  assert.ok(json(file, { all: true }).totals.steps.includes('normal'), '--all: normal use too');
});

t('a title counts migrations only: one migration, two registrations and an issuing are not "4 migrations"', async () => {
  const title = (svg: string) => [...parseSvg(svg).querySelectorAll('text')][0]!.textContent;
  assert.is(title(trace(file, { format: 'svg' })), `valmove trace — migration ${report.mig}`);
  const all = trace(file, { format: 'svg', all: true });
  assert.match(title(all)!, new RegExp(`^valmove trace — migration ${report.mig}, 2 registrations, 1 issuing$`));
  const mermaid = await cli(file, '--all');
  await parseMermaid(mermaid);
  assert.match(mermaid, /^sequenceDiagram\n {2}title valmove trace — migration m-\S+, 2 registrations, 1 issuing\n/);
});

t("a registration's messages, its admin SAM's reply included, are filed under register, never under S1", async () => {
  const seq = json(file, { include: 'registration' });
  const registration = messages(seq).filter((m) => m.mig?.startsWith('reg-'));
  assert.ok(registration.some((m) => m.type === 'admin.identified'));
  assert.equal([...new Set(registration.map((m) => m.step))], ['register']);
  for (const g of seq.steps.filter((s) => /^S\d+$/.test(s.step))) {
    for (const m of g.messages) assert.is(m.mig, report.mig, `${m.type} of ${m.mig} under ${g.step}`);
  }
});

t('duplicates and retransmissions of a faulty run are marked in the JSON, mermaid and the SVG', async () => {
  assert.is(faultyReport.outcome, 'completed');
  const seq = json(faulty);
  const marked = messages(seq).filter((m) => m.repeat);
  const { duplicates, retransmissions } = seq.totals.repeats;
  assert.ok(duplicates > 0, `${duplicates} duplicates in a run whose links copied 30% of the messages`);
  assert.is(marked.length, duplicates + retransmissions);
  const mermaid = trace(faulty, { frames: 'all' });
  await parseMermaid(mermaid);
  assert.is(mermaid.match(/-->>.*, duplicate\)/g)?.length, duplicates);
  assert.is(mermaid.match(/-->>.*, retransmission\)/g)?.length ?? 0, retransmissions);
  const svg = parseSvg(trace(faulty, { format: 'svg', frames: 'all' }));
  assert.is([...svg.querySelectorAll('line.duplicate, path.duplicate')].length, duplicates);
  assert.is([...svg.querySelectorAll('line.retransmission, path.retransmission')].length, retransmissions);
  // Folded, a bar says how many of its frames came twice.
  const folded = trace(faulty);
  const inBars = [...folded.matchAll(/relayed frames [^\n]*, (\d+) duplicates?/g)].reduce((n, m) => n + Number(m[1]), 0);
  const framesDuplicated = marked.filter((m) => m.type === 'frame' && m.repeat === 'duplicate').length;
  assert.ok(inBars > 0 && inBars <= framesDuplicated, `${inBars} duplicates named in bars, ${framesDuplicated} duplicated frames`);
});

t("a 3-item run's trace stays readable: each chip session's frames are one bar with a count, by default", async () => {
  const size = (svg: string) => /width="(\d+)" height="(\d+)"/.exec(svg)!.slice(1).map(Number);
  const folded = trace(file, { format: 'svg' });
  const all = trace(file, { format: 'svg', frames: 'all' });
  const [, height] = size(folded);
  const [, heightAll] = size(all);
  // Measured: 2,080 x 10,976 px before issue 20 (every flow, every frame), 2,080 x 2,908 px after; on a loaded
  // machine more requests are sent again, and each one drawn between a session's frames splits its bar.
  assert.ok(height! < 5_000, `${size(folded).join(' x ')} px`);
  assert.ok(height! < heightAll! * 0.8, `${height} px folded, ${heightAll} px with every frame`);
  const bars = [...parseSvg(folded).querySelectorAll('g.frames')].map((g) => Number(g.getAttribute('data-count')));
  const seq = json(file);
  const frames = messages(seq).filter((m) => m.type === 'frame').length;
  const loose = (folded.match(/>frame \(\d+ B/g) ?? []).length;
  assert.ok(bars.length >= 14, `${bars.length} bars: lock, and per item upload and download, both phases`);
  assert.is(bars.reduce((n, c) => n + c, 0) + loose, frames, 'every frame is in a bar or drawn alone');
  assert.is([...parseSvg(all).querySelectorAll('g.frames')].length, 0, '--frames all folds none');
  const mermaid = trace(file);
  await parseMermaid(mermaid);
  assert.is(mermaid.match(/Note over P\d+,P\d+: \d+ relayed frames/g)?.length, bars.length);
  // The file written says what it drew.
  const out = join(dir, 'story.svg');
  assert.match(await cli(file, '--format', 'svg', '--out', out), /story\.svg: \d+ messages in \d+ step groups/);
  assert.is(readFileSync(out, 'utf8'), folded);
});

t('a run with nothing to draw under the options fails naming what it holds and the flag that shows it', async () => {
  const regOnly = join(dir, 'reg-only.jsonl');
  const lines = readFileSync(file, 'utf8').split('\n');
  const firstMigrationLine = lines.findIndex((l) => l.includes('"migrate.out"'));
  // The issuing's migrate.in and everything after it is dropped: registrations and normal use remain.
  const issuing = lines.findIndex((l) => l.includes('"migrate.in"'));
  writeFileSync(regOnly, `${lines.slice(0, Math.min(issuing, firstMigrationLine)).join('\n')}\n`);
  const e = await cli(regOnly).then(
    () => ({ code: 0, stderr: '' }),
    (x: { code: number; stderr: string }) => x,
  );
  assert.is(e.code, 2);
  assert.match(e.stderr, /nothing to draw in .*reg-only\.jsonl with these options; it holds registration reg-\S+, registration reg-\S+ \(--include/);
  assert.match(trace(regOnly, { include: 'registration' }), /^sequenceDiagram\n {2}title valmove trace — 2 registrations\n/);
});

t.run();
