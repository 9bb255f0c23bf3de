/**
 * The rules of the server's migration statechart (migration.machine.ts):
 * its context, events and emitted intents, and every named guard and action.
 * Guards are pure functions of context and event; actions only assign and
 * emit. What an emitted intent does (a message, a durable write) is the
 * server runtime's business (src/actors/server.actor.ts).
 */
import { assign, emit, enqueueActions, setup } from 'xstate';
// The registry is a table with no imports (no I/O): reading its retry flag keeps this machine pure.
import { mayRetry, type ErrorCode } from '../protocol/errors.ts';
import type { Step } from '../protocol/steps.ts';
import type { Grant, Receipt } from '../protocol/grant.ts';
import { CHIP_AREAS_MAX, type AreaState } from './area.machine.ts';
import { retryAt } from './retry.ts';
import { afterLeaving, chooseItems, chosen, leaveBehind, unknownProviders, type Selection, type SkippedItem } from './selection.ts';

/**
 * 7: selective migration (selection, skipped); 6: issuance, a migration without a source (provider issue orders);
 * 5: a cancel while refusing is answered and the refusal stands.
 */
export const MIGRATION_MACHINE_VERSION = 7;

/**
 * The delays a migration waits by: the server's Timing (src/timing.ts, the one
 * place they are set), handed over as input. A failed step is retried after
 * retryBaseMs, doubling per attempt up to retryCapMs.
 */
export interface MigrationTiming {
  retryBaseMs: number;
  retryCapMs: number;
  preflightMs: number;
}
/** Attempts of a step before the migration is refused; applies only before the source is locked. */
export const PRE_LOCK_ATTEMPTS_MAX = 3;

/**
 * Before the source is locked, whether a step that failed with `code` is tried again, after `attempts` earlier
 * failures. A code the registry marks `retry` (src/protocol/errors.ts: a lost frame, a busy terminal, a restarted party) says
 * nothing about the chip or the user: retried, never refused. Any other is retried a few times, then refused.
 */
export function retryBeforeLock(code: ErrorCode, attempts: number): boolean {
  return mayRetry(code) || attempts + 1 < PRE_LOCK_ATTEMPTS_MAX;
}
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
  /** The user's choice (selection.ts): which providers' items move, and whether an unavailable provider may be left behind. */
  selection: Selection;
  /** The source's areas this migration does not move (not chosen, or left behind at the preflight): never touched. */
  skipped: SkippedItem[];
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
  /** Rollback progress: the source has its main keys back; the destination's areas are wiped. */
  sourceRestored: boolean;
  /** Terminals whose connection is down right now (a rollback serves whoever is connected first). */
  offline: string[];
  destinationWiped: boolean;
  /** An issuance: the provider's issue orders, one per item (in item order); null for a migration from a source chip. */
  issuance: { orders: string[] } | null;
  timing: MigrationTiming;
}

/** What the server read from the issue orders of an issuance (their signatures are the migration SAMs' to check). */
export interface IssuanceInput {
  /** The chip every order names: the only acceptable destination. */
  serial: string;
  items: MigrationItem[];
  orders: string[];
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
  timing: MigrationTiming;
  /** The user's choice of providers (selection.ts); every item when absent. */
  selection?: Selection;
  /** An issuance: `terminal` and `request` are then the destination's, and there is no source. */
  issuance?: IssuanceInput;
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
  | { type: 'STEP_FAILED'; code: ErrorCode; message: string; now: number }
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
  | { type: 'DESTINATION_WIPED' }
  /** A terminal's connection closed (the server notices; the terminal may come back). */
  | { type: 'TERMINAL_LOST'; terminal: string }
  | { type: 'TERMINAL_BACK'; terminal: string };

export type MigrationIntent =
  | { type: 'progress'; terminal: string; step: Step; text: string }
  | { type: 'reserveChannel'; terminal: string; chip: ChipRole }
  | { type: 'releaseChannel'; terminal: string; chip: ChipRole }
  | { type: 'identifyChip'; chip: ChipRole; session: string }
  | { type: 'askProvider'; provider: string; recipient: string }
  | { type: 'lockSource'; session: string; serial: string; items: MigrationItem[] }
  | { type: 'requestUpload'; item: number; recipient: string; session: string; grant: Grant }
  | { type: 'relayToChip'; terminal: string; session: string; data: string }
  | { type: 'relayToSam'; sam: string; session: string; data: string }
  | { type: 'formatDestination'; session: string; serial: string; items: MigrationItem[]; issuance: boolean }
  | { type: 'requestDownload'; item: number; recipient: string; session: string; grant: Grant; order?: string }
  | { type: 'commit'; receipts: Receipt[] }
  | { type: 'abort'; reason: string; source: string | null }
  | { type: 'activateDestination'; session: string; serial: string }
  | { type: 'clearItem'; item: number; recipient: string }
  | { type: 'fenceProvider'; provider: string; recipient: string }
  | { type: 'restoreSource'; session: string; serial: string }
  | { type: 'wipeDestination'; session: string; serial: string }
  | {
      type: 'answerTerminal';
      chip: ChipRole;
      terminal: string;
      request: string;
      outcome: 'uploaded' | 'completed' | 'refused' | 'rolledBack' | 'failed';
      reason?: string;
    }
  | { type: 'recordOutcome'; outcome: 'completed' | 'rolledBack' | 'refused' }
  | { type: 'answerCancel'; terminal: string; request: string; decision: 'committed' | 'aborted' };

type E<T extends MigrationEvent['type']> = Extract<MigrationEvent, { type: T }>;

const terminalOf = (c: MigrationContext, chip: ChipRole): string => (chip === 'source' ? c.source.terminal : c.destination.terminal) ?? '-';

const activeChip = (c: MigrationContext): ChipRole => c.session?.chip ?? (c.destination.terminal ? 'destination' : 'source');

const newSession = (c: MigrationContext, sam: string, chip: ChipRole, step: Step) => ({
  id: `${c.mig}:${step}:${c.sessions + 1}`,
  sam,
  chip,
});

export const migrationSetup = setup({
  types: {
    context: {} as MigrationContext,
    events: {} as MigrationEvent,
    emitted: {} as MigrationIntent,
    input: {} as MigrationInput,
  },
  guards: {
    isIssuance: ({ context }) => context.issuance !== null,
    /** An aborted issuance: the migration SAMs' copies (the orders' items) are cleared; no source is restored. */
    issuanceToClear: ({ context }) => context.issuance !== null && !context.sourceRestored,
    orderRefused: ({ context, event }) => context.issuance !== null && (event as E<'STEP_FAILED'>).code === 'ORDER_REFUSED',
    forSource: ({ event }) => 'chip' in event && event.chip === 'source',
    forDestination: ({ event }) => 'chip' in event && event.chip === 'destination',
    sourceNotOwned: ({ context }) => context.sourceCheck?.owner !== context.user,
    sourceEmpty: ({ context }) => context.items.length === 0,
    selectionUnknown: ({ context }) => unknownProviders(context.selection, context.items, context.skipped).length > 0,
    /** A provider refused the preflight; the user lets it be left behind, something is still to move, and every other provider answered. */
    leavingBehindLast: ({ context, event }) => {
      const after = afterLeaving(context, [(event as E<'PROVIDER_REFUSED'>).provider]);
      return context.selection.leaveBehind !== null && after.something && after.allAnswered;
    },
    leavingBehind: ({ context, event }) =>
      context.selection.leaveBehind !== null && afterLeaving(context, [(event as E<'PROVIDER_REFUSED'>).provider]).something,
    /** The preflight deadline passed; the user lets the silent providers be left behind, and some provider answered. */
    leavingSilentBehind: ({ context }) => context.selection.leaveBehind !== null && context.answered.some((p) => context.providers.includes(p)),
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
    /** Before the source is locked a step may be retried or refused, as the registry's retry flag says (retryBeforeLock). */
    preLockRetry: ({ context, event }) => retryBeforeLock((event as E<'STEP_FAILED'>).code, context.attempts),
    destinationWasFormatted: ({ context }) => context.destinationFormatted,
    destinationHere: ({ context }) => context.destination.terminal !== null && !context.offline.includes(context.destination.terminal),
    sourceHereToRestore: ({ context }) => context.source.terminal !== null && !context.offline.includes(context.source.terminal) && !context.sourceRestored,
    sourceNotRestored: ({ context }) => !context.sourceRestored,
    destinationNeedsWipe: ({ context }) => context.destinationFormatted && !context.destinationWiped,
    lostDestination: ({ context, event }) => (event as E<'TERMINAL_LOST'>).terminal === context.destination.terminal,
    lostSource: ({ context, event }) => (event as E<'TERMINAL_LOST'>).terminal === context.source.terminal,
    sourceAwaited: ({ context }) => context.issuance === null && context.source.terminal === null && !context.sourceRestored,
    destinationAwaited: ({ context }) => context.destination.terminal === null && context.destinationFormatted && !context.destinationWiped,
  },
  actions: {
    progress: emit(({ context }, params: { step: Step; text: string }) => ({
      type: 'progress' as const,
      terminal: terminalOf(context, activeChip(context)),
      step: params.step,
      text: params.text,
    })),
    progressCount: emit(({ context }, params: { step: Step; text: string }) => ({
      type: 'progress' as const,
      terminal: terminalOf(context, activeChip(context)),
      step: params.step,
      text: `${context.items.length} ${params.text}`,
    })),
    /** A progress line about the current item: "item k/n (<area> from <provider>): <text>". */
    progressItem: emit(({ context }, params: { step: Step; text: string }) => {
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
    openAdminSession: assign(({ context }, params: { chip: ChipRole; step: Step }) => ({
      session: newSession(context, 'admin-sam', params.chip, params.step),
      sessions: context.sessions + 1,
    })),
    openItemSession: assign(({ context }, params: { chip: ChipRole; step: Step }) => ({
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
      sourceCheck: ({ context, event }) => {
        const e = event as E<'CHIP_IDENTIFIED'>;
        // Only the chosen areas must be mainActive: the others are not touched (a locked backup of an earlier migration may be there).
        const bad = e.areas.find((a) => a.state !== 'mainActive' && chosen(context.selection, a.provider));
        return { owner: e.owner, notMainActive: bad ? `${bad.area} is ${bad.state}` : null, at: e.now };
      },
    }),
    /** S2: every value item the source listed (its areas) and the user chose is recorded, one per provider, in chip order; the rest as skipped. */
    recordItems: assign(({ context, event }) => chooseItems((event as E<'CHIP_IDENTIFIED'>).areas, context.selection)),
    refuseForOwner: assign({
      reason: ({ context }) =>
        context.sourceCheck?.owner == null
          ? `NOT_REGISTERED: chip ${context.source.serial} is not registered`
          : `NOT_OWNER: chip ${context.source.serial} is not registered to ${context.user}`,
    }),
    refuseForEmpty: assign({
      reason: ({ context }) =>
        context.skipped.length === 0
          ? 'PREFLIGHT_FAILED: the source chip holds no value items'
          : "PREFLIGHT_FAILED: none of the chip's items is chosen (--only)",
    }),
    refuseForUnknown: assign({
      reason: ({ context }) => {
        const held = [...new Set([...context.items, ...context.skipped].map((i) => i.provider))];
        const unknown = unknownProviders(context.selection, context.items, context.skipped);
        return `PREFLIGHT_FAILED: unknown provider(s) ${unknown.join(', ')}: chip ${context.source.serial} holds items of ${held.join(', ') || 'none'}`;
      },
    }),
    /** S2 with a choice: which items stay on the source, untouched. */
    progressChoice: enqueueActions(({ context, enqueue }) => {
      if (context.skipped.length === 0) return;
      const moving = context.items.map((i) => i.provider).join(', ') || 'none';
      const staying = context.skipped.map((i) => i.provider).join(', ');
      enqueue.emit({
        type: 'progress',
        terminal: terminalOf(context, 'source'),
        step: 'S2',
        text: `chosen: ${moving}; not chosen, staying spendable on the source: ${staying}`,
      });
    }),
    /** Preflight, leave-behind chosen: the refusing provider's items stay on the source, untouched; the rest go on. */
    leaveRefuserBehind: enqueueActions(({ context, event, enqueue }) => {
      const e = event as E<'PROVIDER_REFUSED'>;
      if (!context.providers.includes(e.provider)) return;
      const reason = `${e.code}: ${e.message}`;
      enqueue.assign(leaveBehind(context, [e.provider], reason));
      enqueue.emit({
        type: 'progress',
        terminal: terminalOf(context, 'source'),
        step: 'preflight',
        text: `${e.provider} left behind (${reason}); its item stays spendable on the source`,
      });
    }),
    leaveSilentBehind: enqueueActions(({ context, enqueue }) => {
      const silent = context.providers.filter((p) => !context.answered.includes(p));
      const reason = `UNAVAILABLE: did not answer the preflight within ${context.timing.preflightMs} ms`;
      enqueue.assign(leaveBehind(context, silent, reason));
      enqueue.emit({
        type: 'progress',
        terminal: terminalOf(context, 'source'),
        step: 'preflight',
        text: `${silent.join(', ')} left behind (${reason}); stays spendable on the source`,
      });
    }),
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
      timer: ({ context }) => ({ atMs: (context.sourceCheck?.at ?? 0) + context.timing.preflightMs, event: 'DEADLINE_PASSED' as const }),
    }),
    refuseForSilence: assign({
      reason: ({ context }) => {
        const silent = context.providers.filter((p) => !context.answered.includes(p));
        return `PREFLIGHT_FAILED: provider(s) ${silent.join(', ')} did not answer within ${context.timing.preflightMs} ms`;
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
    /** S8 and S15 done: the next item is taken (S4, S11). */
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
    answerSource: emit(({ context }, params: { outcome: 'uploaded' | 'refused' | 'rolledBack' | 'failed' }) => ({
      type: 'answerTerminal' as const,
      chip: 'source' as const,
      terminal: context.source.terminal ?? '-',
      request: context.source.request ?? '-',
      outcome: params.outcome,
      reason: context.reason ?? undefined,
    })),
    answerDestination: emit(({ context }, params: { outcome: 'completed' | 'refused' | 'rolledBack' | 'failed' }) => ({
      type: 'answerTerminal' as const,
      chip: 'destination' as const,
      terminal: context.destination.terminal ?? '-',
      request: context.destination.request ?? '-',
      outcome: params.outcome,
      reason: context.reason ?? undefined,
    })),
    armDeadline: assign({
      timer: ({ context, event }) => ({
        atMs: (event as E<'CHANNEL_RELEASED'> | E<'STEP_FAILED'>).now + context.deadlineMs,
        event: 'DEADLINE_PASSED' as const,
      }),
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
        const bound = context.destination.serial ?? context.destination.named;
        if (bound !== null && e.serial !== bound) return `WRONG_DESTINATION: this migration's destination is ${bound}`;
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
      issuance: context.issuance !== null,
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
        ...(context.issuance ? { order: context.issuance.orders[item.item] } : {}),
      };
    }),
    /** S15: the migration SAM's signed receipt is kept for the commit. */
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
    /** A terminal attached to this migration but offline now is answered (it hears it when it comes back) and let go. */
    answerAbsentees: enqueueActions(({ context, enqueue }) => {
      for (const chip of ['source', 'destination'] as const) {
        const side = context[chip];
        if (side.terminal === null || !context.offline.includes(side.terminal)) continue;
        if (side.request !== null) {
          enqueue.emit({
            type: 'answerTerminal',
            chip,
            terminal: side.terminal,
            request: side.request,
            outcome: 'failed',
            reason: `UNREACHABLE: ${side.terminal} was away; the rollback goes on and waits for this chip to come back`,
          });
        }
        enqueue.assign({ [chip]: { ...side, terminal: null, request: null } });
      }
    }),
    markOffline: assign({
      offline: ({ context, event }) => [...new Set([...context.offline, (event as E<'TERMINAL_LOST'>).terminal])],
    }),
    markOnline: assign({ offline: ({ context, event }) => context.offline.filter((t) => t !== (event as E<'TERMINAL_BACK'>).terminal) }),
    noteTerminalLost: assign({
      reason: ({ event }) => `UNREACHABLE: ${(event as E<'TERMINAL_LOST'>).terminal} went away; the rollback goes on with whoever is here`,
    }),
    markSourceRestored: assign({ sourceRestored: true }),
    markDestinationWiped: assign({ destinationWiped: true }),
    /** A cancel that meets a decision already taken (or nothing to decide) is answered at once. */
    answerCancelNow: emit(({ event }, params: { decision: 'committed' | 'aborted' }) => {
      const e = event as E<'CANCEL_REQUESTED'>;
      return { type: 'answerCancel' as const, terminal: e.terminal ?? '-', request: e.request ?? '-', decision: params.decision };
    }),
    answerCancel: enqueueActions(({ context, event, enqueue }) => {
      if (!context.cancel) return;
      enqueue.emit({ type: 'answerCancel', ...context.cancel, decision: (event as E<'DECIDED'>).decision });
      enqueue.assign({ cancel: null });
    }),
    abort: emit(({ context }) => ({ type: 'abort' as const, reason: context.reason ?? 'cancelled', source: context.source.serial })),
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
        atMs: retryAt((event as E<'STEP_FAILED'>).now, context.attempts, context.timing),
        event: 'RETRY_DUE' as const,
      }),
    }),
  },
});
