/**
 * `up --record DIR` / `start --record DIR`: every process of a deployment
 * records its parties to DIR/<party>.jsonl (each on its own clock), and
 * `valmove trace DIR` merges them into one sequence: S1..S17 in order, each
 * envelope once although both of its ends recorded it.
 *
 * In `npm run test:deep` (a deployment of real processes): `npm test` records
 * an embedded demo, per-party files included, and draws it
 * (test/trace/trace.test.ts).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { testDeployment } from '../helpers/deployment.ts';
import { launchDeployment } from '../../src/deploy/up.ts';
import { loadRun, sequenceOf } from '../../src/trace/index.ts';

test('up --record DIR: each party of each process writes its own file, and the merged trace shows S1-S17 once per envelope', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-up-rec-'));
  const records = join(dir, 'records');
  // The admin SAM inside the server's process: one process, two parties, two files.
  const d = await launchDeployment(testDeployment(dir, 1, 'pw', { embeddedAdminSam: true, record: records }));
  let mig: string;
  try {
    const [oldPhone, newPhone] = [d.terminal('old'), d.terminal('new')];
    for (const t of [oldPhone, newPhone]) {
      await t.login('alice', 'pw');
      await t.register();
    }
    const out = await oldPhone.migrateOut({ destination: 'DST' });
    const done = await newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
    mig = done.mig;
  } finally {
    await d.stop();
  }
  try {
    assert.equal(readdirSync(records).sort(), [
      'admin-sam.jsonl',
      'chip_DST.jsonl',
      'chip_SRC.jsonl',
      'migration-sam_emoney.jsonl',
      'normal-sam_emoney.jsonl',
      'server.jsonl',
      'terminal_new.jsonl',
      'terminal_old.jsonl',
    ]);
    const run = loadRun(records);
    assert.equal(run.warnings, []);
    assert.ok(
      run.segments.every((s) => s.header.source === 'party' && s.records.every((r) => r.party === s.header.party)),
      'each file holds its own party only',
    );
    const seq = sequenceOf(run.segments, { mig });
    assert.equal(
      seq.totals.steps.filter((s) => /^S\d+$/.test(s)),
      Array.from({ length: 17 }, (_, i) => `S${i + 1}`),
      seq.totals.steps.join(' '),
    );
    assert.equal(seq.participants, [
      'chip/SRC',
      'terminal/old',
      'server',
      'admin-sam',
      'migration-sam/emoney',
      'normal-sam/emoney',
      'terminal/new',
      'chip/DST',
    ]);
    // Every party recorded: each out record is one arrow, and an in record adds none, except from the
    // issuing desk (a tool in the `up` process, no runtime: only the chip saw its frames).
    let outRecords = 0;
    const deskIns = new Set<string>();
    for (const s of run.segments) {
      for (const r of s.records) {
        if (r.kind !== 'envelope') continue;
        if (r.direction === 'out') outRecords++;
        else if (r.from === 'terminal/issuing-desk') deskIns.add(r.id);
      }
    }
    const all = sequenceOf(run.segments);
    assert.ok(outRecords > 100);
    assert.is(all.totals.messages, outRecords + deskIns.size, 'ins deduplicated against outs; retransmissions kept');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
