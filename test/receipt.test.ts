/**
 * The user's receipt and the providers' audit records (issue 22, point 4;
 * protocol.md §3, "The receipt"): a completed migration gives the new phone
 * one receipt that verifies against the deployment's public keys, with each
 * item's amount; it holds no secret; the server only ever held the statements
 * sealed; each provider's migration SAM keeps a bounded audit record of what
 * moved out and in.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { verifyReceiptFile } from '../src/cli/receipt.verify.ts';
import { fromB64, generateIdentity, systemRng, utf8 } from '../src/crypto/index.ts';
import { signStatement } from '../src/crypto/statement.ts';
import { AUDIT_RECORDS_MAX, MigrationSamRecords } from '../src/store/migrationSam.store.ts';
import { PartyStore } from '../src/store/party.store.ts';
import { describeFindings, envelopeFindings, filesUnder, scan, systemNeedles } from './helpers/secrets.ts';
import { buildWorld } from './helpers/world.ts';

test('a completed migration: the receipt verifies, states each amount, holds no secret; the server held it sealed only', async () => {
  const world = await buildWorld({ items: 3, record: true });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
    const receipt = world.newPhone.receiptOf(done)!;
    assert.ok(receipt, 'the result carries a receipt');
    assert.equal(verifyReceiptFile(receipt, world.system.receiptKeys()), {
      ok: true,
      summary: `migration ${out.mig} completed: 3 item(s), 3 statement(s), every signature checks`,
    });
    assert.is(receipt.outcome.decision, 'committed');
    assert.is(receipt.outcome.destination, world.destination.serial);
    for (const [i, v] of world.values.entries()) {
      const s = receipt.statements.find((x) => x.item === i)!;
      assert.is(s.direction, 'in');
      assert.is(s.serial, world.destination.serial);
      assert.is(s.value.kind, v.kind);
      if (v.kind !== 'ticket') assert.is(s.value.balance, v.balance, `item ${i}: the amount moved`);
    }
    // No secret: no key, password, value encoding or marker, in any form.
    const needles = systemNeedles(world.system, { users: [{ user: world.user, password: world.password }], values: world.values });
    const findings = scan([{ where: 'receipt', bytes: utf8(JSON.stringify(receipt)) }], needles);
    assert.equal(findings, [], describeFindings(findings, needles));
    // The server relayed and kept the statements sealed: no statement's signature (inside the box) reaches it in clear.
    const sigs = receipt.statements.map((s) => ({ name: `statement ${s.item} in clear`, bytes: fromB64(s.sig) }));
    const relayed = world.envelopes.filter((e) => e.party === 'server');
    const atServer = [
      ...envelopeFindings(
        relayed.map((e, i) => ({ where: `server ${e.direction} ${e.peer} #${i}`, bytes: e.bytes })),
        sigs,
      ),
      ...scan(filesUnder(join(world.dir, 'server')), sigs),
    ];
    assert.equal(atServer, [], describeFindings(atServer, sigs));
  } finally {
    await world.cleanup();
  }
});

test("each provider's audit record holds what moved out of the source and into the destination, and no secret", async () => {
  const world = await buildWorld({ items: 2 });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    await world.newPhone.migrateIn({ mig: out.mig });
    const needles = systemNeedles(world.system, { users: [{ user: world.user, password: world.password }], values: world.values });
    for (const [i, p] of world.providers.entries()) {
      const audit = world.system.providers
        .get(p)!
        .migrationSam.records.auditRecords()
        .filter((s) => s.mig === out.mig);
      assert.equal(
        audit.map((s) => [s.item, s.direction, s.serial]),
        [
          [i, 'out', world.source.serial],
          [i, 'in', world.destination.serial],
        ],
      );
      const v = world.values[i]!;
      if (v.kind !== 'ticket') assert.ok(audit.every((s) => s.value.balance === v.balance));
      const findings = scan([{ where: `audit of ${p}`, bytes: utf8(JSON.stringify(audit)) }], needles);
      assert.equal(findings, [], describeFindings(findings, needles));
    }
  } finally {
    await world.cleanup();
  }
});

test('the audit record is bounded: past AUDIT_RECORDS_MAX the oldest statement goes first', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-audit-'));
  const store = PartyStore.open(dir);
  try {
    const records = new MigrationSamRecords(store);
    const signer = generateIdentity(systemRng);
    const statement = (n: number) =>
      signStatement(
        { mig: `m-${n}`, item: 0, provider: 'p', area: 'p', serial: 'S', direction: 'out', value: { kind: 'emoney', balance: n }, at: 1000 + n },
        signer,
      );
    await store.commit(() => {
      for (let n = 0; n < AUDIT_RECORDS_MAX + 5; n++) records.keepAudit(statement(n));
    });
    const kept = records.auditRecords();
    assert.is(kept.length, AUDIT_RECORDS_MAX);
    assert.is(kept[0]!.mig, 'm-5', 'the five oldest went first');
    assert.is(kept.at(-1)!.mig, `m-${AUDIT_RECORDS_MAX + 4}`);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a rollback: the source phone gets a receipt of the aborted decision with what left its chip', async () => {
  const world = await buildWorld({ items: 2 });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    assert.is((await world.oldPhone.cancel(out.mig)).decision, 'aborted');
    const back = await world.oldPhone.migrateOut();
    assert.is(back.outcome, 'rolledBack');
    const receipt = world.oldPhone.receiptOf(back)!;
    assert.equal(verifyReceiptFile(receipt, world.system.receiptKeys()), {
      ok: true,
      summary: `migration ${out.mig} rolled back: 2 item(s), 2 statement(s), every signature checks`,
    });
    assert.is(receipt.outcome.decision, 'aborted');
    assert.ok(receipt.statements.every((s) => s.direction === 'out' && s.serial === world.source.serial));
  } finally {
    await world.cleanup();
  }
});

test.run();
