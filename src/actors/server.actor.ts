/**
 * The value-move server (seed 20): users and logins, the chip registry, the
 * migration database, and the relay between chips (via their terminals) and
 * SAMs. One connection from a terminal is all a migration phase needs,
 * however many providers are involved (¶0071, ¶0079).
 *
 * It never holds a key or a plaintext value item: it stores password
 * verifiers, serials, area names and states, sealed grants and signed
 * receipts, and relays session frames it can not open.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { decodeIssueOrder, equalBytes, fromB64, SCRYPT_DEFAULTS, toB64, utf8, type TrustVerdict } from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { migrationMachine, MIGRATION_MACHINE_VERSION, type ChipRole, type MigrationContext, type MigrationIntent } from '../machines/migration.machine.ts';
import { registrationMachine, REGISTRATION_MACHINE_VERSION, type RegistrationIntent } from '../machines/registration.machine.ts';
import { newUserRecord, ServerRecords } from '../store/server.store.ts';
import { TokenBucket } from '../transport/door.ts';
import type { Link } from '../transport/link.ts';
import { describeMigration, type MigrationStatus } from './status.ts';
import type { Step } from '../protocol/steps.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { PartyRuntime, type MachineKind, type RuntimeDeps, type TurnContext } from './runtime.ts';

export const ADMIN_SAM_PEER = 'admin-sam';

/** Rights the server asks each provider to have granted it (seed ¶0053, ¶0057). */
export const MIGRATION_RIGHTS = ['upload', 'download', 'clear'] as const;
/** How long a temp-key grant is valid once issued. */
export const GRANT_TTL_MS = 60 * 60 * 1000;
/** Login failures before the account is locked; the lock doubles with each further failure up to the cap. */
export const LOGIN_FAILURES_FREE = 3;
export const LOCKOUT_BASE_MS = 1_000;
export const LOCKOUT_CAP_MS = 60 * 60 * 1000;
/**
 * Devices one user's logins may bind (a phone, its replacement, a tablet…):
 * what a stranger with one account can make the server store is bounded.
 */
export const DEVICES_PER_USER_MAX = 8;

/** A terminal's name: `terminal/<label>`. */
export const TERMINAL_NAME = /^terminal\/[A-Za-z0-9._-]{1,64}$/;
/** login.proof ids remembered per connection, so a network duplicate is not a second failed attempt (issue 16). */
export const LOGIN_PROOF_IDS_PER_LINK_MAX = 16;

export interface ServerOptions {
  scrypt?: { N: number; r: number; p: number };
  /** Default time a migration waits for its destination before it is cancelled. */
  deadlineMs?: number;
  /**
   * Terminals the operator enrolled (keygen writes the deployment's phones):
   * name -> device key (Ed25519, base64url). Others bind at their first login.
   */
  devices?: Record<string, string>;
  /**
   * Messages per second (and at once) the server takes from terminals that
   * have not logged in, all together (src/transport/limits.ts,
   * ANONYMOUS_MESSAGES_PER_S); unbounded when absent (one process, no strangers).
   */
  anonymous?: { perS: number; burst: number };
}

interface LoginState {
  user: string | null;
}

const MIGRATION = 'migration:';
const REGISTRATION = 'registration:';

export class ServerRuntime extends PartyRuntime {
  protected readonly kinds: Record<string, MachineKind> = {
    migration: { machine: migrationMachine, version: MIGRATION_MACHINE_VERSION },
    registration: { machine: registrationMachine, version: REGISTRATION_MACHINE_VERSION },
  };
  readonly records: ServerRecords;
  private readonly logins = new Map<string, LoginState>();
  private readonly options: ServerOptions;
  /** Per link, the login.proof ids it sent lately (bounded; dropped with the link). */
  private readonly proofIds = new Map<string, Set<string>>();

  constructor(deps: RuntimeDeps, options: ServerOptions = {}) {
    super(deps);
    this.records = new ServerRecords(deps.store);
    this.options = options;
    this.anonymous = options.anonymous ? new TokenBucket(options.anonymous.perS, options.anonymous.burst, () => this.clock.now()) : undefined;
  }

  private readonly anonymous: TokenBucket | undefined;

  /** Terminals not logged in share one budget: however many links a stranger opens, anonymous work stays bounded. */
  protected override admitMessage(peer: string): boolean {
    if (!this.anonymous || !peer.startsWith('terminal/') || this.logins.get(peer)?.user) return true;
    return this.anonymous.take();
  }

  // ---- what a stranger may send writes nothing (issue 16) ---------------------------------
  //
  // login.begin only reads; login.proof counts a failure on an existing user (that user's one record:
  // the lockout of issue 8, bounded) and is safe to run again: a repeat of the same id on the same link
  // is not counted twice (`proofIds`). The fake-salt key exists from the start, not from a stranger's turn.
  protected override readonly requestsAnsweredFresh: ReadonlySet<string> = new Set(['login.begin', 'login.proof']);

  override async start(): Promise<void> {
    if (!this.records.secrets.get('salt-key')) {
      const key = this.rng.bytes(32);
      await this.store.commit(() => this.records.secrets.put('salt-key', key));
    }
    await super.start();
  }

  /** A repeat of a login.proof id already seen on this link (remembers the id otherwise). */
  private proofSeen(peer: string, id: string): boolean {
    if (!this.hasLink(peer)) return false; // its link is gone (a proof handled after its close): nothing to remember it for
    let ids = this.proofIds.get(peer);
    if (!ids) this.proofIds.set(peer, (ids = new Set()));
    if (ids.has(id)) return true;
    ids.add(id);
    if (ids.size > LOGIN_PROOF_IDS_PER_LINK_MAX) ids.delete(ids.values().next().value!);
    return false;
  }

  /** A migration's inbox records stay while it runs (a repeat is answered until it is settled, protocol.md §4.5). */
  protected override isSettled(mig: string): boolean {
    return this.isAtRest(mig.startsWith('reg-') ? REGISTRATION + mig : MIGRATION + mig);
  }

  // ---- operator actions -----------------------------------------------------------------

  /** Creates (or resets) a user. The password is stretched with scrypt; only sha256 of the result is kept. */
  async createUser(user: string, password: string): Promise<void> {
    const record = newUserRecord(user, password, this.rng, this.options.scrypt ?? SCRYPT_DEFAULTS);
    await this.store.commit(() => this.records.users.put(user, record));
  }

  /** Clears a user's failure count and lockout (issue 8: an operator can clear it). */
  async clearLockout(user: string): Promise<void> {
    const rec = this.records.users.get(user);
    if (!rec) throw new ProtocolError('NOT_FOUND', `no user ${user}`);
    await this.store.commit(() => this.records.users.put(user, { ...rec, failures: 0, lockedUntil: 0 }));
  }

  migration(mig: string): MigrationContext | undefined {
    return this.actorOf(MIGRATION + mig)?.getSnapshot().context as MigrationContext | undefined;
  }

  migrationState(mig: string): unknown {
    return this.actorOf(MIGRATION + mig)?.getSnapshot().value;
  }

  /** Every migration, described for `valmove status` (phase, items, what it waits for). */
  statuses(): MigrationStatus[] {
    return this.migrationIds().map((m) => describeMigration(this.migrationState(m), this.migration(m)!));
  }

  /** Every migration this server ran or runs (the finished ones read from its store). */
  migrationIds(): string[] {
    return this.actorKeys('migration', true).map((k) => k.slice(MIGRATION.length));
  }

  /** The migrations still running: the only ones an event can move. */
  private liveMigrationIds(): string[] {
    return this.actorKeys('migration').map((k) => k.slice(MIGRATION.length));
  }

  // ---- terminals: a name is a claim, a device key is the proof ---------------------------

  /** The device key a terminal name is bound to: enrolled by the operator, or bound by a login. */
  deviceKeyOf(name: string): string | undefined {
    return this.options.devices?.[name] ?? this.records.devices.get(name)?.key;
  }

  /**
   * Whether a connection may take a terminal name (protocol.md §1,
   * identities at the edges). Called at the channel's hello, before any
   * public-key work, and again when the channel is up: the name must be
   * well formed, the connection must present a device key, and that key
   * must be the one the name is bound to. An unbound name (a new phone) is
   * admitted, but only one device may hold it at a time, and until a login
   * binds it the connection can do one thing: log in. Reads only; a
   * stranger's hello writes nothing.
   */
  admitTerminal(name: string, key: string | undefined): TrustVerdict {
    if (!TERMINAL_NAME.test(name)) return { code: 'UNTRUSTED_PEER', message: 'a terminal names itself terminal/<name> (letters, digits, ".", "_", "-"; at most 64)' };
    if (key === undefined) return { code: 'UNTRUSTED_PEER', message: `${name} must prove a device key: its hello carries none` };
    const bound = this.deviceKeyOf(name);
    if (bound !== undefined && bound !== key) return { code: 'UNTRUSTED_PEER', message: `${name} is bound to another device key` };
    if (bound === undefined && this.hasLink(name) && this.peerKeyOf(name) !== undefined && this.peerKeyOf(name) !== key) {
      return { code: 'UNTRUSTED_PEER', message: `${name} is in use by another device` };
    }
    return true;
  }

  /** Takes a terminal's connection once its channel is up, checking the proven key again (another may have won the name meanwhile). */
  attachTerminal(name: string, link: Link & { peerId?: string }): boolean {
    return this.attachAdmitted(name, link, (n, k) => this.admitTerminal(n, k));
  }

  // ---- links ------------------------------------------------------------------------------

  protected override onLinkAttached(peer: string): void {
    // A login belongs to the connection that made it, never to a name a new connection claims.
    this.logins.delete(peer);
    this.proofIds.delete(peer);
    if (peer.startsWith('terminal/')) this.tellMigrations({ type: 'TERMINAL_BACK', terminal: peer });
  }

  /** Tells the migrations that know this terminal that its connection went or came. */
  private tellMigrations(event: { type: 'TERMINAL_LOST' | 'TERMINAL_BACK'; terminal: string }): void {
    const concerned = this.liveMigrationIds().filter((m) => {
      const c = this.migration(m)!;
      return c.source.terminal === event.terminal || c.destination.terminal === event.terminal || c.offline.includes(event.terminal);
    });
    if (concerned.length === 0) return;
    void this.runLocal((turn) => {
      for (const m of concerned) turn.tryDispatch(MIGRATION + m, event);
    }).catch(() => {});
  }

  protected override onLinkClosed(peer: string, reason: string): void {
    this.logins.delete(peer);
    this.proofIds.delete(peer);
    super.onLinkClosed(peer, reason);
    // Migrations that wait on this terminal in a rollback go on with whoever is still here.
    if (peer.startsWith('terminal/')) this.tellMigrations({ type: 'TERMINAL_LOST', terminal: peer });
  }

  // ---- inbound ----------------------------------------------------------------------------

  protected onEnvelope(env: AnyEnvelope, peer: string, turn: TurnContext): void {
    if (peer.startsWith('terminal/')) return this.fromTerminal(turn, env, peer);
    if (peer === ADMIN_SAM_PEER) return this.fromSam(turn, env, peer);
    if (peer.startsWith('migration-sam/')) return this.fromSam(turn, env, peer);
    throw new ProtocolError('BAD_SENDER', `the server does not talk to ${peer}`);
  }

  private fakeSalt(user: string): string {
    // Unknown users get a stable, plausible salt: a login attempt does not reveal whether a user exists.
    const key = this.records.secrets.get('salt-key');
    if (!key) throw new Error(`${this.id}: no fake-salt key (start() makes it)`);
    return toB64(hmac(sha256, key, utf8(`valmove/v1/fake-salt/${user}`)).subarray(0, 16));
  }

  /**
   * A first login on an unbound name binds it to the device key this
   * connection proved: from then on no other key may use the name. Written
   * only after the password checked out, and at most DEVICES_PER_USER_MAX
   * per user. A link with no channel key (in-process wiring) binds nothing.
   */
  private bindDevice(turn: TurnContext, peer: string, user: string, now: number): void {
    const key = this.peerKeyOf(peer);
    if (key === undefined || this.deviceKeyOf(peer) !== undefined) return;
    if (this.records.devicesOf(user) >= DEVICES_PER_USER_MAX) {
      throw new ProtocolError('DEVICE_LIMIT', `${user} already has ${DEVICES_PER_USER_MAX} devices; an operator can remove one`);
    }
    const records = this.records;
    turn.write(() => {
      records.devices.put(peer, { name: peer, key, user, boundAt: now });
      records.userDevices.put(ServerRecords.userDeviceKey(user, peer), now);
    });
  }

  private requireUser(peer: string): string {
    const user = this.logins.get(peer)?.user;
    if (!user) throw new ProtocolError('UNAUTHENTICATED', 'log in first: this connection has no authenticated user');
    return user;
  }

  private fromTerminal(turn: TurnContext, env: AnyEnvelope, peer: string): void {
    const now = this.clock.now();
    switch (env.type) {
      case 'login.begin': {
        const rec = this.records.users.get(env.body.user);
        if (rec && rec.lockedUntil > now) {
          throw new ProtocolError('LOCKED_OUT', `too many failed logins; try again in ${Math.ceil((rec.lockedUntil - now) / 1000)} s`);
        }
        const params = rec ?? { ...(this.options.scrypt ?? SCRYPT_DEFAULTS), salt: this.fakeSalt(env.body.user) };
        turn.reply(env, 'login.challenge', { user: env.body.user, salt: params.salt, N: params.N, r: params.r, p: params.p });
        return;
      }
      case 'login.proof': {
        const rec = this.records.users.get(env.body.user);
        if (rec && rec.lockedUntil > now) {
          throw new ProtocolError('LOCKED_OUT', `too many failed logins; try again in ${Math.ceil((rec.lockedUntil - now) / 1000)} s`);
        }
        const ok = rec !== undefined && equalBytes(sha256(fromB64(env.body.proof)), fromB64(rec.verifier));
        if (!ok) {
          if (rec && !this.proofSeen(peer, env.id)) {
            const failures = rec.failures + 1;
            const over = failures - LOGIN_FAILURES_FREE;
            const lockedUntil = over >= 0 ? now + Math.min(LOCKOUT_CAP_MS, LOCKOUT_BASE_MS * 2 ** Math.min(over, 30)) : 0;
            turn.write(() => this.records.users.put(rec.user, { ...rec, failures, lockedUntil }));
          }
          this.log.warn('login failed', { peer, user: env.body.user });
          turn.reply(env, 'error', { code: 'LOGIN_FAILED', message: 'unknown user or wrong password' });
          return;
        }
        this.bindDevice(turn, peer, rec.user, now);
        if (rec.failures !== 0) turn.write(() => this.records.users.put(rec.user, { ...rec, failures: 0, lockedUntil: 0 }));
        if (this.hasLink(peer)) this.logins.set(peer, { user: rec.user }); // (a link gone by now keeps nothing)
        turn.reply(env, 'login.ok', { user: rec.user });
        return;
      }
      case 'chip.register': {
        const user = this.requireUser(peer);
        const reg = `reg-${toB64(this.rng.bytes(6))}`;
        turn.spawn(REGISTRATION + reg, 'registration', { reg, user, terminal: peer, request: env.id });
        return;
      }
      case 'migrate.out':
        return this.migrateOut(turn, env, peer);
      case 'migrate.in':
        return this.migrateIn(turn, env, peer);
      case 'migrate.cancel': {
        const user = this.requireUser(peer);
        const ctx = this.migration(env.body.mig);
        if (!ctx || ctx.user !== user) throw new ProtocolError('NO_MIGRATION', `no migration ${env.body.mig} of ${user}`);
        if (this.actorOf(MIGRATION + env.body.mig)!.getSnapshot().status === 'done') {
          // Over already: the decision that stands (a refused migration locked nothing, so it is "aborted").
          turn.reply(env, 'migrate.cancelled', { mig: env.body.mig, decision: ctx.outcome === 'completed' ? 'committed' : 'aborted' });
          return;
        }
        turn.dispatch(MIGRATION + env.body.mig, { type: 'CANCEL_REQUESTED', reason: `cancelled by ${user}`, terminal: peer, request: env.id });
        return;
      }
      case 'channel.reserved':
      case 'channel.released':
      case 'error':
        return this.channelAnswer(turn, env, peer);
      case 'frame': {
        const key = this.actorForSession(env.body.session, peer);
        turn.dispatch(key, { type: 'CHIP_FRAME', from: peer, session: env.body.session, data: env.body.data });
        return;
      }
      default:
        throw new ProtocolError('UNEXPECTED', `the server does not accept ${env.type} from a terminal`);
    }
  }

  private activeMigrationOf(user: string): string | undefined {
    return this.liveMigrationIds().find((m) => {
      const a = this.actorOf(MIGRATION + m)!;
      return a.getSnapshot().status === 'active' && (a.getSnapshot().context as MigrationContext).user === user;
    });
  }

  private migrateOut(turn: TurnContext, env: Extract<AnyEnvelope, { type: 'migrate.out' }>, peer: string): void {
    const user = this.requireUser(peer);
    const active = this.activeMigrationOf(user);
    if (active) {
      // A rolled-back migration waiting for its source takes the source back (rollback step 3).
      if (this.actorOf(MIGRATION + active)!.getSnapshot().can({ type: 'SOURCE_ARRIVED', terminal: peer, request: env.id })) {
        turn.dispatch(MIGRATION + active, { type: 'SOURCE_ARRIVED', terminal: peer, request: env.id });
        return;
      }
      throw new ProtocolError('BUSY', `${user} already has migration ${active} in progress`);
    }
    let destinationProblem: string | undefined;
    let destinationAreas: string[] | undefined;
    if (env.body.destination) {
      const dest = this.records.registry.get(env.body.destination);
      if (!dest) destinationProblem = `destination ${env.body.destination} is not registered`;
      else if (dest.user !== user) destinationProblem = `destination ${env.body.destination} is not registered to ${user}`;
      else destinationAreas = dest.areas;
    }
    const mig = `m-${toB64(this.rng.bytes(6))}`;
    turn.spawn(MIGRATION + mig, 'migration', {
      mig,
      user,
      terminal: peer,
      request: env.id,
      destination: env.body.destination,
      destinationProblem,
      destinationAreas,
      deadlineMs: env.body.deadlineMs ?? this.options.deadlineMs,
      timing: { retryBaseMs: this.timing.retryBaseMs, retryCapMs: this.timing.retryCapMs, preflightMs: this.timing.preflightMs },
    });
  }

  private migrateIn(turn: TurnContext, env: Extract<AnyEnvelope, { type: 'migrate.in' }>, peer: string): void {
    const user = this.requireUser(peer);
    if (env.body.orders) return this.issue(turn, env, env.body.orders, user, peer);
    const candidates = this.liveMigrationIds().filter((m) => {
      const snap = this.actorOf(MIGRATION + m)!.getSnapshot();
      const ctx = snap.context as MigrationContext;
      return ctx.user === user && (env.body.mig === undefined || env.body.mig === m) && snap.can({ type: 'DESTINATION_ARRIVED', terminal: peer, request: env.id });
    });
    if (candidates.length === 0) throw new ProtocolError('NO_MIGRATION', `${user} has no migration waiting for a destination`);
    if (candidates.length > 1) throw new ProtocolError('NO_MIGRATION', `${user} has ${candidates.length} migrations waiting; name one`);
    turn.dispatch(MIGRATION + candidates[0]!, { type: 'DESTINATION_ARRIVED', terminal: peer, request: env.id });
  }

  /**
   * An issuance (migrate.in with the provider's issue orders): a migration
   * without a source, its destination this phone. The server reads only what
   * it routes by (provider, chip, area); each provider's migration SAM checks
   * its orders' signatures and opens their sealed items, and refuses a spent
   * or expired one at S14, which aborts the issuance. The same orders sent
   * again (the phone was away, or asks again) reach the issuance they started.
   */
  private issue(turn: TurnContext, env: Extract<AnyEnvelope, { type: 'migrate.in' }>, tokens: string[], user: string, peer: string): void {
    const orders = tokens.map((t, i) => {
      try {
        return decodeIssueOrder(t);
      } catch (e) {
        throw new ProtocolError('BAD_BODY', `migrate.in body is invalid: body.orders.${i}: ${(e as Error).message}`);
      }
    });
    const serial = orders[0]!.serial;
    const areas = new Set<string>();
    for (const [i, o] of orders.entries()) {
      if (o.serial !== serial) throw new ProtocolError('BAD_BODY', `migrate.in body is invalid: body.orders.${i}: it is for chip ${o.serial}, the first order for ${serial}; one issuance puts items on one chip`);
      if (areas.has(o.area)) throw new ProtocolError('BAD_BODY', `migrate.in body is invalid: body.orders.${i}: a second order for area ${o.area}`);
      areas.add(o.area);
    }
    const chip = this.records.registry.get(serial);
    if (!chip || chip.user !== user) throw new ProtocolError('NOT_OWNER', `chip ${serial} is not registered to ${user}; register the phone before value is issued to it`);
    const active = this.activeMigrationOf(user);
    if (active) {
      const snap = this.actorOf(MIGRATION + active)!.getSnapshot();
      const ctx = snap.context as MigrationContext;
      const arrived = { type: 'DESTINATION_ARRIVED' as const, terminal: peer, request: env.id };
      if (ctx.issuance && ctx.issuance.orders.join(' ') === tokens.join(' ') && snap.can(arrived)) {
        turn.dispatch(MIGRATION + active, arrived);
        return;
      }
      throw new ProtocolError('BUSY', `${user} already has migration ${active} in progress`);
    }
    const mig = `i-${toB64(this.rng.bytes(6))}`;
    turn.spawn(MIGRATION + mig, 'migration', {
      mig,
      user,
      terminal: peer,
      request: env.id,
      issuance: {
        serial,
        items: orders.map((o, i) => ({ item: i, area: o.area, provider: o.provider, recipient: `migration-sam/${o.provider}` })),
        orders: tokens,
      },
      deadlineMs: this.options.deadlineMs,
      timing: { retryBaseMs: this.timing.retryBaseMs, retryCapMs: this.timing.retryCapMs, preflightMs: this.timing.preflightMs },
    });
  }

  /**
   * The migration or registration a session belongs to. A frame from a
   * terminal must come from one of its terminals; any other connection is
   * told what it would be told of a session that does not exist (no oracle
   * for other users' migrations or their states).
   */
  private actorForSession(session: string, terminal?: string): string {
    const owner = session.split(':')[0] ?? '';
    const key = owner.startsWith('reg-') ? REGISTRATION + owner : MIGRATION + owner;
    const actor = this.actorOf(key);
    const ctx = actor?.getSnapshot().context as Partial<MigrationContext> & { terminal?: string } | undefined;
    const ours = terminal === undefined || (ctx !== undefined && (ctx.terminal === terminal || ctx.source?.terminal === terminal || ctx.destination?.terminal === terminal));
    if (!actor || !ours) throw new ProtocolError('NOT_FOUND', `no migration or registration owns session ${session.slice(0, 64)}`);
    return key;
  }

  private actorForRequest(req: AnyEnvelope): string {
    const owner = req.mig ?? '';
    return owner.startsWith('reg-') ? REGISTRATION + owner : MIGRATION + owner;
  }

  private channelAnswer(turn: TurnContext, env: AnyEnvelope, peer: string): void {
    const req = turn.requestOf(env.corr);
    if (!req || (req.type !== 'channel.reserve' && req.type !== 'channel.release') || req.to !== peer) {
      throw new ProtocolError('UNEXPECTED', `${env.type} answers no channel request of ours`);
    }
    const key = this.actorForRequest(req);
    const role: ChipRole = req.body.purpose === 'destination' ? 'destination' : 'source';
    const now = this.clock.now();
    if (env.type === 'error') {
      // The terminal is busy (a reader session): the machine retries or gives up, as its state says.
      this.log.info('terminal refused the channel', { peer, code: env.body.code });
      turn.dispatch(key, { type: 'STEP_FAILED', code: env.body.code, message: env.body.message, now });
      return;
    }
    if (env.type === 'channel.reserved') turn.dispatch(key, { type: 'CHANNEL_RESERVED', chip: role });
    else turn.dispatch(key, { type: 'CHANNEL_RELEASED', chip: role, now });
  }

  private fromSam(turn: TurnContext, env: AnyEnvelope, peer: string): void {
    if (env.type === 'frame') {
      const key = this.actorForSession(env.body.session);
      turn.dispatch(key, { type: 'SAM_FRAME', from: peer, session: env.body.session, data: env.body.data });
      return;
    }
    const req = turn.requestOf(env.corr);
    if (!req || req.to !== peer) throw new ProtocolError('UNEXPECTED', `${env.type} answers no request of ours`);
    const key = this.actorForRequest(req);
    const now = this.clock.now();
    switch (env.type) {
      case 'admin.identified': {
        const owner = this.records.registry.get(env.body.serial)?.user ?? null;
        const purpose = req.type === 'admin.identify' ? req.body.purpose : 'source';
        const chip: ChipRole = purpose === 'destination' ? 'destination' : 'source';
        if (key.startsWith(REGISTRATION)) turn.dispatch(key, { type: 'CHIP_IDENTIFIED', serial: env.body.serial, areas: env.body.areas, owner, now });
        else turn.dispatch(key, { type: 'CHIP_IDENTIFIED', chip, serial: env.body.serial, areas: env.body.areas, owner, now });
        return;
      }
      case 'admin.locked':
        return turn.dispatch(key, { type: 'SOURCE_LOCKED', grants: env.body.grants });
      case 'admin.formatted':
        return turn.dispatch(key, { type: 'DESTINATION_FORMATTED', grants: env.body.grants });
      case 'admin.decision':
        return turn.dispatch(key, { type: 'DECIDED', decision: env.body.decision, reason: env.body.reason });
      case 'admin.activated':
        return turn.dispatch(key, { type: 'DESTINATION_ACTIVATED' });
      case 'admin.restored':
        return turn.dispatch(key, { type: 'SOURCE_RESTORED' });
      case 'admin.wiped':
        return turn.dispatch(key, { type: 'DESTINATION_WIPED' });
      case 'msam.ready':
        return turn.dispatch(key, { type: 'PROVIDER_READY', provider: env.body.provider });
      case 'msam.uploaded':
        return turn.dispatch(key, { type: 'ITEM_UPLOADED', item: req.item ?? -1 });
      case 'msam.downloaded':
        return turn.dispatch(key, { type: 'ITEM_DOWNLOADED', item: req.item ?? -1, receipt: env.body.receipt });
      case 'msam.cleared':
        return turn.dispatch(key, { type: 'ITEM_CLEARED', item: req.item ?? -1 });
      case 'msam.fenced':
        return turn.dispatch(key, { type: 'PROVIDER_FENCED', provider: peer.slice('migration-sam/'.length) });
      case 'error':
        if (req.type === 'msam.preflight') {
          return turn.dispatch(key, { type: 'PROVIDER_REFUSED', provider: peer.slice('migration-sam/'.length), code: env.body.code, message: env.body.message });
        }
        if ((req.type === 'msam.upload' || req.type === 'msam.download') && env.body.code === 'MIGRATION_ABORTED' && this.actorOf(key)?.getSnapshot().matches('rollingBack')) {
          // A SAM we fenced gave up the session it was running: the rollback already knows; not a failed fence.
          this.log.debug('a fenced SAM dropped its session', { mig: req.mig, request: req.type });
          return;
        }
        this.log.warn('step failed', { mig: req.mig, request: req.type, code: env.body.code, reason: env.body.message });
        return turn.dispatch(key, { type: 'STEP_FAILED', code: env.body.code, message: env.body.message, now });
      default:
        throw new ProtocolError('UNEXPECTED', `the server does not accept ${env.type} from ${peer}`);
    }
  }

  // ---- intents ----------------------------------------------------------------------------

  protected onIntent(key: string, intent: MigrationIntent | RegistrationIntent, turn: TurnContext): void {
    if (key.startsWith(REGISTRATION)) return this.registrationIntent(turn, key.slice(REGISTRATION.length), intent as RegistrationIntent);
    return this.migrationIntent(turn, key.slice(MIGRATION.length), intent as MigrationIntent);
  }

  private registrationIntent(turn: TurnContext, reg: string, intent: RegistrationIntent): void {
    const h = { mig: reg, step: 'register' as Step };
    switch (intent.type) {
      case 'reserveChannel':
        turn.send(intent.terminal, 'channel.reserve', { purpose: 'register' }, h);
        return;
      case 'releaseChannel':
        turn.send(intent.terminal, 'channel.release', { purpose: 'register' }, h);
        return;
      case 'identifyChip':
        turn.send(ADMIN_SAM_PEER, 'admin.identify', { session: intent.session, purpose: 'register' }, h);
        return;
      case 'relayToChip':
        turn.send(intent.terminal, 'frame', { session: intent.session, data: intent.data });
        return;
      case 'relayToSam':
        turn.send(intent.sam, 'frame', { session: intent.session, data: intent.data });
        return;
      case 'recordRegistration':
        turn.write(() => this.records.registry.put(intent.serial, { serial: intent.serial, user: intent.user, areas: intent.areas }));
        return;
      case 'answer':
        if (intent.refusal || !intent.serial) {
          // Code and sentence as the machine kept them: two fields, never packed into one string and split here.
          turn.send(intent.terminal, 'error', intent.refusal ?? { code: 'INTERNAL', message: 'registration failed' }, { corr: intent.request });
        } else {
          turn.send(intent.terminal, 'chip.registered', { serial: intent.serial, user: intent.user }, { corr: intent.request });
        }
        return;
    }
  }

  private migrationIntent(turn: TurnContext, mig: string, intent: MigrationIntent): void {
    const now = this.clock.now();
    switch (intent.type) {
      case 'progress':
        if (intent.terminal !== '-' && this.hasLink(intent.terminal)) turn.send(intent.terminal, 'progress', { mig, step: intent.step, text: intent.text });
        return;
      case 'reserveChannel':
        turn.send(intent.terminal, 'channel.reserve', { purpose: intent.chip, mig }, { mig, step: intent.chip === 'source' ? 'S1' : 'S9' });
        return;
      case 'releaseChannel':
        turn.send(intent.terminal, 'channel.release', { purpose: intent.chip, mig }, { mig, step: intent.chip === 'source' ? 'S8' : 'S17' });
        return;
      case 'identifyChip':
        turn.send(ADMIN_SAM_PEER, 'admin.identify', { session: intent.session, purpose: intent.chip }, { mig, step: intent.chip === 'source' ? 'S1' : 'S9' });
        return;
      case 'askProvider': {
        const refusal = this.hasLink(intent.recipient) ? undefined : this.linkRefusal(intent.recipient);
        if (refusal) {
          // A migration SAM that refused our channel (it does not trust us) will not answer: the preflight fails now, with its reason.
          turn.raise(MIGRATION + mig, {
            type: 'PROVIDER_REFUSED',
            provider: intent.provider,
            code: refusal.code,
            message: `its migration SAM refused our channel: ${refusal.message}`,
          });
          return;
        }
        // No channel right now (the SAM is restarting, the network is down): the request waits in the
        // outbox and goes when the channel is back; the preflight deadline bounds the wait.
        turn.send(intent.recipient, 'msam.preflight', { rights: [...MIGRATION_RIGHTS] }, { mig, step: 'preflight' });
        return;
      }
      case 'lockSource':
        turn.send(ADMIN_SAM_PEER, 'admin.lock', { session: intent.session, serial: intent.serial, items: intent.items, expiresAt: now + GRANT_TTL_MS }, { mig, step: 'S3' });
        return;
      case 'requestUpload':
        turn.send(intent.recipient, 'msam.upload', { session: intent.session, grant: intent.grant }, { mig, step: 'S7', item: intent.item });
        return;
      case 'relayToChip':
        turn.send(intent.terminal, 'frame', { session: intent.session, data: intent.data });
        return;
      case 'relayToSam':
        turn.send(intent.sam, 'frame', { session: intent.session, data: intent.data });
        return;
      case 'formatDestination':
        turn.send(
          ADMIN_SAM_PEER,
          'admin.format',
          { session: intent.session, serial: intent.serial, items: intent.items, expiresAt: now + GRANT_TTL_MS, ...(intent.issuance ? { issuance: true as const } : {}) },
          { mig, step: 'S10' },
        );
        return;
      case 'requestDownload':
        turn.send(intent.recipient, 'msam.download', { session: intent.session, grant: intent.grant, ...(intent.order ? { order: intent.order } : {}) }, { mig, step: 'S14', item: intent.item });
        return;
      case 'commit':
        turn.send(ADMIN_SAM_PEER, 'admin.commit', { receipts: intent.receipts }, { mig, step: 'commit' });
        return;
      case 'abort':
        turn.send(ADMIN_SAM_PEER, 'admin.abort', { reason: intent.reason, ...(intent.source ? { source: intent.source } : {}) }, { mig, step: 'rollback' });
        return;
      case 'activateDestination':
        turn.send(ADMIN_SAM_PEER, 'admin.activate', { session: intent.session, serial: intent.serial }, { mig, step: 'S16' });
        return;
      case 'clearItem':
        turn.send(intent.recipient, 'msam.clear', {}, { mig, step: 'S17', item: intent.item });
        return;
      case 'fenceProvider':
        turn.send(intent.recipient, 'msam.fence', {}, { mig, step: 'rollback' });
        return;
      case 'restoreSource':
        turn.send(ADMIN_SAM_PEER, 'admin.restore', { session: intent.session, serial: intent.serial }, { mig, step: 'rollback' });
        return;
      case 'wipeDestination':
        turn.send(ADMIN_SAM_PEER, 'admin.wipe', { session: intent.session, serial: intent.serial, role: 'destination' }, { mig, step: 'rollback' });
        return;
      case 'answerTerminal': {
        const ctx = this.migration(mig)!;
        if (intent.terminal === '-' || intent.request === '-') return;
        turn.send(
          intent.terminal,
          'migrate.result',
          {
            mig,
            phase: intent.chip,
            outcome: intent.outcome,
            ...(intent.reason ? { reason: intent.reason } : {}),
            items: ctx.items.map((i) => ({ item: i.item, area: i.area, provider: i.provider })),
          },
          { corr: intent.request, mig },
        );
        return;
      }
      case 'answerCancel':
        if (intent.terminal !== '-' && intent.request !== '-') turn.send(intent.terminal, 'migrate.cancelled', { mig, decision: intent.decision }, { corr: intent.request, mig });
        return;
      case 'recordOutcome':
        return;
    }
  }

  /** Keeps the migration index in step with every migration this turn moved. */
  protected override onCommitting(touched: string[], turn: TurnContext): void {
    for (const key of touched) {
      if (!key.startsWith(MIGRATION)) continue;
      const snap = this.actorOf(key)!.getSnapshot();
      const ctx = snap.context as MigrationContext;
      const rec = {
        mig: ctx.mig,
        user: ctx.user,
        state: JSON.stringify(snap.value),
        source: ctx.source.serial,
        destination: ctx.destination.serial,
        outcome: ctx.outcome,
        reason: ctx.reason,
      };
      turn.write(() => this.records.migrations.put(ctx.mig, rec));
    }
  }
}
