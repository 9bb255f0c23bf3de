/**
 * The admin SAM's decision record of one migration (protocol.md §3, commit;
 * §4.3, commit point). It is created `pending` when the source is locked and
 * leaves `pending` exactly once, by compare-and-set in one store transaction:
 *
 *   pending --COMMIT (a valid receipt for every item)--> committed
 *   pending --ABORT (a cancel, or the destination deadline)--> aborted
 *
 * Whichever comes first wins; the other is answered with the decision that
 * stands. The record also gates the admin sessions that change keys:
 * formatting binds the one destination (a second serial is refused),
 * activation happens only under `committed`, restoring the source only under
 * `aborted`. The runtime asks `can()` before it opens such a session.
 */
import { assign, emit, setup } from 'xstate';
import type { ErrorCode } from '../protocol/errors.ts';
import type { MigrationItem } from './migration.machine.ts';

export const DECISION_MACHINE_VERSION = 1;

export interface DecisionContext {
  mig: string;
  source: string;
  destination: string | null;
  items: MigrationItem[];
  reason: string | null;
}

export type DecisionEvent =
  | { type: 'LOCK_REQUESTED'; serial: string }
  | { type: 'FORMAT_REQUESTED'; serial: string }
  | { type: 'COMMIT_REQUESTED'; receiptsValid: boolean; problem?: string }
  | { type: 'ABORT_REQUESTED'; reason: string }
  | { type: 'ACTIVATE_REQUESTED'; serial: string }
  | { type: 'RESTORE_REQUESTED'; serial: string }
  | { type: 'WIPE_REQUESTED'; serial: string; role: 'source' | 'destination' };

export type DecisionIntent =
  | { type: 'recordDecision'; mig: string; decision: 'pending' | 'committed' | 'aborted'; destination: string | null }
  | { type: 'answerDecision'; decision: 'committed' | 'aborted'; reason?: string }
  | { type: 'refuse'; code: ErrorCode; message: string };

type E<T extends DecisionEvent['type']> = Extract<DecisionEvent, { type: T }>;

export const decisionMachine = setup({
  types: {
    context: {} as DecisionContext,
    events: {} as DecisionEvent,
    emitted: {} as DecisionIntent,
    input: {} as { mig: string; source: string; items: MigrationItem[] },
  },
  guards: {
    sameSource: ({ context, event }) => (event as E<'LOCK_REQUESTED'> | E<'RESTORE_REQUESTED'>).serial === context.source,
    destinationFree: ({ context, event }) => {
      const serial = (event as E<'FORMAT_REQUESTED'>).serial;
      return serial !== context.source && (context.destination === null || context.destination === serial);
    },
    receiptsValid: ({ event }) => (event as E<'COMMIT_REQUESTED'>).receiptsValid,
    isDestination: ({ context, event }) => (event as E<'ACTIVATE_REQUESTED'>).serial === context.destination,
    wipesDestination: ({ context, event }) => {
      const e = event as E<'WIPE_REQUESTED'>;
      return e.role === 'destination' && e.serial === context.destination;
    },
    wipesSource: ({ context, event }) => {
      const e = event as E<'WIPE_REQUESTED'>;
      return e.role === 'source' && e.serial === context.source;
    },
  },
  actions: {
    recordPending: emit(({ context }) => ({
      type: 'recordDecision' as const,
      mig: context.mig,
      decision: 'pending' as const,
      destination: context.destination,
    })),
    bindDestination: assign({ destination: ({ event }) => (event as E<'FORMAT_REQUESTED'>).serial }),
    recordBinding: emit(({ context }) => ({
      type: 'recordDecision' as const,
      mig: context.mig,
      decision: 'pending' as const,
      destination: context.destination,
    })),
    refuseDestination: emit(({ context }) => ({
      type: 'refuse' as const,
      code: 'WRONG_DESTINATION' as const,
      message:
        context.destination === null ? 'the destination can not be the source chip' : `migration ${context.mig} already has destination ${context.destination}`,
    })),
    refuseReceipts: emit(({ event }) => ({
      type: 'refuse' as const,
      code: 'RECEIPT_REFUSED' as const,
      message: (event as E<'COMMIT_REQUESTED'>).problem ?? 'a download receipt is missing or invalid',
    })),
    noteReason: assign({ reason: ({ event }) => (event as E<'ABORT_REQUESTED'>).reason }),
    recordCommitted: emit(({ context }) => ({
      type: 'recordDecision' as const,
      mig: context.mig,
      decision: 'committed' as const,
      destination: context.destination,
    })),
    recordAborted: emit(({ context }) => ({
      type: 'recordDecision' as const,
      mig: context.mig,
      decision: 'aborted' as const,
      destination: context.destination,
    })),
    answerCommitted: emit({ type: 'answerDecision' as const, decision: 'committed' as const }),
    answerAborted: emit(({ context }) => ({ type: 'answerDecision' as const, decision: 'aborted' as const, reason: context.reason ?? undefined })),
  },
}).createMachine({
  id: 'decision',
  context: ({ input }) => ({ mig: input.mig, source: input.source, destination: null, items: input.items, reason: null }),
  initial: 'pending',
  states: {
    pending: {
      description: 'The source is locked; nothing is decided. Recovery retries, and rolls back only on a cancel or the deadline.',
      entry: 'recordPending',
      on: {
        LOCK_REQUESTED: { guard: 'sameSource', target: 'pending', reenter: false },
        FORMAT_REQUESTED: [
          { guard: 'destinationFree', target: 'pending', actions: ['bindDestination', 'recordBinding'] },
          { target: 'pending', actions: 'refuseDestination' },
        ],
        COMMIT_REQUESTED: [
          { guard: 'receiptsValid', target: 'committed', actions: ['recordCommitted', 'answerCommitted'] },
          { target: 'pending', actions: 'refuseReceipts' },
        ],
        ABORT_REQUESTED: { target: 'aborted', actions: ['noteReason', 'recordAborted', 'answerAborted'] },
      },
    },
    committed: {
      description: 'Durable before S16. From here recovery only rolls forward.',
      // At rest: it only answers, so it may wait on disk (runtime.ts, retire).
      tags: ['rest'],
      on: {
        // A repeat (its answer lost) carries the same valid receipts and gets the decision again; a request with a
        // receipt that does not check is refused as in pending, though the record stands: no forged receipt is ever answered "committed".
        COMMIT_REQUESTED: [
          { guard: 'receiptsValid', target: 'committed', actions: 'answerCommitted' },
          { target: 'committed', actions: 'refuseReceipts' },
        ],
        ABORT_REQUESTED: { target: 'committed', actions: 'answerCommitted' },
        ACTIVATE_REQUESTED: { guard: 'isDestination', target: 'committed' },
        WIPE_REQUESTED: { guard: 'wipesSource', target: 'committed' },
      },
    },
    aborted: {
      description: 'Rolled back: migration SAMs are fenced, the source gets its main keys back, the destination is wiped.',
      tags: ['rest'],
      on: {
        COMMIT_REQUESTED: { target: 'aborted', actions: 'answerAborted' },
        ABORT_REQUESTED: { target: 'aborted', actions: 'answerAborted' },
        RESTORE_REQUESTED: { guard: 'sameSource', target: 'aborted' },
        WIPE_REQUESTED: { guard: 'wipesDestination', target: 'aborted' },
      },
    },
  },
});
