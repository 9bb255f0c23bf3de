/**
 * Issue 20, point 4: a trace tells one story. On a hand-made run that holds
 * what a demo's run holds (a registration, an issuing, normal use, then a
 * migration with a chip session relayed through the terminal and the
 * server, a retransmitted request and a duplicated reply): migrations only
 * by default, titles that count migrations only, a registration's reply
 * filed with its request, repeats marked in every format, and a chip
 * session's relayed frames folded into one bar.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { storyTitle } from '../../src/trace/flows.ts';
import { rowsOf } from '../../src/trace/rows.ts';
import { sequenceOf, toJson, toMermaid, toSvg, type RunRecord, type SeqMessage } from '../../src/trace/index.ts';
import { parseMermaid, parseSvg } from './drawings.ts';
import { header, seen, type Envelope } from './records.ts';

const REG = 'reg-1';
const ISSUING = 'i-1';
const MIG = 'm-1';

/** The frames of one chip session (the admin SAM proving the chip's serial), relayed both ways, each sent by its hop. */
function session(t: number, mig: string, chip: string, sam: string): RunRecord[] {
  const path = [sam, 'server', 'terminal/old', chip, 'terminal/old', 'server', sam];
  return path.slice(1).map((to, i) => seen(path[i]!, 'out', t + i, { id: `${path[i]}#f${t + i}`, from: path[i]!, to, type: 'frame', mig, bytes: 300 }));
}

const identified: Envelope = { id: 'admin-sam#2', from: 'admin-sam', to: 'server', type: 'admin.identified', corr: 'server#6', mig: MIG, step: 'S1' };
const records: RunRecord[] = [
  header('*'),
  // Registration: its messages carry the step 'register', but the admin SAM stamps its identify reply S1.
  seen('terminal/old', 'out', 1, { id: 'terminal/old#1', from: 'terminal/old', to: 'server', type: 'chip.register' }),
  seen('server', 'out', 2, { id: 'server#1', from: 'server', to: 'admin-sam', type: 'admin.identify', mig: REG, step: 'register' }),
  seen('admin-sam', 'out', 3, { id: 'admin-sam#1', from: 'admin-sam', to: 'server', type: 'admin.identified', corr: 'server#1', mig: REG, step: 'S1' }),
  seen('server', 'out', 4, { id: 'server#2', from: 'server', to: 'terminal/old', type: 'chip.registered', corr: 'terminal/old#1' }),
  // Issuing: the destination phase with no source, asked for by a migrate.in (its type marks S9), opened by an `issue` notice.
  seen('terminal/old', 'out', 4.5, { id: 'terminal/old#i', from: 'terminal/old', to: 'server', type: 'migrate.in' }),
  seen('server', 'out', 5, { id: 'server#3', from: 'server', to: 'terminal/old', type: 'progress', mig: ISSUING, step: 'issue', announces: ['issue', 'S9'] }),
  seen('server', 'out', 6, { id: 'server#4', from: 'server', to: 'admin-sam', type: 'admin.format', mig: ISSUING, step: 'S10' }),
  seen('server', 'out', 6.5, { id: 'server#i', from: 'server', to: 'terminal/old', type: 'migrate.result', corr: 'terminal/old#i', mig: ISSUING }),
  // Normal use.
  seen('terminal/old', 'out', 7, { id: 'terminal/old#2', from: 'terminal/old', to: 'normal-sam/p', type: 'normal.begin' }),
  // The migration: S1 with the chip session that proves the serial; the user's request sent again; the reply delivered twice.
  seen('terminal/old', 'out', 10, { id: 'terminal/old#3', from: 'terminal/old', to: 'server', type: 'migrate.out' }),
  seen('server', 'out', 11, { id: 'server#5', from: 'server', to: 'terminal/old', type: 'progress', mig: MIG, step: 'S1' }),
  seen('server', 'out', 12, { id: 'server#6', from: 'server', to: 'admin-sam', type: 'admin.identify', mig: MIG, step: 'S1' }),
  ...session(13, MIG, 'chip/SRC', 'admin-sam'),
  seen('terminal/old', 'out', 20, { id: 'terminal/old#3', from: 'terminal/old', to: 'server', type: 'migrate.out' }),
  seen('admin-sam', 'out', 21, identified),
  seen('server', 'in', 22, identified),
  seen('server', 'in', 23, identified),
  // (the result ties the user's request to the migration: it answers it)
  seen('server', 'out', 24, { id: 'server#7', from: 'server', to: 'terminal/old', type: 'migrate.result', corr: 'terminal/old#3', mig: MIG }),
];

const kinds = (seq: ReturnType<typeof sequenceOf>) => [...new Set(seq.steps.flatMap((g) => g.messages.map((m) => m.mig ?? g.step)))];
const repeated = (seq: ReturnType<typeof sequenceOf>): Array<Pick<SeqMessage, 'type' | 'repeat'>> =>
  seq.steps.flatMap((g) => g.messages.filter((m) => m.repeat).map((m) => ({ type: m.type, repeat: m.repeat })));

test('with include: migration, a trace holds the migration only; registration, issuing and normal use come on request', () => {
  assert.equal(kinds(sequenceOf(records, { include: ['migration'] })), [MIG]);
  assert.equal(kinds(sequenceOf(records, { include: ['migration', 'registration'] })), ['register', REG, MIG]);
  assert.equal(kinds(sequenceOf(records, { include: ['issuing'] })), [ISSUING]);
  assert.equal(kinds(sequenceOf(records)), ['register', REG, ISSUING, 'normal', MIG], 'no include: every kind');
  // --mig names one flow, whatever its kind, and include does not hide it.
  assert.equal(kinds(sequenceOf(records, { mig: REG, include: ['migration'] })), [REG]);
  const all = sequenceOf(records).totals;
  assert.equal([all.migrations, all.registrations, all.issuings], [[MIG], [REG], [ISSUING]]);
});

test('a title counts migrations only: a registration or an issuing is named as what it is', () => {
  const one = sequenceOf(records, { include: ['migration'] });
  const all = sequenceOf(records);
  assert.is(storyTitle(one.totals), `valmove trace — migration ${MIG}`);
  assert.is(storyTitle(all.totals), `valmove trace — migration ${MIG}, 1 registration, 1 issuing`);
  assert.is(storyTitle({ migrations: [], registrations: ['reg-1', 'reg-2'], issuings: ['i-1'] }), 'valmove trace — 2 registrations, 1 issuing');
  assert.is(storyTitle({ migrations: ['m-1', 'm-2'], registrations: [], issuings: [] }), 'valmove trace — 2 migrations');
  assert.is(storyTitle({ migrations: [], registrations: [], issuings: [] }), 'valmove trace');
  // Every drawing carries it.
  const title = [...parseSvg(toSvg(all)).querySelectorAll('text')][0]!.textContent;
  assert.is(title, `valmove trace — migration ${MIG}, 1 registration, 1 issuing`);
  assert.match(toMermaid(all), new RegExp(`^sequenceDiagram\\n {2}title valmove trace — migration ${MIG}, 1 registration, 1 issuing\\n`));
});

test("a registration's reply is filed with its request (register), never under a migration step, whatever its header says", () => {
  const seq = sequenceOf(records, { mig: REG });
  assert.equal(
    seq.steps.map((g) => `${g.step}: ${g.messages.map((m) => m.type).join(',')}`),
    ['register: admin.identify,admin.identified'],
  );
  assert.equal(sequenceOf(records).totals.steps, ['register', 'issue', 'S9', 'normal', 'S1']);
});

test("an issuing's request is filed under issue with the notice that opens it, not under S9 before it", () => {
  assert.equal(
    sequenceOf(records, { mig: ISSUING }).steps.map((g) => `${g.step}: ${g.messages.map((m) => m.type).join(',')}`),
    ['issue: migrate.in,progress', 'S9: admin.format,migrate.result'],
  );
});

test('a retransmission and a duplicate are marked in the JSON, dashed and labelled in mermaid, dashed red and classed in the SVG', async () => {
  const seq = sequenceOf(records, { include: ['migration'] });
  assert.equal(repeated(seq), [
    { type: 'migrate.out', repeat: 'retransmission' },
    { type: 'admin.identified', repeat: 'duplicate' },
  ]);
  assert.equal(seq.totals.repeats, { retransmissions: 1, duplicates: 1 });
  const json = JSON.parse(JSON.stringify(toJson(seq))) as ReturnType<typeof toJson>;
  assert.equal(
    json.steps.flatMap((g) => g.messages.flatMap((m) => (m.repeat ? [`${m.type} ${m.repeat}`] : []))),
    ['migrate.out retransmission', 'admin.identified duplicate'],
  );
  const mermaid = toMermaid(seq);
  await parseMermaid(mermaid);
  assert.match(mermaid, /P1-->>P2: migrate\.out \(100 B, retransmission\)\n/);
  assert.match(mermaid, /P3-->>P2: admin\.identified \(100 B, duplicate\)\n/);
  assert.is(mermaid.match(/-->>/g)?.length, 2, 'only the repeats are dashed');
  const svg = parseSvg(toSvg(seq));
  const marked = [...svg.querySelectorAll('line.retransmission, line.duplicate')].map((l) => l.getAttribute('class'));
  assert.equal(marked, ['retransmission', 'duplicate']);
  for (const l of svg.querySelectorAll('line.duplicate')) assert.ok(l.getAttribute('stroke-dasharray'), 'dashed');
  assert.ok([...svg.querySelectorAll('text')].some((t) => t.textContent === 'admin.identified (100 B, duplicate)'));
});

test("a chip session's relayed frames are one bar with their count, in mermaid and SVG; --frames all draws each", async () => {
  const seq = sequenceOf(records, { include: ['migration'] });
  const rows = rowsOf(seq.steps[0]!);
  assert.equal(
    rows.map((r) => (r.kind === 'frames' ? `${r.messages.length} frames` : r.message.type)),
    ['migrate.out', 'progress', 'admin.identify', '6 frames', 'migrate.out', 'admin.identified', 'admin.identified', 'migrate.result'],
  );
  const mermaid = toMermaid(seq);
  await parseMermaid(mermaid);
  assert.match(mermaid, /Note over P0,P3: 6 relayed frames \(1800 B, 0 B of session\)\n/);
  assert.not.match(mermaid, /: frame /);
  const folded = parseSvg(toSvg(seq));
  assert.equal(
    [...folded.querySelectorAll('g.frames')].map((g) => g.getAttribute('data-count')),
    ['6'],
  );
  const all = toSvg(seq, { frames: 'all' });
  assert.is([...parseSvg(all).querySelectorAll('g.frames')].length, 0);
  assert.is(toMermaid(seq, { frames: 'all' }).match(/: frame \(300 B\)/g)?.length, 6);
  const height = (svg: string) => Number(/height="(\d+)"/.exec(svg)![1]);
  assert.is(height(all) - height(toSvg(seq)), 5 * 20, 'six rows become one');
});

test('frames fold by session only: a lone frame stays an arrow, and frames of two migrations or two chips are two bars', () => {
  const two: RunRecord[] = [
    header('*'),
    seen('server', 'out', 1, { id: 'server#p', from: 'server', to: 'terminal/old', type: 'progress', mig: 'm-a', step: 'S6' }),
    // (from the terminal's hop to the chip: the hops between relays name no chip)
    ...session(2, 'm-a', 'chip/A', 'migration-sam/p').slice(2, 5),
    ...session(5, 'm-a', 'chip/B', 'migration-sam/p').slice(2, 5),
    seen('server', 'out', 8, { id: 'server#q', from: 'server', to: 'terminal/new', type: 'progress', mig: 'm-b', step: 'S6' }),
    ...session(9, 'm-b', 'chip/C', 'migration-sam/p').slice(0, 3),
    seen('server', 'out', 12, { id: 'server#r', from: 'server', to: 'migration-sam/p', type: 'msam.upload', mig: 'm-b' }),
    ...session(13, 'm-b', 'chip/C', 'migration-sam/p').slice(0, 1),
  ];
  const seq = sequenceOf(two);
  const bars = seq.steps.flatMap((g) =>
    rowsOf(g).map((r) =>
      r.kind === 'frames' ? `${r.messages[0]!.mig} ${r.parties.find((p) => p.startsWith('chip/'))} x${r.messages.length}` : r.message.type,
    ),
  );
  assert.equal(bars, ['progress', 'm-a chip/A x3', 'm-a chip/B x3', 'progress', 'm-b chip/C x3', 'msam.upload', 'frame']);
});

test.run();
