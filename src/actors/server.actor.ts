/**
 * The value-move server (seed 20): users and logins, the chip registry, the
 * migration database, and the relay between chips (via their terminals) and
 * SAMs. One connection from a terminal is all a migration phase needs,
 * however many providers are involved (¶0071, ¶0079).
 *
 * It never holds a key or a plaintext value item: it stores password
 * verifiers, serials, area names and states, sealed grants and signed
 * receipts, and relays session frames it can not open.
 *
 * Its parts: the logins (serverLogins.ts), how a terminal starts, joins or
 * cancels a migration (serverMigrations.ts), what it sends for its machines'
 * intents and what the admin SAM's answers become (serverIntents.ts), what
 * each inbound message becomes (serverRoutes.ts); here,
 * the runtime that routes to them, the terminals' names, links and relays.
 */
import { SCRYPT_DEFAULTS, type TrustVerdict } from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { migrationMachine, MIGRATION_MACHINE_VERSION, type MigrationContext, type MigrationIntent } from '../machines/migration.machine.ts';
import { registrationMachine, REGISTRATION_MACHINE_VERSION, type RegistrationIntent } from '../machines/registration.machine.ts';
import { backupMachine, BACKUP_MACHINE_VERSION, BACKUP_RETENTION_MS_DEFAULT, type BackupContext, type BackupIntent } from '../machines/backup.machine.ts';
import { newUserRecord, ServerRecords } from '../store/server.store.ts';
import { TokenBucket } from '../transport/door.ts';
import type { Link } from '../transport/link.ts';
import { describeBackup, describeMigration, type MigrationStatus } from './status.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { PartyRuntime, type MachineKind, type RuntimeDeps, type TurnContext } from './runtime.ts';
import { MIGRATION, migrationIntent, REGISTRATION, registrationIntent, type ServerView } from './serverIntents.ts';
import { LoginDesk } from './serverLogins.ts';
import { MigrationDesk } from './serverMigrations.ts';
import { MigrationMeter } from './serverMeter.ts';
import { BACKUP, BackupDesk, backupStateOf, lostWipeRounds } from './serverBackups.ts';
import { issueRecoveryCode, RecoveryDesk } from './serverRecovery.ts';
import { ServerReceipts } from './serverReceipts.ts';
import { ServerRoutes } from './serverRoutes.ts';

export { ADMIN_SAM_PEER, GRANT_TTL_MS, MIGRATION_RIGHTS } from './serverIntents.ts';
export { DEVICES_PER_USER_MAX, LOCKOUT_BASE_MS, LOCKOUT_CAP_MS, LOGIN_FAILURES_FREE, LOGIN_PROOF_IDS_PER_LINK_MAX } from './serverLogins.ts';

/** A terminal's name: `terminal/<label>`. */
export const TERMINAL_NAME = /^terminal\/[A-Za-z0-9._-]{1,64}$/;

export interface ServerOptions {
  scrypt?: { N: number; r: number; p: number };
  /** Default time a migration waits for its destination before it is cancelled. */
  deadlineMs?: number;
  /** Terminals the operator enrolled (keygen writes the deployment's phones): name -> device key (Ed25519, base64url). Others bind at their first login. */
  devices?: Record<string, string>;
  /**
   * Messages per second (and at once) the server takes from terminals not logged in, all together
   * (src/transport/limits.ts, ANONYMOUS_MESSAGES_PER_S); unbounded when absent (one process, no strangers).
   */
  anonymous?: { perS: number; burst: number };
  /** How long a committed migration's backup (the locked source) is kept before it is wiped; 14 days by default (protocol.md §3). */
  backupRetentionMs?: number;
  /** The deployment's providers (their migration SAMs): a lost phone's report asks each (serverRecovery.ts). */
  providers?: readonly string[];
}

export class ServerRuntime extends PartyRuntime {
  protected readonly kinds: Record<string, MachineKind> = {
    migration: { machine: migrationMachine, version: MIGRATION_MACHINE_VERSION },
    registration: { machine: registrationMachine, version: REGISTRATION_MACHINE_VERSION },
    backup: { machine: backupMachine, version: BACKUP_MACHINE_VERSION },
  };
  readonly records: ServerRecords;
  private readonly options: ServerOptions;
  private readonly anonymous: TokenBucket | undefined;
  /** Per link, the user it logged in as, and the login.proof ids it sent lately: what the link's logins leave here, gone with it. */
  private readonly logins = new Map<string, string>();
  private readonly proofIds = new Map<string, Set<string>>();
  private readonly loginDesk: LoginDesk;
  /** migrate.out, migrate.in, migrate.cancel (serverMigrations.ts). */
  private readonly desk: MigrationDesk;
  /** What the intents' handlers read of this server (serverIntents.ts). */
  private readonly view: ServerView;
  private draining = false;
  private readonly meter: MigrationMeter;
  /** What each inbound message becomes (serverRoutes.ts). */
  private readonly routes: ServerRoutes;
  /** The backups of committed migrations, and their end (serverBackups.ts). */
  private readonly backups: BackupDesk;
  /** Lost phones' reports (serverRecovery.ts). */
  readonly recovery: RecoveryDesk;

  constructor(deps: RuntimeDeps, options: ServerOptions = {}) {
    super(deps);
    this.records = new ServerRecords(deps.store);
    this.meter = new MigrationMeter(deps.id, deps.observe, () => this.clock.now());
    this.options = options;
    this.anonymous = options.anonymous ? new TokenBucket(options.anonymous.perS, options.anonymous.burst, () => this.clock.now()) : undefined;
    this.view = {
      records: this.records,
      now: () => this.clock.now(),
      hasLink: (peer) => this.hasLink(peer),
      linkRefusal: (peer) => this.linkRefusal(peer),
      migration: (mig) => this.migration(mig),
      migrationCompleted: (turn, ctx) => this.backups.spawn(turn, ctx),
      receipts: new ServerReceipts(deps.store),
      deviceKeyOf: (name) => this.deviceKeyOf(name),
    };
    this.backups = new BackupDesk({
      now: () => this.clock.now(),
      hasLink: (peer) => this.hasLink(peer),
      retentionMs: options.backupRetentionMs ?? BACKUP_RETENTION_MS_DEFAULT,
      timing: { retryBaseMs: this.timing.retryBaseMs, retryCapMs: this.timing.retryCapMs },
      requireUser: (peer) => this.loginDesk.requireUser(peer),
      actorOf: (key) => this.actorOf(key),
      liveBackupKeys: () => this.actorKeys('backup'),
      runLocal: (fn) => this.runLocal(fn),
      sourceTerminalOf: (mig) => this.records.migrations.get(mig)?.sourceTerminal,
      lostWipeOf: (serial) => this.recovery.lostWipe(serial),
    });
    const loginView = {
      id: this.id,
      records: this.records,
      log: this.log,
      scrypt: options.scrypt,
      hasLink: (peer: string) => this.hasLink(peer),
      peerKeyOf: (peer: string) => this.peerKeyOf(peer),
      deviceKeyOf: (name: string) => this.deviceKeyOf(name),
      lockedOut: () => deps.observe?.lockedOut?.(deps.id),
    };
    this.loginDesk = new LoginDesk(loginView, { users: this.logins, proofIds: this.proofIds });
    this.desk = new MigrationDesk({
      records: this.records,
      rng: this.rng,
      timing: this.timing,
      deadlineMs: options.deadlineMs,
      requireUser: (peer) => this.loginDesk.requireUser(peer),
      actorOf: (key) => this.actorOf(key),
      liveMigrationIds: () => this.liveMigrationIds(),
      migration: (mig) => this.migration(mig),
      draining: () => this.draining,
    });
    const requireUser = (peer: string) => this.loginDesk.requireUser(peer);
    const recoveryView = { records: this.records, rng: this.rng, providers: options.providers ?? [], requireUser, hasLink: (p: string) => this.hasLink(p) };
    this.recovery = new RecoveryDesk(deps.store, { ...recoveryView, now: () => this.clock.now() });
    this.routes = new ServerRoutes({
      recovery: this.recovery,
      loginDesk: this.loginDesk,
      desk: this.desk,
      backups: this.backups,
      view: this.view,
      log: this.log,
      rng: this.rng,
      now: () => this.clock.now(),
      actorOf: (key) => this.actorOf(key),
    });
  }

  /** SIGTERM (deploy/drain.ts): new migrations are refused (DRAINING); the ones in flight go on. */
  drain(): void {
    this.draining = true;
  }

  /** Terminals not logged in share one budget: however many links a stranger opens, anonymous work stays bounded. */
  protected override admitMessage(peer: string): boolean {
    if (!this.anonymous || !peer.startsWith('terminal/') || this.loginDesk.userOf(peer)) return true;
    return this.anonymous.take();
  }

  // ---- what a stranger may send writes nothing (issue 16; serverLogins.ts) ---------------
  protected override readonly requestsAnsweredFresh: ReadonlySet<string> = new Set(['login.begin', 'login.proof']);

  override async start(): Promise<void> {
    if (!this.records.secrets.get('salt-key')) {
      const key = this.rng.bytes(32);
      await this.store.commit(() => this.records.secrets.put('salt-key', key));
    }
    await super.start();
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

  /** Where a found-again lost chip's wipe is (as a backup's end: waitingForSource, wiping, wiped), if it was asked. */
  lostWipeState(serial: string): ReturnType<typeof backupStateOf> | undefined {
    const value = lostWipeRounds(serial, (k) => this.actorOf(k))
      .at(-1)
      ?.getSnapshot().value;
    return value === undefined ? undefined : backupStateOf(value);
  }

  /** Operator: a one-time recovery code for a user's lost phone report (serverRecovery.ts); shown once, kept as a hash. */
  recoveryCode(user: string): Promise<string> {
    return issueRecoveryCode(this.store, this.records, user, this.rng, this.clock.now());
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
    return this.migrationIds().map((m) => {
      const backup = this.actorOf(BACKUP + m)?.getSnapshot();
      const status = describeMigration(this.migrationState(m), this.migration(m)!);
      return backup ? { ...status, backup: describeBackup(backup.value, backup.context as BackupContext) } : status;
    });
  }

  /** Where a committed migration's backup is (backup.machine.ts: kept, ending, wiped), if it has one. */
  backupState(mig: string): string | undefined {
    const value = this.actorOf(BACKUP + mig)?.getSnapshot().value;
    return value === undefined ? undefined : typeof value === 'string' ? value : Object.keys(value)[0];
  }

  /** Every migration this server ran or runs (the finished ones read from its store). */
  migrationIds(): string[] {
    return this.actorKeys('migration', true).map((k) => k.slice(MIGRATION.length));
  }

  /** The migrations still running: the only ones an event can move. */
  liveMigrationIds(): string[] {
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
    if (!TERMINAL_NAME.test(name))
      return { code: 'UNTRUSTED_PEER', message: 'a terminal names itself terminal/<name> (letters, digits, ".", "_", "-"; at most 64)' };
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
    this.loginDesk.forget(peer);
    if (peer.startsWith('terminal/')) this.tellMigrations({ type: 'TERMINAL_BACK', terminal: peer });
    if (peer.startsWith('terminal/')) this.backups.tell({ type: 'TERMINAL_BACK', terminal: peer });
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
    this.loginDesk.forget(peer);
    super.onLinkClosed(peer, reason);
    // Migrations that wait on this terminal in a rollback go on with whoever is still here.
    if (peer.startsWith('terminal/')) this.tellMigrations({ type: 'TERMINAL_LOST', terminal: peer });
    if (peer.startsWith('terminal/')) this.backups.tell({ type: 'TERMINAL_LOST', terminal: peer });
  }

  // ---- inbound ----------------------------------------------------------------------------

  protected onEnvelope(env: AnyEnvelope, peer: string, turn: TurnContext): void {
    this.routes.route(env, peer, turn);
  }

  // ---- intents ----------------------------------------------------------------------------

  protected onIntent(key: string, intent: MigrationIntent | RegistrationIntent | BackupIntent, turn: TurnContext): void {
    if (key.startsWith(BACKUP)) return this.backups.intent(turn, key.slice(BACKUP.length), intent as BackupIntent);
    if (key.startsWith(REGISTRATION)) return registrationIntent(turn, key.slice(REGISTRATION.length), intent as RegistrationIntent, this.view);
    return migrationIntent(turn, key.slice(MIGRATION.length), intent as MigrationIntent, this.view);
  }

  /**
   * Keeps the migration index in step with every migration whose snapshot
   * this turn writes (its state, outcome and reason come from the snapshot: a
   * turn that only relayed a frame writes neither, issue 19).
   */
  protected override onCommitting(changed: string[], turn: TurnContext): void {
    for (const key of changed) {
      if (!key.startsWith(MIGRATION)) continue;
      const snap = this.actorOf(key)!.getSnapshot();
      const ctx = snap.context as MigrationContext;
      const before = this.records.migrations.get(ctx.mig);
      const rec = {
        mig: ctx.mig,
        user: ctx.user,
        state: JSON.stringify(snap.value),
        source: ctx.source.serial,
        destination: ctx.destination.serial,
        outcome: ctx.outcome,
        reason: ctx.reason,
        startedAt: before?.startedAt ?? this.clock.now(),
        ...((ctx.source.terminal ?? before?.sourceTerminal) ? { sourceTerminal: ctx.source.terminal ?? before?.sourceTerminal } : {}),
      };
      this.meter.changed(turn, before, rec);
      turn.write(() => this.records.migrations.put(ctx.mig, rec));
    }
  }
}
