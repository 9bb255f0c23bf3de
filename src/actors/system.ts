/**
 * The whole system embedded in one process (architecture.md: one machine,
 * two runtimes). Every party is its own runtime with its own LMDB
 * environment under the data folder and its own keys; they talk through
 * in-memory links, with the same channel handshakes (server <-> SAMs mutual,
 * terminal -> server and terminal -> normal SAM server-authenticated) they
 * run over WebSocket.
 *
 * Any party can be killed and restarted from its store (fault injection),
 * and every link can be made faulty (drop, duplicate, delay).
 *
 *   data/
 *     server/  admin-sam/  provider-<p>/normal-sam/  provider-<p>/migration-sam/
 *     chip-<serial>/  terminal-<name>/
 */
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock.ts';
import { createIssueOrder, deriveChipKey, encodeIssueOrder, generateIdentity, systemRng, toB64, type Identity, type Rng, type Secret, type TrustCheck } from '../crypto/index.ts';
import { createLogger, type Logger } from '../log.ts';
import { loadOrCreateIdentity, loadOrCreateSecret } from '../store/keys.store.ts';
import { PartyStore, type CommitMode } from '../store/party.store.ts';
import type { Timing } from '../timing.ts';
import { FaultyLink, type FaultPolicy } from '../transport/faulty.link.ts';
import type { Link, LinkSite, LinkTap, Scheduler } from '../transport/link.ts';
import { memoryLinkPair } from '../transport/memory.transport.ts';
import { SecureInitiatorLink, SecureResponderLink } from '../transport/secure.link.ts';
import { AdminSamRuntime, type AdminSamOptions } from './adminSam.actor.ts';
import { ChipRuntime } from './chip.actor.ts';
import { issueItems, type IssueRequest } from './issuer.ts';
import { MigrationSamRuntime, type Right } from './migrationSam.actor.ts';
import { NormalSamRuntime, type EnrolledReader, type ReaderRight } from './normalSam.actor.ts';
import type { CommitPolicy, PartyRuntime, RuntimeDeps } from './runtime.ts';
import { ServerRuntime } from './server.actor.ts';
import { TerminalRuntime } from './terminal.actor.ts';
import { encodeValue, type ValueItem } from './value.ts';

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

type Side = { party: string; name: string; remoteId?: string };

/** How two parties are linked; kept so a restarted party can be linked again the same way. */
interface Wire {
  a: Side;
  b: Side;
  /**
   * a initiates a channel to b: b presents `responder`, a presents `initiator`. With `admitFirst`, b takes
   * the link only once the handshake is done (as a listening process does), so a connection b's trust
   * check refuses never takes the name from the one that holds it (a terminal's name, a reader's).
   */
  channel?: { initiator?: Identity; responder: Identity; mutual: boolean; trust: TrustCheck; admitFirst?: boolean };
  /** Called with b's end once it is attached (the migration SAM keeps its server links to check rights). */
  onB?: (link: Link) => void;
}

type Factory = () => Promise<PartyRuntime>;

export class EmbeddedSystem {
  private readonly partiesById = new Map<string, PartyRuntime>();
  private readonly factories = new Map<string, Factory>();
  private readonly wires: Wire[] = [];
  private readonly links: Link[] = [];
  private readonly faulty: FaultyLink[] = [];
  private faultPolicy: FaultPolicy | null = null;
  private readonly serverLinks = new Map<string, Map<string, SecureResponderLink>>();
  /** Each terminal's device key and each chip's own key, kept in their own stores (made at first start). */
  private readonly identities = new Map<string, Identity>();
  /** Readers each provider enrolled (its normal SAM reads this table, across restarts): key -> name and rights. */
  private readonly readers = new Map<string, Record<string, EnrolledReader>>();

  private constructor(
    readonly opts: SystemOptions & { rng: Rng; clock: Clock; log: Logger },
    private readonly serverIdentity: Identity,
    private readonly issuerMaster: Secret,
    private readonly providerMasters: Record<string, Secret>,
    private readonly providerIdentities: Record<string, { normal: Identity; migration: Identity }>,
    private readonly adminIdentity: Identity,
  ) {}

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
    // Each party's own secrets, created on first start in its own store.
    const keyStore = async <T>(parts: string[], fn: (s: PartyStore) => Promise<T>): Promise<T> => {
      const s = PartyStore.open(join(opts.dataDir, ...parts), { commits: opts.commits });
      try {
        return await fn(s);
      } finally {
        await s.close();
      }
    };
    const serverIdentity = await keyStore(['server'], (s) => loadOrCreateIdentity(s, opts.rng));
    const [adminIdentity, issuerMaster] = await keyStore(['admin-sam'], async (s) => [await loadOrCreateIdentity(s, opts.rng), await loadOrCreateSecret(s, opts.rng, 'issuer-master')] as const);
    const providerIdentities: Record<string, { normal: Identity; migration: Identity }> = {};
    const providerMasters: Record<string, Secret> = {};
    for (const p of opts.providers) {
      const normal = await keyStore([`provider-${p}`, 'normal-sam'], async (s) => {
        providerMasters[p] = await loadOrCreateSecret(s, opts.rng, 'provider-master');
        return loadOrCreateIdentity(s, opts.rng);
      });
      const migration = await keyStore([`provider-${p}`, 'migration-sam'], (s) => loadOrCreateIdentity(s, opts.rng));
      providerIdentities[p] = { normal, migration };
    }
    const system = new EmbeddedSystem(opts, serverIdentity, issuerMaster, providerMasters, providerIdentities, adminIdentity);
    await system.startParties();
    return system;
  }

  private async startParties(): Promise<void> {
    const opts = this.opts;
    this.factories.set('server', async () => {
      const server = new ServerRuntime(this.deps('server', this.storeFor('server')), { scrypt: opts.scrypt, deadlineMs: opts.deadlineMs });
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
    this.wire({
      a: { party: 'server', name: 'admin-sam' },
      b: { party: 'admin-sam', name: 'server' },
      channel: { initiator: this.serverIdentity, responder: this.adminIdentity, mutual: true, trust: () => true },
    });

    const serverKey = toB64(this.serverIdentity.signPublic);
    for (const p of opts.providers) {
      const ids = this.providerIdentities[p]!;
      const trustedKey = opts.untrustingProviders?.includes(p) ? toB64(new Uint8Array(32).fill(7)) : serverKey;
      const serverLinks = new Map<string, SecureResponderLink>();
      const readers: Record<string, EnrolledReader> = {};
      this.readers.set(p, readers);
      const msamId = `migration-sam/${p}`;
      const nsamId = `normal-sam/${p}`;
      this.serverLinks.set(msamId, serverLinks);
      this.factories.set(msamId, async () => {
        const msam = new MigrationSamRuntime(this.deps(msamId, this.storeFor(`provider-${p}`, 'migration-sam')), {
          provider: p,
          identity: ids.migration,
          adminSamSignPublic: this.adminIdentity.signPublic,
          servers: { [trustedKey]: opts.rights?.[p] ?? ['upload', 'download', 'clear'] },
          serverKeyOf: (peer) => serverLinks.get(peer)?.peerId,
        });
        await msam.start();
        return msam;
      });
      this.factories.set(nsamId, async () => {
        const nsam = new NormalSamRuntime(this.deps(nsamId, this.storeFor(`provider-${p}`, 'normal-sam')), {
          provider: p,
          providerMaster: this.providerMasters[p]!,
          identity: ids.normal,
          migrationSamBoxPublic: ids.migration.boxPublic,
          readers,
        });
        await nsam.start();
        return nsam;
      });
      await this.launch(msamId);
      await this.launch(nsamId);
      this.wire({
        a: { party: 'server', name: msamId },
        b: { party: msamId, name: 'server' },
        channel: { initiator: this.serverIdentity, responder: ids.migration, mutual: true, trust: (k) => k === trustedKey },
        onB: (link) => serverLinks.set('server', link as SecureResponderLink),
      });
      this.wire({ a: { party: msamId, name: nsamId }, b: { party: nsamId, name: msamId } });
    }
  }

  private async launch(id: string): Promise<PartyRuntime> {
    const party = await this.factories.get(id)!();
    this.partiesById.set(id, party);
    this.opts.onPartyStarted?.(party);
    return party;
  }

  /** Links two parties as the wire says (and again, the same way, when either restarts). */
  private wire(w: Wire, record = true): void {
    if (record) this.wires.push(w);
    const a = this.partiesById.get(w.a.party);
    const b = this.partiesById.get(w.b.party);
    if (!a || !b || a.isStopped || b.isStopped) return;
    const [rawA, rawB] = memoryLinkPair(w.a.party, w.b.party, { scheduler: this.opts.scheduler, tap: this.opts.linkTap });
    this.links.push(rawA, rawB);
    let endA: Link = rawA;
    let endB: Link = rawB;
    if (w.channel) {
      const onReject = (party: string) => (code: string, message: string) => this.opts.log.warn('channel message rejected', { party, code, reason: message });
      endA = new SecureInitiatorLink(rawA, { name: w.a.party, identity: w.channel.initiator, peerSignPublic: w.channel.responder.signPublic, rng: this.opts.rng }, { onReject: onReject(w.a.party) });
      endB = new SecureResponderLink(rawB, { name: w.b.party, identity: w.channel.responder, trust: w.channel.trust, requireMutual: w.channel.mutual, rng: this.opts.rng }, { onReject: onReject(w.b.party) });
    }
    // Faults sit above the channel: they lose, repeat and delay envelopes, as a network would lose packets under TLS.
    const faultRng = this.opts.faultRng ?? this.opts.rng;
    const fa = new FaultyLink(endA, faultRng, this.opts.clock, () => this.faultPolicy);
    const fb = new FaultyLink(endB, faultRng, this.opts.clock, () => this.faultPolicy);
    this.faulty.push(fa, fb);
    // A hostile relay is the sending party itself: it sits above the network's faults.
    const wrap = this.opts.wrapSender;
    const hostile = (link: FaultyLink, from: string, to: string): Link => (wrap ? wrap(link, { from, to, link: link.label }) : link);
    a.attach(w.a.name, hostile(fa, w.a.party, w.a.remoteId ?? w.b.party), w.a.remoteId ?? w.b.party);
    const takeB = () => b.attach(w.b.name, hostile(fb, w.b.party, w.b.remoteId ?? w.a.party), w.b.remoteId ?? w.a.party);
    if (w.channel?.admitFirst && endB instanceof SecureResponderLink) endB.onEstablished = () => (b.isStopped ? undefined : takeB());
    else takeB();
    w.onB?.(endB);
  }

  /** Counts of faults applied so far, over every link. */
  faultCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const f of this.faulty) for (const [k, v] of Object.entries(f.counts)) out[k] = (out[k] ?? 0) + v;
    return out;
  }

  /** Makes every link lose, repeat and delay messages by `policy` (null: a perfect network again). */
  setFaults(policy: FaultPolicy | null): void {
    this.faultPolicy = policy;
  }

  /** Closes a terminal's connection to the server (the phone loses its network). */
  disconnect(terminalId: string): void {
    this.party(terminalId).closeLink('server', 'network lost');
  }

  /** Opens a new connection from a terminal to the server (the phone is back online). */
  reconnect(terminalId: string): void {
    const w = this.wires.find((x) => x.a.party === terminalId && x.b.party === 'server');
    if (!w) throw new Error(`${terminalId} was never connected to the server`);
    this.wire(w, false);
  }

  /**
   * Links two running parties again as they were first linked, with a new
   * connection (and a new channel handshake where the wire has one). For a
   * test that took one party's seat on that link and now gives it back; the
   * old connection is closed, and whatever it had earned (a login) is gone.
   */
  relink(a: string, b: string): void {
    const found = this.wires.filter((w) => (w.a.party === a && w.b.party === b) || (w.a.party === b && w.b.party === a));
    if (found.length === 0) throw new Error(`${a} and ${b} were never linked`);
    for (const w of found) this.wire(w, false);
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
      for (const w of this.wires) if (w.a.party === id || w.b.party === id) this.wire(w, false);
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

  /** A party's own key pair, made in its own store on first start and read back after (a chip's, a phone's device key). */
  private async ownIdentity(id: string, dir: string): Promise<Identity> {
    const known = this.identities.get(id);
    if (known) return known;
    const store = this.storeFor(dir);
    try {
      const identity = await loadOrCreateIdentity(store, this.opts.rng);
      this.identities.set(id, identity);
      return identity;
    } finally {
      await store.close();
    }
  }

  /** The public key a terminal proves on its links (its device key) or a chip on its bus. */
  publicKeyOf(id: string): string {
    const identity = this.identities.get(id);
    if (!identity) throw new Error(`no key for ${id}`);
    return toB64(identity.signPublic);
  }

  /** Manufactures a chip: serial and K_chip (derived from the issuer master) written into its own store. */
  async addChip(serial: string): Promise<ChipRuntime> {
    const id = `chip/${serial}`;
    await this.ownIdentity(id, `chip-${serial}`);
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
    await this.ownIdentity(id, `terminal-${name}`);
    this.factories.set(id, async () => {
      const terminal = new TerminalRuntime(this.deps(id, this.storeFor(`terminal-${name}`)));
      await terminal.start();
      return terminal;
    });
    return (await this.launch(id)) as TerminalRuntime;
  }

  /**
   * Puts a chip in a terminal (the phone's local link) and pairs them: the
   * chip answers only this terminal's device key, over a channel to its own key.
   */
  insertChip(terminal: TerminalRuntime, chip: ChipRuntime): void {
    const termKey = this.publicKeyOf(terminal.id);
    this.wire({
      a: { party: terminal.id, name: 'chip', remoteId: chip.id },
      b: { party: chip.id, name: terminal.id },
      channel: {
        initiator: this.identities.get(terminal.id)!,
        responder: this.identities.get(chip.id)!,
        mutual: true,
        trust: (k, n) => (k === termKey && n === terminal.id ? true : { code: 'UNTRUSTED_PEER', message: `${chip.id} answers only the phone it is paired with` }),
        admitFirst: true,
      },
    });
  }

  /** One connection from the terminal to the server: the terminal checks the server's key and proves its device key. */
  connectToServer(terminal: TerminalRuntime): void {
    this.wire({
      a: { party: terminal.id, name: 'server' },
      b: { party: 'server', name: terminal.id },
      channel: { initiator: this.identities.get(terminal.id)!, responder: this.serverIdentity, mutual: true, trust: (k, n) => this.server.admitTerminal(n, k), admitFirst: true },
    });
  }

  /**
   * A bare channel to the server, as a terminal program would open it, for
   * tools and tests that speak envelopes directly (bad input, attacks). It
   * proves `identity` (a new device key unless given): a name bound to
   * another key is refused at the handshake, as a stranger's would be.
   */
  rawServerConnection(name: string, identity: Identity = generateIdentity(this.opts.rng)): Link {
    const id = `terminal/${name}`;
    const [t, s] = memoryLinkPair(id, 'server');
    this.links.push(t, s);
    const link = new SecureInitiatorLink(t, { name: id, identity, peerSignPublic: this.serverIdentity.signPublic, rng: this.opts.rng });
    const server = this.server;
    const responder = new SecureResponderLink(s, { name: 'server', identity: this.serverIdentity, trust: (k, n) => server.admitTerminal(n, k), requireMutual: true, rng: this.opts.rng });
    responder.onEstablished = (l) => void server.attachTerminal(id, l);
    return link;
  }

  /**
   * A terminal acting as a reader connects to a provider's normal SAM
   * (normal use; no server involved). The provider enrols the terminal's
   * device key first, with `rights` (a phone spends; a charging reader also
   * tops up without a voucher).
   */
  connectReader(terminal: TerminalRuntime, provider: string, rights: ReaderRight[] = ['spend']): void {
    const ids = this.providerIdentities[provider];
    if (!ids) throw new Error(`no provider ${provider}`);
    this.enrollReader(provider, this.publicKeyOf(terminal.id), terminal.id, rights);
    const samId = `normal-sam/${provider}`;
    this.wire({
      a: { party: terminal.id, name: samId },
      b: { party: samId, name: terminal.id },
      channel: {
        initiator: this.identities.get(terminal.id)!,
        responder: ids.normal,
        mutual: true,
        trust: (k, n) => this.party<NormalSamRuntime>(samId).admitReader(n, k),
        admitFirst: true,
      },
    });
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

  /** The normal SAM identity of a provider (it signs that provider's vouchers). */
  normalSamIdentity(provider: string): Identity {
    const ids = this.providerIdentities[provider];
    if (!ids) throw new Error(`no provider ${provider}`);
    return ids.normal;
  }

  /**
   * A provider signs an issue order (src/crypto/issueOrder.ts): one new item
   * for one chip and area, which a phone receives with `terminal.issue`.
   */
  issueOrder(o: { provider: string; serial: string; area?: string; value: ValueItem; ttlMs?: number }): string {
    const ids = this.providerIdentities[o.provider];
    if (!ids) throw new Error(`no provider ${o.provider}`);
    const expiresAt = this.opts.clock.now() + (o.ttlMs ?? 24 * 3_600_000);
    return encodeIssueOrder(createIssueOrder({ provider: o.provider, serial: o.serial, area: o.area ?? o.provider, expiresAt, item: encodeValue(o.value) }, ids.migration, this.opts.rng));
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
    this.faultPolicy = null;
    for (const f of this.faulty) f.flush();
    for (const party of this.parties()) await party.stop();
  }
}
