/**
 * Property tests for temp-key grants, sealed boxes and download receipts
 * (src/crypto/grant.ts, box.ts; protocol.md §2–3): for any binding and any
 * temp key, a grant fits the wire schema, verifies under the admin SAM's key
 * and opens to the same temp key for its recipient only; changing any signed
 * part, the recipient, the issuer key, the clock past expiry or the expected
 * binding is refused with the code that says so. Receipts likewise.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CryptoError,
  fromB64,
  generateIdentity,
  issueGrant,
  KEY_BYTES,
  openGrant,
  openSealed,
  sealTo,
  seededRng,
  Secret,
  signReceipt,
  toB64,
  verifyGrant,
  verifyReceipt,
  type Grant,
  type GrantBinding,
  type ReceiptBody,
} from '../../src/crypto/index.ts';
import { grantSchema, receiptSchema } from '../../src/transport/messages.ts';
import { nameArb } from './arbitraries.ts';

// uvu prints an error's message, not its cause: put the failed assertion into fast-check's report.
fc.configureGlobal({ includeErrorInReport: true });

// Identities are costly to make (Ed25519 + X25519); a few fixed ones are enough. Runs are few for the
// same reason (an issue, verify and open cost ~10 ms with noble here): the bindings vary, the algebra does not.
const ids = Array.from({ length: 4 }, (_, i) => generateIdentity(seededRng(`grant-properties-${i}`)));
const [admin, msam, otherSam] = [ids[0]!, ids[1]!, ids[2]!];
const tempKeyArb = fc.uint8Array({ minLength: KEY_BYTES, maxLength: KEY_BYTES }).map((b) => Secret.of(b));

/** Bindings as they travel in `admin.locked` (wire names, item index < 64, expiry a safe integer). */
const bindingArb: fc.Arbitrary<GrantBinding> = fc
  .record({
    mig: nameArb,
    item: fc.integer({ min: 0, max: 63 }),
    area: nameArb,
    serial: nameArb,
    purpose: fc.constantFrom('upload' as const, 'download' as const),
    provider: nameArb,
    recipient: nameArb,
    expiresAt: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.constant(Number.MAX_SAFE_INTEGER - 1)),
  })
  .map((b) => ({ ...b })); // plain objects, as bindings decoded from JSON are

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
    return 'accepted';
  } catch (e) {
    assert.instance(e, CryptoError, `not a CryptoError: ${String(e)}`);
    return (e as CryptoError).code;
  }
};

/** The same bytes with one bit flipped, as canonical base64url. */
function flipB64(s: string, bit: number): string {
  const b = new Uint8Array(fromB64(s));
  const at = bit % (b.length * 8);
  b[at >> 3]! ^= 1 << (at & 7);
  return toB64(b);
}

test('a grant for any binding and temp key fits the wire schema, verifies for its binding until it expires, and opens to the temp key for its recipient', () => {
  fc.assert(
    fc.property(bindingArb, tempKeyArb, fc.nat(), fc.double({ min: 0, max: 1, noNaN: true }), (b, temp, seed, when) => {
      const g = issueGrant(b, temp, msam.boxPublic, admin, seededRng(seed));
      // What the admin SAM sends in admin.locked / admin.formatted is what the schema lets through.
      const wire = grantSchema.safeParse(JSON.parse(JSON.stringify(g)));
      assert.ok(wire.success, `an issued grant does not fit the wire schema: ${wire.success ? '' : wire.error.message}`);
      const g2 = wire.data as Grant;
      const now = Math.floor(when * b.expiresAt);
      assert.equal(verifyGrant(g2, admin.signPublic, b, now), b);
      assert.equal(verifyGrant(g2, admin.signPublic, {}, b.expiresAt), b, 'valid up to and including its expiry');
      assert.ok(openGrant(g2, msam).equals(temp));
    }),
    { numRuns: 50 },
  );
});

const FIELDS = ['mig', 'item', 'area', 'serial', 'purpose', 'provider', 'recipient', 'expiresAt', 'ephPub', 'sealed', 'sig'] as const;

test('a grant with any one signed part changed is refused as GRANT_INVALID, and does not open either (unless only the signature changed)', () => {
  fc.assert(
    fc.property(bindingArb, bindingArb, tempKeyArb, fc.constantFrom(...FIELDS), fc.nat(), fc.nat(), (b, other, temp, field, bit, seed) => {
      const g = issueGrant(b, temp, msam.boxPublic, admin, seededRng(seed));
      let changed: Grant;
      if (field === 'ephPub' || field === 'sealed' || field === 'sig') changed = { ...g, [field]: flipB64(g[field], bit) };
      else if (field === 'purpose') changed = { ...g, purpose: g.purpose === 'upload' ? 'download' : 'upload' };
      else {
        fc.pre(other[field] !== b[field]);
        changed = { ...g, [field]: other[field] };
      }
      assert.is(
        codeOf(() => verifyGrant(changed, admin.signPublic, {}, 0)),
        'GRANT_INVALID',
        `${field} changed`,
      );
      // The binding is the box's associated data: a grant re-bound to another item does not even open.
      if (field !== 'sig')
        assert.is(
          codeOf(() => openGrant(changed, msam)),
          'GRANT_INVALID',
          `${field} changed, still opens`,
        );
    }),
    { numRuns: 60 },
  );
});

test('a grant opens for its recipient only, verifies under the admin SAM key only, is refused after expiry, and names the binding field that does not match', () => {
  const keys = ['mig', 'item', 'area', 'serial', 'purpose', 'provider', 'recipient', 'expiresAt'] as const;
  fc.assert(
    fc.property(
      bindingArb,
      bindingArb,
      tempKeyArb,
      fc.integer({ min: 1, max: 2 ** 40 }),
      fc.constantFrom(...keys),
      fc.nat(),
      (b, other, temp, late, field, seed) => {
        const g = issueGrant(b, temp, msam.boxPublic, admin, seededRng(seed));
        assert.is(
          codeOf(() => openGrant(g, otherSam)),
          'GRANT_INVALID',
        );
        assert.is(
          codeOf(() => openGrant(g, admin)),
          'GRANT_INVALID',
        );
        assert.is(
          codeOf(() => verifyGrant(g, otherSam.signPublic, {}, 0)),
          'GRANT_INVALID',
        );
        assert.is(
          codeOf(() => verifyGrant(g, msam.signPublic, {}, 0)),
          'GRANT_INVALID',
        );
        assert.is(
          codeOf(() => verifyGrant(g, admin.signPublic, {}, b.expiresAt + late)),
          'GRANT_EXPIRED',
        );
        const wrong = field === 'purpose' ? (b.purpose === 'upload' ? 'download' : 'upload') : other[field];
        fc.pre(wrong !== b[field]);
        try {
          verifyGrant(g, admin.signPublic, { [field]: wrong }, 0);
          assert.unreachable(`a grant bound to ${field} ${String(b[field])} verified for ${String(wrong)}`);
        } catch (e) {
          assert.instance(e, CryptoError);
          assert.is((e as CryptoError).code, 'GRANT_BINDING');
          assert.ok((e as CryptoError).message.endsWith(` ${field}`), (e as CryptoError).message);
        }
      },
    ),
    { numRuns: 30 },
  );
});

test('sealed boxes: any plaintext opens for its recipient with the same purpose and binding, and with nothing else', () => {
  const infoArb = fc.string({ minLength: 1, maxLength: 30 });
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      infoArb,
      infoArb,
      fc.uint8Array({ maxLength: 64 }),
      fc.uint8Array({ maxLength: 64 }),
      fc.nat(),
      (plain, info, info2, aad, aad2, seed) => {
        const box = sealTo(msam.boxPublic, plain, info, aad, seededRng(seed));
        assert.equal(openSealed(msam, box.ephPub, box.sealed, info, aad), plain);
        assert.is(
          codeOf(() => openSealed(otherSam, box.ephPub, box.sealed, info, aad)),
          'SEAL_INVALID',
        );
        if (info2 !== info)
          assert.is(
            codeOf(() => openSealed(msam, box.ephPub, box.sealed, info2, aad)),
            'SEAL_INVALID',
          );
        if (toB64(aad2) !== toB64(aad))
          assert.is(
            codeOf(() => openSealed(msam, box.ephPub, box.sealed, info, aad2)),
            'SEAL_INVALID',
          );
        assert.is(
          codeOf(() => openSealed(msam, box.ephPub, flipB64(box.sealed, seed), info, aad)),
          'SEAL_INVALID',
        );
        // The box holds no plaintext in the clear (for a plaintext long enough to tell).
        if (plain.length >= 8) assert.not.ok(box.sealed.includes(toB64(plain).slice(0, 10)));
      },
    ),
    { numRuns: 60 },
  );
});

const receiptArb: fc.Arbitrary<ReceiptBody> = fc
  .record({
    mig: nameArb,
    item: fc.integer({ min: 0, max: 63 }),
    serial: nameArb,
    area: nameArb,
    provider: nameArb,
    kcv: fc.uint8Array({ minLength: 8, maxLength: 8 }).map(toB64),
  })
  .map((r) => ({ ...r }));

test('receipts: any receipt fits the wire schema and verifies under its signer; any field changed, or another signer, is RECEIPT_INVALID', () => {
  const fields = ['mig', 'item', 'serial', 'area', 'provider', 'kcv', 'sig'] as const;
  fc.assert(
    fc.property(receiptArb, receiptArb, fc.constantFrom(...fields), fc.nat(), (r, other, field, bit) => {
      const signed = signReceipt(r, msam);
      assert.ok(receiptSchema.safeParse(JSON.parse(JSON.stringify(signed))).success, 'a signed receipt does not fit the wire schema');
      assert.equal(verifyReceipt(signed, msam.signPublic), r);
      assert.is(
        codeOf(() => verifyReceipt(signed, otherSam.signPublic)),
        'RECEIPT_INVALID',
      );
      let changed: typeof signed;
      if (field === 'sig') changed = { ...signed, sig: flipB64(signed.sig, bit) };
      else {
        fc.pre(other[field] !== r[field]);
        changed = { ...signed, [field]: other[field] };
      }
      assert.is(
        codeOf(() => verifyReceipt(changed, msam.signPublic)),
        'RECEIPT_INVALID',
        `${field} changed`,
      );
    }),
    { numRuns: 50 },
  );
});

test.run();
