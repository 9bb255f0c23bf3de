/**
 * A backend from its primitives, every call counted by the backend's name and
 * charged to the running party (src/metrics/counters.ts; /metrics shows them
 * as valmove_crypto_backend_ops_total): one place for the counting both backends do.
 */
import type { BackendName, CryptoBackend } from './backend.ts';
import { countBackend } from '../metrics/counters.ts';

/** What a backend does, without its name and without counting. */
export type Primitives = Omit<CryptoBackend, 'name'>;

/** Bytes an AEAD call processed, for the counters (0 for anything that is not bytes: the primitive refuses it). */
const sizeOf = (b: unknown): number => (b instanceof Uint8Array ? b.length : 0);

export function countedBackend(name: BackendName, p: Primitives): CryptoBackend {
  return {
    name,
    x25519: {
      publicKey(secret) {
        countBackend(name);
        return p.x25519.publicKey(secret);
      },
      shared(secret, peerPublic) {
        countBackend(name);
        return p.x25519.shared(secret, peerPublic);
      },
    },
    ed25519: {
      publicKey(seed) {
        countBackend(name);
        return p.ed25519.publicKey(seed);
      },
      sign(seed, msg) {
        countBackend(name);
        return p.ed25519.sign(seed, msg);
      },
      verify(sig, msg, publicKey) {
        countBackend(name);
        return p.ed25519.verify(sig, msg, publicKey);
      },
    },
    chacha20poly1305: {
      seal(key, nonce, plaintext, aad) {
        countBackend(name, sizeOf(plaintext));
        return p.chacha20poly1305.seal(key, nonce, plaintext, aad);
      },
      open(key, nonce, sealed, aad) {
        countBackend(name, sizeOf(sealed));
        return p.chacha20poly1305.open(key, nonce, sealed, aad);
      },
    },
  };
}
