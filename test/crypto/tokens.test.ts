/** issueOrder.ts, voucher.ts and signedToken.ts: a provider's signed, single-use permissions as tokens. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  createIssueOrder,
  decodeIssueOrder,
  decodeVoucher,
  encodeIssueOrder,
  encodeVoucher,
  generateIdentity,
  ISSUE_ORDER_ITEM_BYTES_MAX,
  ISSUE_ORDER_TOKEN_CHARS_MAX,
  issueVoucher,
  openIssueOrder,
  seededRng,
  toB64,
  utf8,
  verifyIssueOrder,
  verifyVoucher,
} from '../../src/crypto/index.ts';
import { codeOf } from './helpers.ts';

const rng = seededRng('tokens');
const msam = generateIdentity(rng);
const other = generateIdentity(rng);
const item = utf8(JSON.stringify({ kind: 'emoney', currency: 'JPY', balance: 5000, ref: '0'.repeat(32) }));
const order = () => createIssueOrder({ provider: 'emoney', serial: 'DST-1', area: 'emoney', expiresAt: 2_000_000_000_000, item }, msam, rng);

/** The token with one body field replaced, the signature kept. */
function altered(token: string, field: string, value: unknown): string {
  const [prefix, body, sig] = token.split('.');
  const json = JSON.parse(Buffer.from(body!, 'base64url').toString()) as Record<string, unknown>;
  return `${prefix}.${toB64(utf8(JSON.stringify({ ...json, [field]: value })))}.${sig}`;
}

test('issue order: signed and sealed by the migration SAM; the round trip gives back the item', () => {
  const token = encodeIssueOrder(order());
  assert.match(token, /^io1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/);
  assert.ok(token.length <= ISSUE_ORDER_TOKEN_CHARS_MAX);
  const body = verifyIssueOrder(decodeIssueOrder(token), msam.signPublic);
  assert.is(body.serial, 'DST-1');
  assert.equal(openIssueOrder(body, msam), item);
  assert.not.ok(
    token.includes('5000') || Buffer.from(token.split('.')[1]!, 'base64url').toString().includes('balance'),
    'the item is sealed, not readable in the token',
  );
});

test('issue order: every signed field is bound; another key neither verifies nor opens it', () => {
  const token = encodeIssueOrder(order());
  for (const [field, value] of [
    ['provider', 'transit'],
    ['serial', 'SRC-1'],
    ['area', 'gift'],
    ['expiresAt', 2_000_000_000_001],
    ['id', 'A'.repeat(22)],
  ] as const) {
    assert.is(
      codeOf(() => verifyIssueOrder(decodeIssueOrder(altered(token, field, value)), msam.signPublic)),
      'AUTH_FAILED',
      field,
    );
  }
  const o = decodeIssueOrder(token);
  assert.is(
    codeOf(() => verifyIssueOrder(o, other.signPublic)),
    'AUTH_FAILED',
  );
  assert.is(
    codeOf(() => openIssueOrder(o, other)),
    'SEAL_INVALID',
  );
  // The sealed item is bound to its order: moved to another order's body it does not open.
  const second = decodeIssueOrder(encodeIssueOrder(order()));
  assert.is(
    codeOf(() => openIssueOrder({ ...second, ephPub: o.ephPub, sealed: o.sealed }, msam)),
    'SEAL_INVALID',
  );
});

test('tokens: malformed ones are refused before any signature check, with what was wrong', () => {
  const token = encodeIssueOrder(order());
  assert.is(
    codeOf(() => decodeIssueOrder('io1.e30')),
    'BAD_ENCODING',
  );
  assert.is(
    codeOf(() => decodeIssueOrder(`vv1.${token.slice(4)}`)),
    'BAD_ENCODING',
  );
  assert.is(
    codeOf(() => decodeIssueOrder(altered(token, 'serial', 'bad serial!'))),
    'BAD_ENCODING',
  );
  assert.is(
    codeOf(() => decodeIssueOrder('x'.repeat(ISSUE_ORDER_TOKEN_CHARS_MAX + 1))),
    'BAD_ENCODING',
  );
  assert.is(
    codeOf(() =>
      createIssueOrder({ provider: 'emoney', serial: 'S', area: 'a', expiresAt: 1, item: new Uint8Array(ISSUE_ORDER_ITEM_BYTES_MAX + 1) }, msam, rng),
    ),
    'BAD_PARAMS',
  );
  try {
    decodeVoucher('vv1.e30.AAAA');
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /^not a voucher: its body lacks a field/);
  }
});

test('voucher: the same token shape; bound fields, another key refused', () => {
  const v = issueVoucher({ provider: 'emoney', serial: 'SRC-1', area: 'emoney', amount: 250, expiresAt: 2_000_000_000_000 }, msam, rng);
  const token = encodeVoucher(v);
  assert.equal(verifyVoucher(decodeVoucher(token), msam.signPublic).amount, 250);
  assert.is(
    codeOf(() => verifyVoucher(decodeVoucher(altered(token, 'amount', 2500)), msam.signPublic)),
    'AUTH_FAILED',
  );
  assert.is(
    codeOf(() => verifyVoucher(decodeVoucher(token), other.signPublic)),
    'AUTH_FAILED',
  );
});

test.run();
