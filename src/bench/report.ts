/**
 * Figures of one configuration, the floor model, growth slopes, the Markdown
 * table and the JSON file (issue 7).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, platform, release, totalmem, arch } from 'node:os';
import { join, resolve } from 'node:path';
import { BACKEND_NAMES, backendForRole } from '../crypto/index.ts';
import { CRYPTO_KINDS, totals, type CounterKind, type CounterSnapshot, type Tally } from '../metrics/counters.ts';
import { commitCostAt, cryptoFloorMs, type Units } from './floor.ts';
import { priceProtocolFloor, PUBLIC_KEY_KINDS, type FloorKind, type Implementations, type ProtocolFloor } from './protocolFloor.ts';
import { latencySummary, roleOf, type MemoryFigures, type TimedRun } from './measure.ts';
import { fitLine, fmt, mean, percentile } from './stats.ts';

export type Mode = 'embedded' | 'processes';

export const FLOOR_MODEL = [
  'floor per migration, from the counts of this configuration and the unit costs measured in this run:',
  '  crypto_ms = Σ over kinds (ops × unit ms + AEAD bytes × ms/byte)   (logins excluded: they happen before the timed part;',
  "               each role's Ed25519, X25519 and AEAD at the unit of the backend it runs: the chip's noble, the others' node)",
  '  cpu_floor_ms = crypto_ms + shared_env_commits × commit_cpu_ms(batch c) + phone_env_commits × spread_commit_cpu_ms(c)',
  "                 (shared: the server's, admin SAM's and provider SAMs' environments, where c migrations' commits share a flush;",
  "                  phone: each chip's and terminal's own environment, one migration each, measured as c environments committing at once)",
  '  flush_floor_ms = busiest_env_commits × commit_wall_ms(batch c)   (each party has its own LMDB environment; the busiest one shared by all',
  '                   migrations (server, admin SAM, a provider SAM) flushes in turn, c concurrent commits sharing one flush;',
  "                   chips' and terminals' environments are per migration and flush in parallel, so they do not bound throughput)",
  '  floor_ms = max(cpu_floor_ms, flush_floor_ms)   (one core does the CPU work while the disk flushes in parallel)',
  '  floor_throughput = 1000 / floor_ms migrations/s on ONE core; ratio = measured throughput / floor_throughput',
  '  cpu_efficiency = cpu_floor_ms / measured CPU ms per migration (independent of other load on the machine)',
  '',
  'protocol floor per migration: the work the protocol needs (src/bench/protocolFloor.ts; `valmove bench --floor-table` prints it),',
  'not what the code counted, priced the same way except that each crypto kind takes the fastest implementation measured here:',
  '  protocol_cpu_ms = Σ table crypto × fastest unit + table messages × message_ms (JSON framing; channel AEAD is in the crypto)',
  '                    + table shared commits × commit_cpu_ms(batch c) + table phone commits × spread_commit_cpu_ms(c)',
  "  protocol_flush_ms = the server's table commits × commit_wall_ms(batch c);   protocol_floor_ms = max(cpu, flush)",
  '  ratio = measured throughput / (1000 / protocol_floor_ms); counted work above the table is listed per configuration by kind',
].join('\n');

export interface Floor {
  cryptoMs: number;
  cryptoMsByKind: Partial<Record<CounterKind, number>>;
  /** CPU ms of every commit per migration: shared environments' at the batched unit, phones' at the spread unit. */
  commitCpuMs: number;
  /** Of which, in the phones' own environments. */
  phoneCommitCpuMs: number;
  commitWallMs: number;
  commitBatch: number;
  /** Commits per migration in the busiest environment shared by every migration, and which one. */
  busiestEnvCommits: number;
  busiestEnv: string;
  cpuFloorMs: number;
  flushFloorMs: number;
  floorMs: number;
  floorThroughputPerS: number;
  throughputRatio: number;
  cpuEfficiency: number;
}

export interface ConfigResult {
  mode: Mode;
  items: number;
  concurrency: number;
  migrations: number;
  completed: number;
  failures: string[];
  wallMs: number;
  throughputPerS: number;
  latencyMs: { p50: number; p95: number; p99: number; mean: number; max: number };
  /** CPU of every process that took part (embedded: this one; processes: each party process plus this one, which runs the phones). */
  cpuMsPerMigration: number;
  cpuMsPerMigrationByProcess: Record<string, number>;
  /** Embedded only: the runtime's turn durations per role (wall time of a turn, its commit wait included): a proxy for where the time goes. */
  turnMsPerMigrationByRole?: Record<string, number>;
  /**
   * Embedded only: each role's own work in its turns (handling, machines, snapshots, encoding, sending;
   * not LMDB's commit nor the wait for the disk), ms: the per-party CPU proxy.
   */
  workMsPerMigrationByRole?: Record<string, number>;
  messagesPerMigration: number;
  bytesPerMigration: number;
  /** Per hop (embedded: link from -> to, channel bytes) or per party and direction (processes: envelope bytes from /metrics). */
  hopsPerMigration: Record<string, { messages: number; bytes: number }>;
  lmdbCommitsPerMigration: number;
  lmdbCommitsPerMigrationByRole: Record<string, number>;
  cryptoPerMigration: Partial<Record<CounterKind, number>>;
  cryptoPerMigrationByRole: Record<string, Partial<Record<CounterKind, number>>>;
  /** The crypto floor (ms) of each role's operations: where the unavoidable CPU work sits. */
  cryptoFloorMsPerMigrationByRole: Record<string, number>;
  /** Crypto counted outside any party's turn or link (should be ~0 during migrations). */
  cryptoUnattributed: number;
  memory: MemoryFigures;
  floor: Floor;
  /** The protocol's floor (protocolFloor.ts): the table's work, priced at the fastest implementation measured. */
  protocolFloor: ProtocolFloor;
  /** Per item (per migration ÷ K), from the counters: messages, durable commits, public-key operations. */
  perItem: { messages: number; commits: number; publicKeyOps: number };
  logins: { count: number; p50Ms: number; meanMs: number; scryptN: number };
}

function perMig<T extends string>(rec: Partial<Record<T, Tally>>, n: number): Partial<Record<T, number>> {
  const out: Partial<Record<T, number>> = {};
  for (const [k, t] of Object.entries(rec) as Array<[T, Tally]>) out[k] = t.n / n;
  return out;
}

function byRole(table: CounterSnapshot): Record<string, Partial<Record<CounterKind, Tally>>> {
  const roles = new Set(Object.keys(table).map(roleOf));
  return Object.fromEntries([...roles].map((r) => [r, totals(table, (w) => roleOf(w) === r)]));
}

const COMMIT_KINDS: CounterKind[] = ['commit', 'commit.sync'];
const commitsOf = (row: Partial<Record<CounterKind, Tally>>) => COMMIT_KINDS.reduce((a, k) => a + (row[k]?.n ?? 0), 0);

/** The environment shared by every migration (not a chip's or terminal's) with the most commits; commits per migration. */
export function busiestSharedEnv(stores: CounterSnapshot, migrations: number): { env: string; commits: number } {
  let best = { env: '-', commits: 0 };
  for (const [path, row] of Object.entries(stores)) {
    const role = roleOf(path);
    if (role === 'chip' || role === 'terminal') continue;
    const n = commitsOf(row) / migrations;
    if (n > best.commits) best = { env: path.split(/[\\/]/).slice(-2).join('/'), commits: n };
  }
  return best;
}

/** Commits per migration in per-phone environments (chips, terminals) and in shared ones. */
export function commitsBySharing(stores: CounterSnapshot, migrations: number): { phone: number; shared: number } {
  let phone = 0;
  let shared = 0;
  for (const [path, row] of Object.entries(stores)) {
    const role = roleOf(path);
    if (role === 'chip' || role === 'terminal') phone += commitsOf(row);
    else shared += commitsOf(row);
  }
  return { phone: phone / migrations, shared: shared / migrations };
}

/** Each role's crypto floor per migration, its operations priced at the backend the role runs (backend.choice.ts). */
export function roleCryptoFloor(
  row: Partial<Record<CounterKind, Tally>>,
  role: string,
  migrations: number,
  units: Units,
): { ms: number; byKind: Partial<Record<CounterKind, number>> } {
  const scaled: Partial<Record<CounterKind, Tally>> = {};
  for (const [k, t] of Object.entries(row) as Array<[CounterKind, Tally]>) scaled[k] = { n: t.n / migrations, bytes: t.bytes / migrations };
  return cryptoFloorMs(scaled, units, backendForRole(role).name);
}

export function computeFloor(
  cryptoByRole: Record<string, Partial<Record<CounterKind, Tally>>>,
  commits: { phone: number; shared: number },
  busiest: { env: string; commits: number },
  migrations: number,
  concurrency: number,
  throughput: number,
  cpuMsPerMigration: number,
  units: Units,
): Floor {
  const crypto = { ms: 0, byKind: {} as Partial<Record<CounterKind, number>> };
  for (const [role, row] of Object.entries(cryptoByRole)) {
    const f = roleCryptoFloor(row, role, migrations, units);
    crypto.ms += f.ms;
    for (const [k, ms] of Object.entries(f.byKind) as Array<[CounterKind, number]>) crypto.byKind[k] = (crypto.byKind[k] ?? 0) + ms;
  }
  const c = commitCostAt(units, concurrency);
  const spread = commitCostAt(units, concurrency, 'spread');
  const phoneCommitCpuMs = commits.phone * spread.cpuMs;
  const commitCpuMs = commits.shared * c.cpuMs + phoneCommitCpuMs;
  const cpuFloorMs = crypto.ms + commitCpuMs;
  const flushFloorMs = busiest.commits * c.wallMs;
  const floorMs = Math.max(cpuFloorMs, flushFloorMs);
  const floorThroughputPerS = 1000 / floorMs;
  return {
    cryptoMs: crypto.ms,
    cryptoMsByKind: crypto.byKind,
    commitCpuMs,
    phoneCommitCpuMs,
    commitWallMs: c.wallMs,
    commitBatch: c.batch,
    busiestEnvCommits: busiest.commits,
    busiestEnv: busiest.env,
    cpuFloorMs,
    flushFloorMs,
    floorMs,
    floorThroughputPerS,
    throughputRatio: throughput / floorThroughputPerS,
    cpuEfficiency: cpuFloorMs / cpuMsPerMigration,
  };
}

/** A configuration's figures in a few words, for its progress line. */
export function briefFigures(r: ConfigResult): string {
  return (
    `${r.completed}/${r.migrations} migrations, ${r.throughputPerS.toFixed(1)}/s, ` +
    `p50 ${r.latencyMs.p50.toFixed(0)} ms, floor ratio ${r.floor.throughputRatio.toFixed(3)}`
  );
}

/** The crypto implementations this run measured, by name: the protocol floor prices each kind at the fastest. */
function implementationsOf(units: Units): Implementations {
  // Each backend's public-key and AEAD units; the hashes (HKDF, HMAC, SHA-256: noble everywhere) from the run's units.
  return { ...units.cryptoByBackend, hashes: units.crypto };
}

export function figures(o: {
  mode: Mode;
  items: number;
  concurrency: number;
  run: TimedRun;
  units: Units;
  hops: Record<string, { messages: number; bytes: number }>;
  cpuMsByProcess: Record<string, number>;
  turnMsByRole?: Record<string, number>;
  workMsByRole?: Record<string, number>;
  /** Counters gathered from other processes (processes mode), merged with this process's. */
  extraCrypto?: CounterSnapshot;
  extraStores?: CounterSnapshot;
  loginsMs: number[];
  scryptN: number;
}): ConfigResult {
  const { run } = o;
  const done = run.latenciesMs.length;
  const n = Math.max(1, done);
  const crypto = { ...run.counters.crypto, ...o.extraCrypto };
  const stores = { ...run.counters.stores, ...o.extraStores };
  const cryptoTotals = totals(crypto);
  const storeRoles = byRole(stores);
  const commits = commitsOf(totals(stores));
  const throughput = (done / run.wallMs) * 1000;
  const cpuTotal = Object.values(o.cpuMsByProcess).reduce((a, b) => a + b, 0);
  const cpuPer = cpuTotal / n;
  const hopsPer = Object.fromEntries(Object.entries(o.hops).map(([h, v]) => [h, { messages: v.messages / n, bytes: v.bytes / n }]));
  const cryptoRoles = byRole(crypto);
  const cryptoPer = perMig(cryptoTotals, n);
  const messagesPer = Object.values(o.hops).reduce((a, v) => a + v.messages, 0) / n;
  const sharing = commitsBySharing(stores, n);
  const counted: Partial<Record<FloorKind, number>> = { ...cryptoPer, message: messagesPer, 'commit.shared': sharing.shared, 'commit.phone': sharing.phone };
  const protocolFloor = priceProtocolFloor({
    items: o.items,
    concurrency: o.concurrency,
    throughputPerS: throughput,
    units: o.units,
    implementations: implementationsOf(o.units),
    messageMs: o.units.messageMs,
    counted,
  });
  const publicKeyOps = PUBLIC_KEY_KINDS.reduce((a, k) => a + (cryptoPer[k] ?? 0), 0);
  return {
    mode: o.mode,
    items: o.items,
    concurrency: o.concurrency,
    migrations: done + run.failures.length,
    completed: done,
    failures: run.failures,
    wallMs: run.wallMs,
    throughputPerS: throughput,
    latencyMs: latencySummary(run.latenciesMs),
    cpuMsPerMigration: cpuPer,
    cpuMsPerMigrationByProcess: Object.fromEntries(Object.entries(o.cpuMsByProcess).map(([k, v]) => [k, v / n])),
    ...(o.turnMsByRole ? { turnMsPerMigrationByRole: Object.fromEntries(Object.entries(o.turnMsByRole).map(([k, v]) => [k, v / n])) } : {}),
    ...(o.workMsByRole ? { workMsPerMigrationByRole: Object.fromEntries(Object.entries(o.workMsByRole).map(([k, v]) => [k, v / n])) } : {}),
    messagesPerMigration: messagesPer,
    bytesPerMigration: Object.values(o.hops).reduce((a, v) => a + v.bytes, 0) / n,
    hopsPerMigration: hopsPer,
    lmdbCommitsPerMigration: commits / n,
    lmdbCommitsPerMigrationByRole: Object.fromEntries(Object.entries(storeRoles).map(([r, row]) => [r, commitsOf(row) / n])),
    cryptoPerMigration: cryptoPer,
    cryptoPerMigrationByRole: Object.fromEntries(Object.entries(cryptoRoles).map(([r, row]) => [r, perMig(row, n)])),
    cryptoFloorMsPerMigrationByRole: Object.fromEntries(Object.entries(cryptoRoles).map(([r, row]) => [r, roleCryptoFloor(row, r, n, o.units).ms])),
    cryptoUnattributed: Object.values(totals(crypto, (w) => roleOf(w) === 'unattributed')).reduce((a, t) => a + (t?.n ?? 0), 0) / n,
    memory: run.memory,
    floor: computeFloor(cryptoRoles, sharing, busiestSharedEnv(stores, n), n, o.concurrency, throughput, cpuPer, o.units),
    protocolFloor,
    perItem: { messages: messagesPer / o.items, commits: commits / n / o.items, publicKeyOps: publicKeyOps / o.items },
    logins: { count: o.loginsMs.length, p50Ms: percentile(o.loginsMs, 0.5), meanMs: mean(o.loginsMs), scryptN: o.scryptN },
  };
}

export interface Growth {
  mode: Mode;
  /** Over K at one concurrency: ms per extra item. */
  perItem: Array<{
    concurrency: number;
    cpuMsPerItem: number;
    floorMsPerItem: number;
    cryptoOpsPerItem: number;
    commitsPerItem: number;
    /** Hop messages and public-key operations (Ed25519 sign/verify/keygen, X25519 keygen/ECDH) per added item. */
    messagesPerItem: number;
    publicKeyOpsPerItem: number;
    /**
     * CPU ms each added item cost between neighbouring K (1 -> 3, 3 -> 10):
     * equal steps mean cost linear in K; a rising step, a superlinear part.
     */
    marginalCpuMsPerItem: Array<{ fromK: number; toK: number; ms: number }>;
  }>;
  /** Over concurrency at one K: ms per migration added per doubling of concurrency, and p99/p50. */
  perConcurrency: Array<{
    items: number;
    cpuMsPerDoubling: number;
    p50MsPerDoubling: number;
    p99OverP50AtMax: number;
    /**
     * The heap held at the mid-run GCs (over the idle heap), fitted against
     * the migrations in flight across the concurrencies run: the slope is
     * what each more migration in flight holds, the intercept what a run
     * holds whatever its concurrency (buffers, queues, caches). NaN with
     * fewer than two concurrencies of c >= 16 measured.
     */
    heapPerAddedInFlightBytes: number;
    heapFixedBytes: number;
  }>;
}

/** Concurrency 1 is left out: one migration in flight is within the noise of one GC. */
export const HEAP_FIT_CONCURRENCY_MIN = 16;

function heapLine(at: ConfigResult[]): { heapPerAddedInFlightBytes: number; heapFixedBytes: number } {
  const pts = at
    .filter((r) => r.concurrency >= HEAP_FIT_CONCURRENCY_MIN && Number.isFinite(r.memory.heapPerInFlightBytes) && r.memory.probedInFlight > 0)
    .map((r): [number, number] => [r.memory.probedInFlight, r.memory.heapPerInFlightBytes * r.memory.probedInFlight]);
  if (new Set(pts.map((p) => p[0])).size < 2) return { heapPerAddedInFlightBytes: Number.NaN, heapFixedBytes: Number.NaN };
  const line = fitLine(pts);
  return { heapPerAddedInFlightBytes: line.slope, heapFixedBytes: line.intercept };
}

function marginal(at: ConfigResult[]): Array<{ fromK: number; toK: number; ms: number }> {
  const byK = [...at].sort((a, b) => a.items - b.items);
  const out: Array<{ fromK: number; toK: number; ms: number }> = [];
  for (let i = 1; i < byK.length; i++) {
    const a = byK[i - 1]!;
    const b = byK[i]!;
    if (b.items > a.items) out.push({ fromK: a.items, toK: b.items, ms: (b.cpuMsPerMigration - a.cpuMsPerMigration) / (b.items - a.items) });
  }
  return out;
}

export function growth(results: ConfigResult[]): Growth[] {
  const out: Growth[] = [];
  for (const mode of [...new Set(results.map((r) => r.mode))]) {
    const rs = results.filter((r) => r.mode === mode && r.completed > 0);
    const g: Growth = { mode, perItem: [], perConcurrency: [] };
    for (const c of [...new Set(rs.map((r) => r.concurrency))]) {
      const at = rs.filter((r) => r.concurrency === c);
      if (new Set(at.map((r) => r.items)).size < 2) continue;
      const ops = (r: ConfigResult) => Object.values(r.cryptoPerMigration).reduce((a, b) => a + (b ?? 0), 0);
      g.perItem.push({
        concurrency: c,
        cpuMsPerItem: fitLine(at.map((r) => [r.items, r.cpuMsPerMigration])).slope,
        floorMsPerItem: fitLine(at.map((r) => [r.items, r.floor.floorMs])).slope,
        cryptoOpsPerItem: fitLine(at.map((r) => [r.items, ops(r)])).slope,
        commitsPerItem: fitLine(at.map((r) => [r.items, r.lmdbCommitsPerMigration])).slope,
        messagesPerItem: fitLine(at.map((r) => [r.items, r.messagesPerMigration])).slope,
        publicKeyOpsPerItem: fitLine(at.map((r) => [r.items, r.perItem.publicKeyOps * r.items])).slope,
        marginalCpuMsPerItem: marginal(at),
      });
    }
    for (const k of [...new Set(rs.map((r) => r.items))]) {
      const at = rs.filter((r) => r.items === k).sort((a, b) => a.concurrency - b.concurrency);
      if (at.length < 2) continue;
      const top = at[at.length - 1]!;
      g.perConcurrency.push({
        items: k,
        cpuMsPerDoubling: fitLine(at.map((r) => [Math.log2(r.concurrency), r.cpuMsPerMigration])).slope,
        p50MsPerDoubling: fitLine(at.map((r) => [Math.log2(r.concurrency), r.latencyMs.p50])).slope,
        p99OverP50AtMax: top.latencyMs.p99 / top.latencyMs.p50,
        ...heapLine(at),
      });
    }
    out.push(g);
  }
  return out;
}

export function machine(): Record<string, unknown> {
  let commit = 'unknown';
  let dirty = false;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    dirty = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().length > 0;
  } catch {
    // not a git checkout
  }
  const c = cpus();
  return {
    cpuModel: c[0]?.model ?? 'unknown',
    cpuCount: c.length,
    memoryBytes: totalmem(),
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    gitCommit: commit,
    gitDirty: dirty,
  };
}

const kb = (b: number) => fmt(b / 1024);

const TABLE_HEADER =
  '| mode | K | conc | migs | mig/s | protocol floor mig/s | ratio | counted floor mig/s | ratio | p50 ms | p95 ms | p99 ms | CPU ms/mig | ' +
  'counted floor ms/mig (CPU: crypto + commits; flush) | CPU eff. | msgs/mig | KB/mig | commits/mig | per item: msgs / commits / public-key ops | ' +
  'Ed25519 s/v per mig | heap KB/in-flight | RSS KB/in-flight |';

/** One configuration's row of the markdown table (columns as in TABLE_HEADER). */
function tableRow(r: ConfigResult): string {
  const f = r.floor;
  return (
    `| ${r.mode} | ${r.items} | ${r.concurrency} | ${r.completed}${r.failures.length ? ` (+${r.failures.length} failed)` : ''} | ` +
    `${fmt(r.throughputPerS)} | ${fmt(r.protocolFloor.floorThroughputPerS)} | ${fmt(r.protocolFloor.throughputRatio)} | ` +
    `${fmt(f.floorThroughputPerS)} | ${fmt(f.throughputRatio)} | ` +
    `${fmt(r.latencyMs.p50)} | ${fmt(r.latencyMs.p95)} | ${fmt(r.latencyMs.p99)} | ${fmt(r.cpuMsPerMigration)} | ` +
    `${fmt(f.floorMs)} (${fmt(f.cryptoMs)} + ${fmt(f.commitCpuMs)}; flush ${fmt(f.flushFloorMs)} = ${fmt(f.busiestEnvCommits)} in ${f.busiestEnv}) | ` +
    `${fmt(f.cpuEfficiency)} | ${fmt(r.messagesPerMigration)} | ${kb(r.bytesPerMigration)} | ${fmt(r.lmdbCommitsPerMigration)} | ` +
    `${fmt(r.perItem.messages)} / ${fmt(r.perItem.commits)} / ${fmt(r.perItem.publicKeyOps)} | ` +
    `${fmt(r.cryptoPerMigration['ed25519.sign'])}/${fmt(r.cryptoPerMigration['ed25519.verify'])} | ` +
    `${kb(r.memory.heapPerInFlightBytes)} | ${kb(r.memory.rssPerInFlightBytes)} |`
  );
}

/** One configuration's paragraph: where its CPU, commits, crypto, messages and memory go, per migration. */
function configLine(r: ConfigResult): string {
  const cpu = Object.entries(r.cpuMsPerMigrationByProcess)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(', ');
  const turns = r.turnMsPerMigrationByRole
    ? Object.entries(r.turnMsPerMigrationByRole)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(', ')
    : '';
  const work = r.workMsPerMigrationByRole
    ? Object.entries(r.workMsPerMigrationByRole)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(', ')
    : '';
  const commits = Object.entries(r.lmdbCommitsPerMigrationByRole)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(', ');
  const ops = CRYPTO_KINDS.filter((k) => r.cryptoPerMigration[k])
    .map((k) => `${k} ${fmt(r.cryptoPerMigration[k])}`)
    .join(', ');
  const hops = Object.entries(r.hopsPerMigration)
    .sort((a, b) => b[1].messages - a[1].messages)
    .map(([h, v]) => `${h} ${fmt(v.messages)} (${kb(v.bytes)} KB)`)
    .join(', ');
  const floors = Object.entries(r.cryptoFloorMsPerMigrationByRole)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(', ');
  return (
    `- **${r.mode} K=${r.items} c=${r.concurrency}**: CPU ms ${cpu}` +
    `${work ? `; party work ms (turns without commit) ${work}` : ''}${turns ? `; turn ms (wall, incl. commit wait) ${turns}` : ''}; ` +
    `crypto floor ms ${floors}; commits ${commits}; crypto ${ops}; hops ${hops}; ` +
    `logins ${r.logins.count} × ${fmt(r.logins.meanMs)} ms (scrypt N=${r.logins.scryptN}); ` +
    `heap KB per in-flight migration ${kb(r.memory.heapPerInFlightBytes)} ` +
    `(median of ${r.memory.heapProbes} mid-run GCs, ${fmt(r.memory.probedInFlight)} in flight), ` +
    `heap KB a finished migration leaves behind ${kb(r.memory.heapRetainedPerMigrationBytes)}; ` +
    `protocol floor ${fmt(r.protocolFloor.floorMs)} ms (crypto ${fmt(r.protocolFloor.cryptoMs)} + messages ${fmt(r.protocolFloor.messagesMs)} ` +
    `+ commits ${fmt(r.protocolFloor.commitCpuMs)}; flush ${fmt(r.protocolFloor.flushFloorMs)}); ` +
    `counted above the protocol table: ${wasteLine(r.protocolFloor)}` +
    `${Number.isFinite(r.memory.partyRssPerInFlightBytes) ? `; party processes' RSS KB/in-flight ${kb(r.memory.partyRssPerInFlightBytes)}` : ''}`
  );
}

/** Counted work above the protocol table, per migration: the waste, by kind. */
function wasteLine(p: ProtocolFloor): string {
  const rows = Object.entries(p.waste)
    .sort((a, b) => b[1].excess - a[1].excess)
    .map(([k, w]) => `${k} ${fmt(w.counted)} (table ${fmt(w.floor)})`);
  return rows.length > 0 ? rows.join(', ') : 'nothing';
}

export function markdown(results: ConfigResult[], units: Units, grow: Growth[]): string {
  const lines: string[] = [];
  lines.push(TABLE_HEADER);
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|');
  for (const r of results) lines.push(tableRow(r));
  lines.push('');
  lines.push('Per configuration (per migration): CPU ms by process; LMDB commits by role; crypto operations by kind.');
  lines.push('');
  for (const r of results) lines.push(configLine(r));
  lines.push('');
  lines.push('Growth (least-squares slopes over the configurations run):');
  lines.push('');
  for (const g of grow) {
    for (const p of g.perItem) {
      const steps = p.marginalCpuMsPerItem.map((m) => `K ${m.fromK}→${m.toK} +${fmt(m.ms)}`).join(', ');
      lines.push(
        `- ${g.mode}, c=${p.concurrency}: +${fmt(p.cpuMsPerItem)} CPU ms per item ` +
          `(floor +${fmt(p.floorMsPerItem)} ms; +${fmt(p.cryptoOpsPerItem)} crypto ops, +${fmt(p.commitsPerItem)} commits, ` +
          `+${fmt(p.messagesPerItem)} messages, +${fmt(p.publicKeyOpsPerItem)} public-key ops per item)` +
          `${steps ? `; each added item, by step: ${steps} CPU ms` : ''}`,
      );
    }
    for (const p of g.perConcurrency) {
      const heap = Number.isFinite(p.heapPerAddedInFlightBytes)
        ? `; heap ${kb(p.heapPerAddedInFlightBytes)} KB per added in-flight migration ` +
          `(+ ${kb(p.heapFixedBytes)} KB whatever the concurrency; fitted over c >= ${HEAP_FIT_CONCURRENCY_MIN})`
        : '';
      lines.push(
        `- ${g.mode}, K=${p.items}: CPU ms/migration ${p.cpuMsPerDoubling >= 0 ? '+' : ''}${fmt(p.cpuMsPerDoubling)} ` +
          `and p50 ${p.p50MsPerDoubling >= 0 ? '+' : ''}${fmt(p.p50MsPerDoubling)} ms per doubling of concurrency; ` +
          `p99/p50 at the highest = ${fmt(p.p99OverP50AtMax)}${heap}`,
      );
    }
  }
  lines.push('');
  lines.push(...unitLines(units));
  lines.push('');
  lines.push('```');
  lines.push(FLOOR_MODEL);
  lines.push('```');
  return lines.join('\n');
}

/** The unit costs measured: crypto (both backends side by side), durable commits, scrypt. */
export function unitLines(units: Units): string[] {
  const unitCosts = Object.entries(units.crypto)
    .filter(([k]) => !k.includes('.channel') && !k.includes('.box'))
    .map(([k, u]) => `${k.replace('.session', '')} ${fmt(u.fixedMs)}${u.perByteMs ? ` + ${fmt(u.perByteMs * 1024)}/KB` : ''}`)
    .join(', ');
  const commitCosts = units.commits.map((c) => `batch ${c.batch}: ${fmt(c.wallMs)} ms wall, ${fmt(c.cpuMs)} ms CPU per commit`).join('; ');
  const spreadCommitCosts = units.spreadCommits.map((c) => `c=${c.batch}: ${fmt(c.wallMs)} ms wall, ${fmt(c.cpuMs)} ms CPU per commit`).join('; ');
  return [
    `Unit costs measured in this run (ms; Ed25519, X25519 and AEAD on ${backendForRole('server').name}, the servers' backend): ${unitCosts}`,
    backendLine(units),
    `Durable commit (one environment, 2 KiB): ${commitCosts}; scrypt at the production cost (N=2^15): ${fmt(units.scryptDefaultMs)} ms per login`,
    `Durable commit (c environments, one commit each, at once; a phone's unit): ${spreadCommitCosts}`,
  ];
}

/** Both backends side by side, µs per operation (AEAD at 256 B), and which roles run which. */
export function backendLine(units: Units): string {
  const at256 = (u: { fixedMs: number; perByteMs: number } | undefined): number => (u ? u.fixedMs + 256 * u.perByteMs : Number.NaN);
  const ops: Array<[string, CounterKind]> = [
    ['sign', 'ed25519.sign'],
    ['verify', 'ed25519.verify'],
    ['X25519 keygen', 'x25519.keygen'],
    ['X25519 shared', 'x25519.ecdh'],
    ['AEAD seal 256 B', 'aead.seal.session'],
    ['AEAD open 256 B', 'aead.open.session'],
  ];
  const us = (ms: number): string => fmt(ms * 1000);
  const cells = ops.map(([label, kind]) => `${label} ${BACKEND_NAMES.map((b) => `${b} ${us(at256(units.cryptoByBackend[b]?.[kind]))}`).join(' / ')}`);
  const roles = ['server', 'admin-sam', 'migration-sam', 'normal-sam', 'terminal', 'chip'].map((r) => `${r} ${backendForRole(r).name}`).join(', ');
  return `Crypto backends (µs per operation): ${cells.join('; ')}. Roles run (and are priced at): ${roles}`;
}

export function writeJson(dir: string, report: unknown, stamp = new Date()): string {
  const out = resolve(dir);
  mkdirSync(out, { recursive: true });
  const file = join(out, `${stamp.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

export { kb };
