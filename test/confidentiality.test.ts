/**
 * protocol.md §4.4: nothing the server or a terminal stores, logs or relays
 * contains a key, a password or a plaintext value item. Every envelope they
 * handled (as the encoded bytes, before channel encryption), their LMDB
 * files and every log line are searched for every secret the run used.
 */
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeValue } from '../src/actors/value.ts';
import { deriveChipKey, deriveMainKey, fromHex, importIdentity, utf8, type Secret } from '../src/crypto/index.ts';
import { PartyStore } from '../src/store/party.store.ts';
import { filesUnder, forms, scan, type Needle } from './helpers/secrets.ts';
import { buildWorld } from './helpers/world.ts';

test('no key, password or plaintext value item in anything the server or a terminal handled, stored or logged', async () => {
  const world = await buildWorld({ items: 3, record: true });
  const needles: Needle[] = [];
  try {
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
    await world.newPhone.normalUse(world.providers[0]!, 'pay', world.providers[0]!, 7);

    const keyDb = (store: PartyStore) => store.db<{ kind: string; value: unknown }>('keys');
    const secretOf = (party: { store: PartyStore }, name: string) => (keyDb(party.store).get(name)?.value as Uint8Array);
    const identitySecrets = (party: { id: string; store: PartyStore }) => {
      const id = importIdentity(keyDb(party.store).get('identity')!.value as never);
      needles.push({ name: `${party.id} signing key`, bytes: id.signSecret.reveal() }, { name: `${party.id} box key`, bytes: id.boxSecret.reveal() });
    };
    const s = world.system;
    const access = (p: object) => p as unknown as { id: string; store: PartyStore };
    const issuer = secretOf(access(s.adminSam), 'issuer-master');
    needles.push({ name: 'password', bytes: utf8(world.password) }, { name: 'issuer master', bytes: issuer });
    // The server's own channel identity is the one secret it must hold (as a web server holds its TLS
    // key); every other party's identity, and every protocol key, must never reach it.
    identitySecrets(access(s.adminSam));
    for (const [p, prov] of s.providers) {
      const master = secretOf(access(prov.normalSam), 'provider-master');
      needles.push({ name: `${p} provider master`, bytes: master });
      identitySecrets(access(prov.normalSam));
      identitySecrets(access(prov.migrationSam));
      for (const chip of [world.source, world.destination]) {
        const { Secret } = await import('../src/crypto/index.ts');
        needles.push({ name: `K_main ${chip.serial}/${p}`, bytes: deriveMainKey(Secret.of(master), chip.serial, p).reveal() });
      }
    }
    const { Secret } = await import('../src/crypto/index.ts');
    for (const chip of [world.source, world.destination]) {
      needles.push({ name: `K_chip ${chip.serial}`, bytes: deriveChipKey(Secret.of(issuer) as Secret, chip.serial).reveal() });
    }
    for (const { value } of s.adminSam.records.tempKeys.getRange()) {
      needles.push({ name: `temp key ${value.mig}/${value.item}`, bytes: value.key });
    }
    for (const v of world.values) {
      needles.push({ name: `value item ${v.kind}`, bytes: encodeValue(v) }, { name: `marker of ${v.kind}`, bytes: fromHex(v.ref) });
      needles.push({ name: `marker of ${v.kind} (text)`, bytes: utf8(v.ref) });
    }
    assert.ok(needles.filter((n) => n.name.startsWith('temp key')).length === 3, 'the run used one temp key per item');

    const relayed = world.envelopes.filter((e) => e.party === 'server' || e.party.startsWith('terminal/'));
    assert.ok(relayed.length > 200, `recorded ${relayed.length} envelopes handled by the server and terminals`);
    const haystacks = [
      ...relayed.map((e, i) => ({ where: `${e.party} ${e.direction} ${e.peer} #${i}`, bytes: e.bytes })),
      ...filesUnder(join(world.dir, 'server')),
      ...filesUnder(join(world.dir, 'terminal-old')),
      ...filesUnder(join(world.dir, 'terminal-new')),
      ...world.logLines.map((l, i) => ({ where: `log line ${i}`, bytes: utf8(l) })),
    ];
    const findings = scan(haystacks, needles);
    assert.equal(findings, [], `secrets found: ${JSON.stringify(findings.slice(0, 5))}`);
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
});

test.run();
