/**
 * The server's migration: seed Fig. 2–4, steps S1–S17, as one statechart
 * (protocol.md §3). One actor per migration, hosted by the server.
 *
 *   sourcePhase       S1 reserve channel + prove serial, S2 record items,
 *                     preflight, S3 lock, S4–S8 upload loop (one item per
 *                     provider's migration SAM, relayed through the server)
 *   awaitingDestination   the source is the backup; a deadline may cancel
 *   destinationPhase  S9 reserve + prove serial, S10 format, S11–S15 download loop
 *   committing        the admin SAM's decision record: pending -> committed
 *   activating        S16, only after `committed`
 *   clearing          S17, each migration SAM drops its copy
 *   rollingBack       decision `aborted`: fence SAMs, restore the source when
 *                     it connects, clear SAM stores, wipe the destination
 *
 * The server relays chip sessions it can not read: in every state where a
 * session runs, SAM_FRAME goes to the chip's terminal and CHIP_FRAME to the
 * SAM, and only for the session this state opened (the relay protocol).
 * Every request of a step is retried with backoff after a failure; before
 * S3 a failure refuses the migration, leaving the source untouched.
 */
import { assign, emit, enqueueActions, setup } from 'xstate';
import type { Grant, Receipt } from '../transport/messages.ts';
import { CHIP_AREAS_MAX, type AreaState } from './area.machine.ts';

export const MIGRATION_MACHINE_VERSION = 1;

/** Backoff for retrying a failed step: base doubles per attempt up to the cap. */
export const RETRY_BASE_MS = 200;
export const RETRY_CAP_MS = 30_000;
/** Attempts of a step before the migration is refused; applies only before the source is locked. */
export const PRE_LOCK_ATTEMPTS_MAX = 3;
/** How long the preflight waits for every provider's answer before it refuses the migration. */
export const PREFLIGHT_TIMEOUT_MS = 30_000;
/** How long a migration waits for its destination before it is cancelled. */
export const DESTINATION_DEADLINE_MS_DEFAULT = 7 * 24 * 3600 * 1000;

export type ChipRole = 'source' | 'destination';

export interface MigrationItem {
  item: number;
  area: string;
  provider: string;
  /** The provider's migration SAM (party id). */
  recipient: string;
}

export interface AreaReport {
  area: string;
  provider: string;
  state: AreaState;
}

export interface MigrationContext {
  mig: string;
  user: string;
  source: { terminal: string | null; serial: string | null; request: string | null };
  destination: { terminal: string | null; serial: string | null; request: string | null; named: string | null };
  /** A problem with the destination named up front, found by the server at S1 (preflight refuses on it). */
  destinationProblem: string | null;
  destinationAreas: string[] | null;
  /** What S1 proved about the source: its registered owner, the first area that is not mainActive, and when. */
  sourceCheck: { owner: string | null; notMainActive: string | null; at: number } | null;
  items: MigrationItem[];
  cursor: number;
  providers: string[];
  answered: string[];
  uploadGrants: Grant[];
  downloadGrants: Grant[];
  receipts: Receipt[];
  session: { id: string; sam: string; chip: ChipRole } | null;
  sessions: number;
  attempts: number;
  deadlineMs: number;
  timer: { atMs: number; event: 'DEADLINE_PASSED' | 'RETRY_DUE' } | null;
  decision: 'committed' | 'aborted' | null;
  outcome: 'completed' | 'rolledBack' | 'refused' | null;
  reason: string | null;
  /** Set when the destination was formatted: a rollback must wipe it. */
  destinationFormatted: boolean;
  /** The user's cancel request, answered with the decision that stands. */
  cancel: { terminal: string; request: string } | null;
}

export interface MigrationInput {
  mig: string;
  user: string;
  terminal: string;
  request: string;
  destination?: string;
  destinationProblem?: string;
  /** Areas the named destination held when it was registered (its "room"). */
  destinationAreas?: string[];
  deadlineMs?: number;
}

export type MigrationEvent =
  | { type: 'CHANNEL_RESERVED'; chip: ChipRole }
  | { type: 'CHANNEL_RELEASED'; chip: ChipRole; now: number }
  | { type: 'CHIP_IDENTIFIED'; chip: ChipRole; serial: string; areas: AreaReport[]; owner: string | null; now: number }
  | { type: 'PROVIDER_READY'; provider: string }
  | { type: 'PROVIDER_REFUSED'; provider: string; code: string; message: string }
  | { type: 'SOURCE_LOCKED'; grants: Grant[] }
  | { type: 'ITEM_UPLOADED'; item: number }
  | { type: 'SAM_FRAME'; from: string; session: string; data: string }
  | { type: 'CHIP_FRAME'; from: string; session: string; data: string }
  | { type: 'STEP_FAILED'; code: string; message: string; now: number }
  | { type: 'RETRY_DUE' }
  | { type: 'DESTINATION_ARRIVED'; terminal: string; request: string }
  | { type: 'DESTINATION_FORMATTED'; grants: Grant[] }
  | { type: 'ITEM_DOWNLOADED'; item: number; receipt: Receipt }
  | { type: 'DECIDED'; decision: 'committed' | 'aborted'; reason?: string }
  | { type: 'DESTINATION_ACTIVATED' }
  | { type: 'ITEM_CLEARED'; item: number }
  | { type: 'CANCEL_REQUESTED'; reason: string; terminal?: string; request?: string }
  | { type: 'DEADLINE_PASSED' }
  | { type: 'PROVIDER_FENCED'; provider: string }
  | { type: 'SOURCE_ARRIVED'; terminal: string; request: string }
  | { type: 'SOURCE_RESTORED' }
  | { type: 'DESTINATION_WIPED' };

export type MigrationIntent =
  | { type: 'progress'; terminal: string; step: string; text: string }
  | { type: 'reserveChannel'; terminal: string; chip: ChipRole }
  | { type: 'releaseChannel'; terminal: string; chip: ChipRole }
  | { type: 'identifyChip'; chip: ChipRole; session: string }
  | { type: 'askProvider'; provider: string; recipient: string }
  | { type: 'lockSource'; session: string; serial: string; items: MigrationItem[] }
  | { type: 'requestUpload'; item: number; recipient: string; session: string; grant: Grant }
  | { type: 'relayToChip'; terminal: string; session: string; data: string }
  | { type: 'relayToSam'; sam: string; session: string; data: string }
  | { type: 'formatDestination'; session: string; serial: string; items: MigrationItem[] }
  | { type: 'requestDownload'; item: number; recipient: string; session: string; grant: Grant }
  | { type: 'commit'; receipts: Receipt[] }
  | { type: 'abort'; reason: string }
  | { type: 'activateDestination'; session: string; serial: string }
  | { type: 'clearItem'; item: number; recipient: string }
  | { type: 'fenceProvider'; provider: string; recipient: string }
  | { type: 'restoreSource'; session: string; serial: string }
  | { type: 'wipeDestination'; session: string; serial: string }
  | { type: 'answerTerminal'; chip: ChipRole; terminal: string; request: string; outcome: 'uploaded' | 'completed' | 'refused' | 'rolledBack'; reason?: string }
  | { type: 'recordOutcome'; outcome: 'completed' | 'rolledBack' | 'refused' }
  | { type: 'answerCancel'; terminal: string; request: string; decision: 'committed' | 'aborted' };

type E<T extends MigrationEvent['type']> = Extract<MigrationEvent, { type: T }>;

const terminalOf = (c: MigrationContext, chip: ChipRole): string =>
  (chip === 'source' ? c.source.terminal : c.destination.terminal) ?? '-';

const activeChip = (c: MigrationContext): ChipRole => c.session?.chip ?? (c.destination.terminal ? 'destination' : 'source');

const newSession = (c: MigrationContext, sam: string, chip: ChipRole, step: string) => ({
  id: `${c.mig}:${step}:${c.sessions + 1}`,
  sam,
  chip,
});

export const migrationMachine = setup({
  types: {
    context: {} as MigrationContext,
    events: {} as MigrationEvent,
    emitted: {} as MigrationIntent,
    input: {} as MigrationInput,
  },
  guards: {
    forSource: ({ event }) => 'chip' in event && event.chip === 'source',
    forDestination: ({ event }) => 'chip' in event && event.chip === 'destination',
    sourceNotOwned: ({ context }) => context.sourceCheck?.owner !== context.user,
    sourceEmpty: ({ context }) => context.items.length === 0,
    sourceAreaNotMainActive: ({ context }) => context.sourceCheck?.notMainActive != null,
    destinationNamedBadly: ({ context }) => context.destinationProblem !== null,
    destinationLacksRoom: ({ context }) => {
      const held = context.destinationAreas;
      if (held === null) return false;
      return context.items.some((i) => held.includes(i.area)) || held.length + context.items.length > CHIP_AREAS_MAX;
    },
    lastProviderAnswered: ({ context, event }) => {
      const e = event as E<'PROVIDER_READY'>;
      const answered = new Set([...context.answered, e.provider]);
      return context.providers.every((p) => answered.has(p));
    },
    samFrameOfSession: ({ context, event }) => {
      const e = event as E<'SAM_FRAME'>;
      return context.session !== null && e.session === context.session.id && e.from === context.session.sam;
    },
    chipFrameOfSession: ({ context, event }) => {
      const e = event as E<'CHIP_FRAME'>;
      return context.session !== null && e.session === context.session.id && e.from === terminalOf(context, context.session.chip);
    },
    allUploaded: ({ context }) => context.cursor >= context.items.length,
    allDownloaded: ({ context }) => context.cursor >= context.items.length,
    isCurrentItem: ({ context, event }) => 'item' in event && context.items[context.cursor]?.item === event.item,
    destinationAcceptable: ({ context, event }) => {
      const e = event as E<'CHIP_IDENTIFIED'>;
      if (e.chip !== 'destination' || e.owner !== context.user) return false;
      if (e.serial === context.source.serial) return false;
      if (context.destination.named !== null && e.serial !== context.destination.named) return false;
      if (context.destination.serial !== null) return e.serial === context.destination.serial;
      const taken = new Set(e.areas.filter((a) => a.state !== 'absent').map((a) => a.area));
      return context.items.every((i) => !taken.has(i.area));
    },
    committed: ({ event }) => (event as E<'DECIDED'>).decision === 'committed',
    lastItemCleared: ({ context, event }) => {
      const e = event as E<'ITEM_CLEARED'>;
      return context.answered.length + 1 >= context.items.length && !context.answered.includes(String(e.item));
    },
    newItemCleared: ({ context, event }) => !context.answered.includes(String((event as E<'ITEM_CLEARED'>).item)),
    lastProviderFenced: ({ context, event }) => {
      const e = event as E<'PROVIDER_FENCED'>;
      const answered = new Set([...context.answered, e.provider]);
      return context.providers.every((p) => answered.has(p));
    },
    preLockAttemptsLeft: ({ context }) => context.attempts + 1 < PRE_LOCK_ATTEMPTS_MAX,
    destinationWasFormatted: ({ context }) => context.destinationFormatted,
  },
  actions: {
    progress: emit(({ context }, params: { step: string; text: string }) => ({
      type: 'progress' as const,
      terminal: terminalOf(context, activeChip(context)),
      step: params.step,
      text: params.text,
    })),
    progressCount: emit(({ context }, params: { step: string; text: string }) => ({
      type: 'progress' as const,
      terminal: terminalOf(context, activeChip(context)),
      step: params.step,
      text: `${context.items.length} ${params.text}`,
    })),
    /** A progress line about the current item: "item k/n (<area> from <provider>): <text>". */
    progressItem: emit(({ context }, params: { step: string; text: string }) => {
      const item = context.items[context.cursor];
      return {
        type: 'progress' as const,
        terminal: terminalOf(context, activeChip(context)),
        step: params.step,
        text: `item ${context.cursor + 1}/${context.items.length} (${item?.area ?? '?'} from ${item?.provider ?? '?'}): ${params.text}`,
      };
    }),
    reserveChannel: emit(({ context }, params: { chip: ChipRole }) => ({
      type: 'reserveChannel' as const,
      terminal: terminalOf(context, params.chip),
      chip: params.chip,
    })),
    releaseChannel: emit(({ context }, params: { chip: ChipRole }) => ({
      type: 'releaseChannel' as const,
      terminal: terminalOf(context, params.chip),
      chip: params.chip,
    })),
    openAdminSession: assign(({ context }, params: { chip: ChipRole; step: string }) => ({
      session: newSession(context, 'admin-sam', params.chip, params.step),
      sessions: context.sessions + 1,
    })),
    openItemSession: assign(({ context }, params: { chip: ChipRole; step: string }) => ({
      session: newSession(context, context.items[context.cursor]!.recipient, params.chip, params.step),
      sessions: context.sessions + 1,
    })),
    closeSession: assign({ session: null }),
    identifyChip: emit(({ context }) => ({
      type: 'identifyChip' as const,
      chip: context.session!.chip,
      session: context.session!.id,
    })),
    bindSource: assign({
      source: ({ context, event }) => ({ ...context.source, serial: (event as E<'CHIP_IDENTIFIED'>).serial }),
      sourceCheck: ({ event }) => {
        const e = event as E<'CHIP_IDENTIFIED'>;
        const bad = e.areas.find((a) => a.state !== 'mainActive');
        return { owner: e.owner, notMainActive: bad ? `${bad.area} is ${bad.state}` : null, at: e.now };
      },
    }),
    recordItems: assign({
      items: ({ event }) =>
        (event as E<'CHIP_IDENTIFIED'>).areas.map((a, i) => ({
          item: i,
          area: a.area,
          provider: a.provider,
          recipient: `migration-sam/${a.provider}`,
        })),
      providers: ({ event }) => [...new Set((event as E<'CHIP_IDENTIFIED'>).areas.map((a) => a.provider))],
    }),
    refuseForOwner: assign({
      reason: ({ context }) =>
        context.sourceCheck?.owner == null
          ? `NOT_REGISTERED: chip ${context.source.serial} is not registered`
          : `NOT_OWNER: chip ${context.source.serial} is not registered to ${context.user}`,
    }),
    refuseForEmpty: assign({ reason: 'PREFLIGHT_FAILED: the source chip holds no value items' }),
    refuseForAreas: assign({
      reason: ({ context }) => `PREFLIGHT_FAILED: area ${context.sourceCheck?.notMainActive}, every area must be mainActive`,
    }),
    refuseForDestination: assign({ reason: ({ context }) => `PREFLIGHT_FAILED: ${context.destinationProblem}` }),
    refuseForRoom: assign({
      reason: ({ context }) => `PREFLIGHT_FAILED: destination ${context.destination.named} has no room for these ${context.items.length} items`,
    }),
    refuseForProvider: assign({
      reason: ({ event }) => {
        const e = event as E<'PROVIDER_REFUSED'>;
        return `${e.code}: provider ${e.provider} refused the preflight: ${e.message}`;
      },
    }),
    armPreflightDeadline: assign({
      timer: ({ context }) => ({ atMs: (context.sourceCheck?.at ?? 0) + PREFLIGHT_TIMEOUT_MS, event: 'DEADLINE_PASSED' as const }),
    }),
    refuseForSilence: assign({
      reason: ({ context }) => {
        const silent = context.providers.filter((p) => !context.answered.includes(p));
        return `PREFLIGHT_FAILED: provider(s) ${silent.join(', ')} did not answer within ${PREFLIGHT_TIMEOUT_MS} ms`;
      },
    }),
    refuseForFailure: assign({ reason: ({ event }) => `${(event as E<'STEP_FAILED'>).code}: ${(event as E<'STEP_FAILED'>).message}` }),
    askProviders: enqueueActions(({ context, enqueue }) => {
      for (const provider of context.providers) {
        enqueue.emit({ type: 'askProvider', provider, recipient: `migration-sam/${provider}` });
      }
    }),
    resetAnswers: assign({ answered: [] }),
    noteProviderAnswered: assign({
      answered: ({ context, event }) => [...context.answered, (event as E<'PROVIDER_READY'> | E<'PROVIDER_FENCED'>).provider],
    }),
    lockSource: emit(({ context }) => ({
      type: 'lockSource' as const,
      session: context.session!.id,
      serial: context.source.serial!,
      items: context.items,
    })),
    keepUploadGrants: assign({ uploadGrants: ({ event }) => (event as E<'SOURCE_LOCKED'>).grants }),
    resetCursor: assign({ cursor: 0 }),
    advanceCursor: assign({ cursor: ({ context }) => context.cursor + 1, attempts: 0 }),
    requestUpload: emit(({ context }) => {
      const item = context.items[context.cursor]!;
      return {
        type: 'requestUpload' as const,
        item: item.item,
        recipient: item.recipient,
        session: context.session!.id,
        grant: context.uploadGrants.find((g) => g.item === item.item)!,
      };
    }),
    relayToChip: emit(({ context, event }) => {
      const e = event as E<'SAM_FRAME'>;
      return { type: 'relayToChip' as const, terminal: terminalOf(context, context.session!.chip), session: e.session, data: e.data };
    }),
    relayToSam: emit(({ context, event }) => {
      const e = event as E<'CHIP_FRAME'>;
      return { type: 'relayToSam' as const, sam: context.session!.sam, session: e.session, data: e.data };
    }),
    answerSource: emit(({ context }, params: { outcome: 'uploaded' | 'refused' | 'rolledBack' }) => ({
      type: 'answerTerminal' as const,
      chip: 'source' as const,
      terminal: context.source.terminal ?? '-',
      request: context.source.request ?? '-',
      outcome: params.outcome,
      reason: context.reason ?? undefined,
    })),
    answerDestination: emit(({ context }, params: { outcome: 'completed' | 'refused' | 'rolledBack' }) => ({
      type: 'answerTerminal' as const,
      chip: 'destination' as const,
      terminal: context.destination.terminal ?? '-',
      request: context.destination.request ?? '-',
      outcome: params.outcome,
      reason: context.reason ?? undefined,
    })),
    armDeadline: assign({
      timer: ({ context, event }) => ({ atMs: (event as E<'CHANNEL_RELEASED'>).now + context.deadlineMs, event: 'DEADLINE_PASSED' as const }),
    }),
    disarmTimer: assign({ timer: null }),
    detachSource: assign({ source: ({ context }) => ({ ...context.source, terminal: null, request: null }) }),
    attachDestination: assign({
      destination: ({ context, event }) => {
        const e = event as E<'DESTINATION_ARRIVED'>;
        return { ...context.destination, terminal: e.terminal, request: e.request };
      },
      reason: null,
    }),
    detachDestination: assign({ destination: ({ context }) => ({ ...context.destination, terminal: null, request: null }) }),
    refuseDestinationChip: assign({
      reason: ({ context, event }) => {
        const e = event as E<'CHIP_IDENTIFIED'>;
        if (e.owner === null) return `NOT_REGISTERED: chip ${e.serial} is not registered`;
        if (e.owner !== context.user) return `NOT_OWNER: chip ${e.serial} is not registered to ${context.user}`;
        if (e.serial === context.source.serial) return 'WRONG_DESTINATION: the destination is the source chip';
        if (context.destination.serial !== null || context.destination.named !== null)
          return `WRONG_DESTINATION: this migration's destination is ${context.destination.serial ?? context.destination.named}`;
        return 'WRONG_DESTINATION: the destination chip already holds an area this migration needs';
      },
    }),
    bindDestination: assign({
      destination: ({ context, event }) => ({ ...context.destination, serial: (event as E<'CHIP_IDENTIFIED'>).serial }),
    }),
    formatDestination: emit(({ context }) => ({
      type: 'formatDestination' as const,
      session: context.session!.id,
      serial: context.destination.serial!,
      items: context.items,
    })),
    keepDownloadGrants: assign({
      downloadGrants: ({ event }) => (event as E<'DESTINATION_FORMATTED'>).grants,
      destinationFormatted: true,
    }),
    markFormatting: assign({ destinationFormatted: true }),
    requestDownload: emit(({ context }) => {
      const item = context.items[context.cursor]!;
      return {
        type: 'requestDownload' as const,
        item: item.item,
        recipient: item.recipient,
        session: context.session!.id,
        grant: context.downloadGrants.find((g) => g.item === item.item)!,
      };
    }),
    keepReceipt: assign({
      receipts: ({ context, event }) => {
        const e = event as E<'ITEM_DOWNLOADED'>;
        return [...context.receipts.filter((r) => r.item !== e.item), e.receipt];
      },
    }),
    commit: emit(({ context }) => ({ type: 'commit' as const, receipts: context.receipts })),
    recordDecision: assign({ decision: ({ event }) => (event as E<'DECIDED'>).decision }),
    activateDestination: emit(({ context }) => ({
      type: 'activateDestination' as const,
      session: context.session!.id,
      serial: context.destination.serial!,
    })),
    clearAll: enqueueActions(({ context, enqueue }) => {
      for (const i of context.items) {
        if (!context.answered.includes(String(i.item))) enqueue.emit({ type: 'clearItem', item: i.item, recipient: i.recipient });
      }
    }),
    noteItemCleared: assign({ answered: ({ context, event }) => [...context.answered, String((event as E<'ITEM_CLEARED'>).item)] }),
    setOutcome: enqueueActions(({ enqueue }, params: { outcome: 'completed' | 'rolledBack' | 'refused' }) => {
      enqueue.assign({ outcome: params.outcome, timer: null });
      enqueue.emit({ type: 'recordOutcome', outcome: params.outcome });
    }),
    noteCancel: assign({
      reason: ({ event }) => (event.type === 'DEADLINE_PASSED' ? 'the destination deadline passed' : (event as E<'CANCEL_REQUESTED'>).reason),
      cancel: ({ event }) => {
        const e = event as E<'CANCEL_REQUESTED'>;
        return e.type === 'CANCEL_REQUESTED' && e.terminal && e.request ? { terminal: e.terminal, request: e.request } : null;
      },
    }),
    answerCancel: enqueueActions(({ context, event, enqueue }) => {
      if (!context.cancel) return;
      enqueue.emit({ type: 'answerCancel', ...context.cancel, decision: (event as E<'DECIDED'>).decision });
      enqueue.assign({ cancel: null });
    }),
    abort: emit(({ context }) => ({ type: 'abort' as const, reason: context.reason ?? 'cancelled' })),
    fenceAll: enqueueActions(({ context, enqueue }) => {
      for (const provider of context.providers) {
        if (!context.answered.includes(provider)) enqueue.emit({ type: 'fenceProvider', provider, recipient: `migration-sam/${provider}` });
      }
    }),
    attachSource: assign({
      source: ({ context, event }) => {
        const e = event as E<'SOURCE_ARRIVED'>;
        return { ...context.source, terminal: e.terminal, request: e.request };
      },
    }),
    restoreSource: emit(({ context }) => ({ type: 'restoreSource' as const, session: context.session!.id, serial: context.source.serial! })),
    wipeDestination: emit(({ context }) => ({ type: 'wipeDestination' as const, session: context.session!.id, serial: context.destination.serial! })),
    countAttempt: assign({ attempts: ({ context }) => context.attempts + 1 }),
    resetAttempts: assign({ attempts: 0 }),
    armRetry: assign({
      timer: ({ context, event }) => ({
        atMs: (event as E<'STEP_FAILED'>).now + Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(context.attempts, 16)),
        event: 'RETRY_DUE' as const,
      }),
    }),
  },
}).createMachine({
  id: 'migration',
  context: ({ input }) => ({
    mig: input.mig,
    user: input.user,
    source: { terminal: input.terminal, serial: null, request: input.request },
    destination: { terminal: null, serial: null, request: null, named: input.destination ?? null },
    destinationProblem: input.destinationProblem ?? null,
    destinationAreas: input.destinationAreas ?? null,
    sourceCheck: null,
    items: [],
    cursor: 0,
    providers: [],
    answered: [],
    uploadGrants: [],
    downloadGrants: [],
    receipts: [],
    session: null,
    sessions: 0,
    attempts: 0,
    deadlineMs: input.deadlineMs ?? DESTINATION_DEADLINE_MS_DEFAULT,
    timer: null,
    decision: null,
    outcome: null,
    reason: null,
    destinationFormatted: false,
    cancel: null,
  }),
  initial: 'sourcePhase',
  states: {
    sourcePhase: {
      initial: 'reservingChannel',
      states: {
        reservingChannel: {
          description: 'S1: the user is logged in; ask the source terminal to reserve its chip-control channel (¶0084).',
          entry: [{ type: 'progress', params: { step: 'S1', text: 'user authenticated; reserving the chip-control channel' } }, { type: 'reserveChannel', params: { chip: 'source' } }],
          on: { CHANNEL_RESERVED: { guard: 'forSource', target: 'identifying' } },
        },
        identifying: {
          description: 'S1: the admin SAM opens an admin session (K_chip) through us: the chip proves its serial, and lists its areas.',
          entry: [
            { type: 'progress', params: { step: 'S1', text: 'channel reserved; the chip proves its serial to the admin SAM (K_chip)' } },
            { type: 'openAdminSession', params: { chip: 'source', step: 'S1' } },
            'identifyChip',
          ],
          exit: 'closeSession',
          on: {
            SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
            CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
            CHIP_IDENTIFIED: { guard: 'forSource', target: 'recordingItems', actions: ['bindSource', 'recordItems'] },
            STEP_FAILED: [
              { guard: 'preLockAttemptsLeft', target: 'identifying', reenter: true, actions: 'countAttempt' },
              { target: 'refusing', actions: 'refuseForFailure' },
            ],
          },
        },
        recordingItems: {
          description: 'S2: every value item found on the chip is recorded in the migration database.',
          entry: { type: 'progressCount', params: { step: 'S2', text: 'value items found on the chip and recorded in the migration database' } },
          always: 'preflight',
        },
        preflight: {
          description: 'Before anything changes: areas all mainActive, a named destination fits, every provider answers and trusts us.',
          initial: 'checkingChip',
          states: {
            checkingChip: {
              always: [
                { guard: 'sourceNotOwned', target: '#migration.sourcePhase.refusing', actions: 'refuseForOwner' },
                { guard: 'sourceEmpty', target: '#migration.sourcePhase.refusing', actions: 'refuseForEmpty' },
                { guard: 'sourceAreaNotMainActive', target: '#migration.sourcePhase.refusing', actions: 'refuseForAreas' },
                { guard: 'destinationNamedBadly', target: '#migration.sourcePhase.refusing', actions: 'refuseForDestination' },
                { guard: 'destinationLacksRoom', target: '#migration.sourcePhase.refusing', actions: 'refuseForRoom' },
                { target: 'askingProviders' },
              ],
            },
            askingProviders: {
              entry: ['resetAnswers', 'armPreflightDeadline', 'askProviders'],
              exit: 'disarmTimer',
              on: {
                DEADLINE_PASSED: { target: '#migration.sourcePhase.refusing', actions: 'refuseForSilence' },
                PROVIDER_READY: [
                  { guard: 'lastProviderAnswered', target: '#migration.sourcePhase.lockingSource', actions: 'noteProviderAnswered' },
                  { actions: 'noteProviderAnswered' },
                ],
                PROVIDER_REFUSED: { target: '#migration.sourcePhase.refusing', actions: 'refuseForProvider' },
              },
            },
          },
          entry: { type: 'progress', params: { step: 'preflight', text: 'checking ownership, areas, destination and providers' } },
        },
        lockingSource: {
          description: 'S3: the admin SAM generates a temp key per item, installs it and switches every area to it; it returns the upload grants.',
          entry: [
            'resetAttempts',
            { type: 'progress', params: { step: 'S3', text: 'locking the source: main key -> temp key' } },
            { type: 'openAdminSession', params: { chip: 'source', step: 'S3' } },
            'lockSource',
          ],
          exit: 'closeSession',
          on: {
            SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
            CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
            SOURCE_LOCKED: { target: 'uploading', actions: 'keepUploadGrants' },
            STEP_FAILED: { target: 'lockRetry', actions: ['armRetry', 'countAttempt'] },
          },
        },
        lockRetry: {
          on: { RETRY_DUE: { target: 'lockingSource', actions: 'disarmTimer' } },
        },
        uploading: {
          initial: 'selectingItem',
          entry: 'resetCursor',
          states: {
            selectingItem: {
              description: 'S4 (and S8, the loop): take the next item and its provider.',
              always: [{ guard: 'allUploaded', target: '#migration.sourcePhase.releasingChannel' }, { target: 'transferring' }],
            },
            transferring: {
              description: 'S5–S7: the provider\'s migration SAM authenticates to the area with the temp key through us and copies the item into its store.',
              entry: [
                { type: 'progressItem', params: { step: 'S4', text: 'next provider taken from the chip\'s items' } },
                { type: 'progressItem', params: { step: 'S5', text: 'the source chip is linked to its provider\'s migration SAM' } },
                { type: 'openItemSession', params: { chip: 'source', step: 'S7' } },
                'requestUpload',
              ],
              exit: 'closeSession',
              initial: 'linking',
              states: {
                linking: {
                  description: 'Upload requested; the migration SAM\'s challenge is the first frame we relay.',
                  on: {
                    SAM_FRAME: {
                      guard: 'samFrameOfSession',
                      target: 'authenticating',
                      actions: ['relayToChip', { type: 'progressItem', params: { step: 'S6', text: 'chip and migration SAM authenticate each other with the temp key' } }],
                    },
                  },
                },
                authenticating: {
                  description: 'The chip\'s answer goes back; the SAM\'s proof comes with the first sealed command.',
                  on: {
                    CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
                    SAM_FRAME: {
                      guard: 'samFrameOfSession',
                      target: 'copying',
                      actions: ['relayToChip', { type: 'progressItem', params: { step: 'S7', text: 'uploading the item into the migration SAM (encrypted end to end)' } }],
                    },
                  },
                },
                copying: {
                  on: {
                    SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
                    CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
                  },
                },
              },
              on: {
                ITEM_UPLOADED: {
                  guard: 'isCurrentItem',
                  target: 'selectingItem',
                  actions: [{ type: 'progressItem', params: { step: 'S8', text: 'uploaded' } }, 'advanceCursor'],
                },
                STEP_FAILED: { target: 'backingOff', actions: ['armRetry', 'countAttempt'] },
              },
            },
            backingOff: {
              on: { RETRY_DUE: { target: 'transferring', actions: 'disarmTimer' } },
            },
          },
        },
        releasingChannel: {
          entry: { type: 'releaseChannel', params: { chip: 'source' } },
          on: {
            CHANNEL_RELEASED: {
              guard: 'forSource',
              target: '#migration.awaitingDestination',
              actions: [{ type: 'answerSource', params: { outcome: 'uploaded' } }, 'detachSource', 'armDeadline'],
            },
          },
        },
        refusing: {
          description: 'Preflight failed: nothing was changed; release the channel and tell the user why.',
          entry: { type: 'releaseChannel', params: { chip: 'source' } },
          on: {
            CHANNEL_RELEASED: {
              guard: 'forSource',
              target: '#migration.refused',
            },
          },
        },
      },
    },
    awaitingDestination: {
      description: 'Every item is held by its provider\'s migration SAM; the locked source is the backup. Waits, possibly long, for the destination.',
      on: {
        DESTINATION_ARRIVED: { target: 'destinationPhase', actions: ['disarmTimer', 'attachDestination'] },
        CANCEL_REQUESTED: { target: 'aborting', actions: ['disarmTimer', 'noteCancel'] },
        DEADLINE_PASSED: { target: 'aborting', actions: ['disarmTimer', 'noteCancel'] },
      },
    },
    destinationPhase: {
      initial: 'reservingChannel',
      states: {
        reservingChannel: {
          description: 'S9: the user logged in on the destination terminal; reserve its chip-control channel.',
          entry: [
            { type: 'progress', params: { step: 'S9', text: 'user authenticated; reserving the destination\'s chip-control channel' } },
            { type: 'reserveChannel', params: { chip: 'destination' } },
          ],
          on: { CHANNEL_RESERVED: { guard: 'forDestination', target: 'identifying' } },
        },
        identifying: {
          description: 'S9: the destination proves its serial in an admin session; it must be the user\'s, not the source, and the only destination.',
          entry: [
            { type: 'progress', params: { step: 'S9', text: 'channel reserved; the destination proves its serial to the admin SAM (K_chip)' } },
            { type: 'openAdminSession', params: { chip: 'destination', step: 'S9' } },
            'identifyChip',
          ],
          exit: 'closeSession',
          on: {
            SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
            CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
            CHIP_IDENTIFIED: [
              { guard: 'destinationAcceptable', target: 'formatting', actions: 'bindDestination' },
              { target: 'rejecting', actions: 'refuseDestinationChip' },
            ],
            STEP_FAILED: { target: 'identifyRetry', actions: ['armRetry', 'countAttempt'] },
          },
        },
        identifyRetry: {
          on: { RETRY_DUE: { target: 'identifying', actions: 'disarmTimer' } },
        },
        rejecting: {
          description: 'Not an acceptable destination: release it and keep waiting for the right one.',
          entry: { type: 'releaseChannel', params: { chip: 'destination' } },
          on: {
            CHANNEL_RELEASED: {
              guard: 'forDestination',
              target: '#migration.awaitingDestination',
              actions: [{ type: 'answerDestination', params: { outcome: 'refused' } }, 'detachDestination', 'armDeadline'],
            },
          },
        },
        formatting: {
          description: 'S10: the admin SAM formats each destination area with the item\'s temp key only, and returns the download grants.',
          entry: [
            'resetAttempts',
            'markFormatting',
            { type: 'progress', params: { step: 'S10', text: 'formatting the destination with temp keys' } },
            { type: 'openAdminSession', params: { chip: 'destination', step: 'S10' } },
            'formatDestination',
          ],
          exit: 'closeSession',
          on: {
            SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
            CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
            DESTINATION_FORMATTED: { target: 'downloading', actions: 'keepDownloadGrants' },
            STEP_FAILED: { target: 'formatRetry', actions: ['armRetry', 'countAttempt'] },
          },
        },
        formatRetry: {
          on: { RETRY_DUE: { target: 'formatting', actions: 'disarmTimer' } },
        },
        downloading: {
          initial: 'selectingItem',
          entry: 'resetCursor',
          states: {
            selectingItem: {
              description: 'S11 (and S15, the loop): take the next item and its provider.',
              always: [{ guard: 'allDownloaded', target: '#migration.committing' }, { target: 'transferring' }],
            },
            transferring: {
              description: 'S12–S14: the migration SAM authenticates to the destination area with the temp key, downloads the item and the destination\'s main key, and signs a receipt.',
              entry: [
                { type: 'progressItem', params: { step: 'S11', text: 'next provider taken from the migration database' } },
                { type: 'progressItem', params: { step: 'S12', text: 'the destination chip is linked to its provider\'s migration SAM' } },
                { type: 'openItemSession', params: { chip: 'destination', step: 'S14' } },
                'requestDownload',
              ],
              exit: 'closeSession',
              initial: 'linking',
              states: {
                linking: {
                  description: 'Download requested; the migration SAM fetches the destination\'s main key from its normal SAM, then challenges the chip.',
                  on: {
                    SAM_FRAME: {
                      guard: 'samFrameOfSession',
                      target: 'authenticating',
                      actions: ['relayToChip', { type: 'progressItem', params: { step: 'S13', text: 'chip and migration SAM authenticate each other with the temp key' } }],
                    },
                  },
                },
                authenticating: {
                  on: {
                    CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
                    SAM_FRAME: {
                      guard: 'samFrameOfSession',
                      target: 'copying',
                      actions: ['relayToChip', { type: 'progressItem', params: { step: 'S14', text: 'downloading the item and the destination\'s main key' } }],
                    },
                  },
                },
                copying: {
                  on: {
                    SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
                    CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
                  },
                },
              },
              on: {
                ITEM_DOWNLOADED: {
                  guard: 'isCurrentItem',
                  target: 'selectingItem',
                  actions: ['keepReceipt', { type: 'progressItem', params: { step: 'S15', text: 'downloaded, receipt kept' } }, 'advanceCursor'],
                },
                STEP_FAILED: { target: 'backingOff', actions: ['armRetry', 'countAttempt'] },
              },
            },
            backingOff: {
              on: { RETRY_DUE: { target: 'transferring', actions: 'disarmTimer' } },
            },
          },
        },
      },
    },
    committing: {
      description: 'Commit point (protocol.md §4.3): the admin SAM sets its decision record pending -> committed by compare-and-set, only with a valid receipt for every item.',
      entry: [{ type: 'progress', params: { step: 'commit', text: 'all items downloaded; asking the admin SAM to commit' } }, 'commit'],
      on: {
        DECIDED: [
          { guard: 'committed', target: 'activating', actions: 'recordDecision' },
          { target: 'rollingBack', actions: 'recordDecision' },
        ],
        STEP_FAILED: { target: 'commitRetry', actions: ['armRetry', 'countAttempt'] },
      },
    },
    commitRetry: {
      on: { RETRY_DUE: { target: 'committing', actions: 'disarmTimer' } },
    },
    activating: {
      description: 'S16: under the committed record only, the admin SAM switches every destination area from temp key to main key.',
      entry: [
        'resetAttempts',
        { type: 'progress', params: { step: 'S16', text: 'committed; activating the destination: temp key -> main key' } },
        { type: 'openAdminSession', params: { chip: 'destination', step: 'S16' } },
        'activateDestination',
      ],
      exit: 'closeSession',
      on: {
        SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
        CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
        DESTINATION_ACTIVATED: 'clearing',
        STEP_FAILED: { target: 'activateRetry', actions: ['armRetry', 'countAttempt'] },
      },
    },
    activateRetry: {
      on: { RETRY_DUE: { target: 'activating', actions: 'disarmTimer' } },
    },
    clearing: {
      description: 'S17: each migration SAM clears the item from its store and drops the grants.',
      entry: ['resetAnswers', { type: 'progress', params: { step: 'S17', text: 'clearing the migration SAMs\' stores' } }, 'clearAll'],
      on: {
        ITEM_CLEARED: [
          { guard: 'lastItemCleared', target: 'releasingDestination', actions: 'noteItemCleared' },
          { guard: 'newItemCleared', actions: 'noteItemCleared' },
        ],
        STEP_FAILED: { target: 'clearRetry', actions: ['armRetry', 'countAttempt'] },
      },
    },
    clearRetry: {
      on: { RETRY_DUE: { target: 'clearing', actions: 'disarmTimer' } },
    },
    releasingDestination: {
      entry: { type: 'releaseChannel', params: { chip: 'destination' } },
      on: {
        CHANNEL_RELEASED: { guard: 'forDestination', target: 'completed' },
      },
    },
    completed: {
      type: 'final',
      description: 'Destination spendable, source locked (the backup), SAM stores empty.',
      entry: [{ type: 'setOutcome', params: { outcome: 'completed' } }, { type: 'answerDestination', params: { outcome: 'completed' } }],
    },
    refused: {
      type: 'final',
      description: 'Preflight failed; the source was never touched.',
      entry: [{ type: 'setOutcome', params: { outcome: 'refused' } }, { type: 'answerSource', params: { outcome: 'refused' } }],
    },
    aborting: {
      description: 'A cancel or the deadline: ask the admin SAM to set its record pending -> aborted. If the commit won the race, roll forward.',
      entry: ['abort'],
      on: {
        DECIDED: [
          { guard: 'committed', target: 'activating', actions: ['recordDecision', 'answerCancel'] },
          { target: 'rollingBack', actions: ['recordDecision', 'answerCancel'] },
        ],
        STEP_FAILED: { target: 'abortRetry', actions: ['armRetry', 'countAttempt'] },
      },
    },
    abortRetry: {
      on: { RETRY_DUE: { target: 'aborting', actions: 'disarmTimer' } },
    },
    rollingBack: {
      description: 'protocol.md §3 rollback: fence every migration SAM, restore the source when it connects, clear the stores, wipe the destination.',
      initial: 'fencing',
      states: {
        fencing: {
          entry: ['resetAnswers', 'fenceAll'],
          on: {
            PROVIDER_FENCED: [
              { guard: 'lastProviderFenced', target: 'awaitingSource', actions: 'noteProviderAnswered' },
              { actions: 'noteProviderAnswered' },
            ],
            STEP_FAILED: { target: 'fenceRetry', actions: ['armRetry', 'countAttempt'] },
          },
        },
        fenceRetry: {
          on: { RETRY_DUE: { target: 'fencing', actions: 'disarmTimer' } },
        },
        awaitingSource: {
          description: 'Liveness waits for the source chip to come back; the items stay safe in the SAMs and the source stays locked.',
          on: { SOURCE_ARRIVED: { target: 'reservingSource', actions: 'attachSource' } },
        },
        reservingSource: {
          entry: { type: 'reserveChannel', params: { chip: 'source' } },
          on: { CHANNEL_RESERVED: { guard: 'forSource', target: 'restoringSource' } },
        },
        restoringSource: {
          description: 'Under the aborted record only, the admin SAM switches every source area back to its main key.',
          entry: [
            { type: 'progress', params: { step: 'rollback', text: 'restoring the source: temp key -> main key' } },
            { type: 'openAdminSession', params: { chip: 'source', step: 'rollback' } },
            'restoreSource',
          ],
          exit: 'closeSession',
          on: {
            SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
            CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
            SOURCE_RESTORED: 'clearingStores',
            STEP_FAILED: { target: 'restoreRetry', actions: ['armRetry', 'countAttempt'] },
          },
        },
        restoreRetry: {
          on: { RETRY_DUE: { target: 'restoringSource', actions: 'disarmTimer' } },
        },
        clearingStores: {
          entry: ['resetAnswers', 'clearAll'],
          on: {
            ITEM_CLEARED: [
              { guard: 'lastItemCleared', target: 'releasingSource', actions: 'noteItemCleared' },
              { guard: 'newItemCleared', actions: 'noteItemCleared' },
            ],
            STEP_FAILED: { target: 'clearRetry', actions: ['armRetry', 'countAttempt'] },
          },
        },
        clearRetry: {
          on: { RETRY_DUE: { target: 'clearingStores', actions: 'disarmTimer' } },
        },
        releasingSource: {
          entry: { type: 'releaseChannel', params: { chip: 'source' } },
          on: {
            CHANNEL_RELEASED: [
              { guard: 'destinationWasFormatted', target: 'awaitingDestinationWipe', actions: { type: 'answerSource', params: { outcome: 'rolledBack' } } },
              { target: '#migration.rolledBack', actions: { type: 'answerSource', params: { outcome: 'rolledBack' } } },
            ],
          },
        },
        awaitingDestinationWipe: {
          description: 'Destination areas, never active, are wiped when the destination next connects.',
          on: { DESTINATION_ARRIVED: { target: 'reservingDestination', actions: 'attachDestination' } },
        },
        reservingDestination: {
          entry: { type: 'reserveChannel', params: { chip: 'destination' } },
          on: { CHANNEL_RESERVED: { guard: 'forDestination', target: 'wipingDestination' } },
        },
        wipingDestination: {
          entry: [{ type: 'openAdminSession', params: { chip: 'destination', step: 'rollback' } }, 'wipeDestination'],
          exit: 'closeSession',
          on: {
            SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
            CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
            DESTINATION_WIPED: 'releasingDestination',
            STEP_FAILED: { target: 'wipeRetry', actions: ['armRetry', 'countAttempt'] },
          },
        },
        wipeRetry: {
          on: { RETRY_DUE: { target: 'wipingDestination', actions: 'disarmTimer' } },
        },
        releasingDestination: {
          entry: { type: 'releaseChannel', params: { chip: 'destination' } },
          on: {
            CHANNEL_RELEASED: {
              guard: 'forDestination',
              target: '#migration.rolledBack',
              actions: { type: 'answerDestination', params: { outcome: 'rolledBack' } },
            },
          },
        },
      },
    },
    rolledBack: {
      type: 'final',
      description: 'Source spendable again, destination wiped, SAM stores empty.',
      entry: { type: 'setOutcome', params: { outcome: 'rolledBack' } },
    },
  },
});
