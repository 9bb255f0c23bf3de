/** Static identities of servers and SAMs: Ed25519 to sign, X25519 to receive sealed keys. */
import { currentBackend, type CryptoBackend } from './backend.ts';
import { fromB64, toB64, type Bytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import type { Rng } from './random.ts';
import { Secret } from './secret.ts';
import { countCrypto } from '../metrics/counters.ts';

export interface Identity {
  signPublic: Bytes;
  signSecret: Secret;
  boxPublic: Bytes;
  boxSecret: Secret;
  /**
   * The identity a rotation replaced, during its window (docs/deploying.md, "Rotating an identity key"): never
   * presented nor used to sign; what was sealed to it or signed by it before the rotation still opens and verifies
   * (`withPrevious`, `ownSignKeys`). Gone once the old key is retired.
   */
  previous?: Identity;
}

export interface ExportedIdentity {
  signSecret: string;
  boxSecret: string;
  signPublic: string;
  boxPublic: string;
}

/** Ed25519 seeds and X25519 secret keys are both 32 bytes. */
export const IDENTITY_SEED_BYTES = 32;

/** The public keys are derived from the Secrets themselves, so a backend that prepares keys (node's KeyObjects) does it once. */
export function identityFromSeeds(signSeed: Bytes, boxSeed: Bytes, crypto: CryptoBackend = currentBackend()): Identity {
  const ok = (b: unknown): boolean => b instanceof Uint8Array && b.length === IDENTITY_SEED_BYTES;
  if (!ok(signSeed) || !ok(boxSeed)) throw new CryptoError('BAD_KEY', 'identity seeds must be 32 bytes each');
  countCrypto('ed25519.keygen');
  countCrypto('x25519.keygen');
  const signSecret = Secret.of(signSeed);
  const boxSecret = Secret.of(boxSeed);
  return { signSecret, signPublic: crypto.ed25519.publicKey(signSecret), boxSecret, boxPublic: crypto.x25519.publicKey(boxSecret) };
}

export function generateIdentity(rng: Rng): Identity {
  return identityFromSeeds(rng.bytes(IDENTITY_SEED_BYTES), rng.bytes(IDENTITY_SEED_BYTES));
}

export function exportIdentity(id: Identity): ExportedIdentity {
  return {
    signSecret: toB64(id.signSecret.reveal()),
    boxSecret: toB64(id.boxSecret.reveal()),
    signPublic: toB64(id.signPublic),
    boxPublic: toB64(id.boxPublic),
  };
}

/** Any malformed input is BAD_KEY, and the message never echoes the (secret) fields. */
export function importIdentity(json: ExportedIdentity, crypto: CryptoBackend = currentBackend()): Identity {
  let id: Identity;
  try {
    id = identityFromSeeds(fromB64(json.signSecret), fromB64(json.boxSecret), crypto);
  } catch {
    throw new CryptoError('BAD_KEY', 'identity secret keys must be two 32-byte base64url strings');
  }
  if (toB64(id.signPublic) !== json.signPublic || toB64(id.boxPublic) !== json.boxPublic) {
    throw new CryptoError('BAD_KEY', 'identity public keys do not match its secret keys');
  }
  return id;
}

export function publicIdentity(id: Identity): { signPublic: string; boxPublic: string } {
  return { signPublic: toB64(id.signPublic), boxPublic: toB64(id.boxPublic) };
}

export function sign(id: Identity, msg: Bytes, crypto: CryptoBackend = currentBackend()): Bytes {
  countCrypto('ed25519.sign', msg.length);
  return crypto.ed25519.sign(id.signSecret, msg);
}

/**
 * Never throws: a malformed key or signature is simply not valid. Strict RFC
 * 8032 decoding (zip215: false): non-canonical encodings and small-order
 * public keys are refused, so one signature can not be reshaped into another
 * that also verifies, and no key verifies everything.
 */
export function verifySignature(pub: Bytes, msg: Bytes, sig: Bytes, crypto: CryptoBackend = currentBackend()): boolean {
  countCrypto('ed25519.verify', msg?.length ?? 0);
  try {
    return crypto.ed25519.verify(sig, msg, pub);
  } catch {
    return false;
  }
}

/** A party's trusted public key, or its keys during a rotation window (docs/deploying.md): always as a list. */
export const keysOf = (k: Bytes | readonly Bytes[]): readonly Bytes[] => (k instanceof Uint8Array ? [k] : k);

/** The keys a party accepts as its own signature: its own, and its previous one during a rotation window. */
export const ownSignKeys = (id: Identity): readonly Bytes[] => (id.previous ? [id.signPublic, id.previous.signPublic] : [id.signPublic]);
/** A party's X25519 keys: its own, then its previous one during a rotation window. */
export const ownBoxKeys = (id: Identity): readonly Bytes[] => (id.previous ? [id.boxPublic, id.previous.boxPublic] : [id.boxPublic]);

/**
 * `open` with the party's identity, then, if that throws, with its previous one (a rotation window): what was sealed
 * to the old key before the rotation still opens. The current identity's error is the one thrown.
 */
export function withPrevious<T>(id: Identity, open: (id: Identity) => T): T {
  try {
    return open(id);
  } catch (e) {
    if (!id.previous) throw e;
    try {
      return open(id.previous);
    } catch {
      throw e;
    }
  }
}
