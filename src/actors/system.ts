/**
 * The whole system embedded in one process (architecture.md: one machine,
 * two runtimes). Every party is its own runtime with its own LMDB
 * environment under the data folder and its own keys; they talk through
 * in-memory links, with the same channel handshakes (server <-> SAMs mutual,
 * terminal -> server and terminal -> normal SAM server-authenticated) they
 * run over WebSocket.
 *
 * Any party can be killed and restarted from its store (fault injection),
 * and every link can be made faulty (drop, duplicate, delay). The keys:
 * systemKeys.ts; the links: systemWires.ts, systemPhones.ts, systemProviders.ts.
 *
 *   data/
 *     server/  admin-sam/  provider-<p>/normal-sam/  provider-<p>/migration-sam/
 *     chip-<serial>/  terminal-<name>/
 */
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock.ts';
import { deriveChipKey, systemRng, type Identity, type Rng, type Secret } from '../crypto/index.ts';
import { createLogger, type Logger } from '../log.ts';
import { PartyStore, type CommitMode } from '../store/party.store.ts';
import type { Timing } from '../timing.ts';
import type { FaultPolicy } from '../transport/faulty.link.ts';
import type { Link, LinkSite, LinkTap, Scheduler } from '../transport/link.ts';
import type { SecureResponderLink } from '../transport/secure.link.ts';
import { AdminSamRuntime, type AdminSamOptions } from './adminSam.actor.ts';
import { ChipRuntime } from './chip.actor.ts';
import { issueItems, type IssueRequest } from './issuer.ts';
import type { MigrationSamRuntime, Right } from './migrationSam.actor.ts';
import type { EnrolledReader, NormalSamRuntime, ReaderRight } from './normalSam.actor.ts';
import type { CommitPolicy, PartyRuntime, RuntimeDeps } from './runtime.ts';
import { ServerRuntime } from './server.actor.ts';
import { loadSystemKeys, OwnKeys } from './systemKeys.ts';
import { connectReader, connectToServer, insertChip, rawServerConnection, type PhoneHost } from './systemPhones.ts';
import { type IssueOrderRequest, receiptKeysOf, signIssueOrderAs, startProvider } from './systemProviders.ts';
import type { ReceiptKeys } from './terminalReceipt.ts';
import { Wires } from './systemWires.ts';
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
  /** Counters of messages and turn durations per party (metrics, the benchmark). */
  observe?: RuntimeDeps['observe'];
  onTurnPoint?: RuntimeDeps['onTurnPoint'];
  scheduler?: Scheduler;
  /** scrypt cost for user passwords (a short-lived system may use a small N). */
  scrypt?: { N: number; r: number; p: number };
  /** Rights each provider gives the server; all three by default. */
  rights?: Record<string, Right[]>;
  /** Providers that trust some other server key instead of ours (they refuse the server's channel). */
  untrustingProviders?: string[];
  deadlineMs?: number;
  backupRetentionMs?: number; // how long a committed migration's backup is kept (ServerOptions)
  /** Timeouts and retry delays for every party (DEFAULT_TIMING unless set; FAST_TIMING for a quick run). */
  timing?: Timing;
  /** The random source of link faults (a seed replays the same faults); the system's rng by default. */
  faultRng?: Rng;
  /** Sees the requests each party takes and the messages it sends, and may change what happens to them (src/testing/steering.ts). */
  intercept?: RuntimeDeps['intercept'];
  /** How parties commit to LMDB (see CommitMode); the simulator uses 'sync'. */
  commits?: CommitMode;
  /** How many turns each party commits together (see CommitPolicy); the simulator takes one at a time. */
  commitPolicy?: CommitPolicy;
  /** Builds the admin SAM (an injection point: the simulator's deliberately broken builds, src/testing/broken.ts). */
  adminSam?: (deps: RuntimeDeps, opts: AdminSamOptions) => AdminSamRuntime;
  /** Called each time a party (re)starts, e.g. to listen to a restarted terminal's progress. */
  onPartyStarted?: (party: PartyRuntime) => void;
  /**
   * Wraps each party's sending end of each link, where the party itself sits
   * (above the channel and the network's faults): the simulator's rogue server
   * and hostile relays put a tamperer there (src/testing/tamper.link.ts).
   * Unset: links are left as they are.
   */
  wrapSender?: (link: Link, site: LinkSite) => Link;
}

export interface Provider {
  normalSam: NormalSamRuntime;
  migrationSam: MigrationSamRuntime;
}

type Factory = () => Promise<PartyRuntime>;

export class EmbeddedSystem {
  private readonly partiesById = new Map<string, PartyRuntime>();
  private readonly factories = new Map<string, Factory>();
  /** The links between the parties, kept to link a restarted party the same way (systemWires.ts). */
  private readonly wires: Wires;
  private readonly serverLinks = new Map<string, Map<string, SecureResponderLink>>();
  /** Each terminal's device key and each chip's own key (systemKeys.ts). */
  private readonly ownKeys: OwnKeys;
  /** What linking a phone needs of this system (systemPhones.ts). */
  private readonly phones: PhoneHost;
  /** Readers each provider enrolled (its normal SAM reads this table, across restarts): key -> name and rights. */
  private readonly readers = new Map<string, Record<string, EnrolledReader>>();

  private constructor(
    readonly opts: SystemOptions & { rng: Rng; clock: Clock; log: Logger },
    private readonly serverIdentity: Identity,
    private readonly issuerMaster: Secret,
    private readonly providerMasters: Record<string, Secret>,
    private readonly providerIdentities: Record<string, { normal: Identity; migration: Identity }>,
    private readonly adminIdentity: Identity,
  ) {
    this.wires = new Wires(opts, (id) => this.partiesById.get(id));
    this.ownKeys = new OwnKeys((dir) => this.storeFor(dir), opts.rng);
    this.phones = {
      serverIdentity,
      rng: opts.rng,
      ownKeys: this.ownKeys,
      wire: (w) => this.wires.wire(w),
      keep: (...links) => this.wires.keep(...links),
      server: () => this.server,
      normalSam: (provider) => this.party<NormalSamRuntime>(`normal-sam/${provider}`),
      normalSamIdentity: (provider) => this.normalSamIdentity(provider),
      enrollReader: (provider, key, name, rights) => this.enrollReader(provider, key, name, rights),
    };
  }

  private deps(id: string, store: PartyStore): RuntimeDeps {
    const opts = this.opts;
    return {
      id,
      store,
      clock: opts.clock,
      rng: opts.rng,
      log: opts.log,
      inspect: opts.inspect,
      tap: opts.envelopeTap,
      observe: opts.observe,
      onTurnPoint: opts.onTurnPoint,
      timing: opts.timing,
      intercept: opts.intercept,
      commitPolicy: opts.commitPolicy,
    };
  }

  private storeFor(...parts: string[]): PartyStore {
    return PartyStore.open(join(this.opts.dataDir, ...parts), { commits: this.opts.commits });
  }

  static async start(options: SystemOptions): Promise<EmbeddedSystem> {
    const opts = {
      ...options,
      rng: options.rng ?? systemRng,
      clock: options.clock ?? systemClock,
      log: options.log ?? createLogger({ level: 'silent' }),
    };
    const keys = await loadSystemKeys(opts);
    const system = new EmbeddedSystem(opts, keys.serverIdentity, keys.issuerMaster, keys.providerMasters, keys.providerIdentities, keys.adminIdentity);
    await system.startParties();
    return system;
  }

  private async startParties(): Promise<void> {
    const opts = this.opts;
    this.factories.set('server', async () => {
      const { scrypt, deadlineMs, backupRetentionMs, providers } = opts;
      const server = new ServerRuntime(this.deps('server', this.storeFor('server')), { scrypt, deadlineMs, backupRetentionMs, providers });
      await server.start();
      return server;
    });
    const migrationSams: Record<string, { signPublic: Uint8Array; boxPublic: Uint8Array }> = {};
    for (const p of opts.providers) {
      const ids = this.providerIdentities[p]!;
      migrationSams[`migration-sam/${p}`] = { signPublic: ids.migration.signPublic, boxPublic: ids.migration.boxPublic };
    }
    this.factories.set('admin-sam', async () => {
      const build = opts.adminSam ?? ((deps, o) => new AdminSamRuntime(deps, o));
      const admin = build(this.deps('admin-sam', this.storeFor('admin-sam')), { issuerMaster: this.issuerMaster, identity: this.adminIdentity, migrationSams });
      await admin.start();
      return admin;
    });
    await this.launch('server');
    await this.launch('admin-sam');
    this.wires.wire({
      a: { party: 'server', name: 'admin-sam' },
      b: { party: 'admin-sam', name: 'server' },
      channel: { initiator: this.serverIdentity, responder: this.adminIdentity, mutual: true, trust: () => true },
    });
    for (const p of opts.providers) {
      const readers: Record<string, EnrolledReader> = {};
      this.readers.set(p, readers);
      const serverLinks = new Map<string, SecureResponderLink>();
      this.serverLinks.set(`migration-sam/${p}`, serverLinks);
      await startProvider(
        {
          serverIdentity: this.serverIdentity,
          adminIdentity: this.adminIdentity,
          identities: this.providerIdentities[p]!,
          master: this.providerMasters[p]!,
          rights: opts.rights?.[p],
          untrusting: opts.untrustingProviders?.includes(p) ?? false,
          readers,
          serverLinks,
          deps: (id, store) => this.deps(id, store),
          storeFor: (...parts) => this.storeFor(...parts),
          define: (id, start) => this.factories.set(id, start),
          launch: (id) => this.launch(id),
          wire: (w) => this.wires.wire(w),
        },
        p,
      );
    }
  }

  private async launch(id: string): Promise<PartyRuntime> {
    const party = await this.factories.get(id)!();
    this.partiesById.set(id, party);
    this.opts.onPartyStarted?.(party);
    return party;
  }

  /** Counts of faults applied so far, over every link. */
  faultCounts(): Record<string, number> {
    return this.wires.faultCounts();
  }

  /** Makes every link lose, repeat and delay messages by `policy` (null: a perfect network again). */
  setFaults(policy: FaultPolicy | null): void {
    this.wires.setFaults(policy);
  }

  /** Closes a terminal's connection to the server (the phone loses its network). */
  disconnect(terminalId: string): void {
    this.party(terminalId).closeLink('server', 'network lost');
  }

  /** Opens a new connection from a terminal to the server (the phone is back online). */
  reconnect(terminalId: string): void {
    this.wires.reconnect(terminalId);
  }

  /**
   * Links two running parties again as they were first linked, with a new
   * connection (and a new channel handshake where the wire has one). For a
   * test that took one party's seat on that link and now gives it back; the
   * old connection is closed, and whatever it had earned (a login) is gone.
   */
  relink(a: string, b: string): void {
    this.wires.relink(a, b);
  }

  /** Parties between their crash and their restart (their stores are closed: nothing to observe). */
  readonly restarting = new Set<string>();

  /** Kills a party (RAM gone, LMDB kept) and starts a new runtime on the same store, linked as before. */
  async restart(id: string): Promise<PartyRuntime> {
    const old = this.partiesById.get(id);
    if (!old) throw new Error(`no party ${id}`);
    this.restarting.add(id);
    try {
      await old.kill();
      const party = await this.launch(id);
      this.wires.rewire(id);
      return party;
    } finally {
      this.restarting.delete(id);
    }
  }

  party<T extends PartyRuntime = PartyRuntime>(id: string): T {
    const p = this.partiesById.get(id);
    if (!p) throw new Error(`no party ${id}`);
    return p as T;
  }

  get server(): ServerRuntime {
    return this.party<ServerRuntime>('server');
  }

  get adminSam(): AdminSamRuntime {
    return this.party<AdminSamRuntime>('admin-sam');
  }

  get providers(): Map<string, Provider> {
    return new Map(
      this.opts.providers.map((p) => [
        p,
        { normalSam: this.party<NormalSamRuntime>(`normal-sam/${p}`), migrationSam: this.party<MigrationSamRuntime>(`migration-sam/${p}`) },
      ]),
    );
  }

  get chips(): Map<string, ChipRuntime> {
    return new Map([...this.partiesById.values()].filter((p): p is ChipRuntime => p instanceof ChipRuntime).map((c) => [c.serial, c]));
  }

  get terminals(): Map<string, TerminalRuntime> {
    return new Map(
      [...this.partiesById.values()].filter((p): p is TerminalRuntime => p instanceof TerminalRuntime).map((t) => [t.id.slice('terminal/'.length), t]),
    );
  }

  // ---- chips and terminals -------------------------------------------------------------------------

  /** The public key a terminal proves on its links (its device key) or a chip on its bus. */
  publicKeyOf(id: string): string {
    return this.ownKeys.publicKeyOf(id);
  }

  /** Manufactures a chip: serial and K_chip (derived from the issuer master) written into its own store. */
  async addChip(serial: string): Promise<ChipRuntime> {
    const id = `chip/${serial}`;
    await this.ownKeys.load(id, `chip-${serial}`);
    const kChip = deriveChipKey(this.issuerMaster, serial).reveal();
    this.factories.set(id, async () => {
      const chip = new ChipRuntime(this.deps(id, this.storeFor(`chip-${serial}`)));
      await chip.start({ serial, kChip });
      return chip;
    });
    return (await this.launch(id)) as ChipRuntime;
  }

  async addTerminal(name: string): Promise<TerminalRuntime> {
    const id = `terminal/${name}`;
    await this.ownKeys.load(id, `terminal-${name}`);
    this.factories.set(id, async () => {
      const terminal = Object.assign(new TerminalRuntime(this.deps(id, this.storeFor(`terminal-${name}`))), { deviceIdentity: this.ownKeys.get(id) });
      await terminal.start();
      return terminal;
    });
    return (await this.launch(id)) as TerminalRuntime;
  }

  /** Puts a chip in a terminal and pairs them (systemPhones.ts). */
  insertChip(terminal: TerminalRuntime, chip: ChipRuntime): void {
    insertChip(this.phones, terminal, chip);
  }

  /** One connection from the terminal to the server (systemPhones.ts). */
  connectToServer(terminal: TerminalRuntime): void {
    connectToServer(this.phones, terminal);
  }

  /** A bare channel to the server, as a terminal program would open it, proving `identity` (systemPhones.ts). */
  rawServerConnection(name: string, identity?: Identity): Link {
    return rawServerConnection(this.phones, name, identity);
  }

  /** A terminal acting as a reader connects to a provider's normal SAM, enrolled with `rights` (systemPhones.ts). */
  connectReader(terminal: TerminalRuntime, provider: string, rights: ReaderRight[] = ['spend']): void {
    connectReader(this.phones, terminal, provider, rights);
  }

  /** The provider enrols a reader key under a name with rights (replacing what that key had). */
  enrollReader(provider: string, key: string, name: string, rights: ReaderRight[]): void {
    const readers = this.readers.get(provider);
    if (!readers) throw new Error(`no provider ${provider}`);
    readers[key] = { name, rights: [...rights] };
  }

  /** The provider takes a reader off its list (its link stays until it closes; its requests are refused from now on). */
  revokeReader(provider: string, key: string): void {
    const readers = this.readers.get(provider);
    if (!readers) throw new Error(`no provider ${provider}`);
    delete readers[key];
  }

  /** The public keys a user's receipt is checked against: the admin SAM's and each migration SAM's (`receipt verify`). */
  receiptKeys = (): ReceiptKeys => receiptKeysOf(this.adminIdentity, this.providerIdentities);

  /** The normal SAM identity of a provider (it signs that provider's vouchers). */
  normalSamIdentity(provider: string): Identity {
    const ids = this.providerIdentities[provider];
    if (!ids) throw new Error(`no provider ${provider}`);
    return ids.normal;
  }

  /** A provider signs an issue order (src/crypto/issueOrder.ts): one new item for one chip and area, received by `terminal.issue`. */
  issueOrder(o: IssueOrderRequest): string {
    const ids = this.providerIdentities[o.provider];
    if (!ids) throw new Error(`no provider ${o.provider}`);
    return signIssueOrderAs(ids.migration, o, this.opts.clock.now(), this.opts.rng);
  }

  /** Issues value items onto a chip at a desk holding every master key (tests' fixture; see issuer.ts). */
  async issue(chip: ChipRuntime, items: IssueRequest[]): Promise<void> {
    await issueItems(chip, { issuerMaster: this.issuerMaster, providerMasters: this.providerMasters }, items, this.opts.rng);
  }

  /** Every party, for status and teardown. */
  parties(): PartyRuntime[] {
    return [...this.partiesById.values()];
  }

  async stop(): Promise<void> {
    this.wires.quiet();
    for (const party of this.parties()) await party.stop();
  }
}
