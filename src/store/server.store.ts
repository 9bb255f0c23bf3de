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
  /** When the server first wrote the migration (its clock, ms); absent in records written before issue 21. */
  startedAt?: number;
  /** The source phone's terminal (S1): the backup's wipe runs through it after the commit (issue 22). */
  sourceTerminal?: string;
}

/**
 * A terminal name bound to the device key that first logged in under it
 * (protocol.md §1, identities at the edges): from then on only that key may
 * use the name. Written after a successful login only, never for a stranger.
 */
export interface DeviceRecord {
  name: string;
  /** The device's Ed25519 public key, base64url. */
  key: string;
  /** The user whose login bound it (counts toward that user's devices). */
  user: string;
  boundAt: number;
}

export class ServerRecords {
  readonly users: Database<UserRecord, string>;
  readonly registry: Database<RegistryRecord, string>;
  readonly migrations: Database<MigrationIndexRecord, string>;
  readonly secrets: Database<Uint8Array, string>;
  readonly devices: Database<DeviceRecord, string>;
  /** `<user> U+0001 <terminal name>` for every device a user's login bound (names hold no control characters): counts them without a scan. */
  readonly userDevices: Database<number, string>;

  constructor(store: PartyStore) {
    this.users = store.db<UserRecord>('users');
    this.registry = store.db<RegistryRecord>('registry');
    this.migrations = store.db<MigrationIndexRecord>('migrations');
    this.secrets = store.db<Uint8Array>('secrets');
    this.devices = store.db<DeviceRecord>('devices');
    this.userDevices = store.db<number>('user-devices');
  }

  /** Devices bound by this user's logins. */
  devicesOf(user: string): number {
    let n = 0;
    for (const _ of this.userDevices.getKeys({ start: `${user}\u0001`, end: `${user}\u0002` })) n++;
    return n;
  }

  static userDeviceKey(user: string, name: string): string {
    return `${user}\u0001${name}`;
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
