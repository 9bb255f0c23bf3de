/**
 * The floor's unit costs (issue 7): each crypto operation a migration does,
 * and one durable LMDB commit, measured in this run on this machine with the
 * sizes the protocol uses, so that "floor = Σ count × unit" and the measured
 * figures share the machine's noise.
 *
 * Method: each operation runs in batches sized to take about batch_ms; the
 * unit is the median batch's wall time divided by its size (median of
 * BATCHES batches, so one preempted batch does not move it). AEAD costs grow
 * with the message: it is measured at three sizes and fitted as
 * fixed + per-byte, then priced with the bytes the counters saw.
 *
 * Two crypto backends (issue 19, src/crypto/backend.ts): the public-key and
 * AEAD kinds are measured through each backend's interface, as the parties
 * call it (a Secret's key prepared once, an ephemeral key imported at each
 * use), and each role's operations are priced with the backend it runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { scrypt } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { BACKEND_NAMES, Secret, backendForRole, backendNamed, type BackendName, type CryptoBackend } from '../crypto/index.ts';
import { SCRYPT_DEFAULTS } from '../crypto/password.ts';
import type { CounterKind, Tally } from '../metrics/counters.ts';
import { PartyStore } from '../store/party.store.ts';
import { fitLine, percentile } from './stats.ts';

/** Batches per measurement (the median is kept). */
export const BATCHES = 5;
/** Sizes (plaintext bytes) at which AEAD is measured to fit fixed + per-byte. */
export const AEAD_SIZES_BYTES = [64, 1024, 8192] as const;
/** A typical durable commit: a machine snapshot and an outbox entry. */
export const COMMIT_VALUE_BYTES = 2048;
/** Messages signed and verified in the protocol are transcripts and grant/receipt bindings of this order. */
const SIGNED_BYTES = 200;

export interface UnitCost {
  /** ms per operation. */
  fixedMs: number;
  /** ms per byte processed (AEAD only; 0 elsewhere). */
  perByteMs: number;
  /** What was measured. */
  note: string;
}

export interface CommitCost {
  /** Concurrent commits into one environment, awaited together. */
  batch: number;
  /** Wall ms per commit (the batch's time over its size: a shared flush is shared). */
  wallMs: number;
  /** CPU ms of this process per commit (LMDB's writer thread included). */
  cpuMs: number;
}

export interface Units {
  /** Every kind, at the servers' backend (backendForRole('server')) where the backend matters. */
  crypto: Partial<Record<CounterKind, UnitCost>>;
  /** The kinds a backend runs (Ed25519, X25519, AEAD), measured through each backend. */
  cryptoByBackend: Record<BackendName, Partial<Record<CounterKind, UnitCost>>>;
  /** `batch` concurrent commits into ONE environment (a shared party's: server, admin SAM, provider SAMs). */
  commits: CommitCost[];
  /**
   * `batch` concurrent commits, each into ITS OWN environment (a phone's: a
   * chip's or terminal's LMDB serves one migration, so its commits cannot
   * share a flush with another migration's; each pays its own sync).
   */
  spreadCommits: CommitCost[];
  /** scrypt at the production cost (SCRYPT_DEFAULTS), ms: what one login costs a phone in a deployment. */
  scryptDefaultMs: number;
  /** One hop message's framing (envelope to JSON bytes and back), ms: the protocol floor's price of a message besides its channel AEAD. */
  messageMs: number;
  measuredInMs: number;
}

/** ms per call of fn, median of BATCHES batches of about batchMs each. */
function time(fn: () => void, batchMs: number): number {
  let n = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    const dt = performance.now() - t0;
    if (dt >= batchMs / 4 || n >= 1 << 20) {
      n = Math.max(1, Math.round((n * batchMs) / Math.max(dt, 0.001)));
      break;
    }
    n *= 4;
  }
  const per: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    per.push((performance.now() - t0) / n);
  }
  return percentile(per, 0.5);
}

function fixed(ms: number, note: string): UnitCost {
  return { fixedMs: ms, perByteMs: 0, note };
}

/** AEAD through a backend, with a session's key (a Secret: prepared once where the backend prepares keys). */
function aead(b: CryptoBackend, batchMs: number, dir: 'seal' | 'open'): UnitCost {
  const key = Secret.of(randomBytes(32));
  const nonce = randomBytes(12);
  const aad = randomBytes(8);
  const { seal, open } = b.chacha20poly1305;
  const points = AEAD_SIZES_BYTES.map((size) => {
    const plain = randomBytes(size);
    const sealed = seal(key, nonce, plain, aad);
    const ms = dir === 'seal' ? time(() => seal(key, nonce, plain, aad), batchMs) : time(() => open(key, nonce, sealed, aad), batchMs);
    return [size, ms] as const;
  });
  const fit = fitLine(points);
  // A noisy machine can tilt the fit below zero at 0 bytes: then the smallest message's time is the fixed
  // cost, and the line from it to the largest the cost per byte (an operation never costs nothing).
  const first = points[0]!;
  const last = points[points.length - 1]!;
  const { slope, intercept } = fit.intercept > 0 ? fit : { slope: (last[1] - first[1]) / (last[0] - first[0]), intercept: first[1] };
  return {
    fixedMs: Math.max(0, intercept),
    perByteMs: Math.max(0, slope),
    note: `ChaCha20-Poly1305 ${dir === 'seal' ? 'encrypt' : 'decrypt'}, fitted over ${AEAD_SIZES_BYTES.join('/')} B`,
  };
}

/**
 * Wall and CPU ms per durable commit when `batch` commits are issued
 * together: into one fresh environment ('shared', as c migrations' turns
 * reach the server), or one commit into each of `batch` environments
 * ('spread', as c phones commit, each to its own file).
 */
async function commitCost(batch: number, rounds: number, where: 'shared' | 'spread'): Promise<CommitCost> {
  const dir = mkdtempSync(join(tmpdir(), `valmove-bench-${where}-`));
  const stores = where === 'shared' ? [PartyStore.open(dir)] : Array.from({ length: batch }, (_, i) => PartyStore.open(join(dir, `e${i}`)));
  try {
    const dbs = stores.map((s) => s.db<Uint8Array>('bench'));
    const value = randomBytes(COMMIT_VALUE_BYTES);
    await Promise.all(stores.map((s, i) => s.commit(() => dbs[i]!.put('warm', value))));
    const walls: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      // Overwrites a steady set of keys, as parties overwrite their snapshots (the files stop growing after the first round).
      await Promise.all(
        Array.from({ length: batch }, (_, i) => {
          const e = where === 'shared' ? 0 : i;
          return stores[e]!.commit(() => dbs[e]!.put(`k${i}`, value));
        }),
      );
      walls.push((performance.now() - t0) / batch);
    }
    const cpu = process.cpuUsage(cpu0);
    return { batch, wallMs: percentile(walls, 0.5), cpuMs: (cpu.user + cpu.system) / 1000 / (rounds * batch) };
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The kinds a backend runs, measured through it as the parties call it:
 * signing with an identity's Secret, verifying under a known key, X25519 with
 * an ephemeral secret (imported at each use) and a peer key seen before.
 */
export function backendUnits(b: CryptoBackend, batchMs: number): Partial<Record<CounterKind, UnitCost>> {
  const seed = randomBytes(32);
  const identity = Secret.of(seed);
  const msg = randomBytes(SIGNED_BYTES);
  const sig = b.ed25519.sign(identity, msg);
  const pub = b.ed25519.publicKey(identity);
  const eph = randomBytes(32);
  const peer = b.x25519.publicKey(randomBytes(32));
  const units: Partial<Record<CounterKind, UnitCost>> = {
    'ed25519.sign': fixed(
      time(() => b.ed25519.sign(identity, msg), batchMs),
      `Ed25519 sign, ${SIGNED_BYTES} B (${b.name})`,
    ),
    'ed25519.verify': fixed(
      time(() => b.ed25519.verify(sig, msg, pub), batchMs),
      `Ed25519 verify (strict), ${SIGNED_BYTES} B (${b.name})`,
    ),
    'ed25519.keygen': fixed(
      time(() => b.ed25519.publicKey(seed), batchMs),
      `Ed25519 public key from seed (${b.name})`,
    ),
    'x25519.keygen': fixed(
      time(() => b.x25519.publicKey(eph), batchMs),
      `X25519 public key of an ephemeral secret (${b.name})`,
    ),
    'x25519.ecdh': fixed(
      time(() => b.x25519.shared(eph, peer), batchMs),
      `X25519 shared secret, ephemeral secret (${b.name})`,
    ),
  };
  const seal = aead(b, batchMs, 'seal');
  const open = aead(b, batchMs, 'open');
  for (const what of ['session', 'channel', 'box'] as const) {
    units[`aead.seal.${what}`] = seal;
    units[`aead.open.${what}`] = open;
  }
  return units;
}

/** The kinds both backends leave to @noble/hashes. */
function hashUnits(batchMs: number): Partial<Record<CounterKind, UnitCost>> {
  const k32 = randomBytes(32);
  const info = randomBytes(60);
  const mac = randomBytes(120);
  const msg = randomBytes(SIGNED_BYTES);
  return {
    hkdf: fixed(
      time(() => hkdf(sha256, k32, k32, info, 64), batchMs),
      'HKDF-SHA256, 64 B out',
    ),
    hmac: fixed(
      time(() => hmac(sha256, k32, mac), batchMs),
      'HMAC-SHA256, 120 B',
    ),
    sha256: fixed(
      time(() => sha256(msg), batchMs),
      `SHA-256, ${SIGNED_BYTES} B`,
    ),
  };
}

/** Both backends' units, and every kind at the servers' backend. */
export function cryptoUnits(batchMs: number): Pick<Units, 'crypto' | 'cryptoByBackend'> {
  const cryptoByBackend = Object.fromEntries(BACKEND_NAMES.map((n) => [n, backendUnits(backendNamed(n), batchMs)])) as Units['cryptoByBackend'];
  return { crypto: { ...hashUnits(batchMs), ...cryptoByBackend[backendForRole('server').name] }, cryptoByBackend };
}

/**
 * Measures every unit. `batches` are the commit batch sizes wanted (the
 * concurrency levels of the run); `quick` shortens everything (smoke runs).
 */
export async function measureUnits(opts: { batches: number[]; quick: boolean; loginScrypt: { N: number; r: number; p: number } }): Promise<Units> {
  const t0 = performance.now();
  const batchMs = opts.quick ? 4 : 40;
  const { crypto, cryptoByBackend } = cryptoUnits(batchMs);
  const salt = randomBytes(16);
  const pw = randomBytes(16);
  const s = opts.loginScrypt;
  crypto.scrypt = fixed(
    time(() => scrypt(pw, salt, { ...s, dkLen: 32 }), batchMs),
    `scrypt N=${s.N} r=${s.r} p=${s.p} (the bench's login cost)`,
  );
  const d0 = performance.now();
  scrypt(pw, salt, { ...SCRYPT_DEFAULTS, dkLen: 32 });
  const scryptDefaultMs = performance.now() - d0;
  const commits: CommitCost[] = [];
  for (const b of [...new Set([1, ...opts.batches])].sort((x, y) => x - y)) {
    const rounds = opts.quick ? 12 : Math.max(21, Math.ceil(800 / b));
    commits.push(await commitCost(b, rounds, 'shared'));
  }
  const spreadCommits: CommitCost[] = [];
  for (const b of [...new Set([1, ...opts.batches])].sort((x, y) => x - y)) {
    const rounds = opts.quick ? 6 : Math.max(12, Math.ceil(400 / b));
    spreadCommits.push(await commitCost(b, rounds, 'spread'));
  }
  const messageMs = measureMessageMs(batchMs);
  return { crypto, cryptoByBackend, commits, spreadCommits, scryptDefaultMs, messageMs, measuredInMs: performance.now() - t0 };
}

/** ms of one hop message's framing (envelope to JSON and bytes, and back), measured here: the fastest way is the runtime's own JSON. */
export function measureMessageMs(batchMs = 40): number {
  const env = {
    v: 1,
    id: 'server#1764879000123',
    corr: 'admin-sam#1764879000456',
    from: 'server',
    to: 'migration-sam/emoney',
    type: 'frame',
    mig: 'm-3fA9xQ2b',
    body: { session: 'm-3fA9xQ2b:S7:2', data: 'A'.repeat(200) },
  };
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < batchMs) {
    for (let i = 0; i < 100; i++) JSON.parse(dec.decode(enc.encode(JSON.stringify(env))));
    n += 100;
  }
  return (performance.now() - t0) / n;
}

/**
 * Crypto floor of a set of counted operations, ms: Σ n × fixed + bytes × per-byte, each kind at `backend`'s
 * unit where the backend runs it (default: the servers'). Logins (scrypt) are left out: they are not in a migration.
 */
export function cryptoFloorMs(
  counts: Partial<Record<CounterKind, Tally>>,
  units: Units,
  backend?: BackendName,
): { ms: number; byKind: Partial<Record<CounterKind, number>> } {
  let ms = 0;
  const byKind: Partial<Record<CounterKind, number>> = {};
  for (const [kind, t] of Object.entries(counts) as Array<[CounterKind, Tally]>) {
    const u = (backend && units.cryptoByBackend[backend]?.[kind]) ?? units.crypto[kind];
    if (!u || kind === 'scrypt') continue;
    const k = t.n * u.fixedMs + t.bytes * u.perByteMs;
    byKind[kind] = k;
    ms += k;
  }
  return { ms, byKind };
}

/** The commit cost measured at the batch size closest to (not above) `concurrency`: into one shared environment, or spread over one environment each. */
export function commitCostAt(units: Units, concurrency: number, where: 'shared' | 'spread' = 'shared'): CommitCost {
  const list = where === 'shared' ? units.commits : units.spreadCommits;
  const fits = list.filter((c) => c.batch <= concurrency);
  return fits[fits.length - 1] ?? list[0]!;
}
