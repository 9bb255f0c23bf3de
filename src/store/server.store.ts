/**
 * The server's own records: users (password verifiers and failure counts),
 * the chip registry (serial -> user, from an admin-session proof only) and
 * the migration index (one line per migration, for lookups and status).
 * Nothing here is a key or a plaintext value item (protocol.md §4.4).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import type { Database } from 'lmdb';
import { fromB64, hashPassword, SCRYPT_DEFAULTS, toB64, type Rng } from '../crypto/index.ts';
import type { PartyStore } from './party.store.ts';

export interface UserRecord {
  user: string;
  /** scrypt parameters and salt the terminal derives its login proof with. */
  salt: string;
  N: number;
  r: number;
  p: number;
  /** sha256 of the scrypt output: a stolen store does not log anyone in. */
  verifier: string;
  failures: number;
  lockedUntil: number;
}

export interface RegistryRecord {
  serial: string;
  user: string;
  /** Areas the chip held when it was registered (for the destination's "has room" check). */
  areas: string[];
}

export interface MigrationIndexRecord {
  mig: string;
  user: string;
  state: string;
  source: string | null;
  destination: string | null;
  outcome: string | null;
  reason: string | null;
}

export class ServerRecords {
  readonly users: Database<UserRecord, string>;
  readonly registry: Database<RegistryRecord, string>;
  readonly migrations: Database<MigrationIndexRecord, string>;
  readonly secrets: Database<Uint8Array, string>;

  constructor(store: PartyStore) {
    this.users = store.db<UserRecord>('users');
    this.registry = store.db<RegistryRecord>('registry');
    this.migrations = store.db<MigrationIndexRecord>('migrations');
    this.secrets = store.db<Uint8Array>('secrets');
  }
}

/**
 * A new user record: the password is stretched with scrypt (the terminal
 * will compute the same from the salt), and only sha256 of the result is
 * kept, so the record does not log anyone in.
 */
export function newUserRecord(user: string, password: string, rng: Rng, params: { N: number; r: number; p: number } = SCRYPT_DEFAULTS): UserRecord {
  const rec = hashPassword(password, rng, params);
  return { user, salt: rec.salt, N: rec.N, r: rec.r, p: rec.p, verifier: toB64(sha256(fromB64(rec.hash))), failures: 0, lockedUntil: 0 };
}
