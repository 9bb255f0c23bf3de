/**
 * The end of the backup at the server (issue 22, point 3; protocol.md §3,
 * "After the commit"): a backup actor (backup.machine.ts) is spawned when a
 * migration from a source chip completes; it is ended by the user
 * (`backup.end`, from either of the user's logged-in phones) or by its
 * retention period; its wipe is an admin session with the source chip,
 * relayed through the source phone. Here: the spawn, what its intents send,
 * what the user's request and the terminals' comings and goings become.
 */
import type { Actor, AnyStateMachine } from 'xstate';
import type { BackupContext, BackupEvent, BackupIntent } from '../machines/backup.machine.ts';
import type { MigrationContext, MigrationItem } from '../machines/migration.machine.ts';
import { adminStepOf } from '../protocol/adminOps.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { ITEMS_PER_MIGRATION_MAX, type BodyOf } from '../transport/messages.ts';
import type { TurnContext } from './runtime.ts';
import { ADMIN_SAM_PEER } from './serverIntents.ts';

/** The keys of the server's backup actors: one per committed migration with a source. */
export const BACKUP = 'backup:';
/**
 * A found-again lost chip's wipe runs as a backup's end, named `lost-<serial>`: the same channel on its
 * phone, the same relayed admin session, but `admin.wipe-lost`, under its providers' revocations.
 */
export const LOST_WIPE = 'lost-';
/** The n-th wipe of a found-again lost chip (n from 1): `lost-<serial>`, then `lost-<serial>.<n>`. */
export function lostWipeMig(serial: string, n: number): string {
  return n === 1 ? LOST_WIPE + serial : `${LOST_WIPE}${serial}.${n}`;
}

/** The wipes of a found-again lost chip so far, in order (each round's backup actor). */
export function lostWipeRounds(serial: string, actorOf: (key: string) => Actor<AnyStateMachine> | undefined): Array<Actor<AnyStateMachine>> {
  const out: Array<Actor<AnyStateMachine>> = [];
  for (let n = 1; n <= ITEMS_PER_MIGRATION_MAX; n++) {
    const a = actorOf(BACKUP + lostWipeMig(serial, n));
    if (!a) break;
    out.push(a);
  }
  return out;
}

/** A backup's admin sessions are named `bk-<mig>:<n>`: the server routes their frames by this prefix. */
export const BACKUP_SESSION = 'bk-';

export interface BackupDeskView {
  now(): number;
  hasLink(peer: string): boolean;
  /** How long a committed migration's backup is kept before it is wiped (ServerOptions.backupRetentionMs). */
  retentionMs: number;
  timing: { retryBaseMs: number; retryCapMs: number };
  requireUser(peer: string): string;
  actorOf(key: string): Actor<AnyStateMachine> | undefined;
  /** The backups still running (not yet wiped). */
  liveBackupKeys(): string[];
  runLocal(fn: (turn: TurnContext) => void): Promise<void>;
  /** The terminal that started the migration from its source chip (the server's migration index). */
  sourceTerminalOf(mig: string): string | undefined;
  /** A lost chip's revoked areas and their providers' revocations, if the chip was reported lost (serverRecovery.ts). */
  lostWipeOf(serial: string): { user: string; items: MigrationItem[]; revocations: string[] } | undefined;
}

/** Where a backup is, as `backup.state` and `valmove status` say it. */
export function backupStateOf(value: unknown): BodyOf<'backup.state'>['state'] {
  if (value === 'kept') return 'kept';
  if (value === 'wiped') return 'wiped';
  const inner = typeof value === 'object' && value !== null ? (value as { ending?: string }).ending : undefined;
  return inner === 'awaitingSource' || inner === 'checking' ? 'waitingForSource' : 'wiping';
}

export class BackupDesk {
  constructor(private readonly view: BackupDeskView) {}

  /** A migration completed: its source, locked under the temp keys, is now a backup that waits for its end. */
  spawn(turn: TurnContext, ctx: MigrationContext): void {
    if (ctx.source.serial === null || ctx.issuance !== null) return; // an issuance has no source: no backup
    if (this.view.actorOf(BACKUP + ctx.mig)) return;
    // The source phone left at S8 (the migration forgot it); the server's index of the migration kept its name.
    const terminal = ctx.source.terminal ?? this.view.sourceTerminalOf(ctx.mig) ?? '-';
    turn.spawn(BACKUP + ctx.mig, 'backup', {
      mig: ctx.mig,
      user: ctx.user,
      terminal,
      serial: ctx.source.serial,
      areas: ctx.items.map((i) => i.area),
      retainUntil: this.view.now() + this.view.retentionMs,
      online: this.view.hasLink(terminal),
      timing: this.view.timing,
    });
  }

  /**
   * A chip identified in an admin session (a registration, a migration's S1 or S9) through `terminal`: if it
   * was reported lost and its areas revoked, its phone's channel is taken and its revoked areas are wiped,
   * now. Once: a chip whose wipe was asked already is not asked again.
   */
  lostChipIdentified(turn: TurnContext, serial: string, terminal: string | undefined): void {
    const lost = this.view.lostWipeOf(serial);
    if (!lost || lost.items.length === 0 || terminal === undefined) return;
    // One wipe at a time per lost chip; another only once the last has ended and a provider revoked areas after it
    // began (it was away at the first report): at most one round per provider.
    const rounds = lostWipeRounds(serial, (k) => this.view.actorOf(k));
    const areas = lost.items.map((i) => i.area);
    const last = rounds.at(-1)?.getSnapshot();
    if (last && (last.value !== 'wiped' || areas.every((a) => (last.context as BackupContext).areas.includes(a)))) return;
    const mig = lostWipeMig(serial, rounds.length + 1);
    const timing = this.view.timing;
    turn.spawn(BACKUP + mig, 'backup', { mig, user: lost.user, terminal, serial, areas, retainUntil: this.view.now(), online: true, timing });
    turn.dispatch(BACKUP + mig, { type: 'END_REQUESTED' });
  }

  /**
   * backup.end: the user confirms the move; the wipe starts now (or when the
   * source phone connects). Refused for a migration that is not the user's,
   * or not committed (there is no backup yet, or none at all); a backup that
   * is ending or wiped answers where it is.
   */
  end(turn: TurnContext, env: Extract<AnyEnvelope, { type: 'backup.end' }>, peer: string): void {
    const user = this.view.requireUser(peer);
    const mig = env.body.mig;
    const actor = this.view.actorOf(BACKUP + mig);
    const ctx = actor?.getSnapshot().context as BackupContext | undefined;
    if (!actor || !ctx || ctx.user !== user) {
      throw new ProtocolError(
        'NO_MIGRATION',
        `${user} has no committed migration ${mig}: a backup exists only once a migration has completed ` +
          '(its source is locked until then, and a cancel restores it)',
      );
    }
    if (actor.getSnapshot().can({ type: 'END_REQUESTED' })) turn.dispatch(BACKUP + mig, { type: 'END_REQUESTED' });
    const snap = actor.getSnapshot();
    const now = snap.context as BackupContext;
    turn.reply(env, 'backup.state', {
      mig,
      state: backupStateOf(snap.value),
      until: now.retainUntil,
      ...(now.wipedAt !== null ? { wipedAt: now.wipedAt } : {}),
    });
  }

  /** Tells the backups whose source phone this is that its connection came or went. */
  tell(event: Extract<BackupEvent, { type: 'TERMINAL_BACK' | 'TERMINAL_LOST' }>): void {
    const concerned = this.view.liveBackupKeys().filter((k) => {
      const ctx = this.view.actorOf(k)?.getSnapshot().context as BackupContext | undefined;
      return ctx?.terminal === event.terminal;
    });
    if (concerned.length === 0) return;
    void this.view
      .runLocal((turn) => {
        for (const k of concerned) turn.tryDispatch(k, event);
      })
      .catch(() => {});
  }

  /** What the server sends for a backup's intents. */
  intent(turn: TurnContext, mig: string, intent: BackupIntent): void {
    switch (intent.type) {
      case 'reserveChannel':
        turn.send(intent.terminal, 'channel.reserve', { purpose: 'backup', mig }, { mig, step: adminStepOf('wipe') });
        return;
      case 'releaseChannel':
        turn.send(intent.terminal, 'channel.release', { purpose: 'backup', mig }, { mig, step: adminStepOf('wipe') });
        return;
      case 'wipeSource': {
        const lost = mig.startsWith(LOST_WIPE) ? this.view.lostWipeOf(intent.serial) : undefined;
        if (lost) {
          const body = { session: intent.session, serial: intent.serial, items: lost.items, revocations: lost.revocations };
          turn.send(ADMIN_SAM_PEER, 'admin.wipe-lost', body, { mig, step: adminStepOf('wipeLost') });
          return;
        }
        turn.send(ADMIN_SAM_PEER, 'admin.wipe', { session: intent.session, serial: intent.serial, role: 'source' }, { mig, step: adminStepOf('wipe') });
        return;
      }
      case 'relayToChip':
        turn.send(intent.terminal, 'frame', { session: intent.session, data: intent.data });
        return;
      case 'relayToSam':
        turn.send(ADMIN_SAM_PEER, 'frame', { session: intent.session, data: intent.data });
        return;
      case 'progress':
        if (this.view.hasLink(intent.terminal)) turn.send(intent.terminal, 'progress', { mig, step: adminStepOf('wipe'), text: intent.text });
        return;
    }
  }
}

/** Whether a request of ours was a backup's: its channel on the source phone, or its wipe of the source. */
export function isBackupRequest(req: { type: string; body: unknown }): boolean {
  if (req.type === 'channel.reserve' || req.type === 'channel.release') return (req.body as { purpose?: string }).purpose === 'backup';
  return req.type === 'admin.wipe-lost' || (req.type === 'admin.wipe' && (req.body as { role?: string }).role === 'source');
}
