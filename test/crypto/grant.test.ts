/** grant.ts and box.ts: temp-key grants (admin SAM -> migration SAM) and download receipts (protocol.md §2–3). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  fromB64,
  generateIdentity,
  grantBindingBytes,
  issueGrant,
  issueGrants,
  openGrant,
  openSealed,
  randomSecret,
  sealTo,
  seededRng,
  signReceipt,
  toB64,
  toHex,
  utf8,
  VerifiedSets,
  verifyGrant,
  verifyReceipt,
  type Grant,
  type GrantBinding,
  type ReceiptBody,
} from '../../src/crypto/index.ts';
import { diff, snapshot, totals } from '../../src/metrics/counters.ts';
import { codeOf, errorOf, leaks, grantFixture } from './helpers.ts';

const { rng, admin, msam, binding } = grantFixture('grant-tests', 'upload');

test('a grant verifies under the admin SAM key, returns its binding, and opens to the temp key for its recipient', () => {
  const temp = randomSecret(rng);
  const g = issueGrant(binding, temp, msam.boxPublic, admin, rng);
  assert.equal(verifyGrant(g, admin.signPublic, { mig: 'm1', item: 0, purpose: 'upload', serial: 'SRC-1' }, 9_999), binding);
  assert.ok(openGrant(g, msam).equals(temp));
});

test('a grant is JSON-safe and carries no temp key in the clear (raw, hex or base64url)', () => {
  const temp = randomSecret(rng);
  const g = issueGrant(binding, temp, msam.boxPublic, admin, rng);
  const text = JSON.stringify(g);
  assert.not.ok(leaks(text, temp.reveal()));
  const back = JSON.parse(text) as Grant;
  assert.equal(verifyGrant(back, admin.signPublic, {}, 0), binding);
  assert.ok(openGrant(back, msam).equals(temp));
});

test('issuing draws only from the Rng: the same seed gives a byte-identical grant', () => {
  const make = (): Grant => {
    const r = seededRng('grant-replay');
    const a = generateIdentity(r);
    const m = generateIdentity(r);
    return issueGrant(binding, randomSecret(r), m.boxPublic, a, r);
  };
  assert.equal(make(), make());
});

test('grants issued together: one signature over their digests; each verifies and opens for its own recipient only; a set checked once is not verified again', () => {
  const msam2 = generateIdentity(rng);
  const keys = [randomSecret(rng), randomSecret(rng), randomSecret(rng)];
  const orders = keys.map((tempKey, item) => ({
    binding: { ...binding, item, recipient: item === 1 ? 'migration-sam/transit' : binding.recipient },
    tempKey,
    recipientBoxPublic: item === 1 ? msam2.boxPublic : msam.boxPublic,
  }));
  const before = snapshot();
  const set = issueGrants(orders, admin, rng);
  const issued = totals(diff(snapshot(), before).crypto);
  assert.is(issued['ed25519.sign']?.n, 1, 'one signature for three grants');
  assert.is(new Set(set.map((g) => g.sig)).size, 1);
  assert.equal(set[0]!.set, set[2]!.set);
  const checking = snapshot();
  const seen = new VerifiedSets();
  set.forEach((g, i) => {
    assert.equal(verifyGrant(g, admin.signPublic, { item: i }, 0, seen), orders[i]!.binding);
    assert.equal(openGrant(g, i === 1 ? msam2 : msam).reveal(), keys[i]!.reveal());
  });
  assert.is(totals(diff(snapshot(), checking).crypto)['ed25519.verify']?.n, 1, "the set's signature verified once for its three grants");
  const alone = snapshot();
  verifyGrant(set[0]!, admin.signPublic, {}, 0);
  assert.is(totals(diff(snapshot(), alone).crypto)['ed25519.verify']?.n, 1, 'a verifier that keeps no record checks the signature');
  assert.is(
    codeOf(() => openGrant(set[1]!, msam)),
    'GRANT_INVALID',
    "another recipient's grant does not open",
  );
  // A grant moved into another set, or given another grant's place, no longer verifies.
  assert.is(
    codeOf(() => verifyGrant({ ...set[0]!, sealed: set[2]!.sealed }, admin.signPublic, {}, 0)),
    'GRANT_INVALID',
  );
});

test('a tampered grant is GRANT_INVALID: every binding field, the sealed key, the ephemeral key, the set and the signature are covered', () => {
  const g = issueGrant(binding, randomSecret(rng), msam.boxPublic, admin, rng);
  const other = issueGrant(binding, randomSecret(rng), msam.boxPublic, admin, rng);
  const tampered: Array<Partial<Grant>> = [
    { mig: 'm2' },
    { item: 1 },
    { area: 'transit' },
    { serial: 'DST-1' },
    { purpose: 'download' },
    { provider: 'transit' },
    { recipient: 'migration-sam/transit' },
    { expiresAt: 99_999 },
    { sealed: other.sealed },
    { ephPub: other.ephPub },
    { sig: other.sig },
    { sig: toB64(new Uint8Array(64)) },
    { set: other.set, sig: other.sig },
    { set: [...g.set, other.set[0]!] },
    { set: [] },
  ];
  for (const change of tampered) {
    assert.is(
      codeOf(() => verifyGrant({ ...g, ...change }, admin.signPublic, {}, 0)),
      'GRANT_INVALID',
      JSON.stringify(change),
    );
  }
  assert.is(
    codeOf(() => verifyGrant(g, msam.signPublic, {}, 0)),
    'GRANT_INVALID',
    'signed by the admin SAM only',
  );
  assert.is(
    codeOf(() => openGrant({ ...g, serial: 'DST-1' }, msam)),
    'GRANT_INVALID',
    'the binding is the AEAD associated data too',
  );
});

test('a malformed grant is GRANT_INVALID, not a TypeError', () => {
  const g = issueGrant(binding, randomSecret(rng), msam.boxPublic, admin, rng);
  const malformed: unknown[] = [
    null,
    {},
    { ...g, item: '0' },
    { ...g, item: 1.5 },
    { ...g, expiresAt: 'never' },
    { ...g, purpose: 'admin' },
    { ...g, serial: 'S'.repeat(10_000) },
    { ...g, sealed: 'S'.repeat(10_000) },
    { ...g, ephPub: 42 },
  ];
  for (const m of malformed) {
    assert.is(
      codeOf(() => verifyGrant(m as Grant, admin.signPublic, {}, 0)),
      'GRANT_INVALID',
      JSON.stringify(m)?.slice(0, 60),
    );
    assert.is(
      codeOf(() => openGrant(m as Grant, msam)),
      'GRANT_INVALID',
      JSON.stringify(m)?.slice(0, 60),
    );
  }
  // openGrant only decrypts; the signature is verifyGrant's job
  for (const sig of ['not base64!', undefined])
    assert.is(
      codeOf(() => verifyGrant({ ...g, sig } as Grant, admin.signPublic, {}, 0)),
      'GRANT_INVALID',
    );
});

test('an expired grant is GRANT_EXPIRED; it is still valid at exactly expiresAt', () => {
  const g = issueGrant(binding, randomSecret(rng), msam.boxPublic, admin, rng);
  assert.ok(verifyGrant(g, admin.signPublic, {}, 10_000));
  assert.is(
    codeOf(() => verifyGrant(g, admin.signPublic, {}, 10_001)),
    'GRANT_EXPIRED',
  );
});

test('a binding mismatch is GRANT_BINDING, naming the field but not the values', () => {
  const g = issueGrant(binding, randomSecret(rng), msam.boxPublic, admin, rng);
  const expectations: Array<Partial<GrantBinding>> = [
    { mig: 'm2' },
    { item: 3 },
    { area: 'transit' },
    { serial: 'OTHER-9' },
    { purpose: 'download' },
    { provider: 'transit' },
    { recipient: 'migration-sam/transit' },
    { expiresAt: 1 },
  ];
  for (const expect of expectations) {
    const field = Object.keys(expect)[0]!;
    const e = errorOf(() => verifyGrant(g, admin.signPublic, expect, 0));
    assert.is(e.code, 'GRANT_BINDING');
    assert.is(e.message, `the grant is bound to another ${field}`, 'the field, and neither the expected nor the bound value');
  }
});

test('only the named recipient can open a grant: another migration SAM gets GRANT_INVALID', () => {
  const g = issueGrant(binding, randomSecret(rng), msam.boxPublic, admin, rng);
  assert.is(
    codeOf(() => openGrant(g, generateIdentity(rng))),
    'GRANT_INVALID',
  );
  assert.is(
    codeOf(() => openGrant(g, admin)),
    'GRANT_INVALID',
  );
});

test('issuing checks its inputs: a short temp key or recipient key is BAD_KEY, a malformed binding BAD_PARAMS', () => {
  assert.is(
    codeOf(() => issueGrant(binding, randomSecret(rng, 16), msam.boxPublic, admin, rng)),
    'BAD_KEY',
  );
  assert.is(
    codeOf(() => issueGrant(binding, randomSecret(rng), msam.boxPublic.subarray(1), admin, rng)),
    'BAD_KEY',
  );
  assert.is(
    codeOf(() => issueGrant(binding, randomSecret(rng), new Uint8Array(32), admin, rng)),
    'BAD_KEY',
    'a low-order point',
  );
  assert.is(
    codeOf(() => issueGrant({ ...binding, item: -1 }, randomSecret(rng), msam.boxPublic, admin, rng)),
    'BAD_PARAMS',
  );
});

test('grantBindingBytes changes with every field', () => {
  const variants: GrantBinding[] = [
    binding,
    { ...binding, mig: 'm2' },
    { ...binding, item: 1 },
    { ...binding, area: 'x' },
    { ...binding, serial: 'x' },
    { ...binding, purpose: 'download' },
    { ...binding, provider: 'x' },
    { ...binding, recipient: 'x' },
    { ...binding, expiresAt: 1 },
  ];
  assert.is(new Set(variants.map((v) => toHex(grantBindingBytes(v)))).size, variants.length);
});

const receipt: ReceiptBody = { mig: 'm1', item: 0, serial: 'DST-1', area: 'emoney', provider: 'emoney', kcv: 'q83vASNFZ4k' };

test('a receipt verifies under its migration SAM key and returns exactly its body', () => {
  const r = signReceipt(receipt, msam);
  assert.equal(verifyReceipt(JSON.parse(JSON.stringify(r)), msam.signPublic), receipt);
});

test('any change to a receipt, or another signer, is RECEIPT_INVALID', () => {
  const r = signReceipt(receipt, msam);
  for (const change of [{ mig: 'm2' }, { item: 1 }, { serial: 'SRC-1' }, { area: 'x' }, { provider: 'x' }, { kcv: 'AAAAAAAAAAA' }]) {
    assert.is(
      codeOf(() => verifyReceipt({ ...r, ...change }, msam.signPublic)),
      'RECEIPT_INVALID',
      JSON.stringify(change),
    );
  }
  assert.is(
    codeOf(() => verifyReceipt(r, admin.signPublic)),
    'RECEIPT_INVALID',
  );
  assert.is(
    codeOf(() => verifyReceipt(signReceipt(receipt, generateIdentity(rng)), msam.signPublic)),
    'RECEIPT_INVALID',
  );
  for (const bad of [null, {}, { ...r, item: '0' }, { ...r, sig: '***' }]) {
    assert.is(
      codeOf(() => verifyReceipt(bad as never, msam.signPublic)),
      'RECEIPT_INVALID',
    );
  }
});

test('sealed boxes open only with the recipient key, the same purpose and the same binding', () => {
  const box = sealTo(msam.boxPublic, utf8('main key'), 'purpose-a', utf8('S/emoney'), rng);
  assert.equal(openSealed(msam, box.ephPub, box.sealed, 'purpose-a', utf8('S/emoney')), utf8('main key'));
  assert.is(
    codeOf(() => openSealed(msam, box.ephPub, box.sealed, 'purpose-b', utf8('S/emoney'))),
    'SEAL_INVALID',
  );
  assert.is(
    codeOf(() => openSealed(msam, box.ephPub, box.sealed, 'purpose-a', utf8('T/emoney'))),
    'SEAL_INVALID',
  );
  assert.is(
    codeOf(() => openSealed(admin, box.ephPub, box.sealed, 'purpose-a', utf8('S/emoney'))),
    'SEAL_INVALID',
  );
  assert.is(fromB64(box.ephPub).length, 32);
});

test.run();
