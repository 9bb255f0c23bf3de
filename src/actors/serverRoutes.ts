/**
 * The server's inbound routing (server.actor.ts): what each message from a
 * terminal, the admin SAM or a migration SAM becomes: a login step, a desk
 * action (serverMigrations.ts), or an event for the migration or
 * registration it belongs to. A message that belongs to nothing of the
 * sender's is refused with the same answer as one for nothing at all.
 */
import { toB64 } from '../crypto/index.ts';
import type { ChipRole, MigrationContext } from '../machines/migration.machine.ts';
import { adminOpOfReply } from '../protocol/adminOps.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { AnyEnvelope, Envelope } from '../transport/envelope.ts';
import type { Logger } from '../log.ts';
import type { TurnContext } from './runtime.ts';
import { ADMIN_SAM_PEER, adminAnswerEvent, MIGRATION, REGISTRATION, type ServerView } from './serverIntents.ts';
import type { LoginDesk } from './serverLogins.ts';
import type { MigrationDesk } from './serverMigrations.ts';
import { BACKUP, BACKUP_SESSION, isBackupRequest, type BackupDesk } from './serverBackups.ts';
import type { RecoveryDesk } from './serverRecovery.ts';

/** What the routes read of the server. */
export interface RouteHost {
  loginDesk: LoginDesk;
  desk: MigrationDesk;
  backups: BackupDesk;
  recovery: RecoveryDesk;
  view: ServerView;
  log: Logger;
  rng: { bytes(n: number): Uint8Array };
  now(): number;
  actorOf(key: string): { getSnapshot(): { context: unknown; matches(state: string): boolean; can(event: { type: string }): boolean } } | undefined;
}

export class ServerRoutes {
  constructor(private readonly host: RouteHost) {}

  route(env: AnyEnvelope, peer: string, turn: TurnContext): void {
    if (peer.startsWith('terminal/')) return this.fromTerminal(turn, env, peer);
    if (peer === ADMIN_SAM_PEER) return this.fromSam(turn, env, peer);
    if (peer.startsWith('migration-sam/')) return this.fromSam(turn, env, peer);
    throw new ProtocolError('BAD_SENDER', `the server does not talk to ${peer}`);
  }

  private fromTerminal(turn: TurnContext, env: AnyEnvelope, peer: string): void {
    const now = this.host.now();
    switch (env.type) {
      case 'login.begin':
        return this.host.loginDesk.begin(turn, env, now);
      case 'login.proof':
        return this.host.loginDesk.proof(turn, env, peer, now);
      case 'chip.register': {
        const user = this.host.loginDesk.requireUser(peer);
        const reg = `reg-${toB64(this.host.rng.bytes(6))}`;
        turn.spawn(REGISTRATION + reg, 'registration', { reg, user, terminal: peer, request: env.id });
        return;
      }
      case 'migrate.out':
        return this.host.desk.migrateOut(turn, env, peer);
      case 'migrate.in':
        return this.host.desk.migrateIn(turn, env, peer);
      case 'migrate.cancel':
        return this.host.desk.cancel(turn, env, peer);
      case 'backup.end':
        return this.host.backups.end(turn, env, peer);
      case 'recover.report':
        return this.host.recovery.report(turn, env, peer);
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

  /**
   * The migration or registration a session belongs to. A frame from a
   * terminal must come from one of its terminals; any other connection is
   * told what it would be told of a session that does not exist (no oracle
   * for other users' migrations or their states).
   */
  private actorForSession(session: string, terminal?: string): string {
    const owner = session.split(':')[0] ?? '';
    const key = owner.startsWith('reg-')
      ? REGISTRATION + owner
      : owner.startsWith(BACKUP_SESSION)
        ? BACKUP + owner.slice(BACKUP_SESSION.length)
        : MIGRATION + owner;
    const actor = this.host.actorOf(key);
    const ctx = actor?.getSnapshot().context as (Partial<MigrationContext> & { terminal?: string }) | undefined;
    const ours =
      terminal === undefined ||
      (ctx !== undefined && (ctx.terminal === terminal || ctx.source?.terminal === terminal || ctx.destination?.terminal === terminal));
    if (!actor || !ours) throw new ProtocolError('NOT_FOUND', `no migration or registration owns session ${session.slice(0, 64)}`);
    return key;
  }

  private actorForRequest(req: AnyEnvelope): string {
    const owner = req.mig ?? '';
    if (isBackupRequest(req)) return BACKUP + owner;
    return owner.startsWith('reg-') ? REGISTRATION + owner : MIGRATION + owner;
  }

  /** A chip identified: if it was reported lost, its revoked areas are wiped through the phone it came back in. */
  private lostChip(turn: TurnContext, env: Envelope<'admin.identified'>, req: AnyEnvelope, key: string): void {
    const ctx = this.host.actorOf(key)?.getSnapshot().context as (Partial<MigrationContext> & { terminal?: string }) | undefined;
    const chip = (req.body as { purpose?: string }).purpose === 'destination' ? ctx?.destination : ctx?.source;
    this.host.backups.lostChipIdentified(turn, env.body.serial, chip?.terminal ?? ctx?.terminal ?? undefined);
  }

  private channelAnswer(turn: TurnContext, env: AnyEnvelope, peer: string): void {
    const req = turn.requestOf(env.corr);
    if (!req || (req.type !== 'channel.reserve' && req.type !== 'channel.release') || req.to !== peer) {
      throw new ProtocolError('UNEXPECTED', `${env.type} answers no channel request of ours`);
    }
    const key = this.actorForRequest(req);
    const role: ChipRole = req.body.purpose === 'destination' ? 'destination' : 'source';
    const now = this.host.now();
    if (env.type === 'error') {
      // The terminal is busy (a reader session): the machine retries or gives up, as its state says.
      this.host.log.info('terminal refused the channel', { peer, code: env.body.code });
      turn.dispatch(key, { type: 'STEP_FAILED', code: env.body.code, message: env.body.message, now });
      return;
    }
    if (env.type === 'channel.reserved') turn.dispatch(key, { type: 'CHANNEL_RESERVED', chip: role });
    else turn.dispatch(key, { type: 'CHANNEL_RELEASED', chip: role, now });
  }

  /**
   * Whether the migration takes this answer now: the receipt's parts are kept only then, so an
   * answer it refuses (a late decision, a repeat) still changes no state.
   */
  private accepts(key: string, event: { type: string }): boolean {
    return this.host.actorOf(key)?.getSnapshot().can(event) === true;
  }

  private fromSam(turn: TurnContext, env: AnyEnvelope, peer: string): void {
    if (env.type === 'frame') {
      const key = this.actorForSession(env.body.session);
      turn.dispatch(key, { type: 'SAM_FRAME', from: peer, session: env.body.session, data: env.body.data });
      return;
    }
    const req = turn.requestOf(env.corr);
    if (!req || req.to !== peer) throw new ProtocolError('UNEXPECTED', `${env.type} answers no request of ours`);
    if (req.type === 'msam.recover') return this.host.recovery.answered(turn, env, req, peer);
    const key = this.actorForRequest(req);
    // An admin session's answer: the event the operation table says it becomes.
    const op = adminOpOfReply(env.type);
    if (op && key.startsWith(BACKUP)) return turn.dispatch(key, { type: 'SOURCE_WIPED', now: this.host.now() });
    if (op?.chipCommand === 'list') this.lostChip(turn, env as Envelope<'admin.identified'>, req, key);
    if (op) return turn.dispatch(key, adminAnswerEvent(op, env as Envelope<typeof op.reply>, req, key.startsWith(REGISTRATION), this.host.view));
    const now = this.host.now();
    switch (env.type) {
      case 'admin.decision': {
        const event = { type: 'DECIDED', decision: env.body.decision, reason: env.body.reason } as const;
        if (this.accepts(key, event)) this.host.view.receipts.keepOutcome(turn, req.mig ?? '', env.body.outcome);
        return turn.dispatch(key, event);
      }
      case 'msam.ready':
        return turn.dispatch(key, { type: 'PROVIDER_READY', provider: env.body.provider });
      case 'msam.uploaded':
      case 'msam.downloaded': {
        const event =
          env.type === 'msam.uploaded'
            ? ({ type: 'ITEM_UPLOADED', item: req.item ?? -1 } as const)
            : ({ type: 'ITEM_DOWNLOADED', item: req.item ?? -1, receipt: env.body.receipt } as const);
        if (this.accepts(key, event)) this.host.view.receipts.keepStatement(turn, req.mig ?? '', req.item ?? -1, env.body.statement);
        return turn.dispatch(key, event);
      }
      case 'msam.cleared':
        return turn.dispatch(key, { type: 'ITEM_CLEARED', item: req.item ?? -1 });
      case 'msam.fenced':
        return turn.dispatch(key, { type: 'PROVIDER_FENCED', provider: peer.slice('migration-sam/'.length) });
      case 'error':
        if (req.type === 'msam.preflight') {
          return turn.dispatch(key, {
            type: 'PROVIDER_REFUSED',
            provider: peer.slice('migration-sam/'.length),
            code: env.body.code,
            message: env.body.message,
          });
        }
        if (
          (req.type === 'msam.upload' || req.type === 'msam.download') &&
          env.body.code === 'MIGRATION_ABORTED' &&
          this.host.actorOf(key)?.getSnapshot().matches('rollingBack')
        ) {
          // A SAM we fenced gave up the session it was running: the rollback already knows; not a failed fence.
          this.host.log.debug('a fenced SAM dropped its session', { mig: req.mig, request: req.type });
          return;
        }
        this.host.log.warn('step failed', { mig: req.mig, request: req.type, code: env.body.code, reason: env.body.message });
        return turn.dispatch(key, { type: 'STEP_FAILED', code: env.body.code, message: env.body.message, now });
      default:
        throw new ProtocolError('UNEXPECTED', `the server does not accept ${env.type} from ${peer}`);
    }
  }
}
