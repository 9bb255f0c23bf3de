/**
 * Keys and plaintext values travel in a Secret: it can not be serialised
 * (toJSON throws), printed (toString, util.inspect redact) or compared in
 * variable time (style.md §6).
 */
import type { Bytes } from './bytes.ts';
import { equalBytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import type { Rng } from './random.ts';

/** Called with a Secret as it is wiped (a backend drops what it prepared from it: backend.node.ts's KeyObjects). */
const wipeHooks: Array<(s: Secret) => void> = [];

/** Registers a hook run at every wipe(); for a crypto backend's caches, registered once at load. */
export function onSecretWipe(hook: (s: Secret) => void): void {
  wipeHooks.push(hook);
}

export class Secret {
  readonly #bytes: Uint8Array;

  private constructor(bytes: Bytes) {
    this.#bytes = new Uint8Array(bytes);
  }

  /** Copies: the caller's buffer may be reused or wiped without touching the Secret. */
  static of(bytes: Bytes): Secret {
    if (!(bytes instanceof Uint8Array)) throw new CryptoError('BAD_KEY', 'a secret must be given as bytes');
    return new Secret(bytes);
  }

  /**
   * The held bytes themselves, not a copy: a copy per use would leave key
   * material that wipe() can not reach. Callers pass it to a primitive and
   * must not keep or modify it.
   */
  reveal(): Bytes {
    return this.#bytes;
  }

  get length(): number {
    return this.#bytes.length;
  }

  equals(other: Secret): boolean {
    return equalBytes(this.#bytes, other.#bytes);
  }

  /** Zeroes the bytes in place (best effort: JS gives no guarantee against copies made by the engine). */
  wipe(): void {
    this.#bytes.fill(0);
    for (const hook of wipeHooks) hook(this);
  }

  toJSON(): never {
    throw new Error('Secret values cannot be serialised');
  }

  toString(): string {
    return '[Secret]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'Secret(<redacted>)';
  }
}

export function randomSecret(rng: Rng, n = 32): Secret {
  return Secret.of(rng.bytes(n));
}
