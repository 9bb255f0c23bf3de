/**
 * `valmove start <role> --config FILE`: one party (or, for a provider, its
 * normal and migration SAM) as its own OS process, with its own LMDB folder
 * and its own keys, talking WebSocket. The runtimes are the very ones the
 * embedded system runs; only the links differ (ws instead of memory), and
 * the channel handshakes run over them unchanged.
 *
 *   server     listens /terminal; connects to the admin SAM and every migration SAM
 *   admin-sam  listens /admin-sam (mutual channel; trusted server keys only)
 *   provider   listens /migration-sam (mutual; trusted servers, with rights) and /normal-sam (readers)
 *   chip       listens /chip (its terminal)
 *   terminal   connects to its chip, the server and the providers' normal SAMs; control API on /control/*
 */
import { readFileSync } from 'node:fs';
import { AdminSamRuntime } from '../actors/adminSam.actor.ts';
import { ChipRuntime } from '../actors/chip.actor.ts';
import { MigrationSamRuntime } from '../actors/migrationSam.actor.ts';
import { NormalSamRuntime } from '../actors/normalSam.actor.ts';
import type { PartyRuntime, RuntimeDeps } from '../actors/runtime.ts';
import { ServerRuntime } from '../actors/server.actor.ts';
import { TerminalRuntime } from '../actors/terminal.actor.ts';
import { systemClock } from '../clock.ts';
import {
  backendForParty,
  backendForRole,
  fromB64,
  ownBoxKeys,
  seededRng,
  systemRng,
  toB64,
  type Identity,
  type Rng,
  type TrustCheck,
} from '../crypto/index.ts';
import { crashHook, parseCrashAt, type CrashAt } from '../actors/crash.ts';
import { FaultyLink, parseFaults, type FaultPolicy } from '../transport/faulty.link.ts';
import { createLogger, type Logger, type LogLevel } from '../log.ts';
import { PartyStore } from '../store/party.store.ts';
import { DEFAULT_TIMING } from '../timing.ts';
import type { Link } from '../transport/link.ts';
import { memoryLinkPair } from '../transport/memory.transport.ts';
import { SecureInitiatorLink, SecureResponderLink } from '../transport/secure.link.ts';
import type { Admission } from '../transport/door.ts';
import { ANONYMOUS_BURST, ANONYMOUS_MESSAGES_PER_S } from '../transport/limits.ts';
import { serveWebSockets, WsConnector } from '../transport/ws.transport.ts';
import {
  ConfigError,
  keyList,
  type AdminSamConfig,
  type ChipConfig,
  type ProcessConfig,
  type ProviderConfig,
  type ServerConfig,
  type TerminalConfig,
} from './config.ts';
import { drainParties, drainTimeoutMs, type DrainReport } from './drain.ts';
import { createProcessHttp, type ProcessHttp } from './http.ts';
import { identityOf, readAnyKeyFile, readKeyFile, secretOf } from './keyfiles.ts';
import { watchParties } from './ready.ts';
import { controlRoutes } from './terminal.control.ts';
import { processRecording, type ProcessRecording } from '../trace/wiring.ts';

export interface RunningProcess {
  role: string;
  id: string;
  port: number;
  runtimes: PartyRuntime[];
  /** SIGTERM's first half (drain.ts): refuse new migrations, wait (bounded) for a safe point. */
  drain(timeoutMs?: number): Promise<DrainReport>;
  stop(): Promise<void>;
}

interface Context {
  cfg: ProcessConfig;
  log: Logger;
  http: ProcessHttp;
  ca?: Buffer;
  connectors: WsConnector[];
  /** Every party's store, opened by deps() (the drain reads their outboxes). */
  stores: PartyStore[];
  deps(id: string, dataDir: string): RuntimeDeps;
  /** Wraps a link in the configured faults (--faults), or returns it as is. */
  faulty(link: Link): Link;
}

function connect(ctx: Context, url: string, onConnect: (raw: Link) => void): void {
  ctx.connectors.push(new WsConnector({ url, ca: ctx.ca, onConnect, log: ctx.log }));
}

/**
 * A responder channel on a route; `accept` gets the link once the handshake
 * passed. Over WebSocket the door's admission brings the handshake deadline,
 * the hello size limit and the handshake bucket, and hears when the link
 * stops being pending; refusals are logged through the door's throttle.
 */
function channelRoute(
  ctx: Context,
  identity: Identity,
  opts: { name: string; mutual: boolean; trust: TrustCheck },
  accept: (link: SecureResponderLink) => void,
): (raw: Link, req?: unknown, admission?: Admission) => void {
  return (raw, _req, admission) => {
    const link = new SecureResponderLink(
      raw,
      { name: opts.name, identity, trust: opts.trust, requireMutual: opts.mutual, rng: systemRng, crypto: backendForParty(opts.name) },
      { onReject: (code, message) => ctx.http.door.log.warn('channel', 'channel refused a message', { code, reason: message }) },
      admission?.responder,
    );
    link.onEstablished = (established) => {
      admission?.established();
      accept(established);
    };
  };
}

/**
 * A channel this process dials: the peer must present one of its configured keys (two during the peer's rotation
 * window, docs/deploying.md). A refusal (UNTRUSTED_PEER: the peer presented another key) is logged; the connector
 * dials again later.
 */
function initiatorLink(ctx: Context, raw: Link, o: { name: string; identity: Identity; peer: string; keys: string | string[] }): SecureInitiatorLink {
  const peerSignPublic = keyList(o.keys).map(fromB64);
  return new SecureInitiatorLink(
    raw,
    { name: o.name, identity: o.identity, peerSignPublic, rng: systemRng, crypto: backendForParty(o.name) },
    { onReject: (code, message) => ctx.log.warn('channel to a peer refused', { peer: o.peer, code, reason: message }) },
  );
}

async function startServer(ctx: Context, cfg: ServerConfig): Promise<PartyRuntime[]> {
  const keys = readKeyFile(cfg.keyFile, 'server');
  const identity = identityOf(keys.identity);
  const server = new ServerRuntime(ctx.deps('server', cfg.dataDir), {
    scrypt: cfg.scrypt,
    deadlineMs: cfg.deadlineMs,
    backupRetentionMs: cfg.backupRetentionMs,
    devices: cfg.terminals,
    providers: Object.keys(cfg.migrationSams),
    anonymous: { perS: cfg.limits?.anonymousPerS ?? ANONYMOUS_MESSAGES_PER_S, burst: cfg.limits?.anonymousBurst ?? ANONYMOUS_BURST },
  });
  await server.start();
  if (keys.operatorToken) {
    // The operator check runs before anything else of the request is read (http.ts).
    ctx.http.route('GET', '/status', async () => ({ status: 200, json: { migrations: server.statuses() } }), 'operator');
  }
  const runtimes: PartyRuntime[] = [server];
  serveWebSockets(
    ctx.http.server,
    {
      // A terminal's name counts only with proof of its device key (protocol.md §1): checked at the hello, before any
      // public-key work, and again once the channel is up.
      '/terminal': channelRoute(ctx, identity, { name: 'server', mutual: true, trust: (k, name) => server.admitTerminal(name, k) }, (link) => {
        server.attachTerminal(link.peerName ?? '', ctx.faulty(link));
      }),
    },
    ctx.log,
    ctx.http.door,
  );
  const toSam = (peer: string, signPublic: string | string[]) => (raw: Link) =>
    server.attach(peer, ctx.faulty(initiatorLink(ctx, raw, { name: 'server', identity, peer, keys: signPublic })));
  if ('embedded' in cfg.adminSam) {
    // A demo convenience: the admin SAM inside the server's process (protocol.md §1: then §4.4 does not hold for it).
    const keys = readKeyFile(cfg.adminSam.keyFile, 'admin-sam');
    const adminIdentity = identityOf(keys.identity);
    const migrationSams = Object.fromEntries(Object.entries(cfg.adminSam.migrationSams).map(([k, v]) => [k, migrationSamKeysOf(v)]));
    const admin = new AdminSamRuntime(ctx.deps('admin-sam', cfg.adminSam.dataDir), {
      issuerMaster: secretOf(keys.issuerMaster),
      identity: adminIdentity,
      migrationSams,
    });
    await admin.start();
    runtimes.push(admin);
    const [s, a] = memoryLinkPair('server', 'admin-sam');
    toSam('admin-sam', toB64(adminIdentity.signPublic))(s);
    channelRoute(ctx, adminIdentity, { name: 'admin-sam', mutual: true, trust: (k) => k === toB64(identity.signPublic) }, (link) =>
      admin.attach('server', ctx.faulty(link)),
    )(a);
  } else {
    connect(ctx, cfg.adminSam.url, toSam('admin-sam', cfg.adminSam.signPublic));
  }
  for (const [p, peer] of Object.entries(cfg.migrationSams)) connect(ctx, peer.url, toSam(`migration-sam/${p}`, peer.signPublic));
  return runtimes;
}

/** A migration SAM's keys as a config gives them (its signing keys: two during its rotation window). */
const migrationSamKeysOf = (v: { signPublic: string | string[]; boxPublic: string }) => ({
  signPublic: keyList(v.signPublic).map(fromB64),
  boxPublic: fromB64(v.boxPublic),
});

async function startAdminSam(ctx: Context, cfg: AdminSamConfig): Promise<PartyRuntime[]> {
  const keys = readKeyFile(cfg.keyFile, 'admin-sam');
  const identity = identityOf(keys.identity);
  const migrationSams = Object.fromEntries(Object.entries(cfg.migrationSams).map(([k, v]) => [k, migrationSamKeysOf(v)]));
  const admin = new AdminSamRuntime(ctx.deps('admin-sam', cfg.dataDir), { issuerMaster: secretOf(keys.issuerMaster), identity, migrationSams });
  await admin.start();
  const trusted = new Set(cfg.trustedServers);
  serveWebSockets(
    ctx.http.server,
    {
      '/admin-sam': channelRoute(ctx, identity, { name: 'admin-sam', mutual: true, trust: (k) => k !== undefined && trusted.has(k) }, (link) =>
        admin.attach(link.peerName ?? 'server', ctx.faulty(link)),
      ),
    },
    ctx.log,
    ctx.http.door,
  );
  return [admin];
}

async function startProvider(ctx: Context, cfg: ProviderConfig): Promise<PartyRuntime[]> {
  const keys = readKeyFile(cfg.keyFile, 'provider');
  // During a SAM's rotation window its previous identity opens and verifies what was sealed or signed to it before.
  const normalId = identityOf(keys.normal, undefined, keys.previousNormal);
  const migrationId = identityOf(keys.migration, undefined, keys.previousMigration);
  const p = cfg.provider;
  const serverLinks = new Map<string, SecureResponderLink>();
  const msam = new MigrationSamRuntime(ctx.deps(`migration-sam/${p}`, `${cfg.dataDir}/migration-sam`), {
    provider: p,
    identity: migrationId,
    adminSamSignPublic: keyList(cfg.adminSamSignPublic).map(fromB64),
    normalSamBoxPublic: ownBoxKeys(normalId),
    servers: cfg.servers,
    serverKeyOf: (peer) => serverLinks.get(peer)?.peerId,
  });
  const nsam = new NormalSamRuntime(ctx.deps(`normal-sam/${p}`, `${cfg.dataDir}/normal-sam`), {
    provider: p,
    providerMaster: secretOf(keys.providerMaster),
    identity: normalId,
    migrationSamBoxPublic: migrationId.boxPublic,
    readers: cfg.readers,
  });
  await msam.start();
  await nsam.start();
  const [m, n] = memoryLinkPair(msam.id, nsam.id);
  msam.attach(nsam.id, m);
  nsam.attach(msam.id, n);
  serveWebSockets(
    ctx.http.server,
    {
      '/migration-sam': channelRoute(ctx, migrationId, { name: msam.id, mutual: true, trust: (k) => k !== undefined && k in cfg.servers }, (link) => {
        const name = link.peerName ?? 'server';
        serverLinks.set(name, link);
        msam.attach(name, ctx.faulty(link));
      }),
      // Readers the provider enrolled, by key and name; nobody else (a stranger can neither spend nor top up).
      '/normal-sam': channelRoute(ctx, normalId, { name: nsam.id, mutual: true, trust: (k, name) => nsam.admitReader(name, k) }, (link) => {
        nsam.attachReader(link.peerName ?? '', ctx.faulty(link));
      }),
    },
    ctx.log,
    ctx.http.door,
  );
  return [msam, nsam];
}

async function startChip(ctx: Context, cfg: ChipConfig): Promise<PartyRuntime[]> {
  const keys = readKeyFile(cfg.keyFile, 'chip');
  if (keys.serial !== cfg.serial) throw new Error(`key file ${cfg.keyFile} is for chip ${keys.serial}, not ${cfg.serial}`);
  const chip = new ChipRuntime(ctx.deps(`chip/${cfg.serial}`, cfg.dataDir));
  await chip.start({ serial: cfg.serial, kChip: fromB64(keys.kChip) });
  const paired = cfg.terminal;
  serveWebSockets(
    ctx.http.server,
    {
      // The phone's local bus, carried over a socket: a channel to the chip's own key, which answers only the
      // terminal it is paired with (its device key, from the config written when the phone was set up).
      '/chip': channelRoute(
        ctx,
        identityOf(keys.identity, chip.crypto),
        {
          name: chip.id,
          mutual: true,
          trust: (k, name) =>
            k === paired.signPublic && name === paired.name
              ? true
              : { code: 'UNTRUSTED_PEER', message: `chip ${cfg.serial} answers only the phone it is paired with` },
        },
        (link) => chip.attach(paired.name, ctx.faulty(link)),
      ),
    },
    ctx.log,
    ctx.http.door,
  );
  return [chip];
}

async function startTerminal(ctx: Context, cfg: TerminalConfig): Promise<PartyRuntime[]> {
  const keys = readKeyFile(cfg.keyFile, 'terminal');
  const id = `terminal/${cfg.name}`;
  const terminal = new TerminalRuntime(ctx.deps(id, cfg.dataDir));
  await terminal.start();
  // Every link proves this phone's device key: to the server and the normal SAMs (its name) and to its chip (the pairing).
  const identity = identityOf(keys.identity);
  terminal.deviceIdentity = identity;
  const initiator =
    (peer: string, signPublic: string | string[], remoteId = peer) =>
    (raw: Link) =>
      terminal.attach(peer, ctx.faulty(initiatorLink(ctx, raw, { name: id, identity, peer, keys: signPublic })), remoteId);
  connect(ctx, cfg.server.url, initiator('server', cfg.server.signPublic));
  connect(ctx, cfg.chip.url, initiator('chip', cfg.chip.signPublic, `chip/${cfg.chip.serial}`));
  for (const [p, peer] of Object.entries(cfg.normalSams)) connect(ctx, peer.url, initiator(`normal-sam/${p}`, peer.signPublic));
  for (const r of controlRoutes(terminal, keys.controlToken)) ctx.http.route(r.method, r.path, r.handler, r.auth);
  return [terminal];
}

export interface StartOptions {
  logSink?: { write(line: string): void };
  /** PARTY:STEP:POINT: this process dies (SIGKILL, no cleanup) at that point; restart it with `valmove start`. */
  crashAt?: string;
  /** Link faults on every connection of this process, e.g. "drop=0.1,dup=0.1". */
  faults?: string;
  seed?: number;
  /** Record each party's envelopes and state changes: a `.jsonl` file, or a folder for `<party>.jsonl` files (appended to). */
  record?: string;
  /** Stream each party's records to a live page's feed (ws://host:port/feed). */
  inspect?: string;
}

export async function startProcess(cfg: ProcessConfig, opts: StartOptions = {}): Promise<RunningProcess> {
  const level = (process.env.VALMOVE_LOG_LEVEL as LogLevel | undefined) ?? cfg.log?.level ?? 'info';
  const log = createLogger({ level, sink: opts.logSink ?? process.stdout, bindings: { process: cfg.id, role: cfg.role } });
  let runtimes: PartyRuntime[] = [];
  const crashAt = opts.crashAt ? parseCrashAt(opts.crashAt) : undefined;
  const onTurnPoint = crashAt ? dieAt(crashAt, log) : undefined;
  const policy = opts.faults ? parseFaults(opts.faults) : null;
  const recording = processRecording({ record: opts.record, inspect: opts.inspect, report: (m) => log.warn(m) });
  const faultRng = opts.seed !== undefined ? seededRng(opts.seed) : systemRng;
  const operatorToken = readAnyKeyFile(cfg.keyFile).operatorToken;
  if (cfg.metrics?.requireToken && !operatorToken) throw new ConfigError(`metrics.requireToken: the key file ${cfg.keyFile} holds no operatorToken`);
  const http = createProcessHttp({
    role: cfg.role,
    id: cfg.id,
    tls: cfg.tls,
    log,
    health: () => ({ crypto: backendForRole(cfg.role).name, parties: runtimes.map((r) => ({ id: r.id, links: r.openLinks(), queue: r.queueLength })) }),
    operatorToken,
    metricsRequireToken: cfg.metrics?.requireToken,
    limits: cfg.limits,
    clock: systemClock,
  });
  const ctx = processContext(cfg, log, http, { onTurnPoint, recording, policy, faultRng });
  watchParties(cfg, ctx, () => runtimes, operatorToken);
  runtimes = await startRole(ctx, cfg);
  const port = await http.listen(cfg.listen.host, cfg.listen.port);
  log.info('listening', { host: cfg.listen.host, port, tls: cfg.tls !== undefined });
  let stopping: Promise<void> | undefined;
  return {
    role: cfg.role,
    id: cfg.id,
    port,
    runtimes,
    drain: (timeoutMs = drainTimeoutMs()) => drainParties(runtimes, ctx.stores, log, timeoutMs),
    stop() {
      stopping ??= (async () => {
        log.info('stopping');
        for (const c of ctx.connectors) c.close();
        await http.close();
        for (const r of runtimes) await r.stop();
        await recording?.close();
        log.info('stopped');
      })();
      return stopping;
    },
  };
}

/** --crash-at: this process dies (SIGKILL, no cleanup) when its party reaches that point of that step. */
function dieAt(crashAt: CrashAt, log: Logger): ReturnType<typeof crashHook> {
  return crashHook(crashAt, (party) => {
    log.warn('crash injected: this process dies now', { party, step: crashAt.step, point: crashAt.point });
    process.kill(process.pid, 'SIGKILL');
  });
}

/** What every party of the process shares: its log, HTTP face, connectors, each party's runtime deps, the link faults. */
function processContext(
  cfg: ProcessConfig,
  log: Logger,
  http: ProcessHttp,
  o: { onTurnPoint: RuntimeDeps['onTurnPoint']; recording: ProcessRecording | undefined; policy: FaultPolicy | null; faultRng: Rng },
): Context {
  const { onTurnPoint, recording, policy, faultRng } = o;
  return {
    cfg,
    log,
    http,
    ca: cfg.ca ? readFileSync(cfg.ca) : undefined,
    connectors: [],
    stores: [],
    deps(id, dataDir) {
      recording?.open(id);
      const store = PartyStore.open(dataDir);
      this.stores.push(store);
      return {
        id,
        store,
        clock: systemClock,
        rng: systemRng,
        log,
        observe: http.observer,
        timing: { ...DEFAULT_TIMING, ...cfg.timing },
        onTurnPoint,
        tap: recording?.tap,
        inspect: recording?.inspect,
      };
    },
    faulty: (link) => (policy ? new FaultyLink(link, faultRng, systemClock, () => policy) : link),
  };
}

/** Starts the process's parties by its role. */
function startRole(ctx: Context, cfg: ProcessConfig): Promise<PartyRuntime[]> {
  switch (cfg.role) {
    case 'server':
      return startServer(ctx, cfg);
    case 'admin-sam':
      return startAdminSam(ctx, cfg);
    case 'provider':
      return startProvider(ctx, cfg);
    case 'chip':
      return startChip(ctx, cfg);
    case 'terminal':
      return startTerminal(ctx, cfg);
  }
}
