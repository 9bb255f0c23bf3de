/**
 * The server backend (backend.ts): node:crypto, that is OpenSSL, for the
 * parties that run on servers. Keys are KeyObjects, prepared once: a
 * Secret's in a WeakMap (dropped when the Secret is wiped or collected),
 * public keys in a bounded LRU by their bytes.
 *
 * Same answers as noble, by construction: the well-formed, honest case runs
 * on OpenSSL; anything else (a wrong length, a key that is not bytes, a
 * low-order X25519 point, a signature OpenSSL refuses) goes to the very
 * @noble function the noble backend calls, which gives the answer or throws
 * its error. So both backends agree on every input, hostile ones included;
 * only the honest path is fast.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  sign as opensslSign,
  verify as opensslVerify,
  type KeyObject,
} from 'node:crypto';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { fromHex, toHex, type Bytes } from './bytes.ts';
import type { CryptoBackend, KeyInput } from './backend.ts';
import { AEAD_REFUSED, keyBytes, nobleVerify } from './backend.noble.ts';
import { countedBackend } from './backend.counted.ts';
import { Lru } from './lru.ts';
import { onSecretWipe, type Secret } from './secret.ts';

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SIGNATURE_BYTES = 64;
/** Public keys kept as KeyObjects (Ed25519 and X25519 each): the least recently used goes first. */
export const PUBLIC_KEYS_CACHED = 1024;
/** Ed25519's group order L: a signature's S must be below it (RFC 8032 §5.1.7). */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

type Curve = 'X25519' | 'Ed25519';

const b64u = (b: Bytes): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
const isBytes = (b: unknown, n?: number): b is Bytes => b instanceof Uint8Array && (n === undefined || b.length === n);
const isKey = (k: KeyInput): boolean => (k instanceof Uint8Array ? k.length : k?.length) === KEY_BYTES;
/** A plain Uint8Array copy of what OpenSSL returned; the Buffer is wiped when it held a secret. */
function own(buf: Buffer, wipe = false): Bytes {
  const out = new Uint8Array(buf);
  if (wipe) buf.fill(0);
  return out;
}

/**
 * Private keys come in as JWK with a placeholder `x`: Node derives the public
 * half from `d` (about 45 µs) where PKCS8 DER goes through OpenSSL 3's
 * decoders (about 500 µs). That Node ignores `x` is checked once here,
 * against RFC 7748 §6.1 and RFC 8032 §7.1; where it would not hold, DER.
 * Like noble's bigints, the base64url string of `d` is left to the GC.
 */
const PLACEHOLDER_X = b64u(new Uint8Array(KEY_BYTES));
const PKCS8_PREFIX: Record<Curve, string> = { X25519: '302e020100300506032b656e04220420', Ed25519: '302e020100300506032b657004220420' };
const RFC_PAIR: Record<Curve, [string, string]> = {
  X25519: ['77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'],
  Ed25519: ['9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'],
};

const fromJwk = (curve: Curve, d: Bytes): KeyObject => createPrivateKey({ key: { kty: 'OKP', crv: curve, d: b64u(d), x: PLACEHOLDER_X }, format: 'jwk' });

function fromDer(curve: Curve, d: Bytes): KeyObject {
  const der = Buffer.concat([Buffer.from(PKCS8_PREFIX[curve], 'hex'), d]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

function publicOf(priv: KeyObject): Bytes {
  const { x } = createPublicKey(priv).export({ format: 'jwk' });
  return own(Buffer.from(x ?? '', 'base64url'));
}

function placeholderHolds(curve: Curve): boolean {
  const [d, pub] = RFC_PAIR[curve];
  try {
    return toHex(publicOf(fromJwk(curve, fromHex(d)))) === pub;
  } catch {
    return false;
  }
}

const importPrivate: Record<Curve, (d: Bytes) => KeyObject> = {
  X25519: placeholderHolds('X25519') ? (d) => fromJwk('X25519', d) : (d) => fromDer('X25519', d),
  Ed25519: placeholderHolds('Ed25519') ? (d) => fromJwk('Ed25519', d) : (d) => fromDer('Ed25519', d),
};

/** What was prepared from each Secret, by use. */
const prepared = new WeakMap<Secret, { X25519?: KeyObject; Ed25519?: KeyObject; aead?: KeyObject }>();
onSecretWipe((s) => prepared.delete(s));

function slotsOf(s: Secret): { X25519?: KeyObject; Ed25519?: KeyObject; aead?: KeyObject } {
  let slots = prepared.get(s);
  if (!slots) prepared.set(s, (slots = {}));
  return slots;
}

function privateKey(curve: Curve, k: KeyInput): KeyObject {
  if (k instanceof Uint8Array) return importPrivate[curve](k);
  const slots = slotsOf(k);
  return (slots[curve] ??= importPrivate[curve](k.reveal()));
}

function aeadKey(k: KeyInput): KeyObject | Bytes {
  if (k instanceof Uint8Array) return k;
  const slots = slotsOf(k);
  return (slots.aead ??= createSecretKey(k.reveal()));
}

const cacheKey = (b: Bytes): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
const x25519Keys = new Lru<KeyObject>(PUBLIC_KEYS_CACHED);
/** false: noble's strict decoding refuses the key (not canonical, not on the curve, or of small order). */
const ed25519Keys = new Lru<KeyObject | false>(PUBLIC_KEYS_CACHED);

function x25519Public(pub: Bytes): KeyObject {
  const id = cacheKey(pub);
  let k = x25519Keys.get(id);
  if (k === undefined) x25519Keys.set(id, (k = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(pub) }, format: 'jwk' })));
  return k;
}

/** The checks noble's strict verify makes of A before any equation (zip215: false): decoding, then small order. */
function nobleTakesKey(pub: Bytes): boolean {
  try {
    return !ed25519.Point.fromBytes(pub, false).isSmallOrder();
  } catch {
    return false;
  }
}

function ed25519Public(pub: Bytes): KeyObject | false {
  const id = cacheKey(pub);
  let k = ed25519Keys.get(id);
  if (k === undefined) {
    k = nobleTakesKey(pub) ? createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64u(pub) }, format: 'jwk' }) : false;
    ed25519Keys.set(id, k);
  }
  return k;
}

function scalarBelowL(s: Bytes): boolean {
  return BigInt(`0x${toHex(Uint8Array.from(s).reverse())}`) < L;
}

function verify(sig: Bytes, msg: Bytes, pub: Bytes): boolean {
  if (!isBytes(sig, SIGNATURE_BYTES) || !isBytes(pub, KEY_BYTES) || !isBytes(msg)) return nobleVerify(sig, msg, pub);
  if (!scalarBelowL(sig.subarray(32))) return false;
  const key = ed25519Public(pub);
  if (key === false) return false;
  if (opensslVerify(null, msg, key, sig)) return true;
  // OpenSSL checks [S]B = R + [k]A, noble the cofactored [8][S]B = [8]R + [8][k]A: they differ only where R or
  // A carries a small-order component, which no honest signer makes. noble decides whatever OpenSSL refuses.
  return nobleVerify(sig, msg, pub);
}

function shared(secret: KeyInput, peer: Bytes): Bytes {
  if (!isKey(secret) || !isBytes(peer, KEY_BYTES)) return x25519.getSharedSecret(keyBytes(secret), peer);
  let out: Buffer | undefined;
  try {
    out = diffieHellman({ privateKey: privateKey('X25519', secret), publicKey: x25519Public(peer) });
  } catch {
    out = undefined;
  }
  // OpenSSL refuses an all-zero result (a low-order point); noble refuses the same points, with its own error.
  if (out === undefined || out.length !== KEY_BYTES || out.every((b) => b === 0)) return x25519.getSharedSecret(keyBytes(secret), peer);
  return own(out, true);
}

function seal(key: KeyInput, nonce: Bytes, plaintext: Bytes, aad: Bytes): Bytes {
  if (!isKey(key) || !isBytes(nonce, NONCE_BYTES) || !isBytes(plaintext) || !isBytes(aad))
    return chacha20poly1305(keyBytes(key), nonce, aad).encrypt(plaintext);
  const c = createCipheriv('chacha20-poly1305', aeadKey(key), nonce, { authTagLength: TAG_BYTES });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  const out = new Uint8Array(plaintext.length + TAG_BYTES);
  out.set(c.update(plaintext));
  c.final();
  out.set(c.getAuthTag(), plaintext.length);
  return out;
}

function open(key: KeyInput, nonce: Bytes, sealed: Bytes, aad: Bytes): Bytes {
  if (!isKey(key) || !isBytes(nonce, NONCE_BYTES) || !isBytes(sealed) || sealed.length < TAG_BYTES || !isBytes(aad)) {
    return chacha20poly1305(keyBytes(key), nonce, aad).decrypt(sealed);
  }
  const d = createDecipheriv('chacha20-poly1305', aeadKey(key), nonce, { authTagLength: TAG_BYTES });
  d.setAAD(aad, { plaintextLength: sealed.length - TAG_BYTES });
  d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const plain = d.update(sealed.subarray(0, sealed.length - TAG_BYTES));
  try {
    d.final();
  } catch {
    plain.fill(0);
    throw new Error(AEAD_REFUSED);
  }
  return own(plain, true);
}

export const nodeBackend: CryptoBackend = countedBackend('node', {
  x25519: {
    publicKey: (secret) => (isKey(secret) ? publicOf(privateKey('X25519', secret)) : x25519.getPublicKey(keyBytes(secret))),
    shared,
  },
  ed25519: {
    publicKey: (seed) => (isKey(seed) ? publicOf(privateKey('Ed25519', seed)) : ed25519.getPublicKey(keyBytes(seed))),
    sign(seed, msg) {
      if (!isKey(seed) || !isBytes(msg)) return ed25519.sign(msg, keyBytes(seed));
      return own(opensslSign(null, msg, privateKey('Ed25519', seed)));
    },
    verify,
  },
  chacha20poly1305: { seal, open },
});
