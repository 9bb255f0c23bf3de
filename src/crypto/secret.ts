/**
 * Keys and plaintext values travel in a Secret: it can not be serialised
 * (toJSON throws), printed (toString, util.inspect redact) or compared in
 * variable time (style.md §6).
 */
import type { Bytes } from './bytes.ts';
import { equalBytes } from './bytes.ts';
import type { Rng } from './random.ts';

export class Secret {
  readonly #bytes: Uint8Array;

  private constructor(bytes: Bytes) {
    this.#bytes = new Uint8Array(bytes);
  }

  static of(bytes: Bytes): Secret {
    return new Secret(bytes);
  }

  reveal(): Bytes {
    return this.#bytes;
  }

  get length(): number {
    return this.#bytes.length;
  }

  equals(other: Secret): boolean {
    return equalBytes(this.#bytes, other.#bytes);
  }

  wipe(): void {
    this.#bytes.fill(0);
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
