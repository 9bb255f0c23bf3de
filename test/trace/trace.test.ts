/**
 * Issue 6, item 2: a real embedded demo, recorded with --record, drawn by
 * `valmove trace` as the seed's Fig. 3 and Fig. 4. One demo run feeds every
 * test here: its completed migration shows S1..S17 in order, its drawings
 * parse (the real mermaid parser; the SVG as XML), its records hold
 * metadata only, per-party files merge back into the same sequence, and the
 * CLI refuses bad input with exit code 2.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runDemo, type DemoReport } from '../../src/cli/demo.ts';
import { loadRun, partyFileName, sequenceOf, toMermaid, toSvg, type RunRecord, type Sequence } from '../../src/trace/index.ts';
import { parseMermaid, parseSvg } from './drawings.ts';

const run = promisify(execFile);
const t = suite('valmove trace on a recorded demo');
const PROTOCOL_STEPS = Array.from({ length: 17 }, (_, i) => `S${i + 1}`);

let dir: string;
let file: string;
let report: DemoReport;
let records: RunRecord[];

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'valmove-trace-'));
  file = join(dir, 'run.jsonl');
  report = await runDemo({ items: 2, json: true, data: join(dir, 'data'), out: () => {}, record: file });
  records = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as RunRecord);
});

t.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const numbered = (seq: Sequence) => seq.totals.steps.filter((s) => /^S\d+$/.test(s));

t('a recorded demo shows every step S1-S17 of its completed migration, in protocol order, between the right parties', () => {
  assert.is(report.outcome, 'completed');
  const seq = sequenceOf(loadRun(file).segments, { mig: report.mig });
  assert.equal(numbered(seq), PROTOCOL_STEPS, `steps in order of first occurrence: ${seq.totals.steps.join(' ')}`);
  assert.equal(seq.totals.steps, [
    'S1',
    'S2',
    'preflight',
    'S3',
    'S4',
    'S5',
    'S6',
    'S7',
    'S8',
    'S9',
    'S10',
    'S11',
    'S12',
    'S13',
    'S14',
    'S15',
    'commit',
    'S16',
    'S17',
  ]);
  // Two items: the upload loop S4-S8 and the download loop S11-S15 each run twice.
  assert.is(seq.steps.filter((g) => g.step === 'S7').length, 2);
  assert.is(seq.steps.filter((g) => g.step === 'S14').length, 2);
  assert.equal(seq.totals.migrations, [report.mig]);
  const [src, dst] = Object.keys(report.chips);
  assert.equal(seq.participants, [
    `chip/${src}`,
    'terminal/old-phone',
    'server',
    'admin-sam',
    'migration-sam/emoney',
    'migration-sam/transit',
    'normal-sam/emoney',
    'normal-sam/transit',
    'terminal/new-phone',
    `chip/${dst}`,
  ]);
  const types = (step: string) => new Set(seq.steps.filter((g) => g.step === step).flatMap((g) => g.messages.map((m) => m.type)));
  assert.ok(types('S1').has('migrate.out'), 'the user asks to migrate out in S1');
  assert.ok(types('S3').has('admin.lock'), 'the admin SAM locks in S3');
  assert.ok(types('S7').has('msam.uploaded'), 'the item reaches the migration SAM in S7');
  assert.ok(types('S9').has('migrate.in'), 'the user asks to migrate in in S9');
  assert.ok(types('S14').has('msam.downloaded'), 'the item and the destination main key are downloaded in S14');
  assert.ok(
    ['S12', 'S13', 'S14'].some((s) => types(s).has('nsam.main-key')),
    'the migration SAM fetches the destination main key from its normal SAM',
  );
  assert.ok(types('commit').has('admin.commit'));
  assert.ok(types('S16').has('admin.activate'));
  assert.ok(types('S17').has('msam.clear'));
  const times = seq.steps.flatMap((g) => g.messages.map((m) => m.t));
  assert.equal(
    times,
    [...times].sort((a, b) => a - b),
    'messages are in time order',
  );
});

t("one arrow per envelope: the sender's out and the receiver's in of one process are not drawn twice", () => {
  const outs = records.filter((r) => r.kind === 'envelope' && r.direction === 'out').length;
  const ins = records.filter((r) => r.kind === 'envelope' && r.direction === 'in').length;
  assert.ok(ins > 100 && outs > 100, `${outs} out, ${ins} in`);
  const seq = sequenceOf(records);
  // Only the issuing desk is no runtime (its sends are seen in by the chip only).
  const deskIns = records.filter((r) => r.kind === 'envelope' && r.direction === 'in' && r.from === 'terminal/issuing-desk').length;
  assert.ok(seq.totals.messages >= outs && seq.totals.messages <= outs + deskIns, `${seq.totals.messages} arrows for ${outs} outs`);
});

t('the mermaid drawing of the run parses with the real mermaid parser, one rect and note per step group', async () => {
  const seq = sequenceOf(records, { mig: report.mig });
  const text = toMermaid(seq);
  await parseMermaid(text);
  assert.ok(text.startsWith('sequenceDiagram\n'));
  assert.is(text.match(/^ {2}rect rgb/gm)?.length, seq.steps.length);
  assert.match(text, /Note over P0,P9: S7 upload item/);
  assert.match(text, /P1->>P2: migrate\.out \(\d+ B\)/);
  // The whole run (registrations, normal use, the issuing desk) parses too.
  await parseMermaid(toMermaid(sequenceOf(records)));
  // ...and the parser can fail: a broken arrow is refused.
  const broken = await parseMermaid(text.replace('P1->>P2: migrate.out', 'P1->>: migrate.out')).then(
    () => 'parsed',
    (e: Error) => e.message,
  );
  assert.match(broken, /Parse error/);
});

t('odd characters in a recorded name or type still give well-formed XML (escaped) and valid mermaid', async () => {
  const odd: RunRecord[] = [
    { kind: 'run', v: 1, source: 'demo', party: '*', startedAt: new Date(0).toISOString() },
    { kind: 'envelope', t: 1, direction: 'out', party: 'a&b', id: '1', from: 'a&b', to: '<c>', type: 'x"y\'z<', bytes: 3, mig: 'm-<1>', step: 'S1' },
  ];
  const svg = toSvg(sequenceOf(odd));
  parseSvg(svg);
  assert.ok(svg.includes('a&amp;b') && svg.includes('&lt;c&gt;') && svg.includes('x&quot;y&apos;z&lt;'));
  assert.throws(() => parseSvg('<svg xmlns="http://www.w3.org/2000/svg"><text>a & b</text></svg>'), /not well-formed/);
  await parseMermaid(toMermaid(sequenceOf(odd)));
});

t('the svg drawing is well-formed XML, self-contained, and names every step that occurred', () => {
  const seq = sequenceOf(records, { mig: report.mig });
  const svg = toSvg(seq);
  const doc = parseSvg(svg);
  const bands = [...doc.querySelectorAll('g.step')].map((g) => g.getAttribute('data-step'));
  assert.equal(
    bands,
    seq.steps.map((g) => g.step),
  );
  for (const s of [...PROTOCOL_STEPS, 'preflight', 'commit']) assert.ok(bands.includes(s), `band for ${s}`);
  assert.ok(svg.includes('S14 download item and main key'));
  assert.match(svg, new RegExp(`${seq.totals.messages} messages`), 'legend with totals');
  assert.not.match(svg, /<script|href=|@import|url\((?!#)/, 'no script, link or external resource');
});

const KEYS: Record<string, string[]> = {
  run: ['kind', 'v', 'source', 'party', 'startedAt'],
  envelope: ['kind', 't', 'direction', 'party', 'id', 'corr', 'from', 'to', 'type', 'mig', 'step', 'announces', 'item', 'bytes', 'frameBytes'],
  // keys, mig, step: a chip area's (issue 20), which key slots it holds, never a key.
  state: ['kind', 't', 'party', 'actor', 'machine', 'states', 'event', 'keys', 'mig', 'step'],
};

t('the run file holds metadata only: known keys per record kind, never a body, a frame or a context', () => {
  assert.is(records[0]!.kind, 'run');
  assert.equal(records[0], { kind: 'run', v: 1, source: 'demo', party: '*', startedAt: (records[0] as { startedAt: string }).startedAt });
  for (const [i, r] of records.entries()) {
    for (const k of Object.keys(r)) assert.ok(KEYS[r.kind]!.includes(k), `line ${i + 1}: unexpected key "${k}" in a ${r.kind} record`);
    if (r.kind === 'state' && r.keys !== undefined) assert.ok(['none', 'temp', 'main', 'both'].includes(r.keys), `line ${i + 1}: keys is a slot name`);
  }
  const text = readFileSync(file, 'utf8');
  for (const word of ['"body"', '"data"', '"context"', '"grant"', '"receipt"', '"password"', '"proof"', '"salt"', '"sealed"']) {
    assert.not.ok(text.includes(word), `${word} in the run file`);
  }
  const states = records.filter((r) => r.kind === 'state');
  assert.ok(
    states.some((r) => r.machine === 'migration' && r.states.some((s) => s.startsWith('migration.'))),
    'migration machine states, dot-joined from the root',
  );
  const frames = records.filter((r) => r.kind === 'envelope' && r.type === 'frame');
  assert.ok(frames.length > 0 && frames.every((r) => r.kind === 'envelope' && r.frameBytes! > 0 && r.frameBytes! < r.bytes));
  const progress = records.filter((r) => r.kind === 'envelope' && r.type === 'progress');
  assert.ok(progress.length > 17 && progress.every((r) => r.kind === 'envelope' && r.step && r.mig));
});

t('per-party files (each its own clock, skewed) merge back into the same sequence', () => {
  const perParty = join(dir, 'parties');
  mkdirSync(perParty);
  const header = records[0] as Extract<RunRecord, { kind: 'run' }>;
  const byParty = new Map<string, RunRecord[]>();
  for (const r of records.slice(1)) {
    if (r.kind === 'run') continue;
    const list = byParty.get(r.party) ?? [];
    list.push(r);
    byParty.set(r.party, list);
  }
  // Each party's process started at another moment, and its wall clock is off by a few ms (either way).
  let i = 0;
  for (const [party, list] of byParty) {
    const skewMs = ((i * 7) % 11) - 5;
    const earlierMs = 1000 * i++;
    const start = new Date(Date.parse(header.startedAt) - earlierMs + skewMs).toISOString();
    const lines = [{ ...header, source: 'party', party, startedAt: start }, ...list.map((r) => ({ ...r, t: (r as { t: number }).t + earlierMs }))];
    writeFileSync(join(perParty, partyFileName(party)), `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
  }
  const loaded = loadRun(perParty);
  assert.is(loaded.files.length, byParty.size);
  const single = sequenceOf(records, { mig: report.mig });
  const merged = sequenceOf(loaded.segments, { mig: report.mig });
  assert.is(merged.totals.messages, single.totals.messages, 'no envelope lost or doubled');
  assert.equal(numbered(merged), PROTOCOL_STEPS);
  assert.equal(merged.participants, single.participants);
  // Causality survives the skew: every reply comes after the request it answers.
  const at = new Map<string, number>();
  // (a retransmitted request is drawn again, later: compare with its first send)
  for (const g of merged.steps) for (const m of g.messages) if (!at.has(`${m.from} ${m.id}`)) at.set(`${m.from} ${m.id}`, m.t);
  for (const r of records) {
    if (r.kind !== 'envelope' || r.direction !== 'out' || !r.corr) continue;
    const req = at.get(`${r.to} ${r.corr}`);
    const rep = at.get(`${r.from} ${r.id}`);
    if (req !== undefined && rep !== undefined) assert.ok(rep >= req, `${r.type} ${r.id} at ${rep} before its request at ${req}`);
  }
});

const cli = (...args: string[]) => run(process.execPath, ['bin/valmove.js', 'trace', ...args], { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });

t('valmove trace RUN --format mermaid|json|svg draws the recorded migration', async () => {
  const mermaid = (await cli(file, '--mig', report.mig)).stdout;
  await parseMermaid(mermaid);
  assert.match(mermaid, /Note over P0,P9: S1 source: log in/);

  const json = JSON.parse((await cli(file, '--format', 'json', '--mig', report.mig)).stdout) as {
    participants: string[];
    steps: Array<{ step: string; title: string; messages: Array<Record<string, unknown>> }>;
    totals: { messages: number; migrations: string[] };
  };
  assert.is(json.participants.length, 10);
  assert.equal(
    [...new Set(json.steps.map((s) => s.step))].filter((s) => /^S\d+$/.test(s)),
    PROTOCOL_STEPS,
  );
  const m = json.steps[0]!.messages[0]!;
  assert.equal(Object.keys(m).sort(), ['bytes', 'from', 'mig', 't', 'to', 'type']);
  assert.is(
    json.totals.messages,
    json.steps.reduce((n, s) => n + s.messages.length, 0),
  );

  const svgFile = join(dir, 'trace.svg');
  const said = (await cli(file, '--format', 'svg', '--mig', report.mig, '--out', svgFile)).stdout;
  assert.match(said, /messages in \d+ step groups/);
  parseSvg(readFileSync(svgFile, 'utf8'));

  // A folder of per-party files is a run too.
  const folder = (await cli(join(dir, 'parties'), '--format', 'json', '--mig', report.mig)).stdout;
  assert.is((JSON.parse(folder) as { totals: { messages: number } }).totals.messages, json.totals.messages);
});

t('valmove trace refuses bad input with exit code 2, naming the file and line', async () => {
  const fail = async (...args: string[]) =>
    await cli(...args).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
  const missing = await fail(join(dir, 'nope.jsonl'));
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /nope\.jsonl: no such file or folder/);

  const lines = readFileSync(file, 'utf8').split('\n');
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, [...lines.slice(0, 5), 'not json at all', ...lines.slice(5)].join('\n'));
  const e1 = await fail(bad);
  assert.is(e1.code, 2);
  assert.match(e1.stderr, /bad\.jsonl:6: not a JSON record/);

  const wrong = join(dir, 'wrong.jsonl');
  writeFileSync(wrong, [lines[0], lines[1], '{"kind":"envelope","t":1,"body":{}}', ''].join('\n'));
  const e2 = await fail(wrong);
  assert.is(e2.code, 2);
  assert.match(e2.stderr, /wrong\.jsonl:3: not a run record/);

  const headless = join(dir, 'headless.jsonl');
  writeFileSync(headless, `${lines.slice(1, 4).join('\n')}\n`);
  const e3 = await fail(headless);
  assert.is(e3.code, 2);
  assert.match(e3.stderr, /headless\.jsonl:1: a run file starts with a "run" record/);

  const e4 = await fail(file, '--format', 'png');
  assert.is(e4.code, 2);
  assert.match(e4.stderr, /--format must be one of mermaid, svg, json/);

  const e5 = await fail(file, '--mig', 'm-nothere');
  assert.is(e5.code, 2);
  assert.match(e5.stderr, new RegExp(`no messages of migration m-nothere .*${report.mig}`));
});

t('a run cut short mid-line (a killed process) is drawn from what it holds, with a warning', async () => {
  const text = readFileSync(file, 'utf8');
  const cut = join(dir, 'cut.jsonl');
  writeFileSync(cut, text.slice(0, text.length - 25));
  const { stdout, stderr } = await cli(cut, '--format', 'json');
  assert.match(stderr, /cut\.jsonl:\d+: last line is cut short .* skipped/);
  assert.ok((JSON.parse(stdout) as { totals: { messages: number } }).totals.messages > 0);
});

t.run();
