/**
 * `valmove attack`: floods a local deployment as a stranger would (issue 16)
 * and measures what it costs the server, and a legitimate user.
 *
 *  1. a deployment on 127.0.0.1 (`valmove up`'s), with two pairs of phones;
 *  2. a legitimate migration, timed (the baseline);
 *  3. strangers only: anonymous requests, and the server's data.mdb before
 *     and after (nothing a stranger sends is kept);
 *  4. the burst — idle sockets, a burst of hellos with random keys and
 *     anonymous requests, from worker processes — and, once it is under
 *     way, a second legitimate migration, timed;
 *  5. the server's RSS and file descriptors sampled throughout, its
 *     refusal counters from /metrics, and the ratio of the two migrations.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { demoProviders, demoValue } from '../fixtures/demo.ts';
import { systemRng, toHex } from '../crypto/index.ts';
import { readKeyFile } from '../deploy/keyfiles.ts';
import { launchDeployment, pairNames, type LocalDeployment } from '../deploy/up.ts';
import { PartyStore } from '../store/party.store.ts';
import { mergeResults, type FloodJob, type FloodResult } from './flood.ts';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/valmove.js');

/** Idle sockets one worker process opens (this machine's descriptor limit is per process). */
export const IDLE_SOCKETS_PER_WORKER_MAX = 5_000;
/** The attack workers' niceness (see worker()). */
export const WORKER_NICENESS = 10;
/** How often the server's RSS and descriptors are read during the burst. */
export const SAMPLE_EVERY_MS = 200;
/** How long a worker waits for the server to act on its sockets (its handshake deadline, a refusal) before it gives up. */
export const WORKER_HOLD_MS = 20_000;
/** How long the run waits, after the burst, for the server's descriptors to come back down. */
export const SETTLE_MS_MAX = 30_000;

export interface AttackOptions {
  dir?: string;
  providers: number;
  idle: number;
  hellos: number;
  requests: number;
  /** Legitimate migrations timed before the burst, and as many during it (each on its own pair of phones); the ratio is of their medians. */
  migrations: number;
  /** Local source addresses the flood comes from (127.0.0.2, 127.0.0.3, …): 1 is one host, more a botnet. */
  addresses: number;
  keep: boolean;
  out?: (line: string) => void;
}

interface Sample {
  rssMb: number;
  fds: number;
  /** CPU time the process has used since it started (user + system), s. */
  cpuS: number;
}

export interface AttackReport {
  dir: string;
  server: { pid: number; port: number };
  baseline: { migrationMs: number; migrationsMs: number[]; before: Sample };
  strangersOnly: { requests: FloodResult; dataMdbBytes: { before: number; after: number }; inboxRecords: { before: number; after: number } };
  burst: {
    addresses: number;
    idle: FloodResult;
    hellos: FloodResult;
    requests: FloodResult;
    migrationMs: number;
    migrationsMs: number[];
    outcome: string;
    peak: Sample;
    samples: number;
    serverCpuS: number;
    wallS: number;
  };
  after: Sample;
  refusedByLimit: Record<string, number>;
  latencyRatio: number;
  elapsedMs: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]!;
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(/\d+/.exec(status.split('\n').find((l) => l.startsWith(key)) ?? '0')?.[0] ?? 0);
  // /proc/<pid>/stat: fields 14 and 15 (after the parenthesised name) are user and system time in clock ticks (100/s).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(fields[11]) + Number(fields[12])) / 100;
  return { rssMb: Math.round(kb('VmRSS:') / 102.4) / 10, fds: readdirSync(`/proc/${pid}/fd`).length, cpuS };
}

function worker(job: FloodJob): Promise<FloodResult> {
  return new Promise((resolvePromise, reject) => {
    // At a lower priority: the attacker stands for hosts of its own, whose CPU is not the deployment's; on one
    // machine it still takes whatever the deployment leaves.
    const child = spawn('nice', ['-n', String(WORKER_NICENESS), process.execPath, BIN, 'attack-worker', '--job', JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`attack worker (${job.kind}) exited with ${code}: ${err.slice(0, 400)}`));
      try {
        resolvePromise(JSON.parse(out) as FloodResult);
      } catch {
        reject(new Error(`attack worker (${job.kind}) printed no result: ${out.slice(0, 200)} ${err.slice(0, 200)}`));
      }
    });
  });
}

/** Splits `n` into parts of at most `max`. */
function split(n: number, max: number): number[] {
  const parts: number[] = [];
  for (let left = n; left > 0; left -= max) parts.push(Math.min(max, left));
  return parts;
}

async function timedMigration(d: LocalDeployment, pair: number): Promise<{ ms: number; outcome: string }> {
  const p = pairNames(pair + 1)[pair]!;
  const t0 = performance.now();
  const out = await d.terminal(p.old).migrateOut({ destination: p.destination });
  if (out.outcome !== 'uploaded') return { ms: Math.round(performance.now() - t0), outcome: `source phase ${out.outcome}: ${out.reason ?? ''}` };
  const done = await d.terminal(p.neu).migrateIn({ mig: out.mig });
  return { ms: Math.round(performance.now() - t0), outcome: done.outcome };
}

function storeFigures(dataDir: string): { bytes: number; inbox: number } {
  const bytes = statSync(join(dataDir, 'data.mdb')).size;
  const store = PartyStore.open(dataDir);
  try {
    return { bytes, inbox: store.inbox.getCount() };
  } finally {
    void store.close();
  }
}

async function refusals(port: number, token: string | undefined): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^valmove_refused_total\{([^}]*)\}\s+(\d+(?:\.\d+)?)/.exec(line);
    if (!m) continue;
    const limit = /limit="([^"]+)"/.exec(m[1]!)?.[1] ?? '?';
    out[limit] = (out[limit] ?? 0) + Number(m[2]);
  }
  return out;
}

export async function runAttack(o: AttackOptions): Promise<AttackReport> {
  const say = o.out ?? (() => {});
  const started = performance.now();
  const dir = resolve(o.dir ?? join('deploy', `attack-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  const plan = demoProviders(o.providers);
  const password = toHex(systemRng.bytes(12));
  const items = plan.map((p, i) => ({ area: p.provider, provider: p.provider, value: demoValue(p.kind, i, toHex(systemRng.bytes(16))) }));
  say(`valmove attack: a deployment with ${plan.length} provider(s) and ${2 * o.migrations} pairs of phones in ${dir}`);
  const d = await launchDeployment({ dir, providers: plan.map((p) => p.provider), user: 'alice', password, items, pairs: 2 * o.migrations });
  try {
    for (const p of pairNames(2 * o.migrations)) {
      for (const t of [p.old, p.neu]) {
        await d.terminal(t).login('alice', password);
        await d.terminal(t).register();
      }
    }
    const server = d.process('server');
    const keys = readKeyFile(join(dir, 'keys', 'server.key.json'), 'server');
    const target: Target = { pid: server.pid, url: `ws://127.0.0.1:${server.port}/terminal`, serverKey: keys.identity.signPublic };
    const base = await baselinePhase(d, o, plan.length, target, say);
    const strangers = await strangersPhase(o, join(dir, 'data', 'server'), target, say);
    const burst = await burstPhase(d, o, target, base.before, say);
    return {
      dir,
      server: { pid: server.pid, port: server.port },
      baseline: base,
      strangersOnly: strangers,
      burst: burst.burst,
      after: burst.after,
      refusedByLimit: await refusals(server.port, keys.operatorToken),
      latencyRatio: Math.round((burst.burst.migrationMs / Math.max(1, base.migrationMs)) * 100) / 100,
      elapsedMs: Math.round(performance.now() - started),
    };
  } finally {
    if (o.keep) d.detach();
    else await d.stop();
  }
}

/** The server under attack: its process, where strangers connect, and its public key (for hellos that pass the first check). */
interface Target {
  pid: number;
  url: string;
  serverKey: string;
}

/** Legitimate migrations before any attack, timed, and the server as it is then. */
async function baselinePhase(
  d: LocalDeployment,
  o: AttackOptions,
  items: number,
  target: Target,
  say: (line: string) => void,
): Promise<AttackReport['baseline']> {
  const before = sample(target.pid);
  const baseline: number[] = [];
  for (let i = 0; i < o.migrations; i++) {
    const m = await timedMigration(d, i);
    if (m.outcome !== 'completed') throw new Error(`a baseline migration ended ${m.outcome}`);
    baseline.push(m.ms);
  }
  const migrationMs = median(baseline);
  say(
    `baseline: ${o.migrations} ${items}-item migration(s) in ${baseline.join(', ')} ms (median ${migrationMs}); ` +
      `server RSS ${before.rssMb} MB, ${before.fds} descriptors`,
  );
  return { migrationMs, migrationsMs: baseline, before };
}

/** Strangers only: what anonymous requests leave in the server's store. */
async function strangersPhase(o: AttackOptions, dataDir: string, target: Target, say: (line: string) => void): Promise<AttackReport['strangersOnly']> {
  const { url, serverKey } = target;
  const quiet = storeFigures(dataDir);
  const strangers = mergeResults(
    await Promise.all(
      split(o.requests, Math.ceil(o.requests / 4)).map((n) =>
        worker({ kind: 'requests', url, serverKey, connections: 5, perConnection: Math.ceil(n / 5), holdMs: WORKER_HOLD_MS }),
      ),
    ),
  );
  const afterStrangers = storeFigures(dataDir);
  say(
    `strangers only: ${strangers.attempted} anonymous requests; ` +
      `server data.mdb ${quiet.bytes} -> ${afterStrangers.bytes} bytes, inbox records ${quiet.inbox} -> ${afterStrangers.inbox}`,
  );
  return {
    requests: strangers,
    dataMdbBytes: { before: quiet.bytes, after: afterStrangers.bytes },
    inboxRecords: { before: quiet.inbox, after: afterStrangers.inbox },
  };
}

/** The server's RSS and descriptors, read every SAMPLE_EVERY_MS until stopped: their peak. */
class ServerSampler {
  peak: Sample;
  samples = 0;
  private sampling = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly pid: number,
    start: Sample,
  ) {
    this.peak = start;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.sampling) {
      try {
        const s = sample(this.pid);
        this.samples++;
        this.peak = { rssMb: Math.max(this.peak.rssMb, s.rssMb), fds: Math.max(this.peak.fds, s.fds), cpuS: s.cpuS };
      } catch {
        // the process is gone: the report shows it
      }
      await new Promise((r) => setTimeout(r, SAMPLE_EVERY_MS));
    }
  }

  async stop(): Promise<void> {
    this.sampling = false;
    await this.loop;
  }
}

/** The burst, with legitimate migrations in the middle of it, and the server sampled throughout and once it settled. */
async function burstPhase(
  d: LocalDeployment,
  o: AttackOptions,
  target: Target,
  before: Sample,
  say: (line: string) => void,
): Promise<Pick<AttackReport, 'burst' | 'after'>> {
  const { pid, url, serverKey } = target;
  say(
    `burst from ${o.addresses} address(es): ${o.idle} idle sockets, ${o.hellos} hellos with random keys, ` +
      `${o.requests} anonymous requests; a second migration once it is under way`,
  );
  const burstStart = sample(pid);
  const sampler = new ServerSampler(pid, burstStart);
  // The burst comes from its own addresses (127.0.0.2 on): the legitimate phones connect from 127.0.0.1.
  const from = Array.from({ length: Math.max(1, o.addresses) }, (_, i) => `127.0.0.${2 + (i % 250)}`);
  const burstWall = performance.now();
  const idleJobs = split(o.idle, IDLE_SOCKETS_PER_WORKER_MAX).map((n) => worker({ kind: 'idle', url, sockets: n, holdMs: WORKER_HOLD_MS, from }));
  const helloJobs = split(o.hellos, Math.ceil(o.hellos / 2)).map((n) => worker({ kind: 'hellos', url, sockets: n, serverKey, holdMs: WORKER_HOLD_MS, from }));
  const requestJobs = split(o.requests, Math.ceil(o.requests / 4)).map((n) =>
    worker({ kind: 'requests', url, serverKey, connections: 5, perConnection: Math.ceil(n / 5), holdMs: WORKER_HOLD_MS, from }),
  );
  await new Promise((r) => setTimeout(r, 1_000));
  const during: Array<{ ms: number; outcome: string }> = [];
  for (let i = 0; i < o.migrations; i++) during.push(await timedMigration(d, o.migrations + i));
  const migrationMs = median(during.map((m) => m.ms));
  const outcome = during.every((m) => m.outcome === 'completed') ? 'completed' : during.map((m) => m.outcome).join('; ');
  const [idle, hellos, requests] = await Promise.all([Promise.all(idleJobs), Promise.all(helloJobs), Promise.all(requestJobs)]);
  // Let the server close what the burst left (its handshake deadline), then read it once more.
  for (const end = performance.now() + SETTLE_MS_MAX; performance.now() < end && sample(pid).fds > before.fds + 8; )
    await new Promise((r) => setTimeout(r, 250));
  await sampler.stop();
  const after = sample(pid);
  const serverCpuS = Math.round((after.cpuS - burstStart.cpuS) * 10) / 10;
  const wallS = Math.round((performance.now() - burstWall) / 100) / 10;
  const { peak, samples } = sampler;
  return {
    burst: {
      addresses: o.addresses,
      idle: mergeResults(idle),
      hellos: mergeResults(hellos),
      requests: mergeResults(requests),
      migrationMs,
      migrationsMs: during.map((m) => m.ms),
      outcome,
      peak,
      samples,
      serverCpuS,
      wallS,
    },
    after,
  };
}

/** A file name for a report of this run, by the time it ends. */
export function reportFileName(): string {
  return `attack-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
}

/** The report as lines a person reads. */
export function describeAttack(r: AttackReport): string[] {
  const outcomes = (f: FloodResult) =>
    Object.entries(f.outcomes)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  return [
    `server CPU during the burst: ${r.burst.serverCpuS} s over ${r.burst.wallS} s (the migrations during it included)`,
    `server (pid ${r.server.pid}): RSS before ${r.baseline.before.rssMb} MB, peak ${r.burst.peak.rssMb} MB, after ${r.after.rssMb} MB; ` +
      `descriptors before ${r.baseline.before.fds}, peak ${r.burst.peak.fds}, after ${r.after.fds} (${r.burst.samples} samples)`,
    `strangers only: ${r.strangersOnly.requests.attempted} anonymous requests -> ${outcomes(r.strangersOnly.requests)}; ` +
      `data.mdb ${r.strangersOnly.dataMdbBytes.before} -> ${r.strangersOnly.dataMdbBytes.after} bytes; ` +
      `inbox records ${r.strangersOnly.inboxRecords.before} -> ${r.strangersOnly.inboxRecords.after}`,
    `burst from ${r.burst.addresses} address(es); idle sockets: ${r.burst.idle.attempted} -> ${outcomes(r.burst.idle)}; ` +
      `closed by the server: ${JSON.stringify(r.burst.idle.closedByParty)}` +
      `${r.burst.idle.closeMs ? `, median ${Math.round(r.burst.idle.closeMs.median)} ms after open (max ${Math.round(r.burst.idle.closeMs.max)})` : ''}`,
    `hellos: ${r.burst.hellos.attempted} -> ${outcomes(r.burst.hellos)}`,
    `anonymous requests: ${r.burst.requests.attempted} -> ${outcomes(r.burst.requests)}`,
    `refused, by limit (/metrics): ${
      Object.entries(r.refusedByLimit)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none counted'
    }`,
    `legitimate migrations: ${r.baseline.migrationsMs.join(', ')} ms before the burst (median ${r.baseline.migrationMs}), ` +
      `${r.burst.migrationsMs.join(', ')} ms during it (median ${r.burst.migrationMs}; ${r.burst.outcome}); ratio of the medians ${r.latencyRatio}`,
    `elapsed ${Math.round(r.elapsedMs / 1000)} s; deployment in ${r.dir}`,
  ];
}
