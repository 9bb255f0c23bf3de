/**
 * sequenceOf on hand-made runs: merging the files of several processes
 * (each its own clock), one arrow per envelope, and how messages without a
 * step or a migration are placed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadRun, segmentsOf, sequenceOf, type RunRecord } from '../../src/trace/index.ts';
import { both, header, seen } from './records.ts';

const arrows = (records: RunRecord[] | ReturnType<typeof segmentsOf>, mig?: string) =>
  sequenceOf(records, { mig }).steps.flatMap((g) => g.messages.map((m) => `${g.step} ${m.from}>${m.to} ${m.type}`));

test('an envelope recorded out by its sender and in by its receiver, in two files, is one arrow', () => {
  const [o, i] = both(10, 11, { id: 'server#1', from: 'server', to: 'admin-sam', type: 'admin.lock', mig: 'm-1', step: 'S3' });
  const segs = [...segmentsOf([header('server'), o]), ...segmentsOf([header('admin-sam'), i])];
  assert.equal(arrows(segs), ['S3 server>admin-sam admin.lock']);
});

test('a receiver whose clock runs behind still draws its reply after the request it answers', () => {
  // admin-sam's clock is 50 ms behind: by its own clock it answered before the server asked.
  const [qo, qi] = both(100, 101, { id: 'server#1', from: 'server', to: 'admin-sam', type: 'admin.lock', mig: 'm-1', step: 'S3' });
  const [ro, ri] = both(102, 103, { id: 'admin-sam#1', from: 'admin-sam', to: 'server', type: 'admin.locked', corr: 'server#1', mig: 'm-1', step: 'S3' });
  const segs = [...segmentsOf([header('admin-sam', -50), { ...qi, t: 101 }, { ...ro, t: 102 }]), ...segmentsOf([header('server'), qo, { ...ri, t: 160 }])];
  assert.equal(arrows(segs), ['S3 server>admin-sam admin.lock', 'S3 admin-sam>server admin.locked']);
  const [a, b] = sequenceOf(segs).steps[0]!.messages;
  assert.ok(b!.t >= a!.t, `reply at ${b!.t}, request at ${a!.t}`);
});

test('a retransmission and a duplicate delivery are each another arrow, marked; an envelope only its receiver recorded is drawn from its in record', () => {
  const e = { id: 'terminal/old#4', from: 'terminal/old', to: 'server', type: 'migrate.out' };
  const desk = { id: 'terminal/issuing-desk#1', from: 'terminal/issuing-desk', to: 'chip/SRC', type: 'frame' };
  const records: RunRecord[] = [
    header('*'),
    seen('terminal/old', 'out', 1, e),
    seen('server', 'in', 2, e),
    // The link delivered a copy: the server got the envelope twice before it was sent again.
    seen('server', 'in', 3, e),
    seen('terminal/old', 'out', 50, e),
    seen('chip/SRC', 'in', 60, desk),
    seen('chip/SRC', 'in', 61, desk),
  ];
  // (no migration id anywhere: outside the protocol steps)
  const seq = sequenceOf(records);
  assert.equal(
    seq.steps.flatMap((g) => g.messages.map((m) => `${m.t} ${m.from}>${m.to} ${m.type} ${m.repeat ?? 'first'}`)),
    [
      '0 terminal/old>server migrate.out first',
      '2 terminal/old>server migrate.out duplicate',
      '49 terminal/old>server migrate.out retransmission',
      '59 terminal/issuing-desk>chip/SRC frame first',
      '60 terminal/issuing-desk>chip/SRC frame duplicate',
    ],
  );
  assert.equal(seq.totals.repeats, { retransmissions: 1, duplicates: 2 });
});

test("progress notices start steps; a message without a step takes its migration's current step; replies take the migration of their request", () => {
  const m = 'm-7';
  const records: RunRecord[] = [
    header('*'),
    seen('terminal/old', 'out', 1, { id: 't#1', from: 'terminal/old', to: 'server', type: 'migrate.out' }),
    seen('server', 'out', 2, { id: 's#1', from: 'server', to: 'terminal/old', type: 'progress', mig: m, step: 'S1' }),
    seen('server', 'out', 3, { id: 's#2', from: 'server', to: 'terminal/old', type: 'channel.reserve', mig: m, step: 'S1' }),
    seen('terminal/old', 'out', 4, { id: 't#2', from: 'terminal/old', to: 'server', type: 'channel.reserved', corr: 's#2' }),
    seen('server', 'out', 5, { id: 's#3', from: 'server', to: 'terminal/old', type: 'progress', mig: m, step: 'S5' }),
    // The header says S7 (the session's step), but the server announced S5: the notices decide.
    seen('server', 'out', 6, { id: 's#4', from: 'server', to: 'migration-sam/p', type: 'msam.upload', mig: m, step: 'S7' }),
    seen('migration-sam/p', 'out', 7, { id: 'p#1', from: 'migration-sam/p', to: 'server', type: 'frame.ack', corr: 's#4' }),
    seen('terminal/other', 'out', 8, { id: 'o#1', from: 'terminal/other', to: 'normal-sam/p', type: 'normal.begin' }),
    seen('server', 'out', 9, { id: 's#5', from: 'server', to: 'terminal/old', type: 'migrate.result', corr: 't#1', mig: m }),
  ];
  assert.equal(arrows(records), [
    'S1 terminal/old>server migrate.out',
    'S1 server>terminal/old progress',
    'S1 server>terminal/old channel.reserve',
    'S1 terminal/old>server channel.reserved',
    'S5 server>terminal/old progress',
    'S5 server>migration-sam/p msam.upload',
    'S5 migration-sam/p>server frame.ack',
    'normal terminal/other>normal-sam/p normal.begin',
    'S5 server>terminal/old migrate.result',
  ]);
  // --mig keeps the migration's messages, and the ones tied to it by corr.
  assert.equal(arrows(records, m).length, 8);
  assert.equal(sequenceOf(records, { mig: m }).participants, ['terminal/old', 'server', 'migration-sam/p']);
});

test('--hide leaves those envelope types out of the drawing, and they still mark where steps start', () => {
  const m = 'm-9';
  const records: RunRecord[] = [
    header('*'),
    seen('server', 'out', 1, { id: 's#1', from: 'server', to: 'terminal/old', type: 'progress', mig: m, step: 'S3' }),
    seen('server', 'out', 2, { id: 's#2', from: 'server', to: 'admin-sam', type: 'admin.lock', mig: m }),
    seen('admin-sam', 'out', 3, { id: 'a#1', from: 'admin-sam', to: 'server', type: 'frame.ack', corr: 's#2' }),
    seen('server', 'out', 4, { id: 's#3', from: 'server', to: 'terminal/old', type: 'progress', mig: m, step: 'S4' }),
    seen('server', 'out', 5, { id: 's#4', from: 'server', to: 'migration-sam/p', type: 'msam.upload', mig: m }),
  ];
  const seq = sequenceOf(records, { hide: ['frame.ack', 'progress'] });
  assert.equal(
    seq.steps.map((g) => `${g.step}: ${g.messages.map((x) => x.type).join(',')}`),
    ['S3: admin.lock', 'S4: msam.upload'],
  );
});

test("without progress notices (the server's file is missing) header steps lead and carry forward", () => {
  const m = 'm-8';
  const records: RunRecord[] = [
    header('admin-sam'),
    seen('admin-sam', 'in', 1, { id: 's#1', from: 'server', to: 'admin-sam', type: 'admin.commit', mig: m, step: 'commit' }),
    seen('admin-sam', 'out', 2, { id: 'a#1', from: 'admin-sam', to: 'server', type: 'admin.decision', corr: 's#1' }),
    seen('admin-sam', 'in', 3, { id: 's#2', from: 'server', to: 'admin-sam', type: 'admin.activate', mig: m, step: 'S16' }),
    seen('admin-sam', 'out', 4, { id: 'a#2', from: 'admin-sam', to: 'server', type: 'frame', mig: m }),
  ];
  assert.equal(arrows(records), [
    'commit server>admin-sam admin.commit',
    'commit admin-sam>server admin.decision',
    'S16 server>admin-sam admin.activate',
    'S16 admin-sam>server frame',
  ]);
});

test("one file that several processes append to (a shared up --record file): each record goes with its own party's header", () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-seq-'));
  try {
    const [qo, qi] = both(5, 6, { id: 'server#1', from: 'server', to: 'admin-sam', type: 'admin.lock', mig: 'm-1', step: 'S3' });
    const [ro, ri] = both(7, 8, { id: 'admin-sam#1', from: 'admin-sam', to: 'server', type: 'admin.locked', corr: 'server#1' });
    // admin-sam started 1 s before the server: its t counts from its own start.
    const lines: RunRecord[] = [header('admin-sam', -1000), header('server'), qo, { ...qi, t: 1006 }, { ...ro, t: 1007 }, ri];
    const file = join(dir, 'up.jsonl');
    writeFileSync(file, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    const run = loadRun(file);
    assert.equal(
      run.segments.map((s) => [s.header.party, s.records.length]),
      [
        ['admin-sam', 2],
        ['server', 2],
      ],
    );
    assert.equal(arrows(run.segments), ['S3 server>admin-sam admin.lock', 'S3 admin-sam>server admin.locked']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
