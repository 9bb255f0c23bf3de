/**
 * The whole system embedded in one process (architecture.md: one machine,
 * two runtimes). Every party is its own runtime with its own LMDB
 * environment under the data folder and its own keys; they talk through
 * in-memory links, with the same channel handshakes (server <-> SAMs mutual,
 * terminal -> server and terminal -> normal SAM server-authenticated) they
 * run over WebSocket.
 *
 *   data/
 *     server/  admin-sam/  provider-<p>/normal-sam/  provider-<p>/migration-sam/
 *     chip-<serial>/  terminal-<name>/
 */
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock.ts';
import { deriveChipKey, systemRng, toB64, type Identity, type Rng, type Secret } from '../crypto/index.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Timing } from '../timing.ts';
import { loadOrCreateIdentity, loadOrCreateSecret } from '../store/keys.store.ts';
import { PartyStore } from '../store/party.store.ts';
import type { Link, LinkTap, Scheduler } from '../transport/link.ts';
import { memoryLinkPair } from '../transport/memory.transport.ts';
import { SecureInitiatorLink, SecureResponderLink } from '../transport/secure.link.ts';
import { AdminSamRuntime } from './adminSam.actor.ts';
import { ChipRuntime } from './chip.actor.ts';
import { issueItems, type IssueRequest } from './issuer.ts';
import { MigrationSamRuntime, type Right } from './migrationSam.actor.ts';
import { NormalSamRuntime } from './normalSam.actor.ts';
import type { RuntimeDeps } from './runtime.ts';
import { ServerRuntime } from './server.actor.ts';
import { TerminalRuntime } from './terminal.actor.ts';

export interface SystemOptions {
  dataDir: string;
  providers: string[];
  rng?: Rng;
  clock?: Clock;
  log?: Logger;
  /** Sees every message on every link, as the bytes that cross it. */
  linkTap?: LinkTap;
  /** Sees every envelope a party receives or sends, before channel encryption. */
  envelopeTap?: RuntimeDeps['tap'];
  inspect?: RuntimeDeps['inspect'];
  onTurnPoint?: RuntimeDeps['onTurnPoint'];
  scheduler?: Scheduler;
  /** scrypt cost for user passwords (tests use a small N). */
  scrypt?: { N: number; r: number; p: number };
  /** Rights each provider gives the server; all three by default. */
  rights?: Record<string, Right[]>;
  /** Providers that trust some other server key instead of ours (to test refusal). */
  untrustingProviders?: string[];
  deadlineMs?: number;
  /** Timeouts and retry delays for every party (tests run on FAST_TIMING). */
  timing?: Timing;
}

export interface Provider {
  normalSam: NormalSamRuntime;
  migrationSam: MigrationSamRuntime;
}

export class EmbeddedSystem {
  readonly chips = new Map<string, ChipRuntime>();
  readonly terminals = new Map<string, TerminalRuntime>();
  readonly providers = new Map<string, Provider>();
  private readonly links: Link[] = [];
  private readonly stores: PartyStore[] = [];

  private constructor(
    readonly opts: SystemOptions & { rng: Rng; clock: Clock; log: Logger },
    readonly server: ServerRuntime,
    readonly adminSam: AdminSamRuntime,
    private readonly serverIdentity: Identity,
    private readonly issuerMaster: Secret,
    private readonly providerMasters: Record<string, Secret>,
    private readonly providerIdentities: Record<string, { normal: Identity; migration: Identity }>,
  ) {}

  private static deps(opts: SystemOptions & { rng: Rng; clock: Clock; log: Logger }, id: string, store: PartyStore): RuntimeDeps {
    return {
      id,
      store,
      clock: opts.clock,
      rng: opts.rng,
      log: opts.log,
      inspect: opts.inspect,
      tap: opts.envelopeTap,
      onTurnPoint: opts.onTurnPoint,
      timing: opts.timing,
    };
  }

  static async start(options: SystemOptions): Promise<EmbeddedSystem> {
    const opts = {
      ...options,
      rng: options.rng ?? systemRng,
      clock: options.clock ?? systemClock,
      log: options.log ?? createLogger({ level: 'silent' }),
    };
    const open = (...parts: string[]) => PartyStore.open(join(opts.dataDir, ...parts));

    const serverStore = open('server');
    const adminStore = open('admin-sam');
    const serverIdentity = await loadOrCreateIdentity(serverStore, opts.rng);
    const adminIdentity = await loadOrCreateIdentity(adminStore, opts.rng);
    const issuerMaster = await loadOrCreateSecret(adminStore, opts.rng, 'issuer-master');

    const providerStores: Record<string, { normal: PartyStore; migration: PartyStore }> = {};
    const providerIdentities: Record<string, { normal: Identity; migration: Identity }> = {};
    const providerMasters: Record<string, Secret> = {};
    for (const p of opts.providers) {
      const normal = open(`provider-${p}`, 'normal-sam');
      const migration = open(`provider-${p}`, 'migration-sam');
      providerStores[p] = { normal, migration };
      providerIdentities[p] = { normal: await loadOrCreateIdentity(normal, opts.rng), migration: await loadOrCreateIdentity(migration, opts.rng) };
      providerMasters[p] = await loadOrCreateSecret(normal, opts.rng, 'provider-master');
    }

    const server = new ServerRuntime(EmbeddedSystem.deps(opts, 'server', serverStore), { scrypt: opts.scrypt, deadlineMs: opts.deadlineMs });
    const migrationSams: Record<string, { signPublic: Uint8Array; boxPublic: Uint8Array }> = {};
    for (const p of opts.providers) {
      migrationSams[`migration-sam/${p}`] = { signPublic: providerIdentities[p]!.migration.signPublic, boxPublic: providerIdentities[p]!.migration.boxPublic };
    }
    const adminSam = new AdminSamRuntime(EmbeddedSystem.deps(opts, 'admin-sam', adminStore), { issuerMaster, identity: adminIdentity, migrationSams });
    const system = new EmbeddedSystem(opts, server, adminSam, serverIdentity, issuerMaster, providerMasters, providerIdentities);
    system.stores.push(serverStore, adminStore);

    await server.start();
    await adminSam.start();
    system.connectSam('admin-sam', adminSam, adminIdentity, () => true);

    for (const p of opts.providers) {
      const ids = providerIdentities[p]!;
      const stores = providerStores[p]!;
      system.stores.push(stores.normal, stores.migration);
      const serverKey = toB64(serverIdentity.signPublic);
      const trustedKey = opts.untrustingProviders?.includes(p) ? toB64(new Uint8Array(32).fill(7)) : serverKey;
      const serverLinks = new Map<string, SecureResponderLink>();
      const migrationSam = new MigrationSamRuntime(EmbeddedSystem.deps(opts, `migration-sam/${p}`, stores.migration), {
        provider: p,
        identity: ids.migration,
        adminSamSignPublic: adminIdentity.signPublic,
        servers: { [trustedKey]: opts.rights?.[p] ?? ['upload', 'download', 'clear'] },
        serverKeyOf: (peer) => serverLinks.get(peer)?.peerId,
      });
      const normalSam = new NormalSamRuntime(EmbeddedSystem.deps(opts, `normal-sam/${p}`, stores.normal), {
        provider: p,
        providerMaster: providerMasters[p]!,
        identity: ids.normal,
        migrationSamBoxPublic: ids.migration.boxPublic,
      });
      await migrationSam.start();
      await normalSam.start();
      system.providers.set(p, { normalSam, migrationSam });
      const link = system.connectSam(`migration-sam/${p}`, migrationSam, ids.migration, (k) => k === trustedKey);
      serverLinks.set('server', link);
      const [m, n] = system.pair(`migration-sam/${p}`, `normal-sam/${p}`);
      migrationSam.attach(`normal-sam/${p}`, m);
      normalSam.attach(`migration-sam/${p}`, n);
    }
    return system;
  }

  private pair(a: string, b: string): [Link, Link] {
    const pair = memoryLinkPair(a, b, { scheduler: this.opts.scheduler, tap: this.opts.linkTap });
    this.links.push(...pair);
    return pair;
  }

  /** server -> SAM: mutual channel (protocol.md §2); the SAM checks the server's key against its trust list. */
  private connectSam(
    samId: string,
    sam: AdminSamRuntime | MigrationSamRuntime,
    samIdentity: Identity,
    trust: (k: string | undefined) => boolean,
  ): SecureResponderLink {
    const [s, t] = this.pair('server', samId);
    const onReject = (party: string) => (code: string, message: string) => this.opts.log.warn('channel message rejected', { party, code, reason: message });
    const init = new SecureInitiatorLink(s, { name: 'server', identity: this.serverIdentity, peerSignPublic: samIdentity.signPublic, rng: this.opts.rng }, { onReject: onReject('server') });
    const resp = new SecureResponderLink(t, { name: samId, identity: samIdentity, trust, requireMutual: true, rng: this.opts.rng }, { onReject: onReject(samId) });
    this.server.attach(samId, init);
    sam.attach('server', resp);
    return resp;
  }

  // ---- chips and terminals -------------------------------------------------------------------------

  /** Manufactures a chip: serial and K_chip (derived from the issuer master) written into its own store. */
  async addChip(serial: string): Promise<ChipRuntime> {
    const id = `chip/${serial}`;
    const store = PartyStore.open(join(this.opts.dataDir, `chip-${serial}`));
    this.stores.push(store);
    const chip = new ChipRuntime(EmbeddedSystem.deps(this.opts, id, store));
    await chip.start({ serial, kChip: deriveChipKey(this.issuerMaster, serial).reveal() });
    this.chips.set(serial, chip);
    return chip;
  }

  async addTerminal(name: string): Promise<TerminalRuntime> {
    const id = `terminal/${name}`;
    const store = PartyStore.open(join(this.opts.dataDir, `terminal-${name}`));
    this.stores.push(store);
    const terminal = new TerminalRuntime(EmbeddedSystem.deps(this.opts, id, store));
    await terminal.start();
    this.terminals.set(name, terminal);
    return terminal;
  }

  /** Puts a chip in a terminal (the phone's local link). */
  insertChip(terminal: TerminalRuntime, chip: ChipRuntime): void {
    const [t, c] = this.pair(terminal.id, chip.id);
    terminal.attach('chip', t, chip.id);
    chip.attach(terminal.id, c);
  }

  /** One connection from the terminal to the server; the terminal checks the server's key. */
  connectToServer(terminal: TerminalRuntime): void {
    const [t, s] = this.pair(terminal.id, 'server');
    terminal.attach('server', new SecureInitiatorLink(t, { name: terminal.id, peerSignPublic: this.serverIdentity.signPublic, rng: this.opts.rng }));
    this.server.attach(
      terminal.id,
      new SecureResponderLink(s, { name: 'server', identity: this.serverIdentity, trust: () => true, requireMutual: false, rng: this.opts.rng }),
    );
  }

  /**
   * A bare channel to the server, as a terminal program would open it, for
   * tools and tests that speak envelopes directly (bad input, attacks).
   */
  rawServerConnection(name: string): Link {
    const id = `terminal/${name}`;
    const [t, s] = this.pair(id, 'server');
    const link = new SecureInitiatorLink(t, { name: id, peerSignPublic: this.serverIdentity.signPublic, rng: this.opts.rng });
    this.server.attach(id, new SecureResponderLink(s, { name: 'server', identity: this.serverIdentity, trust: () => true, requireMutual: false, rng: this.opts.rng }));
    return link;
  }

  /** A terminal acting as a reader connects to a provider's normal SAM (normal use; no server involved). */
  connectReader(terminal: TerminalRuntime, provider: string): void {
    const p = this.providers.get(provider);
    if (!p) throw new Error(`no provider ${provider}`);
    const samId = `normal-sam/${provider}`;
    const ids = this.providerIdentities[provider]!;
    const [t, n] = this.pair(terminal.id, samId);
    terminal.attach(samId, new SecureInitiatorLink(t, { name: terminal.id, peerSignPublic: ids.normal.signPublic, rng: this.opts.rng }));
    p.normalSam.attach(terminal.id, new SecureResponderLink(n, { name: samId, identity: ids.normal, trust: () => true, requireMutual: false, rng: this.opts.rng }));
  }

  /** Issues value items onto a chip at the providers' counter (see issuer.ts). */
  async issue(chip: ChipRuntime, items: IssueRequest[]): Promise<void> {
    await issueItems(chip, { issuerMaster: this.issuerMaster, providerMasters: this.providerMasters }, items, this.opts.rng);
  }

  /** Every party, for status and teardown. */
  parties(): Array<{ id: string; idle(): Promise<void>; stop(): Promise<void> }> {
    const out: Array<{ id: string; idle(): Promise<void>; stop(): Promise<void> }> = [this.server, this.adminSam];
    for (const p of this.providers.values()) out.push(p.normalSam, p.migrationSam);
    out.push(...this.terminals.values(), ...this.chips.values());
    return out;
  }

  async stop(): Promise<void> {
    for (const party of this.parties()) await party.stop();
    for (const s of this.stores) await s.close();
  }
}
