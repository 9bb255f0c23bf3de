/**
 * What `valmove status` says about a migration: its phase, where each item
 * is, and what the migration is waiting for. Read from the server's own
 * records (the migration actor's persisted snapshot), never from logs.
 */
import type { BackupContext } from '../machines/backup.machine.ts';
import type { MigrationContext } from '../machines/migration.machine.ts';
import { FINAL_STATES, stepOfState } from '../protocol/steps.ts';
import type { PartyStore } from '../store/party.store.ts';
import { itemOutcomes, type ItemOutcome } from '../machines/selection.ts';

export interface MigrationStatus {
  mig: string;
  user: string;
  phase: string;
  state: string;
  outcome: string | null;
  /** A migration from a source chip, or an issuance (the providers' issue orders; no source). */
  kind: 'migration' | 'issuance';
  source: string | null;
  destination: string | null;
  decision: string | null;
  reason: string | null;
  /**
   * Every item of the source: the ones the migration moves (numbered), then the ones it does not (item null:
   * not chosen, or left behind at the preflight), each with its outcome (selection.ts) and where it is.
   */
  items: Array<{ item: number | null; area: string; provider: string; outcome: ItemOutcome; reason?: string; state: string }>;
  /** The protocol step of the migration's state (src/protocol/steps.ts), null once it is over. */
  step: { id: string; title: string } | null;
  waitingFor: string;
  /** A completed migration's backup (the locked source): kept until a time, waiting for the source phone, or wiped. */
  backup?: BackupStatus;
}

export interface BackupStatus {
  state: 'kept' | 'waitingForSource' | 'wiping' | 'wiped';
  /** When the retention period ends (ISO time). */
  until: string;
  wipedAt: string | null;
  endedBy: 'user' | 'retention' | null;
  /** One line for people: "kept until …", "waiting for the source phone …", "wiped at …". */
  text: string;
}

/** "a.b.c" from an XState state value. */
export function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const [k, v] = Object.entries(value as Record<string, unknown>)[0] ?? [];
    return k === undefined ? '' : `${k}.${statePath(v)}`.replace(/\.$/, '');
  }
  return '';
}

function itemState(path: string, ctx: MigrationContext, index: number): string {
  const item = ctx.items[index]!;
  const cleared = ctx.answered.includes(String(item.item));
  if (ctx.issuance) {
    // An issuance has no source: the item comes from its provider's issue order.
    if (path === 'completed') return 'active on the chip (issued)';
    if (path === 'rolledBack') return 'not issued: the issuance rolled back, its order is void';
    if (path.startsWith('rollingBack'))
      return ctx.sourceRestored ? 'not issued; its migration SAM cleared what it held' : 'not issued; its migration SAM (fenced) clears what it holds';
    if (path.startsWith('destinationPhase.downloading') && index >= ctx.cursor)
      return index === ctx.cursor ? 'being downloaded from its issue order' : 'its issue order not yet used';
    if (path === 'awaitingDestination' || (path.startsWith('destinationPhase.') && !path.startsWith('destinationPhase.downloading')))
      return 'its issue order not yet used';
  }
  if (path === 'refused' || path.startsWith('sourcePhase.r') || path.startsWith('sourcePhase.identify') || path.startsWith('sourcePhase.preflight')) {
    return 'on the source, untouched';
  }
  if (path.startsWith('sourcePhase.lock')) return 'being locked on the source (main key -> temp key)';
  if (path.startsWith('sourcePhase.uploading') || path === 'sourcePhase.releasingChannel') {
    if (index < ctx.cursor || path === 'sourcePhase.releasingChannel') return 'uploaded: held by its migration SAM, source locked';
    return index === ctx.cursor ? 'uploading to its migration SAM' : 'locked on the source, not yet uploaded';
  }
  if (
    path === 'awaitingDestination' ||
    path.startsWith('destinationPhase.reserving') ||
    path.startsWith('destinationPhase.identify') ||
    path.startsWith('destinationPhase.rejecting')
  ) {
    return 'held by its migration SAM; the source is the locked backup';
  }
  if (path.startsWith('destinationPhase.format')) return 'held by its migration SAM; destination being formatted';
  if (path.startsWith('destinationPhase.downloading')) {
    if (index < ctx.cursor) return 'downloaded to the destination (receipt kept), not active';
    return index === ctx.cursor ? 'downloading to the destination' : 'held by its migration SAM';
  }
  if (path.startsWith('commit') || path.startsWith('abort')) return 'downloaded, waiting for the decision';
  if (path.startsWith('activat')) return 'committed; destination being activated';
  if (path.startsWith('clear') || path === 'releasingDestination')
    return cleared ? 'active on the destination' : 'active on the destination; its migration SAM clears its copy';
  if (path === 'completed') return 'active on the destination; the source is a locked backup';
  if (path.startsWith('rollingBack'))
    return ctx.sourceRestored
      ? cleared
        ? 'back on the source'
        : 'back on the source; its migration SAM clears its copy'
      : 'locked on the source and held by its migration SAM (fenced)';
  if (path === 'rolledBack') return 'back on the source';
  return path;
}

/** The migration's items with their outcomes, and the source's items it does not move, which stay spendable there. */
function itemsOf(state: string, ctx: MigrationContext): MigrationStatus['items'] {
  const stands = ctx.outcome ?? (state === 'awaitingDestination' ? 'uploaded' : null);
  const outcomes = itemOutcomes({ ...ctx, skipped: ctx.skipped ?? [] }, stands);
  return outcomes.map((o, index) => {
    const moving = index < ctx.items.length;
    const where = moving ? itemState(state, ctx, index) : `${o.outcome === 'leftBehind' ? 'left behind' : 'not chosen'}: untouched, spendable on the source`;
    return { item: moving ? ctx.items[index]!.item : null, ...o, state: where };
  });
}

function stepSummary(state: string): MigrationStatus['step'] {
  const step = stepOfState(state)?.step;
  return step ? { id: step.id, title: step.title } : null;
}

/** What a migration in `state` waits for: the protocol table's sentence for that state, with the current item's names. */
function waitingFor(state: string, ctx: MigrationContext): string {
  if ((FINAL_STATES as readonly string[]).includes(state)) return 'nothing: the migration is over';
  const waiting = stepOfState(state)?.waiting;
  if (waiting === undefined) return state;
  const at = (ms: number) => new Date(ms).toISOString();
  if (typeof waiting !== 'string') return `a retry${ctx.timer ? ` at ${at(ctx.timer.atMs)}` : ''} after: ${ctx.reason ?? 'a failed step'}`;
  return waiting
    .replace('{provider}', ctx.items[ctx.cursor]?.provider ?? '?')
    .replace('{item}', String(ctx.cursor + 1))
    .replace('{deadline}', ctx.timer ? ` (deadline ${at(ctx.timer.atMs)})` : '');
}

export function describeMigration(value: unknown, ctx: MigrationContext): MigrationStatus {
  const state = statePath(value);
  return {
    mig: ctx.mig,
    user: ctx.user,
    phase: state.split('.')[0] ?? state,
    state,
    outcome: ctx.outcome,
    kind: ctx.issuance ? 'issuance' : 'migration',
    source: ctx.source.serial,
    destination: ctx.destination.serial ?? ctx.destination.named,
    decision: ctx.decision,
    reason: ctx.reason,
    items: itemsOf(state, ctx),
    step: stepSummary(state),
    waitingFor: waitingFor(state, ctx),
  };
}

/** Every migration a server's store holds, described (works on a live server's store: LMDB readers do not block it). */
export function readMigrations(store: PartyStore): MigrationStatus[] {
  const out: MigrationStatus[] = [];
  const backups = new Map<string, BackupStatus>();
  for (const { value } of store.snapshots.getRange()) {
    if (value.machine === 'backup') {
      const snap = value.snapshot as { value: unknown; context: BackupContext };
      backups.set(snap.context.mig, describeBackup(snap.value, snap.context));
    }
    if (value.machine !== 'migration') continue;
    const snap = value.snapshot as { value: unknown; context: MigrationContext };
    out.push(describeMigration(snap.value, snap.context));
  }
  return out.map((m) => (backups.has(m.mig) ? { ...m, backup: backups.get(m.mig)! } : m));
}

/** Where a committed migration's backup is, for `valmove status` (backup.machine.ts). */
export function describeBackup(value: unknown, ctx: BackupContext): BackupStatus {
  const at = (ms: number) => new Date(ms).toISOString();
  const until = at(ctx.retainUntil);
  const ended = ctx.endedBy === 'user' ? 'the user confirmed' : 'the retention ended';
  const wipedAt = ctx.wipedAt === null ? null : at(ctx.wipedAt);
  if (value === 'kept') return { state: 'kept', until, wipedAt, endedBy: null, text: `kept (locked on ${ctx.serial}) until ${until}` };
  if (value === 'wiped') return { state: 'wiped', until, wipedAt, endedBy: ctx.endedBy, text: `wiped at ${wipedAt} (${ended})` };
  const inner = (value as { ending?: string }).ending;
  if (inner === 'awaitingSource' || inner === 'checking') {
    return { state: 'waitingForSource', until, wipedAt, endedBy: ctx.endedBy, text: `${ended}: waiting for the source phone (${ctx.terminal}) to connect` };
  }
  const retry = ctx.reason && inner?.endsWith('Retry') ? `; retrying after: ${ctx.reason}` : '';
  return { state: 'wiping', until, wipedAt, endedBy: ctx.endedBy, text: `${ended}: wiping on ${ctx.serial} through ${ctx.terminal}${retry}` };
}
