/**
 * What `valmove status` says about a migration: its phase, where each item
 * is, and what the migration is waiting for. Read from the server's own
 * records (the migration actor's persisted snapshot), never from logs.
 */
import type { MigrationContext } from '../machines/migration.machine.ts';
import type { PartyStore } from '../store/party.store.ts';

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
  items: Array<{ item: number; area: string; provider: string; state: string }>;
  waitingFor: string;
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
    if (path.startsWith('rollingBack')) return ctx.sourceRestored ? 'not issued; its migration SAM cleared what it held' : 'not issued; its migration SAM (fenced) clears what it holds';
    if (path.startsWith('destinationPhase.downloading') && index >= ctx.cursor) return index === ctx.cursor ? 'being downloaded from its issue order' : 'its issue order not yet used';
    if (path === 'awaitingDestination' || (path.startsWith('destinationPhase.') && !path.startsWith('destinationPhase.downloading'))) return 'its issue order not yet used';
  }
  if (path === 'refused' || path.startsWith('sourcePhase.r') || path.startsWith('sourcePhase.identify') || path.startsWith('sourcePhase.preflight')) {
    return 'on the source, untouched';
  }
  if (path.startsWith('sourcePhase.lock')) return 'being locked on the source (main key -> temp key)';
  if (path.startsWith('sourcePhase.uploading') || path === 'sourcePhase.releasingChannel') {
    if (index < ctx.cursor || path === 'sourcePhase.releasingChannel') return 'uploaded: held by its migration SAM, source locked';
    return index === ctx.cursor ? 'uploading to its migration SAM' : 'locked on the source, not yet uploaded';
  }
  if (path === 'awaitingDestination' || path.startsWith('destinationPhase.reserving') || path.startsWith('destinationPhase.identify') || path.startsWith('destinationPhase.rejecting')) {
    return 'held by its migration SAM; the source is the locked backup';
  }
  if (path.startsWith('destinationPhase.format')) return 'held by its migration SAM; destination being formatted';
  if (path.startsWith('destinationPhase.downloading')) {
    if (index < ctx.cursor) return 'downloaded to the destination (receipt kept), not active';
    return index === ctx.cursor ? 'downloading to the destination' : 'held by its migration SAM';
  }
  if (path.startsWith('commit') || path.startsWith('abort')) return 'downloaded, waiting for the decision';
  if (path.startsWith('activat')) return 'committed; destination being activated';
  if (path.startsWith('clear') || path === 'releasingDestination') return cleared ? 'active on the destination' : 'active on the destination; its migration SAM clears its copy';
  if (path === 'completed') return 'active on the destination; the source is a locked backup';
  if (path.startsWith('rollingBack')) return ctx.sourceRestored ? (cleared ? 'back on the source' : 'back on the source; its migration SAM clears its copy') : 'locked on the source and held by its migration SAM (fenced)';
  if (path === 'rolledBack') return 'back on the source';
  return path;
}

const WAITING: Array<[RegExp, (c: MigrationContext) => string]> = [
  [/reservingChannel|\.reserving$/, () => 'the terminal to reserve its chip-control channel'],
  [/identifying$/, () => 'the chip to prove its serial to the admin SAM'],
  [/preflight/, () => 'every provider\'s answer to the preflight'],
  [/lockingSource$/, () => 'the admin SAM to lock the source'],
  [/uploading\.transferring/, (c) => `the migration SAM of ${c.items[c.cursor]?.provider ?? '?'} to upload item ${c.cursor + 1}`],
  [/releasingChannel$|releasing$|releasingDestination$/, () => 'the terminal to release its chip-control channel'],
  [/^awaitingDestination$/, (c) => `the destination chip${c.timer ? ` (deadline ${new Date(c.timer.atMs).toISOString()})` : ''}`],
  [/formatting$/, () => 'the admin SAM to format the destination'],
  [/downloading\.transferring/, (c) => `the migration SAM of ${c.items[c.cursor]?.provider ?? '?'} to download item ${c.cursor + 1}`],
  [/^committing$/, () => 'the admin SAM\'s decision (commit)'],
  [/^aborting$/, () => 'the admin SAM\'s decision (abort)'],
  [/^activating$/, () => 'the admin SAM to activate the destination'],
  [/^clearing$/, () => 'the migration SAMs to clear their copies'],
  [/Retry$|backingOff$|reserveRetry$/, (c) => `a retry${c.timer ? ` at ${new Date(c.timer.atMs).toISOString()}` : ''} after: ${c.reason ?? 'a failed step'}`],
  [/fencing$/, () => 'every migration SAM to confirm it is fenced'],
  [/awaitingSource$/, () => 'the source chip to come back (its main keys are restored then)'],
  [/awaitingDestinationWipe$/, () => 'the destination chip to come back (its unused areas are wiped then)'],
  [/restoring$/, () => 'the admin SAM to restore the source\'s main keys'],
  [/clearingStores$/, () => 'the migration SAMs to clear their copies'],
  [/wiping$/, () => 'the admin SAM to wipe the destination'],
];

export function describeMigration(value: unknown, ctx: MigrationContext): MigrationStatus {
  const state = statePath(value);
  const final = ['completed', 'refused', 'rolledBack'].includes(state);
  const waiting = final ? 'nothing: the migration is over' : (WAITING.find(([re]) => re.test(state))?.[1](ctx) ?? state);
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
    items: ctx.items.map((i, index) => ({ item: i.item, area: i.area, provider: i.provider, state: itemState(state, ctx, index) })),
    waitingFor: waiting,
  };
}

/** Every migration a server's store holds, described (works on a live server's store: LMDB readers do not block it). */
export function readMigrations(store: PartyStore): MigrationStatus[] {
  const out: MigrationStatus[] = [];
  for (const { value } of store.snapshots.getRange()) {
    if (value.machine !== 'migration') continue;
    const snap = value.snapshot as { value: unknown; context: MigrationContext };
    out.push(describeMigration(snap.value, snap.context));
  }
  return out;
}
