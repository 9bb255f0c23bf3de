/**
 * A provider's migration SAM, for one item of one migration (seed ¶0052–0058,
 * Fig. 3 and 4). It holds the item between upload and download, and only
 * does what a grant from the admin SAM binds it to.
 *
 *   idle --upload grant (S5)--> uploading --item read under the temp key (S6, S7)--> holding
 *   idle --issue order (an issuance: the provider's signed order)--> holding
 *   holding --download grant (S12)--> downloading (main key from our normal
 *            SAM, temp-key session with the destination (S13), item + main
 *            key written, key check value verified (S14)) --> downloaded
 *            (receipt signed, S15)
 *   downloaded --clear (S17)--> cleared
 *   fenced: the migration was aborted (rollback); no download, ever; clear once the
 *           source is restored.
 *
 * A failed session returns to where it started and the server retries; the
 * item never leaves `holding` except into a destination that proved it
 * holds the temp key of this very grant.
 */
import { assign, emit, setup } from 'xstate';
import type { ErrorCode, Refusal } from '../protocol/errors.ts';

export const MIGRATION_SAM_MACHINE_VERSION = 1;

export interface MigrationSamContext {
  mig: string;
  item: number;
  session: string | null;
  request: string | null;
  timer: { atMs: number; event: 'DEADLINE_PASSED' } | null;
  failure: Refusal | null;
}

export type MigrationSamEvent =
  | { type: 'UPLOAD_REQUESTED'; request: string; session: string; deadline: number }
  /** An issuance: the provider's issue order, verified, put the item in our store (no upload). */
  | { type: 'ISSUE_PLACED' }
  | { type: 'DOWNLOAD_REQUESTED'; request: string; session: string; deadline: number }
  | { type: 'SESSION_LOST' }
  | { type: 'MAIN_KEY_RECEIVED' }
  | { type: 'CHIP_ANSWERED'; proofOk: boolean }
  | { type: 'CHIP_REFUSED'; code: ErrorCode; message: string }
  | { type: 'CHIP_REPLIED'; ok: boolean; verified: boolean; code?: ErrorCode; message?: string }
  | { type: 'DEADLINE_PASSED' }
  | { type: 'FENCE_REQUESTED'; request: string }
  | { type: 'CLEAR_REQUESTED'; request: string };

export type MigrationSamIntent =
  | { type: 'beginAuth'; session: string; purpose: 'upload' | 'download' }
  | { type: 'sendRead'; session: string }
  | { type: 'askMainKey'; session: string }
  | { type: 'sendDownload'; session: string }
  | { type: 'storeItem' }
  | { type: 'answerUploaded'; request: string }
  | { type: 'signReceipt' }
  | { type: 'answerDownloaded'; request: string }
  | { type: 'answerFailed'; request: string; code: ErrorCode; message: string }
  | { type: 'endSession'; session: string }
  | { type: 'answerFenced'; request: string }
  | { type: 'clearItem' }
  | { type: 'answerCleared'; request: string };

type E<T extends MigrationSamEvent['type']> = Extract<MigrationSamEvent, { type: T }>;

export const migrationSamMachine = setup({
  types: {
    context: {} as MigrationSamContext,
    events: {} as MigrationSamEvent,
    emitted: {} as MigrationSamIntent,
    input: {} as { mig: string; item: number },
  },
  guards: {
    proofOk: ({ event }) => (event as E<'CHIP_ANSWERED'>).proofOk,
    replyOk: ({ event }) => {
      const e = event as E<'CHIP_REPLIED'>;
      return e.ok && e.verified;
    },
  },
  actions: {
    openSession: assign(({ event }) => {
      const e = event as E<'UPLOAD_REQUESTED'> | E<'DOWNLOAD_REQUESTED'>;
      return {
        session: e.session,
        request: e.request,
        failure: null,
        timer: { atMs: e.deadline, event: 'DEADLINE_PASSED' as const },
      };
    }),
    closeSession: assign({ session: null, timer: null }),
    beginUploadAuth: emit(({ context }) => ({ type: 'beginAuth' as const, session: context.session!, purpose: 'upload' as const })),
    beginDownloadAuth: emit(({ context }) => ({ type: 'beginAuth' as const, session: context.session!, purpose: 'download' as const })),
    sendRead: emit(({ context }) => ({ type: 'sendRead' as const, session: context.session! })),
    askMainKey: emit(({ context }) => ({ type: 'askMainKey' as const, session: context.session! })),
    sendDownload: emit(({ context }) => ({ type: 'sendDownload' as const, session: context.session! })),
    storeItem: emit({ type: 'storeItem' as const }),
    signReceipt: emit({ type: 'signReceipt' as const }),
    answerUploaded: emit(({ context, event }) => ({
      type: 'answerUploaded' as const,
      request: 'request' in event ? event.request : context.request!,
    })),
    answerDownloaded: emit(({ context, event }) => ({
      type: 'answerDownloaded' as const,
      request: 'request' in event ? event.request : context.request!,
    })),
    failAuth: assign({ failure: { code: 'AUTH_FAILED', message: "the chip's proof does not verify under the granted temp key" } }),
    failRefused: assign({ failure: ({ event }) => ({ code: (event as E<'CHIP_REFUSED'>).code, message: (event as E<'CHIP_REFUSED'>).message }) }),
    failReply: assign({
      failure: ({ event }) => {
        const e = event as E<'CHIP_REPLIED'>;
        return e.ok
          ? { code: 'KEY_CHECK_FAILED', message: "the destination's key check value does not match its main key" }
          : { code: e.code ?? 'COMMAND_REFUSED', message: e.message ?? 'the chip refused the command' };
      },
    }),
    failTimeout: assign({ failure: { code: 'SESSION_FAILED', message: 'the chip session did not finish before its deadline' } }),
    failFenced: assign({ failure: { code: 'MIGRATION_ABORTED', message: 'this migration was aborted while the session ran; the migration SAM is fenced' } }),
    failLost: assign({ failure: { code: 'SESSION_FAILED', message: 'the migration SAM restarted and lost the session keys; the step is retried' } }),
    answerFailed: emit(({ context }) => ({
      type: 'answerFailed' as const,
      request: context.request!,
      code: context.failure?.code ?? 'SESSION_FAILED',
      message: context.failure?.message ?? 'the chip session failed',
    })),
    endSession: emit(({ context }) => ({ type: 'endSession' as const, session: context.session ?? '-' })),
    refuseFenced: emit(({ event }) => ({
      type: 'answerFailed' as const,
      request: (event as E<'DOWNLOAD_REQUESTED'>).request,
      code: 'MIGRATION_ABORTED' as const,
      message: 'this migration was aborted; the migration SAM is fenced and refuses every download for it',
    })),
    refuseNotHeld: emit(({ event }) => ({
      type: 'answerFailed' as const,
      request: (event as E<'DOWNLOAD_REQUESTED'>).request,
      code: 'UNEXPECTED' as const,
      message: 'this item was never uploaded here',
    })),
    answerFenced: emit(({ event }) => ({ type: 'answerFenced' as const, request: (event as E<'FENCE_REQUESTED'>).request })),
    clearItem: emit({ type: 'clearItem' as const }),
    answerCleared: emit(({ event }) => ({ type: 'answerCleared' as const, request: (event as E<'CLEAR_REQUESTED'>).request })),
  },
}).createMachine({
  id: 'migrationSam',
  context: ({ input }) => ({ mig: input.mig, item: input.item, session: null, request: null, timer: null, failure: null }),
  initial: 'idle',
  states: {
    idle: {
      description: 'Holds a verified upload grant at most; nothing of the item yet.',
      on: {
        UPLOAD_REQUESTED: { target: 'uploading', actions: 'openSession' },
        ISSUE_PLACED: 'holding',
        DOWNLOAD_REQUESTED: { target: 'idle', actions: 'refuseNotHeld' },
        FENCE_REQUESTED: { target: 'fenced', actions: 'answerFenced' },
      },
    },
    uploading: {
      initial: 'authenticating',
      states: {
        authenticating: {
          description: 'S6: mutual authentication with the source area under the temp key of the grant.',
          entry: 'beginUploadAuth',
          on: {
            CHIP_ANSWERED: [
              { guard: 'proofOk', target: 'reading', actions: 'sendRead' },
              { target: '#migrationSam.idle', actions: ['failAuth', 'endSession', 'answerFailed', 'closeSession'] },
            ],
          },
        },
        reading: {
          // Volatile: the session keys are RAM only; a restart ends the session (SESSION_LOST) wherever it stood.
          tags: ['volatile'],
          description: 'S7: the item is read out of the locked area into our store.',
          on: {
            CHIP_REPLIED: [
              { guard: 'replyOk', target: '#migrationSam.holding', actions: ['storeItem', 'endSession', 'answerUploaded', 'closeSession'] },
              { target: '#migrationSam.idle', actions: ['failReply', 'endSession', 'answerFailed', 'closeSession'] },
            ],
          },
        },
      },
      on: {
        CHIP_REFUSED: { target: 'idle', actions: ['failRefused', 'endSession', 'answerFailed', 'closeSession'] },
        DEADLINE_PASSED: { target: 'idle', actions: ['failTimeout', 'endSession', 'answerFailed', 'closeSession'] },
        SESSION_LOST: { target: 'idle', actions: ['failLost', 'answerFailed', 'closeSession'] },
        // Aborted while uploading: the session is abandoned; the source keeps the item (it is locked, then restored).
        // The upload request is answered too: unanswered, the server would send it again for ever.
        FENCE_REQUESTED: { target: 'fenced', actions: ['endSession', 'failFenced', 'answerFailed', 'closeSession', 'answerFenced'] },
      },
    },
    holding: {
      description: 'The item is in our store (and still on the locked source, or, issued, nowhere else yet). Waits for the destination, possibly long.',
      on: {
        UPLOAD_REQUESTED: { target: 'holding', actions: 'answerUploaded' },
        DOWNLOAD_REQUESTED: { target: 'downloading', actions: 'openSession' },
        FENCE_REQUESTED: { target: 'fenced', actions: 'answerFenced' },
      },
    },
    downloading: {
      initial: 'fetchingMainKey',
      states: {
        fetchingMainKey: {
          description: "Our own normal SAM derives the destination's main key and seals it to us.",
          entry: 'askMainKey',
          on: { MAIN_KEY_RECEIVED: 'authenticating' },
        },
        authenticating: {
          description: 'S13: mutual authentication with the destination area under the temp key it was formatted with.',
          entry: 'beginDownloadAuth',
          on: {
            CHIP_ANSWERED: [
              { guard: 'proofOk', target: 'writing', actions: 'sendDownload' },
              { target: '#migrationSam.holding', actions: ['failAuth', 'endSession', 'answerFailed', 'closeSession'] },
            ],
          },
        },
        writing: {
          tags: ['volatile'],
          description: "S14: item and main key written; the chip's key check value must match the main key.",
          on: {
            CHIP_REPLIED: [
              { guard: 'replyOk', target: '#migrationSam.downloaded', actions: ['signReceipt', 'endSession', 'answerDownloaded', 'closeSession'] },
              { target: '#migrationSam.holding', actions: ['failReply', 'endSession', 'answerFailed', 'closeSession'] },
            ],
          },
        },
      },
      on: {
        CHIP_REFUSED: { target: 'holding', actions: ['failRefused', 'endSession', 'answerFailed', 'closeSession'] },
        DEADLINE_PASSED: { target: 'holding', actions: ['failTimeout', 'endSession', 'answerFailed', 'closeSession'] },
        SESSION_LOST: { target: 'holding', actions: ['failLost', 'answerFailed', 'closeSession'] },
        FENCE_REQUESTED: { target: 'fenced', actions: ['endSession', 'failFenced', 'answerFailed', 'closeSession', 'answerFenced'] },
      },
    },
    downloaded: {
      description: 'Receipt signed. The copy stays until the activation is acknowledged (S17) or the migration is fenced.',
      on: {
        DOWNLOAD_REQUESTED: { target: 'downloaded', actions: 'answerDownloaded' },
        CLEAR_REQUESTED: { target: 'cleared', actions: ['clearItem', 'answerCleared'] },
        FENCE_REQUESTED: { target: 'fenced', actions: 'answerFenced' },
      },
    },
    fenced: {
      description: 'Aborted: refuse every download for this migration; clear once the source has its main keys back.',
      // At rest: it only answers, so it may wait on disk (runtime.ts, retire).
      tags: ['rest'],
      on: {
        DOWNLOAD_REQUESTED: { target: 'fenced', actions: 'refuseFenced' },
        FENCE_REQUESTED: { target: 'fenced', actions: 'answerFenced' },
        CLEAR_REQUESTED: { target: 'cleared', actions: ['clearItem', 'answerCleared'] },
      },
    },
    cleared: {
      description: 'Item and grants gone from our store.',
      tags: ['rest'],
      on: {
        CLEAR_REQUESTED: { target: 'cleared', actions: 'answerCleared' },
        FENCE_REQUESTED: { target: 'cleared', actions: 'answerFenced' },
      },
    },
  },
});
