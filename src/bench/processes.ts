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
import { generateDeployment } from '../deploy/keygen.ts';
import { LocalDeployment, spawnParty, waitHealthy, type RunningChild } from '../deploy/up.ts';
import { createLogger } from '../log.ts';
import type { CounterKind, CounterSnapshot } from '../metrics/counters.ts';
import { DEFAULT_LIMITS, type Limits } from '../transport/limits.ts';
import { PartyStore } from '../store/party.store.ts';
import { newUserRecord, ServerRecords } from '../store/server.store.ts';
import type { Link } from '../transport/link.ts';
import { memoryLinkPair } from '../transport/memory.transport.ts';
import { SecureInitiatorLink } from '../transport/secure.link.ts';
import { WsConnector } from '../transport/ws.transport.ts';
import type { ModeOptions } from './embedded.ts';
import { loginAll, roleOf, timedMigrations, warmUp, warmupsAt, type PhonePair } from './measure.ts';
import { figures, type ConfigResult } from './report.ts';
import { pool } from './stats.ts';

/** Phone pairs set up at once. */
const SETUP_PARALLEL = 8;
/** How long a terminal may take to open its channel to the server. */
const CHANNEL_TIMEOUT_MS = 30_000;
/** Inbound links the server may hold beyond one per phone terminal: reconnects whose old socket is not yet seen closed. */
const LINKS_SPARE = 64;
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on Linux, whatever the kernel's HZ). */
const USER_HZ = 100;

function procCpuMs(pid: number): number {
  // Fields after the command name (which may hold spaces, so split after its closing parenthesis): utime is 14th, stime 15th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / USER_HZ;
}

function procRssBytes(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
  } catch {
    return 0;
  }
}

interface Scrape {
  crypto: CounterSnapshot;
  stores: CounterSnapshot;
  /** party -> direction -> { messages, bytes } */
  messages: Record<string, Record<string, { messages: number; bytes: number }>>;
}

const LINE = /^([a-z_]+)\{([^}]*)\} ([0-9.eE+-]+)$/;

function labels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of s.matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!.replace(/\\(.)/g, '$1');
  return out;
}

async function scrape(port: number, process: string): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  const out: Scrape = { crypto: {}, stores: {}, messages: {} };
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, name, l, v] = m;
    const lab = labels(l!);
    const value = Number(v);
    if (name === 'valmove_crypto_ops' || name === 'valmove_crypto_bytes') {
      const who = `${process}:${lab.party}`;
      const row = (out.crypto[who] ??= {});
      const t = (row[lab.kind as CounterKind] ??= { n: 0, bytes: 0 });
      if (name === 'valmove_crypto_ops') t.n = value;
      else t.bytes = value;
    } else if (name === 'valmove_lmdb_ops') {
      const row = (out.stores[`${process}:${lab.store}`] ??= {});
      row[lab.kind as CounterKind] = { n: value, bytes: 0 };
    } else if (name === 'valmove_messages_total' || name === 'valmove_message_bytes_total') {
      const dir = ((out.messages[lab.party!] ??= {})[lab.direction!] ??= { messages: 0, bytes: 0 });
      if (name === 'valmove_messages_total') dir.messages += value;
      else dir.bytes += value;
    }
  }
  return out;
}

function diffSnap(after: CounterSnapshot, before: CounterSnapshot): CounterSnapshot {
  const out: CounterSnapshot = {};
  for (const [who, row] of Object.entries(after)) {
    for (const [k, t] of Object.entries(row) as Array<[CounterKind, { n: number; bytes: number }]>) {
      const p = before[who]?.[k] ?? { n: 0, bytes: 0 };
      if (t.n - p.n > 0) (out[who] ??= {})[k] = { n: t.n - p.n, bytes: t.bytes - p.bytes };
    }
  }
  return out;
}

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
  const plan = demoProviders(o.items);
  const providers = plan.map((p) => p.provider);
  const dir = join(o.dataDir, `processes-k${o.items}`);
  const summary = await generateDeployment({ dir, providers, chips: [], terminals: [], scrypt: o.scrypt });
  // Every phone's terminal holds a link to the server from 127.0.0.1 until its configuration ends (2 per migration, up to
  // 512 at concurrency 256, 2,048 at the largest), above LINKS_PER_ADDRESS_MAX: raise the server's caps for this run
  // rather than the defaults for everyone. SETUP_PARALLEL workers open them as fast as they can, and a channel refused
  // BUSY fails the run, so the handshake bucket is raised too. The per-link message rate stays the default: a terminal's
  // whole migration fits in its burst, so the bench measures what real traffic sees there.
  const terminalsMax = 2 * Math.max(...o.concurrencies.map((c) => o.migrationsAt(c) + warmupsAt(c)));
  const benchLimits: Partial<Limits> = {
    linksMax: Math.max(DEFAULT_LIMITS.linksMax, terminalsMax + LINKS_SPARE),
    linksPerAddressMax: Math.max(DEFAULT_LIMITS.linksPerAddressMax, terminalsMax + LINKS_SPARE),
    handshakesPerS: Math.max(DEFAULT_LIMITS.handshakesPerS, 10_000),
    handshakeBurst: Math.max(DEFAULT_LIMITS.handshakeBurst, terminalsMax),
  };
  const serverFile = join(dir, 'config', 'server.json');
  writeFileSync(serverFile, `${JSON.stringify({ ...JSON.parse(readFileSync(serverFile, 'utf8')), limits: benchLimits }, null, 2)}\n`);
  const serverCfg = loadConfig(join(dir, 'config', 'server.json'), 'server') as ServerConfig;
  const serverKeys = readKeyFile(join(dir, 'keys', 'server.key.json'), 'server');
  const serverSignPublic = fromB64(serverKeys.identity.signPublic);
  const issuerMaster = secretOf(readKeyFile(join(dir, 'keys', 'admin-sam.key.json'), 'admin-sam').issuerMaster);
  const providerMasters: Record<string, Secret> = Object.fromEntries(providers.map((p) => [p, secretOf(readKeyFile(join(dir, 'keys', `provider-${p}.key.json`), 'provider').providerMaster)]));

  // Every user of every configuration, created by the operator before the server starts (as `valmove up` does).
  const users = o.concurrencies.flatMap((c) => Array.from({ length: o.migrationsAt(c) + warmupsAt(c) }, (_, i) => ({ user: `k${o.items}c${c}u${i}`, password: toHex(systemRng.bytes(8)) })));
  const store = PartyStore.open(serverCfg.dataDir);
  await store.commit(() => {
    const records = new ServerRecords(store);
    for (const u of users) records.users.put(u.user, newUserRecord(u.user, u.password, systemRng, o.scrypt));
  });
  await store.close();
  const passwordOf = new Map(users.map((u) => [u.user, u.password]));

  const order = ['admin-sam', 'provider', 'server'];
  const deployment = new LocalDeployment(dir, summary, []);
  const logDir = join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const connectors: WsConnector[] = [];
  const phones: Array<ChipRuntime | TerminalRuntime> = [];
  const hops: Record<string, { messages: number; bytes: number }> = {};
  let counting = false;
  const hop = (name: string, bytes: number) => {
    if (!counting) return;
    const h = (hops[name] ??= { messages: 0, bytes: 0 });
    h.messages++;
    h.bytes += bytes;
  };
  const log = createLogger({ level: 'silent' });
  const deps = (id: string, path: string): RuntimeDeps => ({ id, store: PartyStore.open(path), clock: systemClock, rng: systemRng, log });
  const serverUrl = `ws://127.0.0.1:${serverCfg.listen.port}/terminal`;
  const results: ConfigResult[] = [];
  try {
    for (const p of [...summary.processes].sort((a, b) => order.indexOf(a.role) - order.indexOf(b.role))) {
      const logPath = join(logDir, `${p.id}.log`);
      const child = spawnParty(p.role, p.config, logPath);
      const running: RunningChild = { id: p.id, role: p.role, pid: child.pid ?? -1, port: p.port, config: p.config, log: logPath, child };
      deployment.processes.push(running);
      await waitHealthy(p.port, child, p.id);
    }
    // The server connects to its SAMs after it starts: wait until its links are up (the detail of /healthz is the operator's).
    const operator = { authorization: `Bearer ${serverKeys.operatorToken ?? ''}` };
    for (let tries = 0; ; tries++) {
      const h = (await (await fetch(`http://127.0.0.1:${serverCfg.listen.port}/healthz`, { headers: operator })).json()) as { parties?: Array<{ links: string[] }> };
      if ((h.parties?.[0]?.links.length ?? 0) >= 1 + providers.length) break;
      if (tries > 300) throw new Error('the server did not connect to its SAMs');
      await new Promise((r) => setTimeout(r, 100));
    }

    for (const c of o.concurrencies) {
      const w = warmupsAt(c);
      const n = o.migrationsAt(c) + w;
      const tag = `k${o.items}c${c}`;
      const pairs: PhonePair[] = new Array(n);
      await pool(n, SETUP_PARALLEL, async (i) => {
        const user = `${tag}u${i}`;
        const phone = async (name: string, serial: string) => {
          const chip = new ChipRuntime(deps(`chip/${serial}`, join(dir, 'phones', `chip-${serial}`)));
          await chip.start({ serial, kChip: deriveChipKey(issuerMaster, serial).reveal() });
          const id = `terminal/${name}`;
          const terminal = new TerminalRuntime(deps(id, join(dir, 'phones', `terminal-${name}`)));
          await terminal.start();
          phones.push(chip, terminal);
          const [a, b] = memoryLinkPair(id, chip.id, { tap: ({ from, bytes }) => hop(from === id ? 'terminal->chip' : 'chip->terminal', bytes.length) });
          terminal.attach('chip', a, chip.id);
          chip.attach(id, b);
          // The phone's device key: the server binds the terminal's name to it at its first login.
          const device = generateIdentity(systemRng);
          const ready = new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${id}: no channel to the server within ${CHANNEL_TIMEOUT_MS} ms`)), CHANNEL_TIMEOUT_MS);
            connectors.push(
              new WsConnector({
                url: serverUrl,
                onConnect: (raw) => {
                  const link = new SecureInitiatorLink(counted(raw, (d, bytes) => hop(d === 'out' ? 'terminal->server' : 'server->terminal', bytes)), { name: id, identity: device, peerSignPublic: serverSignPublic, rng: systemRng });
                  terminal.attach('server', link);
                  void link.ready.then(() => {
                    clearTimeout(timer);
                    resolve();
                  }, reject);
                },
              }),
            );
          });
          await ready;
          return { chip, terminal };
        };
        const src = await phone(`${tag}o${i}`, `${tag}S${i}`);
        const dst = await phone(`${tag}n${i}`, `${tag}D${i}`);
        await issueItems(src.chip, { issuerMaster, providerMasters }, plan.map((p, k) => ({ area: p.provider, provider: p.provider, value: demoValue(p.kind, k, toHex(systemRng.bytes(16))) })), systemRng);
        pairs[i] = { user, password: passwordOf.get(user)!, old: src.terminal, neu: dst.terminal, destinationSerial: dst.chip.serial };
      });
      await loginAll(pairs.slice(0, w)); // the warm-up pairs' logins are not measured
      const loginsMs = await loginAll(pairs.slice(w));
      await pool(n, SETUP_PARALLEL, async (i) => {
        await pairs[i]!.old.register();
        await pairs[i]!.neu.register();
      });
      await warmUp(pairs.slice(0, w));
      const procs = deployment.processes;
      const before = await Promise.all(procs.map((p) => scrape(p.port, p.id)));
      const cpuBefore = procs.map((p) => procCpuMs(p.pid));
      for (const k of Object.keys(hops)) delete hops[k];
      counting = true;
      const run = await timedMigrations(pairs.slice(w), c, () => procs.reduce((a, p) => a + procRssBytes(p.pid), 0), `processes-k${o.items}-c${c}`);
      counting = false;
      const cpuAfter = procs.map((p) => procCpuMs(p.pid));
      const after = await Promise.all(procs.map((p) => scrape(p.port, p.id)));
      const extraCrypto: CounterSnapshot = {};
      const extraStores: CounterSnapshot = {};
      const allHops: Record<string, { messages: number; bytes: number }> = structuredClone(hops);
      procs.forEach((p, i) => {
        Object.assign(extraCrypto, diffSnap(after[i]!.crypto, before[i]!.crypto));
        Object.assign(extraStores, diffSnap(after[i]!.stores, before[i]!.stores));
        // The SAMs' envelopes (the server's are the phones' hops and these again; a normal SAM talks only to its migration SAM).
        for (const [party, dirs] of Object.entries(after[i]!.messages)) {
          const role = roleOf(party);
          if (role !== 'admin-sam' && role !== 'migration-sam') continue;
          for (const [d, v] of Object.entries(dirs)) {
            const b = before[i]!.messages[party]?.[d] ?? { messages: 0, bytes: 0 };
            const h = (allHops[`${role}(${d}, envelopes)`] ??= { messages: 0, bytes: 0 });
            h.messages += v.messages - b.messages;
            h.bytes += v.bytes - b.bytes;
          }
        }
      });
      const cpuMsByProcess: Record<string, number> = { 'bench (phones)': run.cpuMs };
      procs.forEach((p, i) => (cpuMsByProcess[p.id] = cpuAfter[i]! - cpuBefore[i]!));
      const r = figures({ mode: 'processes', items: o.items, concurrency: c, run, units: o.units, hops: allHops, cpuMsByProcess, extraCrypto, extraStores, loginsMs, scryptN: o.scrypt.N });
      results.push(r);
      o.say(`  processes K=${o.items} c=${c}: ${r.completed}/${r.migrations} migrations, ${r.throughputPerS.toFixed(1)}/s, p50 ${r.latencyMs.p50.toFixed(0)} ms, floor ratio ${r.floor.throughputRatio.toFixed(3)}`);
      // Done with these phones: close their sockets and stores.
      for (const conn of connectors.splice(0)) conn.close();
      for (const ph of phones.splice(0)) await ph.stop();
    }
  } finally {
    for (const conn of connectors) conn.close();
    for (const ph of phones) await ph.stop();
    await deployment.stop();
  }
  return results;
}
