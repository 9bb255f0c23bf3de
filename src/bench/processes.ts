/**
 * Processes mode: the parties every migration shares run as their own OS
 * processes on 127.0.0.1, exactly as `valmove up` starts them (`valmove
 * start <role>`: server, admin SAM, one process per provider holding its
 * migration and normal SAM), talking WebSocket with the same channels.
 *
 * The phones (a chip and a terminal each, two per user) run in this
 * process, as the real ChipRuntime and TerminalRuntime with their own LMDB
 * stores, each terminal on its own WebSocket to the server: a process per
 * chip and per terminal would be 4 × concurrency processes (1024 at
 * concurrency 256), which measures the host's process limits, not valmove.
 * So this process is the load generator: its CPU is the phones' CPU.
 *
 * Figures from the party processes: CPU from /proc/<pid>/stat (utime +
 * stime), RSS from /proc/<pid>/statm, crypto and LMDB counters and message
 * counts from each process's /metrics.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChipRuntime } from '../actors/chip.actor.ts';
import { issueItems } from '../actors/issuer.ts';
import type { RuntimeDeps } from '../actors/runtime.ts';
import { TerminalRuntime } from '../actors/terminal.actor.ts';
import { demoProviders, demoValue } from '../fixtures/demo.ts';
import { systemClock } from '../clock.ts';
import { deriveChipKey, fromB64, generateIdentity, systemRng, toHex, type Secret } from '../crypto/index.ts';
import { loadConfig, type ServerConfig } from '../deploy/config.ts';
import { readKeyFile, secretOf } from '../deploy/keyfiles.ts';
import { generateDeployment, type DeploymentSummary } from '../deploy/keygen.ts';
import { LocalDeployment, spawnParty, waitHealthy, type RunningChild } from '../deploy/up.ts';
import { createLogger } from '../log.ts';
import type { CounterSnapshot } from '../metrics/counters.ts';
import { DEFAULT_LIMITS, type Limits } from '../transport/limits.ts';
import { PartyStore } from '../store/party.store.ts';
import { newUserRecord, ServerRecords } from '../store/server.store.ts';
import type { Link } from '../transport/link.ts';
import { memoryLinkPair } from '../transport/memory.transport.ts';
import { SecureInitiatorLink } from '../transport/secure.link.ts';
import { WsConnector } from '../transport/ws.transport.ts';
import type { ModeOptions } from './embedded.ts';
import { loginAll, roleOf, timedMigrations, warmUp, warmupsAt, type PhonePair } from './measure.ts';
import { briefFigures, figures, type ConfigResult } from './report.ts';
import { diffSnap, procCpuMs, procRssBytes, scrape, type Scrape } from './scrape.ts';
import { pool } from './stats.ts';

/** Phone pairs set up at once. */
const SETUP_PARALLEL = 8;
/** How long a terminal may take to open its channel to the server. */
const CHANNEL_TIMEOUT_MS = 30_000;
/** Inbound links the server may hold beyond one per phone terminal: reconnects whose old socket is not yet seen closed. */
const LINKS_SPARE = 64;
/** How often, and how many times, the bench asks the server whether its links to the SAMs are up. */
const SAM_LINKS_POLL_MS = 100;
const SAM_LINKS_POLLS_MAX = 300;

/** A link that counts what crosses it (the phones' side of the WebSocket). */
function counted(raw: Link, count: (dir: 'out' | 'in', bytes: number) => void): Link {
  return {
    get label() {
      return raw.label;
    },
    get isOpen() {
      return raw.isOpen;
    },
    send(data) {
      count('out', data.length);
      raw.send(data);
    },
    onMessage(h) {
      raw.onMessage((d) => {
        count('in', d.length);
        h(d);
      });
    },
    onClose: (h) => raw.onClose(h),
    close: (r) => raw.close(r),
  };
}

export async function runProcesses(o: ModeOptions): Promise<ConfigResult[]> {
  const bench = await ProcessesBench.prepare(o);
  const results: ConfigResult[] = [];
  try {
    await bench.startParties();
    for (const c of o.concurrencies) {
      const label = `processes K=${o.items} c=${c}`;
      o.progress.start(label, o.migrationsAt(c));
      const r = await bench.runAt(c);
      results.push(r);
      o.progress.end(label, briefFigures(r));
      await bench.closePhones();
    }
  } finally {
    await bench.stop();
  }
  return results;
}

/**
 * Every phone's terminal holds a link to the server from 127.0.0.1 until its configuration ends (2 per migration, up to
 * 512 at concurrency 256, 2,048 at the largest), above LINKS_PER_ADDRESS_MAX: raise the server's caps for this run
 * rather than the defaults for everyone. SETUP_PARALLEL workers open them as fast as they can, and a channel refused
 * BUSY fails the run, so the handshake bucket is raised too. The per-link message rate stays the default: a terminal's
 * whole migration fits in its burst, so the bench measures what real traffic sees there.
 */
function benchLimits(o: ModeOptions): Partial<Limits> {
  const terminalsMax = 2 * Math.max(...o.concurrencies.map((c) => o.migrationsAt(c) + warmupsAt(c)));
  return {
    linksMax: Math.max(DEFAULT_LIMITS.linksMax, terminalsMax + LINKS_SPARE),
    linksPerAddressMax: Math.max(DEFAULT_LIMITS.linksPerAddressMax, terminalsMax + LINKS_SPARE),
    handshakesPerS: Math.max(DEFAULT_LIMITS.handshakesPerS, 10_000),
    handshakeBurst: Math.max(DEFAULT_LIMITS.handshakeBurst, terminalsMax),
  };
}

/** Every user of every configuration, created by the operator before the server starts (as `valmove up` does): their passwords. */
async function createUsers(o: ModeOptions, serverCfg: ServerConfig): Promise<Map<string, string>> {
  const users = o.concurrencies.flatMap((c) =>
    Array.from({ length: o.migrationsAt(c) + warmupsAt(c) }, (_, i) => ({ user: `k${o.items}c${c}u${i}`, password: toHex(systemRng.bytes(8)) })),
  );
  const store = PartyStore.open(serverCfg.dataDir);
  await store.commit(() => {
    const records = new ServerRecords(store);
    for (const u of users) records.users.put(u.user, newUserRecord(u.user, u.password, systemRng, o.scrypt));
  });
  await store.close();
  return new Map(users.map((u) => [u.user, u.password]));
}

/** What the bench reads of the deployment it wrote: the server's config and keys, the masters that issue to the phones' chips. */
interface BenchKeys {
  serverCfg: ServerConfig;
  operatorToken: string | undefined;
  serverSignPublic: Uint8Array;
  issuerMaster: Secret;
  providerMasters: Record<string, Secret>;
}

/** Writes the deployment (with the bench's limits on the server) and reads back what the phones need. */
async function writeDeployment(o: ModeOptions, dir: string, providers: string[]): Promise<{ summary: DeploymentSummary; keys: BenchKeys }> {
  const summary = await generateDeployment({ dir, providers, chips: [], terminals: [], scrypt: o.scrypt });
  const serverFile = join(dir, 'config', 'server.json');
  writeFileSync(serverFile, `${JSON.stringify({ ...JSON.parse(readFileSync(serverFile, 'utf8')), limits: benchLimits(o) }, null, 2)}\n`);
  const serverCfg = loadConfig(join(dir, 'config', 'server.json'), 'server') as ServerConfig;
  const serverKeys = readKeyFile(join(dir, 'keys', 'server.key.json'), 'server');
  const serverSignPublic = fromB64(serverKeys.identity.signPublic);
  const issuerMaster = secretOf(readKeyFile(join(dir, 'keys', 'admin-sam.key.json'), 'admin-sam').issuerMaster);
  const providerMasters: Record<string, Secret> = Object.fromEntries(
    providers.map((p) => [p, secretOf(readKeyFile(join(dir, 'keys', `provider-${p}.key.json`), 'provider').providerMaster)]),
  );
  return { summary, keys: { serverCfg, operatorToken: serverKeys.operatorToken, serverSignPublic, issuerMaster, providerMasters } };
}

/** One K's run: the shared parties as processes, the phones in this process, and what crosses the phones' links. */
class ProcessesBench {
  private readonly deployment: LocalDeployment;
  private readonly connectors: WsConnector[] = [];
  private readonly phones: Array<ChipRuntime | TerminalRuntime> = [];
  private readonly hops: Record<string, { messages: number; bytes: number }> = {};
  private counting = false;
  private readonly log = createLogger({ level: 'silent' });
  private readonly serverUrl: string;

  private constructor(
    private readonly o: ModeOptions,
    private readonly plan: ReturnType<typeof demoProviders>,
    private readonly dir: string,
    private readonly summary: DeploymentSummary,
    private readonly keys: BenchKeys,
    private readonly passwordOf: Map<string, string>,
  ) {
    this.deployment = new LocalDeployment(dir, summary, []);
    this.serverUrl = `ws://127.0.0.1:${keys.serverCfg.listen.port}/terminal`;
  }

  static async prepare(o: ModeOptions): Promise<ProcessesBench> {
    const plan = demoProviders(o.items);
    const dir = join(o.dataDir, `processes-k${o.items}`);
    const { summary, keys } = await writeDeployment(
      o,
      dir,
      plan.map((p) => p.provider),
    );
    const passwordOf = await createUsers(o, keys.serverCfg);
    return new ProcessesBench(o, plan, dir, summary, keys, passwordOf);
  }

  /** Starts the admin SAM, the providers, then the server, each once healthy; then waits for the server's links to its SAMs. */
  async startParties(): Promise<void> {
    const { dir, summary, deployment, keys } = this;
    const order = ['admin-sam', 'provider', 'server'];
    const logDir = join(dir, 'logs');
    mkdirSync(logDir, { recursive: true });
    for (const p of [...summary.processes].sort((a, b) => order.indexOf(a.role) - order.indexOf(b.role))) {
      const logPath = join(logDir, `${p.id}.log`);
      const child = spawnParty(p.role, p.config, logPath);
      const running: RunningChild = { id: p.id, role: p.role, pid: child.pid ?? -1, port: p.port, config: p.config, log: logPath, child };
      deployment.processes.push(running);
      await waitHealthy(p.port, child, p.id);
    }
    // The server connects to its SAMs after it starts: wait until its links are up (the detail of /healthz is the operator's).
    const operator = { authorization: `Bearer ${keys.operatorToken ?? ''}` };
    for (let tries = 0; ; tries++) {
      const h = (await (await fetch(`http://127.0.0.1:${keys.serverCfg.listen.port}/healthz`, { headers: operator })).json()) as {
        parties?: Array<{ links: string[] }>;
      };
      if ((h.parties?.[0]?.links.length ?? 0) >= 1 + this.plan.length) break;
      if (tries > SAM_LINKS_POLLS_MAX) throw new Error('the server did not connect to its SAMs');
      await new Promise((r) => setTimeout(r, SAM_LINKS_POLL_MS));
    }
  }

  private hop(name: string, bytes: number): void {
    if (!this.counting) return;
    const h = (this.hops[name] ??= { messages: 0, bytes: 0 });
    h.messages++;
    h.bytes += bytes;
  }

  private deps(id: string, path: string): RuntimeDeps {
    return { id, store: PartyStore.open(path), clock: systemClock, rng: systemRng, log: this.log };
  }

  /** One concurrency level: fresh phone pairs, logged in and registered, warmed up, then the timed migrations, measured. */
  async runAt(c: number): Promise<ConfigResult> {
    const { o } = this;
    const w = warmupsAt(c);
    const n = o.migrationsAt(c) + w;
    const pairs = await this.setUpPairs(`k${o.items}c${c}`, n);
    await loginAll(pairs.slice(0, w)); // the warm-up pairs' logins are not measured
    const loginsMs = await loginAll(pairs.slice(w));
    await pool(n, SETUP_PARALLEL, async (i) => {
      await pairs[i]!.old.register();
      await pairs[i]!.neu.register();
    });
    await warmUp(pairs.slice(0, w));
    const procs = this.deployment.processes;
    const before = await Promise.all(procs.map((p) => scrape(p.port, p.id)));
    const cpuBefore = procs.map((p) => procCpuMs(p.pid));
    for (const k of Object.keys(this.hops)) delete this.hops[k];
    this.counting = true;
    const run = await timedMigrations(pairs.slice(w), c, () => procs.reduce((a, p) => a + procRssBytes(p.pid), 0), `processes-k${o.items}-c${c}`);
    this.counting = false;
    const cpuAfter = procs.map((p) => procCpuMs(p.pid));
    const after = await Promise.all(procs.map((p) => scrape(p.port, p.id)));
    const { extraCrypto, extraStores, allHops } = processFigures(before, after, this.hops);
    const cpuMsByProcess: Record<string, number> = { 'bench (phones)': run.cpuMs };
    for (const [i, p] of procs.entries()) cpuMsByProcess[p.id] = cpuAfter[i]! - cpuBefore[i]!;
    return figures({
      mode: 'processes',
      items: o.items,
      concurrency: c,
      run,
      units: o.units,
      hops: allHops,
      cpuMsByProcess,
      extraCrypto,
      extraStores,
      loginsMs,
      scryptN: o.scrypt.N,
    });
  }

  /** `n` users' phone pairs: an old phone whose chip is issued K items, and a new phone with an empty chip. */
  private async setUpPairs(tag: string, n: number): Promise<PhonePair[]> {
    const { issuerMaster, providerMasters } = this.keys;
    const pairs: PhonePair[] = new Array(n);
    await pool(n, SETUP_PARALLEL, async (i) => {
      const user = `${tag}u${i}`;
      const src = await this.phone(`${tag}o${i}`, `${tag}S${i}`);
      const dst = await this.phone(`${tag}n${i}`, `${tag}D${i}`);
      await issueItems(
        src.chip,
        { issuerMaster, providerMasters },
        this.plan.map((p, k) => ({ area: p.provider, provider: p.provider, value: demoValue(p.kind, k, toHex(systemRng.bytes(16))) })),
        systemRng,
      );
      pairs[i] = { user, password: this.passwordOf.get(user)!, old: src.terminal, neu: dst.terminal, destinationSerial: dst.chip.serial };
    });
    return pairs;
  }

  /** A phone: a chip and its terminal on a counted local link, the terminal on its own channel to the server. */
  private async phone(name: string, serial: string): Promise<{ chip: ChipRuntime; terminal: TerminalRuntime }> {
    const { dir } = this;
    const chip = new ChipRuntime(this.deps(`chip/${serial}`, join(dir, 'phones', `chip-${serial}`)));
    await chip.start({ serial, kChip: deriveChipKey(this.keys.issuerMaster, serial).reveal() });
    const id = `terminal/${name}`;
    const terminal = new TerminalRuntime(this.deps(id, join(dir, 'phones', `terminal-${name}`)));
    await terminal.start();
    this.phones.push(chip, terminal);
    const [a, b] = memoryLinkPair(id, chip.id, { tap: ({ from, bytes }) => this.hop(from === id ? 'terminal->chip' : 'chip->terminal', bytes.length) });
    terminal.attach('chip', a, chip.id);
    chip.attach(id, b);
    await this.connectToServer(id, terminal);
    return { chip, terminal };
  }

  /** The terminal's channel to the server, over a counted WebSocket; resolves once it is up. */
  private connectToServer(id: string, terminal: TerminalRuntime): Promise<void> {
    // The phone's device key: the server binds the terminal's name to it at its first login.
    const device = generateIdentity(systemRng);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${id}: no channel to the server within ${CHANNEL_TIMEOUT_MS} ms`)), CHANNEL_TIMEOUT_MS);
      this.connectors.push(
        new WsConnector({
          url: this.serverUrl,
          onConnect: (raw) => {
            const link = new SecureInitiatorLink(
              counted(raw, (d, bytes) => this.hop(d === 'out' ? 'terminal->server' : 'server->terminal', bytes)),
              { name: id, identity: device, peerSignPublic: this.keys.serverSignPublic, rng: systemRng },
            );
            terminal.attach('server', link);
            void link.ready.then(() => {
              clearTimeout(timer);
              resolve();
            }, reject);
          },
        }),
      );
    });
  }

  /** Done with these phones: close their sockets and stores. */
  async closePhones(): Promise<void> {
    for (const conn of this.connectors.splice(0)) conn.close();
    for (const ph of this.phones.splice(0)) await ph.stop();
  }

  async stop(): Promise<void> {
    for (const conn of this.connectors) conn.close();
    for (const ph of this.phones) await ph.stop();
    await this.deployment.stop();
  }
}

/** What the party processes did during the timed run: crypto and LMDB work, and the SAMs' envelopes added to the phones' hops. */
function processFigures(
  before: Scrape[],
  after: Scrape[],
  hops: Record<string, { messages: number; bytes: number }>,
): { extraCrypto: CounterSnapshot; extraStores: CounterSnapshot; allHops: Record<string, { messages: number; bytes: number }> } {
  const extraCrypto: CounterSnapshot = {};
  const extraStores: CounterSnapshot = {};
  const allHops: Record<string, { messages: number; bytes: number }> = structuredClone(hops);
  for (const [i, a] of after.entries()) {
    const b = before[i]!;
    Object.assign(extraCrypto, diffSnap(a.crypto, b.crypto));
    Object.assign(extraStores, diffSnap(a.stores, b.stores));
    // The SAMs' envelopes (the server's are the phones' hops and these again; a normal SAM talks only to its migration SAM).
    for (const [party, dirs] of Object.entries(a.messages)) {
      const role = roleOf(party);
      if (role !== 'admin-sam' && role !== 'migration-sam') continue;
      for (const [d, v] of Object.entries(dirs)) {
        const was = b.messages[party]?.[d] ?? { messages: 0, bytes: 0 };
        const h = (allHops[`${role}(${d}, envelopes)`] ??= { messages: 0, bytes: 0 });
        h.messages += v.messages - was.messages;
        h.bytes += v.bytes - was.bytes;
      }
    }
  }
  return { extraCrypto, extraStores, allHops };
}
