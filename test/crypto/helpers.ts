/** Shared by the crypto tests (not a test file itself: the runner picks only *.test.ts). */
import * as assert from 'uvu/assert';
import { CryptoError, generateIdentity, seededRng, toB64, toHex, type Bytes, type GrantBinding, type Identity } from '../../src/crypto/index.ts';

/** The CryptoError code `fn` throws, or 'NO ERROR'; any other kind of error fails the test. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CryptoError, `expected a CryptoError, got ${String(e)}`);
    return (e as CryptoError).code;
  }
  return 'NO ERROR';
}

/** The CryptoError `fn` throws (fails the test if it does not). */
export function errorOf(fn: () => unknown): CryptoError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CryptoError);
    return e as CryptoError;
  }
  assert.unreachable('expected a CryptoError');
  throw new Error('unreachable');
}

/** True when `text` contains `secret` raw (latin1), as hex or as base64url. */
export function leaks(text: string, secret: Bytes): boolean {
  return text.includes(Buffer.from(secret).toString('latin1')) || text.includes(toHex(secret)) || text.includes(toB64(secret));
}

export function flipByte(b: Bytes, at: number): Bytes {
  const out = new Uint8Array(b);
  const i = at < 0 ? out.length + at : at;
  out[i] = out[i]! ^ 0x01;
  return out;
}

/** The parties and binding the grant tests share: an admin SAM, a migration SAM, and item 0 of m1 on SRC-1. */
export function grantFixture(
  seed: string,
  purpose: GrantBinding['purpose'],
): { rng: ReturnType<typeof seededRng>; admin: Identity; msam: Identity; binding: GrantBinding } {
  const rng = seededRng(seed);
  const admin = generateIdentity(rng);
  const msam = generateIdentity(rng);
  const binding: GrantBinding = {
    mig: 'm1',
    item: 0,
    area: 'emoney',
    serial: 'SRC-1',
    purpose,
    provider: 'emoney',
    recipient: 'migration-sam/emoney',
    expiresAt: 10_000,
  };
  return { rng, admin, msam, binding };
}
