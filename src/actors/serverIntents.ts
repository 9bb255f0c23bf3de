/**
 * What the server sends for its machines (migration.machine.ts,
 * registration.machine.ts): each intent they emit becomes a request to the
 * admin SAM, a provider's migration SAM or a terminal, or an answer to a
 * terminal; and what the admin SAM's answers become for the machine that
 * asked. The admin requests' types and steps, and the events their answers
 * become, are the admin operation table's (src/protocol/adminOps.ts).
 */
import type { MigrationContext, MigrationEvent, MigrationIntent } from '../machines/migration.machine.ts';
import { itemOutcomes } from '../machines/selection.ts';
import type { RegistrationIntent } from '../machines/registration.machine.ts';
import { ADMIN_OPS, adminStepOf, type AdminOp, type AdminOpEntry, type AdminPurpose, type AdminReplyType } from '../protocol/adminOps.ts';
import type { ServerRecords } from '../store/server.store.ts';
import type { Envelope } from '../transport/envelope.ts';
import { PROGRESS_LINES_MAX, type BodyOf } from '../transport/messages.ts';
import type { MachineEvent, TurnContext } from './runtime.ts';
import { phoneReceiptKey, type ServerReceipts } from './serverReceipts.ts';

export const ADMIN_SAM_PEER = 'admin-sam';
/** Rights the server asks each provider to have granted it (seed ¶0053, ¶0057). */
export const MIGRATION_RIGHTS = ['upload', 'download', 'clear'] as const;
/** How long a temp-key grant is valid once issued. */
export const GRANT_TTL_MS = 60 * 60 * 1000;

/** The keys of the server's actors: a migration's, a registration's. */
export const MIGRATION = 'migration:';
export const REGISTRATION = 'registration:';

/** The events the table says admin answers become are the migration machine's (and identify's, the registration machine's too). */
export const ADMIN_ANSWERS_ARE_MIGRATION_EVENTS: AdminOpEntry['answers'] extends MigrationEvent['type'] ? true : never = true;

/** What the intents read of the server. */
export interface ServerView {
  readonly records: ServerRecords;
  now(): number;
  hasLink(peer: string): boolean;
  /** Why the channel to `peer` was refused, if its handshake failed. */
  linkRefusal(peer: string): { code: string; message: string } | undefined;
  migration(mig: string): MigrationContext | undefined;
  /** A migration completed: its locked source becomes a backup, ended later (serverBackups.ts). */
  migrationCompleted?(turn: TurnContext, ctx: MigrationContext): void;
  /** The user's receipts: sealed statements and signed outcomes (serverReceipts.ts). */
  readonly receipts: ServerReceipts;
  /** The device key (Ed25519, base64url) bound to a terminal's name. */
  deviceKeyOf(name: string): string | undefined;
}

type MigrationIntentOf<T extends MigrationIntent['type']> = Extract<MigrationIntent, { type: T }>;
type ToAdminSam = MigrationIntentOf<
  'identifyChip' | 'lockSource' | 'formatDestination' | 'activateDestination' | 'restoreSource' | 'wipeDestination' | 'commit' | 'abort'
>;
type ToMigrationSam = MigrationIntentOf<'askProvider' | 'requestUpload' | 'requestDownload' | 'clearItem' | 'fenceProvider'>;
type ToTerminal = Exclude<MigrationIntent, ToAdminSam | ToMigrationSam>;

const ADMIN_SAM_INTENTS: ReadonlySet<string> = new Set<ToAdminSam['type']>([
  'identifyChip',
  'lockSource',
  'formatDestination',
  'activateDestination',
  'restoreSource',
  'wipeDestination',
  'commit',
  'abort',
]);
const MIGRATION_SAM_INTENTS: ReadonlySet<string> = new Set<ToMigrationSam['type']>([
  'askProvider',
  'requestUpload',
  'requestDownload',
  'clearItem',
  'fenceProvider',
]);

/** Sends an admin operation's request, its type and step as the table declares them (an identify's step follows its purpose). */
function askAdminSam<O extends AdminOp>(turn: TurnContext, mig: string, op: O, body: BodyOf<(typeof ADMIN_OPS)[O]['request']>, purpose?: AdminPurpose): void {
  turn.send(ADMIN_SAM_PEER, ADMIN_OPS[op].request, body, { mig, step: adminStepOf(op, purpose) });
}

/** The event an admin session's answer becomes for the migration (or registration) that asked. */
export function adminAnswerEvent(
  op: AdminOpEntry,
  env: Envelope<AdminReplyType>,
  req: { type: string; body: unknown },
  forRegistration: boolean,
  view: ServerView,
): MachineEvent {
  const now = view.now();
  if (op.chipCommand === 'list') {
    const { serial, areas } = env.body as BodyOf<'admin.identified'>;
    const owner = view.records.registry.get(serial)?.user ?? null;
    const purpose = req.type === 'admin.identify' ? (req.body as BodyOf<'admin.identify'>).purpose : 'source';
    const chip = purpose === 'destination' ? 'destination' : 'source';
    if (forRegistration) return { type: op.answers, serial, areas, owner, now };
    return { type: op.answers, chip, serial, areas, owner, now };
  }
  return op.grants === null ? { type: op.answers } : { type: op.answers, grants: (env.body as BodyOf<'admin.locked' | 'admin.formatted'>).grants };
}

export function registrationIntent(turn: TurnContext, reg: string, intent: RegistrationIntent, view: ServerView): void {
  const h = { mig: reg, step: 'register' as const };
  switch (intent.type) {
    case 'reserveChannel':
      turn.send(intent.terminal, 'channel.reserve', { purpose: 'register' }, h);
      return;
    case 'releaseChannel':
      turn.send(intent.terminal, 'channel.release', { purpose: 'register' }, h);
      return;
    case 'identifyChip':
      askAdminSam(turn, reg, 'identify', { session: intent.session, purpose: 'register' }, 'register');
      return;
    case 'relayToChip':
      turn.send(intent.terminal, 'frame', { session: intent.session, data: intent.data });
      return;
    case 'relayToSam':
      turn.send(intent.sam, 'frame', { session: intent.session, data: intent.data });
      return;
    case 'recordRegistration':
      turn.write(() => view.records.registry.put(intent.serial, { serial: intent.serial, user: intent.user, areas: intent.areas }));
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

export function migrationIntent(turn: TurnContext, mig: string, intent: MigrationIntent, view: ServerView): void {
  if (ADMIN_SAM_INTENTS.has(intent.type)) return toAdminSam(turn, mig, intent as ToAdminSam, view);
  if (MIGRATION_SAM_INTENTS.has(intent.type)) return toMigrationSam(turn, mig, intent as ToMigrationSam, view);
  return toTerminal(turn, mig, intent as ToTerminal, view);
}

function toAdminSam(turn: TurnContext, mig: string, intent: ToAdminSam, view: ServerView): void {
  switch (intent.type) {
    case 'identifyChip':
      return askAdminSam(turn, mig, 'identify', { session: intent.session, purpose: intent.chip }, intent.chip);
    case 'lockSource':
      return askAdminSam(turn, mig, 'lock', { session: intent.session, serial: intent.serial, items: intent.items, expiresAt: view.now() + GRANT_TTL_MS });
    case 'formatDestination':
      return askAdminSam(turn, mig, 'format', {
        session: intent.session,
        serial: intent.serial,
        items: intent.items,
        expiresAt: view.now() + GRANT_TTL_MS,
        ...(intent.issuance ? { issuance: true as const } : {}),
      });
    case 'activateDestination':
      return askAdminSam(turn, mig, 'activate', { session: intent.session, serial: intent.serial });
    case 'restoreSource':
      return askAdminSam(turn, mig, 'restore', { session: intent.session, serial: intent.serial });
    case 'wipeDestination':
      return askAdminSam(turn, mig, 'wipe', { session: intent.session, serial: intent.serial, role: 'destination' });
    case 'commit':
      turn.send(ADMIN_SAM_PEER, 'admin.commit', { receipts: intent.receipts, statements: view.receipts.digests(turn, mig) }, { mig, step: 'commit' });
      return;
    case 'abort':
      turn.send(
        ADMIN_SAM_PEER,
        'admin.abort',
        { reason: intent.reason, ...(intent.source ? { source: intent.source } : {}), statements: view.receipts.digests(turn, mig) },
        { mig, step: 'rollback' },
      );
      return;
  }
}

function toMigrationSam(turn: TurnContext, mig: string, intent: ToMigrationSam, view: ServerView): void {
  switch (intent.type) {
    case 'askProvider': {
      const refusal = view.hasLink(intent.recipient) ? undefined : view.linkRefusal(intent.recipient);
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
      // The source's serial lets a provider refuse a chip reported lost (migrationSamRecovery.ts) before anything is locked.
      const source = view.migration(mig)?.source.serial;
      turn.send(intent.recipient, 'msam.preflight', { rights: [...MIGRATION_RIGHTS], ...(source ? { source } : {}) }, { mig, step: 'preflight' });
      return;
    }
    case 'requestUpload': {
      const receiptTo = phoneReceiptKey(view.deviceKeyOf, view.migration(mig)?.source.terminal ?? null);
      const body = { session: intent.session, grant: intent.grant, ...(receiptTo ? { receiptTo } : {}) };
      turn.send(intent.recipient, 'msam.upload', body, { mig, step: 'S7', item: intent.item });
      return;
    }
    case 'requestDownload': {
      const receiptTo = phoneReceiptKey(view.deviceKeyOf, view.migration(mig)?.destination.terminal ?? null);
      turn.send(
        intent.recipient,
        'msam.download',
        { session: intent.session, grant: intent.grant, ...(intent.order ? { order: intent.order } : {}), ...(receiptTo ? { receiptTo } : {}) },
        { mig, step: 'S14', item: intent.item },
      );
      return;
    }
    case 'clearItem':
      turn.send(intent.recipient, 'msam.clear', {}, { mig, step: 'S17', item: intent.item });
      return;
    case 'fenceProvider':
      turn.send(intent.recipient, 'msam.fence', {}, { mig, step: 'rollback' });
      return;
  }
}

/**
 * What a turn already sends each terminal that its progress lines can travel
 * with (issue 19, progress coalesced): a frame (the line rides on it), or a
 * progress notice (the line joins it). The envelopes are the turn's own, not
 * yet on the wire: they are sent after the turn's commit.
 */
const carriers = new WeakMap<TurnContext, Map<string, Envelope<'frame'> | Envelope<'progress'>>>();

function carriersOf(turn: TurnContext): Map<string, Envelope<'frame'> | Envelope<'progress'>> {
  let m = carriers.get(turn);
  if (!m) carriers.set(turn, (m = new Map()));
  return m;
}

/** A progress line for a terminal: on a frame or a progress notice this turn sends it already, or as a notice of its own. */
function sendProgress(turn: TurnContext, terminal: string, line: { mig: string; step: string; text: string }): void {
  const carrier = carriersOf(turn).get(terminal);
  if (carrier?.type === 'frame' && (carrier.body.progress?.length ?? 0) < PROGRESS_LINES_MAX) {
    carrier.body.progress = [...(carrier.body.progress ?? []), line];
    return;
  }
  if (carrier?.type === 'progress' && carrier.body.mig === line.mig && (carrier.body.more?.length ?? 0) < PROGRESS_LINES_MAX) {
    carrier.body.more = [...(carrier.body.more ?? []), { step: line.step, text: line.text }];
    return;
  }
  carriersOf(turn).set(terminal, turn.send(terminal, 'progress', line));
}

function toTerminal(turn: TurnContext, mig: string, intent: ToTerminal, view: ServerView): void {
  switch (intent.type) {
    case 'progress':
      if (intent.terminal !== '-' && view.hasLink(intent.terminal)) sendProgress(turn, intent.terminal, { mig, step: intent.step, text: intent.text });
      return;
    case 'reserveChannel':
      turn.send(intent.terminal, 'channel.reserve', { purpose: intent.chip, mig }, { mig, step: intent.chip === 'source' ? 'S1' : 'S9' });
      return;
    case 'releaseChannel':
      turn.send(intent.terminal, 'channel.release', { purpose: intent.chip, mig }, { mig, step: intent.chip === 'source' ? 'S8' : 'S17' });
      return;
    case 'relayToChip':
      carriersOf(turn).set(intent.terminal, turn.send(intent.terminal, 'frame', { session: intent.session, data: intent.data }));
      return;
    case 'relayToSam':
      turn.send(intent.sam, 'frame', { session: intent.session, data: intent.data });
      return;
    case 'answerTerminal': {
      const ctx = view.migration(mig)!;
      if (intent.terminal === '-' || intent.request === '-') return;
      const items = ctx.items.map((i) => ({ item: i.item, area: i.area, provider: i.provider }));
      const ended = intent.outcome === 'completed' || intent.outcome === 'rolledBack';
      const receipt = ended ? view.receipts.forPhone(turn, mig, phoneReceiptKey(view.deviceKeyOf, intent.terminal)) : undefined;
      const outcomes = itemOutcomes(ctx, intent.outcome);
      turn.send(
        intent.terminal,
        'migrate.result',
        {
          mig,
          phase: intent.chip,
          outcome: intent.outcome,
          ...(intent.reason ? { reason: intent.reason } : {}),
          items,
          outcomes,
          ...(receipt ? { receipt } : {}),
        },
        { corr: intent.request, mig },
      );
      return;
    }
    case 'answerCancel':
      if (intent.terminal !== '-' && intent.request !== '-')
        turn.send(intent.terminal, 'migrate.cancelled', { mig, decision: intent.decision }, { corr: intent.request, mig });
      return;
    case 'recordOutcome':
      if (intent.outcome === 'completed') view.migrationCompleted?.(turn, view.migration(mig)!);
      return;
  }
}
