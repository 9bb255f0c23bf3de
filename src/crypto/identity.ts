/** Static identities of servers and SAMs: Ed25519 to sign, X25519 to receive sealed keys. */
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { fromB64, toB64, type Bytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import type { Rng } from './random.ts';
import { Secret } from './secret.ts';

export interface Identity {
  signPublic: Bytes;
  signSecret: Secret;
  boxPublic: Bytes;
  boxSecret: Secret;
}

export interface ExportedIdentity {
  signSecret: string;
  boxSecret: string;
  signPublic: string;
  boxPublic: string;
}

export function identityFromSeeds(signSeed: Bytes, boxSeed: Bytes): Identity {
  if (signSeed.length !== 32 || boxSeed.length !== 32) throw new CryptoError('BAD_KEY', 'identity seeds must be 32 bytes each');
  return {
    signSecret: Secret.of(signSeed),
    signPublic: ed25519.getPublicKey(signSeed),
    boxSecret: Secret.of(boxSeed),
    boxPublic: x25519.getPublicKey(boxSeed),
  };
}

export function generateIdentity(rng: Rng): Identity {
  return identityFromSeeds(rng.bytes(32), rng.bytes(32));
}

export function exportIdentity(id: Identity): ExportedIdentity {
  return {
    signSecret: toB64(id.signSecret.reveal()),
    boxSecret: toB64(id.boxSecret.reveal()),
    signPublic: toB64(id.signPublic),
    boxPublic: toB64(id.boxPublic),
  };
}

export function importIdentity(json: ExportedIdentity): Identity {
  const id = identityFromSeeds(fromB64(json.signSecret), fromB64(json.boxSecret));
  if (toB64(id.signPublic) !== json.signPublic || toB64(id.boxPublic) !== json.boxPublic) {
    throw new CryptoError('BAD_KEY', 'identity public keys do not match its secret keys');
  }
  return id;
}

export function publicIdentity(id: Identity): { signPublic: string; boxPublic: string } {
  return { signPublic: toB64(id.signPublic), boxPublic: toB64(id.boxPublic) };
}

export function sign(id: Identity, msg: Bytes): Bytes {
  return ed25519.sign(msg, id.signSecret.reveal());
}

/** Never throws: a malformed key or signature is simply not valid. */
export function verifySignature(pub: Bytes, msg: Bytes, sig: Bytes): boolean {
  try {
    return ed25519.verify(sig, msg, pub);
  } catch {
    return false;
  }
}
