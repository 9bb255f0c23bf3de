/**
 * protocol.md §4.4: nothing the server or a terminal stores, logs or relays
 * contains a key, a password or a plaintext value item. Every envelope they
 * handled (as the encoded bytes, before channel encryption), their LMDB
 * files and every log line are searched for every secret the run used.
 */
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { utf8 } from '../src/crypto/index.ts';
import { describeFindings, envelopeFindings, filesUnder, forms, logHaystacks, notOwnedBy, scan, systemNeedles } from './helpers/secrets.ts';
import { buildWorld } from './helpers/world.ts';

test('no key, password or plaintext value item in anything the server or a terminal handled, stored or logged', async () => {
  const world = await buildWorld({ items: 3, record: true });
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
    await world.newPhone.normalUse(world.providers[0]!, 'pay', world.providers[0]!, 7);

    // The server's own channel identity and password verifiers are the secrets it must hold (as a web
    // server holds its TLS key); every other party's identity, and every protocol key, must never reach it.
    const needles = systemNeedles(world.system, { users: [{ user: world.user, password: world.password }], values: world.values });
    assert.ok(needles.filter((n) => n.name.startsWith('temp key')).length === 3, 'the run used one temp key per item');

    const relayed = world.envelopes.filter((e) => e.party === 'server' || e.party.startsWith('terminal/'));
    assert.ok(relayed.length > 200, `recorded ${relayed.length} envelopes handled by the server and terminals`);
    const dirs = ['server', 'terminal-old', 'terminal-new'];
    const findings = [
      // The login proof travels to the server in login.proof by design (it is checked against the verifier).
      ...envelopeFindings(
        relayed.map((e, i) => ({ where: `${e.party} ${e.direction} ${e.peer} #${i}`, bytes: e.bytes })),
        needles,
      ),
      ...dirs.flatMap((d) => {
        const party = d === 'server' ? 'server' : `terminal/${d.slice('terminal-'.length)}`;
        return scan(
          filesUnder(join(world.dir, d)).map((h) => ({ ...h, where: `${party} store file ${h.where.slice(join(world.dir, d).length + 1)}` })),
          notOwnedBy(needles, party),
        );
      }),
      ...scan(logHaystacks(world.logLines), needles),
    ];
    assert.ok(needles.some((n) => n.carriedBy) && needles.some((n) => n.owners?.includes('server')), 'the login proof and the verifier are among the needles');
    assert.equal(findings, [], describeFindings(findings, needles));
  } finally {
    await world.cleanup();
  }
});

test('the scanner finds a secret in every form it searches (it can fail)', () => {
  const secret = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff);
  const needle = { name: 'k', bytes: secret };
  for (const f of forms(needle)) {
    const hay = new Uint8Array([...utf8('{"x":"'), ...f.bytes, ...utf8('"}')]);
    assert.ok(scan([{ where: 'h', bytes: hay }], [needle]).length > 0, `finds the ${f.form} form`);
  }
  // base64 of the secret embedded at any offset inside a larger binary field is found too
  for (let pad = 0; pad < 3; pad++) {
    const field = Buffer.concat([Buffer.alloc(pad + 5, 1), Buffer.from(secret), Buffer.alloc(4, 2)]).toString('base64url');
    assert.ok(scan([{ where: 'h', bytes: utf8(field) }], [needle]).length > 0, `finds base64url at alignment ${pad}`);
  }
  assert.equal(scan([{ where: 'h', bytes: utf8('nothing here') }], [needle]), []);
  // Among many haystacks the hit is named by its own; bytes that only meet across two haystacks are no hit.
  const hex = Buffer.from(secret).toString('hex');
  const many = [
    { where: 'a', bytes: utf8('x') },
    { where: 'b', bytes: new Uint8Array() },
    { where: 'c', bytes: utf8(`..${hex}..`) },
    { where: 'd', bytes: utf8(hex.slice(0, 30)) },
    { where: 'e', bytes: utf8(hex.slice(30)) },
  ];
  assert.equal(scan(many, [needle]), [{ needle: 'k', form: 'hex', where: 'c' }]);
});

test.run();
