/**
 * The user's receipt and the demo's new flags, as a user runs them (issue 22,
 * points 4 and 5): `valmove demo --json` writes a receipt and lists the
 * steps in order; `valmove receipt verify` accepts it and refuses one with a
 * changed amount, a foreign signature, or a statement the admin SAM did not
 * sign; `demo --cancel-at S12` ends rolled back with every balance kept.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { DemoReport } from '../../src/cli/demo.ts';
import { generateIdentity, systemRng, toB64 } from '../../src/crypto/index.ts';
import { signOutcome, signStatement, type Outcome, type Statement } from '../../src/crypto/statement.ts';
import { STEPS } from '../../src/protocol/steps.ts';
import type { ReceiptFile } from '../../src/transport/receipt.schemas.ts';
import { runValmove } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'valmove-receipt-'));
let report: DemoReport;
let receipt: ReceiptFile;

const bodyOf = <T extends { sig: string }>(x: T): Omit<T, 'sig'> => {
  const { sig: _, ...body } = x;
  return body;
};

/** Writes a changed copy of the demo's receipt (and, if given, a trust file); returns verify's run on it. */
async function verifyChanged(name: string, change: (r: ReceiptFile) => ReceiptFile, trust?: object) {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(change(structuredClone(receipt))));
  const trustPath = trust ? join(dir, `${name}.keys.json`) : report.receipt!.trust;
  if (trust) writeFileSync(trustPath, JSON.stringify(trust));
  return runValmove(['receipt', 'verify', path, '--trust', trustPath]);
}

test.before(async () => {
  const r = await runValmove(['demo', '--items', '3', '--json', '--data', join(dir, 'demo')], { timeoutMs: 120_000 });
  assert.is(r.code, 0, r.stderr);
  report = JSON.parse(r.stdout) as DemoReport;
  receipt = JSON.parse(readFileSync(report.receipt!.path, 'utf8')) as ReceiptFile;
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('demo --json lists the steps in protocol order, each with its text, party and time', () => {
  assert.ok(report.steps.length >= 17, `${report.steps.length} steps`);
  for (const s of report.steps) {
    assert.ok(STEPS.includes(s.id as never), `a known step: ${s.id}`);
    assert.ok(s.text.length > 0 && ['server', 'admin-sam', 'migration-sam'].includes(s.party) && !Number.isNaN(Date.parse(s.at)));
  }
  const first = (id: string) => report.steps.findIndex((s) => s.id === id);
  const order = ['S1', 'S2', 'preflight', 'S3', 'S5', 'S7', 'S8', 'S9', 'S10', 'S12', 'S14', 'S15', 'commit', 'S16', 'S17'];
  for (const id of order) assert.ok(first(id) >= 0, `${id} announced`);
  for (let i = 1; i < order.length; i++) assert.ok(first(order[i - 1]!) < first(order[i]!), `${order[i - 1]} before ${order[i]}`);
  const times = report.steps.map((s) => Date.parse(s.at));
  assert.ok(
    times.every((t, i) => i === 0 || t >= times[i - 1]!),
    'times never go back',
  );
  assert.is(report.steps.find((s) => s.id === 'S3')?.party, 'admin-sam');
});

test('receipt verify accepts the demo receipt (exit 0): every item, its amount, where it went', async () => {
  assert.is(report.receipt?.outcome, 'committed');
  const r = await runValmove(['receipt', 'verify', report.receipt!.path]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /receipt verified: migration m-\S+ completed: 3 item\(s\), 3 statement\(s\)/);
  const emoney = report.items.find((i) => i.kind === 'emoney')!;
  assert.ok(r.stdout.includes(`emoney (emoney) into `) && r.stdout.includes(emoney.after), `the amount the destination holds: ${r.stdout}`);
});

test("the most items a demo moves (20): its receipt carries every statement and verifies; so does a lost phone's", async () => {
  for (const extra of [[], ['--lost-source']]) {
    const data = join(dir, `demo20${extra.join('')}`);
    const r = await runValmove(['demo', '--items', '20', '--json', '--data', data, ...extra], { timeoutMs: 120_000 });
    assert.is(r.code, 0, r.stderr);
    const path = (JSON.parse(r.stdout) as { receipt?: { path: string } }).receipt?.path;
    assert.ok(path, `demo ${extra.join(' ')} wrote a receipt`);
    const v = await runValmove(['receipt', 'verify', path]);
    assert.is(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /completed: 20 item\(s\), 20 statement\(s\), every signature checks/);
  }
});

test('receipt verify refuses a changed amount (exit 1), naming the signature that fails', async () => {
  const r = await verifyChanged('amount', (x) => {
    const s = x.statements.find((st) => st.value.balance !== undefined)!;
    s.value.balance! += 1000;
    return x;
  });
  assert.is(r.code, 1, r.stdout);
  assert.match(r.stderr, /receipt refused: statement \d \(item \d, \S+, in\): the signature of migration-sam\/\S+ does not check/);
});

test('receipt verify refuses an outcome signed by a foreign key (exit 1)', async () => {
  const foreign = generateIdentity(systemRng);
  const r = await verifyChanged('foreign', (x) => ({ ...x, outcome: signOutcome({ ...bodyOf(x.outcome), decision: 'committed' }, foreign) as Outcome }));
  assert.is(r.code, 1);
  assert.match(r.stderr, /outcome: the signature of admin-sam does not check/);
});

test('receipt verify refuses a statement re-signed by a key the trust file accepts, when the admin SAM did not sign its digest (exit 1)', async () => {
  // A migration SAM that re-signs a bigger amount after the decision: its signature checks, the outcome's digest does not.
  const rogue = generateIdentity(systemRng);
  const trust = JSON.parse(readFileSync(report.receipt!.trust, 'utf8')) as { keys: Record<string, { signPublic: string }> };
  const target = receipt.statements.find((st) => st.value.balance !== undefined)!;
  trust.keys[`migration-sam/${target.provider}`] = { signPublic: toB64(rogue.signPublic) };
  const r = await verifyChanged(
    'digest',
    (x) => {
      x.statements = x.statements.map((s) =>
        s.item === target.item ? (signStatement({ ...bodyOf(s), value: { ...s.value, balance: s.value.balance! + 1000 } }, rogue) as Statement) : s,
      );
      return x;
    },
    trust,
  );
  assert.is(r.code, 1, r.stdout);
  assert.match(r.stderr, /its digest is not among those the admin SAM signed/);
});

test('receipt verify: a file that is not a receipt is refused (1); no trust file is a usage error (2)', async () => {
  const junk = join(dir, 'junk.json');
  writeFileSync(junk, 'not json');
  const notJson = await runValmove(['receipt', 'verify', junk, '--trust', report.receipt!.trust]);
  assert.is(notJson.code, 1);
  assert.match(notJson.stderr, /the receipt is not JSON/);
  const noTrust = await runValmove(['receipt', 'verify', junk]);
  assert.is(noTrust.code, 2);
  assert.match(noTrust.stderr, /no trust file beside the receipt/);
});

test('demo --cancel-at S12: the user sees a rollback, the source spendable again, the destination wiped, balances kept (exit 0)', async () => {
  const r = await runValmove(['demo', '--items', '3', '--json', '--cancel-at', 'S12', '--data', join(dir, 'cancel')], { timeoutMs: 120_000 });
  assert.is(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as DemoReport;
  assert.is(rep.outcome, 'rolledBack');
  assert.equal(rep.cancel, { at: 'S12', decision: 'aborted' });
  for (const it of rep.items) {
    assert.is(it.sourceAfter, 'mainActive', `${it.provider}: spendable on the source again`);
    assert.is(it.destinationAfter, 'absent', `${it.provider}: wiped from the destination`);
    assert.is(it.after, it.before);
  }
  assert.ok(rep.balances.conserved && rep.balances.before > 0, JSON.stringify(rep.balances));
  assert.ok(rep.paymentOnSource.ok && !rep.paymentOnDestination.ok);
  assert.ok(
    rep.steps.some((s) => s.id === 'rollback'),
    'the rollback is among the steps',
  );
  assert.is(rep.receipt?.outcome, 'aborted');
  const v = await runValmove(['receipt', 'verify', rep.receipt!.path]);
  assert.is(v.code, 0, v.stderr);
  assert.match(v.stdout, /rolled back: 3 item\(s\), 3 statement\(s\)/);
});

test('demo --cancel-at a step after the commit, or no step at all, is a usage error (2)', async () => {
  for (const step of ['S16', 'commit', 'S99']) {
    const r = await runValmove(['demo', '--cancel-at', step, '--data', join(dir, `bad-${step}`)]);
    assert.is(r.code, 2, `${step}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`--cancel-at ${step}: .*one of S3, `));
  }
});

test.run();
