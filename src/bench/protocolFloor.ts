/**
 * The protocol's floor (issue 19, point 1): the work docs/protocol.md
 * requires of a migration of K items, as a fixed table, each line justified
 * by the property it serves, priced at the fastest implementation this run
 * measured on this machine. Unlike the counted floor (report.ts,
 * computeFloor), it does not move when the code does more than it must: a
 * wasteful build lowers its ratio to this floor, never raises the floor.
 *
 * Counted work above the table is listed by kind (`waste`), so the excess
 * has a name. The table assumes the lean protocol of issue 19: frames pass
 * end to end (no per-hop acknowledgement, no commit for a relayed frame),
 * one authenticated command per admin session covers every area, grants of
 * one lock or format are signed once, the main key moves between a
 * provider's SAMs under their shared secret. Progress lines are a courtesy
 * to the user, not a protocol need: they are not in the table.
 */
import type { CounterKind } from '../metrics/counters.ts';
import { commitCostAt, type UnitCost, type Units } from './floor.ts';

/** What a line counts: a crypto operation, a hop message's framing, or a durable commit (a shared party's or a phone's). */
export type FloorKind = CounterKind | 'message' | 'commit.shared' | 'commit.phone';

export interface FloorLine {
  /** Once per migration, or once per item. */
  per: 'migration' | 'item';
  kind: FloorKind;
  count: number;
  /** Bytes per operation, for AEAD (priced per byte). */
  bytes?: number;
  /** What does it. */
  what: string;
  /** The property it serves (docs/protocol.md). */
  why: string;
}

/** A hop message's size on the wire, typical of the protocol's envelopes (bytes sealed by the channel). */
const MESSAGE_BYTES = 330;
/** A session frame's sealed command or reply. */
const SESSION_BYTES = 160;

const SESSION = '§2 Chip sessions: challenges from both sides, HMAC proofs, two direction keys';
const HOPS = 'a chip session crosses server and terminal (3 hops per frame): auth1, auth2, auth3 with the command, the reply';

/**
 * The table. Per item: an upload and a download session, a grant for each,
 * a receipt, the main key, the clear. Per migration: five admin sessions
 * (identify ×2, lock, format, activate), the terminal's requests, the
 * channel reservations, the commit.
 */
export const PROTOCOL_FLOOR: readonly FloorLine[] = [
  // ---- per item: messages (each a hop: framing + one channel seal + one channel open) ----
  {
    per: 'item',
    kind: 'message',
    count: 2,
    what: 'msam.preflight / msam.ready (one provider per item)',
    why: '§3 preflight: every provider answers and trusts this server before anything changes',
  },
  {
    per: 'item',
    kind: 'message',
    count: 2,
    what: 'msam.upload / msam.uploaded',
    why: '§3 S5, S7: the server hands the upload grant and learns the item is held',
  },
  { per: 'item', kind: 'message', count: 12, what: 'upload session frames', why: `§3 S6–S7: ${HOPS}` },
  { per: 'item', kind: 'message', count: 2, what: 'msam.download / msam.downloaded', why: '§3 S12, S15: the download grant out, the receipt back' },
  { per: 'item', kind: 'message', count: 2, what: 'nsam.main-key / sealed', why: "§3 S12: the destination main key comes from the provider's normal SAM" },
  { per: 'item', kind: 'message', count: 12, what: 'download session frames', why: `§3 S13–S14: ${HOPS}` },
  { per: 'item', kind: 'message', count: 2, what: 'msam.clear / msam.cleared', why: '§3 S17: the migration SAM drops its copy' },
  // ---- per item: public-key work ----
  {
    per: 'item',
    kind: 'x25519.keygen',
    count: 2,
    what: 'an ephemeral key per grant (upload, download)',
    why: '§2 Temp keys: a temp key reaches a migration SAM only sealed to its X25519 key',
  },
  { per: 'item', kind: 'x25519.ecdh', count: 4, what: 'seal and open of each grant', why: '§2 Temp keys (as above)' },
  {
    per: 'item',
    kind: 'ed25519.verify',
    count: 2,
    what: 'the migration SAM checks each grant',
    why: '§2 Temp keys: a grant is used only as the admin SAM signed it',
  },
  { per: 'item', kind: 'ed25519.sign', count: 1, what: 'the download receipt', why: '§3 S15: the admin SAM commits only on a receipt it can check' },
  { per: 'item', kind: 'ed25519.verify', count: 1, what: 'the admin SAM checks the receipt', why: '§3 commit: a valid receipt for every item' },
  // ---- per item: symmetric work ----
  {
    per: 'item',
    kind: 'aead.seal.box',
    count: 3,
    bytes: 64,
    what: "temp key in 2 grants; the main key between the provider's SAMs",
    why: "§1: keys only with their owners; the main key under the provider's shared secret",
  },
  { per: 'item', kind: 'aead.open.box', count: 3, bytes: 64, what: 'the same, opened', why: '§1 (as above)' },
  { per: 'item', kind: 'hmac', count: 8, what: 'proofs of 2 sessions (chip and SAM each prove and check)', why: SESSION },
  {
    per: 'item',
    kind: 'hmac',
    count: 8,
    what: 'key check values: lock 3, format 2, download 2, activate 1',
    why: '§2 Key check values: the party that knows the key compares',
  },
  { per: 'item', kind: 'hkdf', count: 5, what: 'session keys of 2 sessions, both sides; K_main', why: `${SESSION}; §1 K_main per chip and area` },
  { per: 'item', kind: 'aead.seal.session', count: 4, bytes: SESSION_BYTES, what: 'command and reply of 2 sessions', why: SESSION },
  { per: 'item', kind: 'aead.open.session', count: 4, bytes: SESSION_BYTES, what: 'the same, opened', why: SESSION },
  // ---- per item: durable commits ----
  {
    per: 'item',
    kind: 'commit.shared',
    count: 3,
    what: 'migration SAM: item held (S7), receipt (S15), cleared (S17)',
    why: '§4: never lost, never twice: what a SAM promised survives a crash',
  },
  { per: 'item', kind: 'commit.shared', count: 2, what: 'server: item uploaded, receipt kept', why: '§3 S8, S15: the migration database' },
  { per: 'item', kind: 'commit.phone', count: 1, what: 'destination chip: the download written', why: '§1: a write to the chip happens whole or not at all' },
  // ---- per migration: messages ----
  {
    per: 'migration',
    kind: 'message',
    count: 4,
    what: 'migrate.out, migrate.in and their results',
    why: '§3 S1, S8, S9, S17: one connection from the terminal',
  },
  {
    per: 'migration',
    kind: 'message',
    count: 8,
    what: 'channel.reserve / release on both phones, and their answers',
    why: '§1 Terminal: it reserves the chip-control channel when the server asks',
  },
  {
    per: 'migration',
    kind: 'message',
    count: 70,
    what: '5 admin sessions (identify ×2, lock, format, activate): request, 4 frames × 3 hops, answer',
    why: '§2: every key change is a command in an authenticated session',
  },
  { per: 'migration', kind: 'message', count: 2, what: 'admin.commit / admin.decision', why: '§3 commit: the decision record leaves pending exactly once' },
  // ---- per migration: crypto ----
  {
    per: 'migration',
    kind: 'ed25519.sign',
    count: 2,
    what: "one signature over the grants of the lock, one over the format's",
    why: '§2 Temp keys: grants signed by the admin SAM',
  },
  { per: 'migration', kind: 'hmac', count: 20, what: 'proofs of 5 admin sessions', why: SESSION },
  { per: 'migration', kind: 'hkdf', count: 15, what: 'session keys of 5 admin sessions, both sides; K_chip', why: `${SESSION}; §1 K_chip per chip` },
  { per: 'migration', kind: 'aead.seal.session', count: 10, bytes: SESSION_BYTES, what: 'one command batch and one reply per admin session', why: SESSION },
  { per: 'migration', kind: 'aead.open.session', count: 10, bytes: SESSION_BYTES, what: 'the same, opened', why: SESSION },
  // ---- per migration: durable commits ----
  {
    per: 'migration',
    kind: 'commit.shared',
    count: 4,
    what: 'admin SAM: record pending with temp keys, destination bound, decision, temp keys deleted',
    why: '§3 decision record; §2 temp keys deleted once settled',
  },
  {
    per: 'migration',
    kind: 'commit.shared',
    count: 7,
    what: 'server: recorded, locked, source done, destination bound, committed, activated, completed',
    why: '§3 the migration database: a restart resumes each phase',
  },
  {
    per: 'migration',
    kind: 'commit.phone',
    count: 3,
    what: 'chips: source locked, destination formatted, activated (each one transaction over all areas)',
    why: '§1: a chip write is whole or not at all',
  },
];

/** Every hop message is sealed once and opened once by the channel it crosses (§2 Channels). */
function withChannel(lines: readonly FloorLine[]): FloorLine[] {
  const out = [...lines];
  for (const per of ['item', 'migration'] as const) {
    const n = lines.filter((l) => l.per === per && l.kind === 'message').reduce((a, l) => a + l.count, 0);
    const why = '§2 Channels: every hop is mutually authenticated and encrypted';
    out.push({ per, kind: 'aead.seal.channel', count: n, bytes: MESSAGE_BYTES, what: 'each hop message, sealed', why });
    out.push({ per, kind: 'aead.open.channel', count: n, bytes: MESSAGE_BYTES, what: 'each hop message, opened', why });
  }
  return out;
}

/** The table with the channel's work on every message: what a migration of `items` items needs, by kind. */
export function protocolWork(items: number): Record<FloorKind, { n: number; bytes: number }> {
  const out = {} as Record<FloorKind, { n: number; bytes: number }>;
  for (const l of withChannel(PROTOCOL_FLOOR)) {
    const times = l.per === 'item' ? items : 1;
    const t = (out[l.kind] ??= { n: 0, bytes: 0 });
    t.n += l.count * times;
    t.bytes += l.count * times * (l.bytes ?? 0);
  }
  return out;
}

/** Public-key operations per item in the table (the "≤ 10 per item" is counted against the same kinds). */
export const PUBLIC_KEY_KINDS: readonly CounterKind[] = ['ed25519.sign', 'ed25519.verify', 'ed25519.keygen', 'x25519.keygen', 'x25519.ecdh'];

export interface ProtocolFloor {
  items: number;
  /** The unit each crypto kind was priced at: the fastest of the implementations measured, named. */
  priced: Partial<Record<CounterKind, { ms: number; perByteMs: number; by: string }>>;
  messageMs: number;
  cryptoMs: number;
  messagesMs: number;
  commitCpuMs: number;
  cpuFloorMs: number;
  flushFloorMs: number;
  floorMs: number;
  floorThroughputPerS: number;
  throughputRatio: number;
  /** Work per migration by kind, as the table says. */
  work: Record<string, number>;
  /** Counted work per migration above the table, by kind (crypto kinds, messages, commits): the waste, named. */
  waste: Record<string, { counted: number; floor: number; excess: number }>;
}

/** The units of each implementation measured in this run, by name (e.g. noble, node): the floor takes the fastest per kind. */
export type Implementations = Record<string, Partial<Record<CounterKind, UnitCost>>>;

/**
 * Prices the table for K = `items` at concurrency `concurrency`: crypto at
 * the fastest implementation measured, messages at `messageMs`, commits as
 * the counted floor prices them (shared commits at the batched unit, phone
 * commits at the spread unit, the flush bound by the busiest shared
 * environment: the server's). `counted` is today's work per migration by
 * kind (crypto counters, messages, commits), to name the waste.
 */
export function priceProtocolFloor(o: {
  items: number;
  concurrency: number;
  throughputPerS: number;
  units: Units;
  implementations: Implementations;
  messageMs: number;
  counted: Partial<Record<FloorKind, number>>;
}): ProtocolFloor {
  const work = protocolWork(o.items);
  const priced: ProtocolFloor['priced'] = {};
  let cryptoMs = 0;
  for (const [kind, t] of Object.entries(work) as Array<[FloorKind, { n: number; bytes: number }]>) {
    if (kind === 'message' || kind === 'commit.shared' || kind === 'commit.phone') continue;
    // The fastest implementation at this kind's mean size per operation.
    const meanBytes = t.n > 0 ? t.bytes / t.n : 0;
    let best: { ms: number; perByteMs: number; by: string } | undefined;
    let bestCost = Number.POSITIVE_INFINITY;
    for (const [by, units] of Object.entries(o.implementations)) {
      const u = units[kind];
      const cost = u ? u.fixedMs + u.perByteMs * meanBytes : Number.POSITIVE_INFINITY;
      if (u && cost < bestCost) [best, bestCost] = [{ ms: u.fixedMs, perByteMs: u.perByteMs, by }, cost];
    }
    if (!best) continue;
    priced[kind as CounterKind] = best;
    cryptoMs += t.n * best.ms + t.bytes * best.perByteMs;
  }
  const messagesMs = work.message.n * o.messageMs;
  const shared = commitCostAt(o.units, o.concurrency);
  const spread = commitCostAt(o.units, o.concurrency, 'spread');
  const commitCpuMs = work['commit.shared'].n * shared.cpuMs + work['commit.phone'].n * spread.cpuMs;
  const cpuFloorMs = cryptoMs + messagesMs + commitCpuMs;
  // The busiest shared environment is the server's: 7 commits per migration and 2 per item in the table.
  const serverCommits = PROTOCOL_FLOOR.filter((l) => l.kind === 'commit.shared' && l.what.startsWith('server')).reduce(
    (a, l) => a + l.count * (l.per === 'item' ? o.items : 1),
    0,
  );
  const flushFloorMs = serverCommits * shared.wallMs;
  const floorMs = Math.max(cpuFloorMs, flushFloorMs);
  const floorThroughputPerS = 1000 / floorMs;
  const waste: ProtocolFloor['waste'] = {};
  for (const [kind, counted] of Object.entries(o.counted) as Array<[FloorKind, number]>) {
    if (kind === 'scrypt') continue;
    const floor = work[kind]?.n ?? 0;
    if (counted > floor + 1e-9) waste[kind] = { counted, floor, excess: counted - floor };
  }
  return {
    items: o.items,
    priced,
    messageMs: o.messageMs,
    cryptoMs,
    messagesMs,
    commitCpuMs,
    cpuFloorMs,
    flushFloorMs,
    floorMs,
    floorThroughputPerS,
    throughputRatio: o.throughputPerS / floorThroughputPerS,
    work: Object.fromEntries(Object.entries(work).map(([k, t]) => [k, t.n])),
    waste,
  };
}

/** The table as Markdown (docs/performance.md shows it; `valmove bench --floor-table` prints it). */
export function floorTableMarkdown(): string {
  const rows = withChannel(PROTOCOL_FLOOR).map((l) => `| ${l.per} | ${l.kind} | ${l.count} | ${l.what} | ${l.why} |`);
  return ['| per | kind | count | what | why (docs/protocol.md) |', '|---|---|---:|---|---|', ...rows].join('\n');
}
