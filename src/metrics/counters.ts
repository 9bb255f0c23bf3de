/**
 * Always-on work counters (issue 7: the floor of a migration). Every crypto
 * operation at the crypto boundary (src/crypto/) and every durable LMDB
 * commit (src/store/party.store.ts) adds one here, so a benchmark can say
 * how much unavoidable work a migration did and price it.
 *
 * Cheap by design: a counter is two Map lookups and two additions, against
 * crypto operations of microseconds and commits of milliseconds. Counting
 * never changes behaviour: nothing here throws, allocates per call beyond a
 * first-seen entry, or reads a clock.
 *
 * Attribution: crypto is charged to the party whose code is running. The
 * party runtime marks the synchronous part of each turn (and its sends) with
 * its id, a secure link marks its seal/open with the name of the party it
 * belongs to; anything else (setup, the issuing desk, tools) is charged to
 * UNATTRIBUTED. Commits are charged to the store's folder (one LMDB
 * environment per party).
 *
 * Backends (issue 19): every call into a crypto backend (src/crypto/backend.ts:
 * X25519, Ed25519, ChaCha20-Poly1305) is also counted by the backend's name
 * and charged to the same party, so a run shows which backend each party used.
 * The kinds above count the same operations whatever the backend.
 */

/** Crypto operations by kind; AEAD kinds say what they protect. */
export const CRYPTO_KINDS = [
  'ed25519.sign',
  'ed25519.verify',
  'ed25519.keygen',
  'x25519.keygen',
  'x25519.ecdh',
  'aead.seal.session',
  'aead.open.session',
  'aead.seal.channel',
  'aead.open.channel',
  'aead.seal.box',
  'aead.open.box',
  'hkdf',
  'hmac',
  'sha256',
  'scrypt',
] as const;
export type CryptoKind = (typeof CRYPTO_KINDS)[number];

/**
 * Durable LMDB work: `commit` is an awaited write transaction (resolved once
 * flushed), `commit.sync` a synchronous one (transactionSync), `flush` an
 * extra wait for the environment's flush (after a synchronous transaction).
 */
export const STORE_KINDS = ['commit', 'commit.sync', 'flush'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

export type CounterKind = CryptoKind | StoreKind;

export const UNATTRIBUTED = '-';

export interface Tally {
  n: number;
  /** Bytes processed (AEAD plaintext, hashed input); 0 where it does not matter. */
  bytes: number;
}

/** party (or store folder) -> kind -> tally. */
export type CounterSnapshot = Record<string, Partial<Record<CounterKind, Tally>>>;

const crypto = new Map<string, Map<CounterKind, Tally>>();
const stores = new Map<string, Map<CounterKind, Tally>>();
/** party -> backend name -> calls into it (bytes: AEAD plaintext or box). */
const backends = new Map<string, Map<string, Tally>>();
let party = UNATTRIBUTED;

function add<K extends string>(table: Map<string, Map<K, Tally>>, who: string, kind: K, bytes: number): void {
  let byKind = table.get(who);
  if (!byKind) table.set(who, (byKind = new Map()));
  const t = byKind.get(kind);
  if (t) {
    t.n++;
    t.bytes += bytes;
  } else byKind.set(kind, { n: 1, bytes });
}

/** One crypto operation of `kind` by whichever party is running now. */
export function countCrypto(kind: CryptoKind, bytes = 0): void {
  add(crypto, party, kind, bytes);
}

/** One call into the crypto backend named `backend` (node, noble) by whichever party is running now. */
export function countBackend(backend: string, bytes = 0): void {
  add(backends, party, backend, bytes);
}

/** One durable LMDB operation on the environment at `storePath`. */
export function countStore(storePath: string, kind: StoreKind): void {
  add(stores, storePath, kind, 0);
}

/** Charges the crypto `fn` does to `who`; nests (restores the previous party after). */
export function attributeTo<T>(who: string, fn: () => T): T {
  const prev = party;
  party = who;
  try {
    return fn();
  } finally {
    party = prev;
  }
}

/** Enter/leave pair for code that can not be wrapped in a closure; `leaveParty` takes what `enterParty` returned. */
export function enterParty(who: string): string {
  const prev = party;
  party = who;
  return prev;
}

export function leaveParty(prev: string): void {
  party = prev;
}

function copy<K extends string>(table: Map<string, Map<K, Tally>>): Record<string, Partial<Record<K, Tally>>> {
  const out: Record<string, Partial<Record<K, Tally>>> = {};
  for (const [who, byKind] of table) {
    const row: Partial<Record<K, Tally>> = {};
    for (const [k, t] of byKind) row[k] = { n: t.n, bytes: t.bytes };
    out[who] = row;
  }
  return out;
}

export interface Counters {
  /** Crypto operations by party. */
  crypto: CounterSnapshot;
  /** Durable LMDB operations by store folder. */
  stores: CounterSnapshot;
  /** Calls into each crypto backend (node, noble) by party. */
  backends: BackendSnapshot;
}

/** party -> backend name -> tally. */
export type BackendSnapshot = Record<string, Partial<Record<string, Tally>>>;

/** A copy of every counter now (counters only grow; take two and `diff` them). */
export function snapshot(): Counters {
  return { crypto: copy(crypto), stores: copy(stores), backends: copy(backends) };
}

function diffTable<K extends string>(
  after: Record<string, Partial<Record<K, Tally>>>,
  before: Record<string, Partial<Record<K, Tally>>>,
): Record<string, Partial<Record<K, Tally>>> {
  const out: Record<string, Partial<Record<K, Tally>>> = {};
  for (const [who, row] of Object.entries(after) as Array<[string, Partial<Record<K, Tally>>]>) {
    const prev: Partial<Record<K, Tally>> = before[who] ?? {};
    const d: Partial<Record<K, Tally>> = {};
    for (const [k, t] of Object.entries(row) as Array<[K, Tally]>) {
      const p = prev[k] ?? { n: 0, bytes: 0 };
      if (t.n - p.n > 0) d[k] = { n: t.n - p.n, bytes: t.bytes - p.bytes };
    }
    if (Object.keys(d).length > 0) out[who] = d;
  }
  return out;
}

/** What happened between two snapshots. */
export function diff(after: Counters, before: Counters): Counters {
  return {
    crypto: diffTable(after.crypto, before.crypto),
    stores: diffTable(after.stores, before.stores),
    backends: diffTable(after.backends, before.backends),
  };
}

/** Sums a table over its parties (or over those `keep` accepts), by kind. */
export function totals(table: CounterSnapshot, keep: (who: string) => boolean = () => true): Partial<Record<CounterKind, Tally>> {
  const out: Partial<Record<CounterKind, Tally>> = {};
  for (const [who, row] of Object.entries(table)) {
    if (!keep(who)) continue;
    for (const [k, t] of Object.entries(row) as Array<[CounterKind, Tally]>) {
      const o = (out[k] ??= { n: 0, bytes: 0 });
      o.n += t.n;
      o.bytes += t.bytes;
    }
  }
  return out;
}
