/**
 * Edges of grant.ts that grant.test.ts leaves open: the exact limits of a
 * binding's names, undefined where a grant or receipt should be, a sealed key
 * of the wrong size, the messages each refusal gives (they reach the
 * protocol's error replies, GRANT_REFUSED "<code>: <message>"), and known
 * answers that pin the wire format's domain strings. Written to kill mutants
 * `npm run mutate` found surviving (docs/mutation.md).
 */
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  generateIdentity,
  grantBindingBytes,
  issueGrant,
  openGrant,
  randomSecret,
  sealTo,
  seededRng,
  signReceipt,
  toHex,
  verifyGrant,
  verifyReceipt,
  GRANT_FIELD_CHARS_MAX,
  type Grant,
  type ReceiptBody,
} from '../../src/crypto/index.ts';
import { codeOf, errorOf, grantFixture } from './helpers.ts';

const { rng, admin, msam, binding } = grantFixture('grant-edge-tests', 'download');
const body: ReceiptBody = { mig: 'm1', item: 2, serial: 'DST-1', area: 'emoney', provider: 'emoney', kcv: 'q83vASNFZ4k' };
const sha = (x: unknown): string => createHash('sha256').update(JSON.stringify(x)).digest('hex');

test('grant edges: names of exactly GRANT_FIELD_CHARS_MAX (256) chars are accepted, one more is malformed', () => {
  assert.is(GRANT_FIELD_CHARS_MAX, 256);
  const longest = 'x'.repeat(GRANT_FIELD_CHARS_MAX);
  for (const field of ['mig', 'area', 'serial', 'provider', 'recipient'] as const) {
    const g = issueGrant({ ...binding, [field]: longest }, randomSecret(rng), msam.boxPublic, admin, rng);
    assert.is(verifyGrant(g, admin.signPublic, {}, 0)[field], longest, field);
    assert.is(openGrant(g, msam).length, 32, field);
    assert.is(
      codeOf(() => issueGrant({ ...binding, [field]: `${longest}x` }, randomSecret(rng), msam.boxPublic, admin, rng)),
      'BAD_PARAMS',
      field,
    );
    assert.is(
      codeOf(() => verifyGrant({ ...g, [field]: `${longest}x` }, admin.signPublic, {}, 0)),
      'GRANT_INVALID',
      field,
    );
  }
  for (const field of ['mig', 'serial', 'area', 'provider', 'kcv'] as const) {
    const r = signReceipt({ ...body, [field]: longest }, msam);
    assert.is(verifyReceipt(r, msam.signPublic)[field], longest, field);
    assert.is(
      codeOf(() => signReceipt({ ...body, [field]: `${longest}x` }, msam)),
      'BAD_PARAMS',
      field,
    );
  }
});

test('grant edges: a name that is not a string (an array, an object with a length) is malformed, however short', () => {
  for (const name of [['m1'], { length: 2 }]) {
    assert.is(
      codeOf(() => issueGrant({ ...binding, mig: name } as never, randomSecret(rng), msam.boxPublic, admin, rng)),
      'BAD_PARAMS',
      JSON.stringify(name),
    );
    assert.is(
      codeOf(() => signReceipt({ ...body, kcv: name } as never, msam)),
      'BAD_PARAMS',
      JSON.stringify(name),
    );
  }
});

test('grant edges: undefined instead of a grant or receipt is refused with its code, never a TypeError', () => {
  assert.is(
    codeOf(() => verifyGrant(undefined as never, admin.signPublic, {}, 0)),
    'GRANT_INVALID',
  );
  assert.is(
    codeOf(() => openGrant(undefined as never, msam)),
    'GRANT_INVALID',
  );
  assert.is(
    codeOf(() => issueGrant(undefined as never, randomSecret(rng), msam.boxPublic, admin, rng)),
    'BAD_PARAMS',
  );
  assert.is(
    codeOf(() => verifyReceipt(undefined as never, msam.signPublic)),
    'RECEIPT_INVALID',
  );
  assert.is(
    codeOf(() => signReceipt(undefined as never, msam)),
    'BAD_PARAMS',
  );
  assert.is(
    codeOf(() => signReceipt('m1' as never, msam)),
    'BAD_PARAMS',
  );
  assert.is(
    codeOf(() => verifyGrant('m1' as never, admin.signPublic, {}, 0)),
    'GRANT_INVALID',
  );
});

test('grant edges: a grant whose sealed key is not 32 bytes does not open (GRANT_INVALID)', () => {
  const b = grantBindingBytes(binding);
  for (const size of [16, 31, 33]) {
    const { ephPub, sealed } = sealTo(msam.boxPublic, new Uint8Array(size).fill(7), 'valmove/v1/grant', b, rng);
    const g: Grant = { ...binding, ephPub, sealed, set: [], sig: '' };
    assert.is(
      codeOf(() => openGrant(g, msam)),
      'GRANT_INVALID',
      `${size} bytes`,
    );
  }
  // the same construction with 32 bytes opens: the refusal above is the key size, not the construction
  const { ephPub, sealed } = sealTo(msam.boxPublic, new Uint8Array(32).fill(7), 'valmove/v1/grant', b, rng);
  assert.equal(openGrant({ ...binding, ephPub, sealed, set: [], sig: '' }, msam).reveal(), new Uint8Array(32).fill(7));
});

test('grant edges: each refusal says what was wrong', () => {
  const g = issueGrant(binding, randomSecret(rng), msam.boxPublic, admin, rng);
  const malformed = 'the grant binding is malformed: a field is missing, of the wrong type or too long';
  assert.equal(
    [errorOf(() => verifyGrant({ ...g, item: '0' } as never, admin.signPublic, {}, 0))].map((e) => [e.code, e.message]),
    [['GRANT_INVALID', malformed]],
  );
  assert.equal(
    [errorOf(() => issueGrant({ ...binding, item: -1 }, randomSecret(rng), msam.boxPublic, admin, rng))].map((e) => [e.code, e.message]),
    [['BAD_PARAMS', malformed]],
  );
  assert.is(errorOf(() => verifyGrant(g, msam.signPublic, {}, 0)).message, 'the grant is not signed by the admin SAM');
  assert.is(errorOf(() => verifyGrant(g, admin.signPublic, {}, 10_001)).message, 'the grant expired at 10000');
  assert.is(errorOf(() => openGrant(g, admin)).message, "the grant does not open with this migration SAM's key");
  assert.is(errorOf(() => issueGrant(binding, randomSecret(rng, 16), msam.boxPublic, admin, rng)).message, 'a granted temp key must be 32 bytes');
  const r = signReceipt(body, msam);
  assert.is(errorOf(() => verifyReceipt(r, admin.signPublic)).message, 'the receipt for item 2 is not signed by its migration SAM');
  assert.is(errorOf(() => verifyReceipt({ ...r, item: '2' } as never, msam.signPublic)).message, 'a malformed receipt is not signed by its migration SAM');
  assert.is(
    errorOf(() => signReceipt({ ...body, item: 1.5 }, msam)).message,
    'the receipt body is malformed: a field is missing, of the wrong type or too long',
  );
});

test('grant edges: known answers pin the wire format (domain strings and field order of grants and receipts)', () => {
  const r = seededRng('grant-known-answer');
  const a = generateIdentity(r);
  const m = generateIdentity(r);
  const g = issueGrant(binding, randomSecret(r), m.boxPublic, a, r);
  assert.is(toHex(grantBindingBytes(binding)).slice(0, 64), KAT.bindingBytesHead);
  assert.is(sha(grantBindingBytes(binding)), KAT.bindingBytes);
  assert.is(sha(g), KAT.grant);
  assert.is(sha(signReceipt(body, m)), KAT.receipt);
});

/**
 * Computed once from the code as it stands (2026-12-03; the grant's again on 2026-12-04, when one signature
 * came to cover a set of grants, issue 19); a change here is a wire-format change (protocol.md).
 */
const KAT = {
  bindingBytesHead: '000000001876616c6d6f76652f76312f6772616e742d62696e64696e67000000',
  bindingBytes: '948d7d6d743d15d1e385df90e19dad1bb8e4784b8287d8fe78e9f91a2e182f68',
  grant: '3ad9b44010577432661c9c983b4abb20f6ba916d0183a090309151db9d26f82d',
  receipt: 'cf9fddf81661b0eab4a39c9e5212055edbee520b95775045c252b1d90496f77c',
};

test.run();
