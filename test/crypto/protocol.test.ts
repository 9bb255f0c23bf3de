/** The protocol's own crypto (src/crypto): what each primitive promises, and that it refuses what it must. */
import { inspect } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ChannelInitiator,
  ChannelResponder,
  CryptoError,
  chipProof,
  chipSessionCiphers,
  deriveChipKey,
  deriveMainKey,
  deriveSessionKeys,
  encodeFields,
  fromB64,
  generateIdentity,
  hashPassword,
  issueGrant,
  keyCheckValue,
  openGrant,
  openSealed,
  randomSecret,
  samProof,
  samSessionCiphers,
  sealTo,
  seededRng,
  Secret,
  signReceipt,
  toB64,
  toHex,
  utf8,
  verifyGrant,
  verifyPassword,
  verifyProof,
  verifyReceipt,
  type GrantBinding,
  type SessionBinding,
} from '../../src/crypto/index.ts';

const rng = seededRng('crypto-tests');
const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CryptoError);
    return (e as CryptoError).code;
  }
  return 'NO ERROR';
};

test('encodeFields is unambiguous', () => {
  assert.is.not(toHex(encodeFields('ab', 'c')), toHex(encodeFields('a', 'bc')));
  assert.is.not(toHex(encodeFields('1')), toHex(encodeFields(1)));
  assert.is.not(toHex(encodeFields(utf8('x'))), toHex(encodeFields('x')));
});

test('base64url decoding is strict', () => {
  assert.equal(fromB64(toB64(new Uint8Array([1, 2, 3, 250]))), new Uint8Array([1, 2, 3, 250]));
  assert.is(codeOf(() => fromB64('ab+c')), 'BAD_ENCODING');
  assert.is(codeOf(() => fromB64('abc=')), 'BAD_ENCODING');
  assert.is(codeOf(() => fromB64('a')), 'BAD_ENCODING');
});

test('a Secret can not be serialised, printed or inspected', () => {
  const s = Secret.of(new Uint8Array([1, 2, 3]));
  assert.throws(() => JSON.stringify({ s }), /cannot be serialised/);
  assert.is(String(s), '[Secret]');
  assert.is(inspect({ s }), '{ s: Secret(<redacted>) }');
});

test('the seeded generator replays byte for byte', () => {
  assert.equal(seededRng(42).bytes(64), seededRng(42).bytes(64));
  assert.not.equal(seededRng(42).bytes(16), seededRng(43).bytes(16));
});

test('keys are diversified per chip and per (chip, area)', () => {
  const master = randomSecret(rng);
  assert.not.ok(deriveChipKey(master, 'A').equals(deriveChipKey(master, 'B')));
  assert.not.ok(deriveMainKey(master, 'A', 'x').equals(deriveMainKey(master, 'A', 'y')));
  assert.ok(deriveMainKey(master, 'A', 'x').equals(deriveMainKey(master, 'A', 'x')));
  const k = deriveMainKey(master, 'A', 'x');
  assert.is.not(toHex(keyCheckValue(k, 'A', 'x')), toHex(keyCheckValue(k, 'B', 'x')));
});

const binding: SessionBinding = { serial: 'S', area: 'emoney', mig: 'm1', purpose: 'upload' };

function openSession(key = randomSecret(rng)) {
  const rSam = rng.bytes(16);
  const rChip = rng.bytes(16);
  const keys = deriveSessionKeys(key, binding, rSam, rChip);
  return { key, rSam, rChip, sam: samSessionCiphers(keys), chip: chipSessionCiphers(keys) };
}

test('mutual authentication: proofs verify with the same key and fail with another slot\'s key', () => {
  const { key, rSam, rChip } = openSession();
  const other = randomSecret(rng);
  assert.ok(verifyProof(chipProof(key, binding, rSam, rChip), chipProof(key, binding, rSam, rChip)));
  assert.not.ok(verifyProof(chipProof(key, binding, rSam, rChip), chipProof(other, binding, rSam, rChip)));
  assert.not.ok(verifyProof(samProof(key, binding, rSam, rChip), chipProof(key, binding, rSam, rChip)), 'the two directions differ');
  assert.not.ok(verifyProof(chipProof(key, binding, rSam, rChip), chipProof(key, { ...binding, serial: 'T' }, rSam, rChip)));
});

test('session keys depend on the binding: another chip, area, migration or purpose gives other keys', () => {
  const key = randomSecret(rng);
  const r1 = rng.bytes(16);
  const r2 = rng.bytes(16);
  const base = deriveSessionKeys(key, binding, r1, r2).samToChip;
  for (const change of [{ serial: 'T' }, { area: 'other' }, { mig: 'm2' }, { purpose: 'download' as const }]) {
    assert.not.ok(base.equals(deriveSessionKeys(key, { ...binding, ...change }, r1, r2).samToChip), JSON.stringify(change));
  }
});

test('session frames: round trip in both directions', () => {
  const s = openSession();
  for (let i = 0; i < 3; i++) {
    assert.equal(s.chip.opener.open(s.sam.sealer.seal(utf8(`cmd ${i}`))), utf8(`cmd ${i}`));
    assert.equal(s.sam.opener.open(s.chip.sealer.seal(utf8(`resp ${i}`))), utf8(`resp ${i}`));
  }
});

test('session frames: replay, reorder and tamper are refused, and a refusal does not advance the counter', () => {
  const s = openSession();
  const f0 = s.sam.sealer.seal(utf8('a'));
  const f1 = s.sam.sealer.seal(utf8('b'));
  const f2 = s.sam.sealer.seal(utf8('c'));
  assert.is(codeOf(() => s.chip.opener.open(f1)), 'FRAME_REORDER');
  const bad = new Uint8Array(f0);
  bad[bad.length - 1]! ^= 1;
  assert.is(codeOf(() => s.chip.opener.open(bad)), 'FRAME_TAMPERED');
  assert.equal(s.chip.opener.open(f0), utf8('a'), 'the good frame still opens after the refusals');
  assert.is(codeOf(() => s.chip.opener.open(f0)), 'FRAME_REPLAY');
  assert.equal(s.chip.opener.open(f1), utf8('b'));
  assert.equal(s.chip.opener.open(f2), utf8('c'));
  const t = openSession();
  assert.is(codeOf(() => t.chip.opener.open(t.chip.sealer.seal(utf8('x')))), 'FRAME_TAMPERED', 'a frame of the other direction does not open');
});

const admin = generateIdentity(rng);
const msam = generateIdentity(rng);
const grantBinding: GrantBinding = {
  mig: 'm1',
  item: 0,
  area: 'emoney',
  serial: 'SRC',
  purpose: 'upload',
  provider: 'emoney',
  recipient: 'migration-sam/emoney',
  expiresAt: 10_000,
};

test('grants: the temp key opens only for the recipient, only as bound, only before expiry', () => {
  const temp = randomSecret(rng);
  const g = issueGrant(grantBinding, temp, msam.boxPublic, admin, rng);
  assert.equal(verifyGrant(g, admin.signPublic, { mig: 'm1', purpose: 'upload' }, 9_999), grantBinding);
  assert.ok(openGrant(g, msam).equals(temp));
  assert.is(codeOf(() => openGrant(g, generateIdentity(rng))), 'GRANT_INVALID');
  assert.is(codeOf(() => verifyGrant(g, admin.signPublic, {}, 10_001)), 'GRANT_EXPIRED');
  assert.is(codeOf(() => verifyGrant(g, admin.signPublic, { purpose: 'download' }, 1)), 'GRANT_BINDING');
  assert.is(codeOf(() => verifyGrant(g, admin.signPublic, { serial: 'OTHER' }, 1)), 'GRANT_BINDING');
  assert.is(codeOf(() => verifyGrant({ ...g, serial: 'DST' }, admin.signPublic, {}, 1)), 'GRANT_INVALID', 'a rebound grant fails its signature');
  assert.is(codeOf(() => verifyGrant(g, msam.signPublic, {}, 1)), 'GRANT_INVALID', 'signed by the admin SAM only');
});

test('receipts: signed by the migration SAM, any change breaks them', () => {
  const r = signReceipt({ mig: 'm1', item: 0, serial: 'DST', area: 'emoney', provider: 'emoney', kcv: 'AAAA' }, msam);
  assert.is(verifyReceipt(r, msam.signPublic).serial, 'DST');
  assert.is(codeOf(() => verifyReceipt({ ...r, kcv: 'BBBB' }, msam.signPublic)), 'RECEIPT_INVALID');
  assert.is(codeOf(() => verifyReceipt(r, admin.signPublic)), 'RECEIPT_INVALID');
});

test('sealed boxes open only with the recipient key, the same purpose and the same binding', () => {
  const box = sealTo(msam.boxPublic, utf8('main key'), 'purpose-a', utf8('S/emoney'), rng);
  assert.equal(openSealed(msam, box.ephPub, box.sealed, 'purpose-a', utf8('S/emoney')), utf8('main key'));
  assert.is(codeOf(() => openSealed(msam, box.ephPub, box.sealed, 'purpose-b', utf8('S/emoney'))), 'SEAL_INVALID');
  assert.is(codeOf(() => openSealed(msam, box.ephPub, box.sealed, 'purpose-a', utf8('T/emoney'))), 'SEAL_INVALID');
  assert.is(codeOf(() => openSealed(admin, box.ephPub, box.sealed, 'purpose-a', utf8('S/emoney'))), 'SEAL_INVALID');
});

function handshake(opts: { mutual: boolean; trusted?: boolean; initiator?: ReturnType<typeof generateIdentity>; responderKey?: Uint8Array }) {
  const server = opts.initiator ?? generateIdentity(rng);
  const sam = generateIdentity(rng);
  const trusted = toB64(server.signPublic);
  const i = new ChannelInitiator({ name: 'server', identity: opts.mutual ? server : undefined, peerSignPublic: opts.responderKey ?? sam.signPublic, rng });
  const r = new ChannelResponder({ name: 'sam', identity: sam, trust: (k) => (opts.trusted === false ? false : !opts.mutual || k === trusted), requireMutual: opts.mutual, rng });
  const accept = r.hello(i.hello());
  const { finish, cipher: ic } = i.accept(accept);
  const rc = r.finish(finish);
  return { ic, rc, r, server };
}

test('channel: mutual handshake, both directions, initiator identified', () => {
  const { ic, rc, r, server } = handshake({ mutual: true });
  assert.equal(rc.open(ic.seal(utf8('hello sam'))), utf8('hello sam'));
  assert.equal(ic.open(rc.seal(utf8('hello server'))), utf8('hello server'));
  assert.is(r.peerId, toB64(server.signPublic));
});

test('channel: an anonymous initiator (a terminal) gets a server-authenticated channel', () => {
  const { ic, rc, r } = handshake({ mutual: false });
  assert.equal(rc.open(ic.seal(utf8('login'))), utf8('login'));
  assert.is(r.peerId, undefined);
});

test('channel: an untrusted initiator and a wrong responder key are refused', () => {
  assert.is(codeOf(() => handshake({ mutual: true, trusted: false })), 'UNTRUSTED_PEER');
  assert.is(codeOf(() => handshake({ mutual: true, responderKey: generateIdentity(rng).signPublic })), 'UNTRUSTED_PEER');
});

test('channel: loss and reordering are tolerated, replay and tampering are not', () => {
  const { ic, rc } = handshake({ mutual: true });
  const m = [0, 1, 2, 3].map((i) => ic.seal(utf8(`m${i}`)));
  assert.equal(rc.open(m[2]!), utf8('m2'));
  assert.equal(rc.open(m[0]!), utf8('m0'));
  assert.is(codeOf(() => rc.open(m[2]!)), 'CHANNEL_REPLAY');
  const bad = new Uint8Array(m[3]!);
  bad[10]! ^= 1;
  assert.is(codeOf(() => rc.open(bad)), 'CHANNEL_TAMPERED');
  assert.equal(rc.open(m[3]!), utf8('m3'), 'a failed open changes nothing');
});

test('passwords: scrypt records verify the right password only', () => {
  const rec = hashPassword('correct horse', rng, { N: 2 ** 10, r: 8, p: 1 });
  assert.ok(verifyPassword('correct horse', rec));
  assert.not.ok(verifyPassword('correct horsf', rec));
  assert.not.ok(verifyPassword('correct horse', { ...rec, N: 2 ** 30 }), 'a forged cost is refused, not computed');
});

test.run();
