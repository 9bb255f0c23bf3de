/**
 * A provider's normal SAM serving normal use (pay, top up, use a ticket,
 * read a balance) for one reader session (protocol.md §1, "Normal use"). The
 * server is not involved: a terminal acting as a reader relays between the
 * chip and this SAM, which authenticates to the area with the main key.
 * That only opens while the area is `mainActive`; a locked area answers
 * AREA_LOCKED. The new value is written with the counter it was read at, so
 * two readers can not both spend one balance.
 */
import { assign, emit, setup } from 'xstate';
import type { ErrorCode, Refusal } from '../protocol/errors.ts';

export const NORMAL_SAM_MACHINE_VERSION = 1;

export type NormalOp = 'balance' | 'pay' | 'topup' | 'use';

export interface NormalSamContext {
  session: string;
  op: NormalOp;
  area: string;
  request: string;
  failure: Refusal | null;
  timer: { atMs: number; event: 'DEADLINE_PASSED' } | null;
}

export type NormalSamEvent =
  | { type: 'CHIP_ANSWERED'; proofOk: boolean }
  | { type: 'CHIP_REFUSED'; code: ErrorCode; message: string }
  | { type: 'VALUE_READ'; ok: boolean; next: 'write' | 'done' | 'refuse'; code?: ErrorCode; message?: string }
  | { type: 'VALUE_WRITTEN'; ok: boolean; code?: ErrorCode; message?: string }
  | { type: 'DEADLINE_PASSED' }
  | { type: 'SESSION_LOST' };

export type NormalSamIntent =
  | { type: 'beginAuth'; session: string }
  | { type: 'sendRead'; session: string }
  | { type: 'sendWrite'; session: string }
  | { type: 'answerReceipt'; request: string }
  | { type: 'answerFailed'; request: string; code: ErrorCode; message: string }
  | { type: 'endSession'; session: string };

type E<T extends NormalSamEvent['type']> = Extract<NormalSamEvent, { type: T }>;

export const normalSamMachine = setup({
  types: {
    context: {} as NormalSamContext,
    events: {} as NormalSamEvent,
    emitted: {} as NormalSamIntent,
    input: {} as { session: string; op: NormalOp; area: string; request: string; deadline: number },
  },
  guards: {
    proofOk: ({ event }) => (event as E<'CHIP_ANSWERED'>).proofOk,
    readNeedsWrite: ({ event }) => (event as E<'VALUE_READ'>).ok && (event as E<'VALUE_READ'>).next === 'write',
    readIsAnswer: ({ event }) => (event as E<'VALUE_READ'>).ok && (event as E<'VALUE_READ'>).next === 'done',
    written: ({ event }) => (event as E<'VALUE_WRITTEN'>).ok,
  },
  actions: {
    beginAuth: emit(({ context }) => ({ type: 'beginAuth' as const, session: context.session })),
    sendRead: emit(({ context }) => ({ type: 'sendRead' as const, session: context.session })),
    sendWrite: emit(({ context }) => ({ type: 'sendWrite' as const, session: context.session })),
    answerReceipt: emit(({ context }) => ({ type: 'answerReceipt' as const, request: context.request })),
    failAuth: assign({ failure: { code: 'AUTH_FAILED', message: "the chip's proof does not verify under the main key" } }),
    fail: assign({
      failure: ({ event }) => {
        const e = event as { code?: ErrorCode; message?: string };
        return { code: e.code ?? 'SESSION_FAILED', message: e.message ?? 'normal use failed' };
      },
    }),
    failTimeout: assign({ failure: { code: 'SESSION_FAILED', message: 'the reader session did not finish before its deadline' } }),
    answerFailed: emit(({ context }) => ({
      type: 'answerFailed' as const,
      request: context.request,
      code: context.failure?.code ?? 'SESSION_FAILED',
      message: context.failure?.message ?? 'normal use failed',
    })),
    endSession: emit(({ context }) => ({ type: 'endSession' as const, session: context.session })),
    disarm: assign({ timer: null }),
  },
}).createMachine({
  id: 'normalSam',
  context: ({ input }) => ({
    session: input.session,
    op: input.op,
    area: input.area,
    request: input.request,
    failure: null,
    timer: { atMs: input.deadline, event: 'DEADLINE_PASSED' },
  }),
  initial: 'authenticating',
  states: {
    authenticating: {
      description: 'Mutual authentication under K_main(serial, area); opens only on a mainActive area.',
      entry: 'beginAuth',
      on: {
        CHIP_ANSWERED: [
          { guard: 'proofOk', target: 'reading', actions: 'sendRead' },
          { target: 'failed', actions: 'failAuth' },
        ],
      },
    },
    reading: {
      // Volatile: the session keys are RAM only; a restart finds the session as it opened, and its deadline ends it.
      tags: ['volatile'],
      on: {
        VALUE_READ: [
          { guard: 'readNeedsWrite', target: 'writing', actions: 'sendWrite' },
          { guard: 'readIsAnswer', target: 'done' },
          { target: 'failed', actions: 'fail' },
        ],
      },
    },
    writing: {
      tags: ['volatile'],
      description: "The new value, written only if the area's counter is still the one we read.",
      on: {
        VALUE_WRITTEN: [
          { guard: 'written', target: 'done' },
          { target: 'failed', actions: 'fail' },
        ],
      },
    },
    done: { type: 'final', entry: ['disarm', 'endSession', 'answerReceipt'] },
    failed: { type: 'final', entry: ['disarm', 'endSession', 'answerFailed'] },
  },
  on: {
    CHIP_REFUSED: { target: '.failed', actions: 'fail' },
    DEADLINE_PASSED: { target: '.failed', actions: 'failTimeout' },
    SESSION_LOST: { target: '.failed', actions: 'failTimeout' },
  },
});
