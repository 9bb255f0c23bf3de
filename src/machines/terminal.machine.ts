/**
 * The terminal: the phone (or a shop's reader) that links a chip to the
 * world. It logs its user in, reserves the chip-control channel when the
 * server asks (seed ¶0084, ¶0091; S1 and S9, released at S8 and S17), and relays session frames it can not read
 * between the chip and the server (migration) or a provider's normal SAM
 * (normal use). It never sees a key or a plaintext value item.
 *
 * Two regions: `account` (login and server-driven jobs) and `reader` (normal
 * use; or the chip reserved, job or not, for the wipe of a committed
 * migration's backup). A reserved channel shuts the reader out, so a chip
 * being migrated can not be spent at the same time.
 */
import { and, assign, emit, enqueueActions, not, setup, stateIn } from 'xstate';
import type { ErrorCode } from '../protocol/errors.ts';

export const TERMINAL_MACHINE_VERSION = 4;

export type JobKind = 'register' | 'migrate-out' | 'migrate-in' | 'cancel' | 'end-backup';
export type ReaderOp = 'balance' | 'pay' | 'topup' | 'use';
/** What the user asks of a migration's source phase: a destination named up front, a deadline, and which providers' items move (selection.ts). */
export interface MigrateOutOptions {
  destination?: string;
  deadlineMs?: number;
  /** The providers whose items move; every item when absent. */
  only?: string[];
  /** `unavailable`: a provider that refuses the preflight or does not answer it stays behind instead of refusing the migration. */
  leaveBehind?: 'unavailable';
}

export interface TerminalContext {
  name: string;
  user: string | null;
  job: { kind: JobKind; mig?: string } | null;
  /** The session of the reader (normal use) currently open, so chip frames go back to the right SAM. */
  reader: { provider: string; session: string } | null;
  lastResult: { ok: boolean; code?: ErrorCode; message?: string } | null;
  /** Set when the terminal restarted: its connection is new, so the server no longer knows its login. */
  loginVoid: boolean;
}

export type TerminalEvent =
  | { type: 'LOGIN_REQUESTED'; user: string }
  | { type: 'CHALLENGE_RECEIVED'; user: string; salt: string; N: number; r: number; p: number }
  | { type: 'LOGIN_ACCEPTED' }
  | { type: 'LOGIN_REJECTED'; code: ErrorCode; message: string }
  | { type: 'LOGOUT' }
  /** The server no longer knows this connection's login (it restarted, or the connection is new). */
  | { type: 'SESSION_EXPIRED'; code: ErrorCode; message: string }
  /** This terminal restarted: what was in RAM (a password being proven) is gone. */
  | { type: 'RESTARTED' }
  | { type: 'REGISTER_REQUESTED' }
  | ({ type: 'MIGRATE_OUT_REQUESTED' } & MigrateOutOptions)
  /** orders: an issuance (the provider's issue orders for this phone's chip) instead of a migration's destination phase. */
  | { type: 'MIGRATE_IN_REQUESTED'; mig?: string; orders?: string[] }
  | { type: 'CANCEL_REQUESTED'; mig: string }
  | { type: 'END_BACKUP_REQUESTED'; mig: string }
  | { type: 'CHANNEL_RESERVE_REQUESTED'; request: string; purpose: string; mig?: string }
  | { type: 'CHANNEL_RELEASE_REQUESTED'; request: string; purpose?: string }
  | { type: 'SERVER_FRAME'; session: string; data: string }
  | { type: 'CHIP_FRAME'; session: string; data: string }
  | { type: 'PROGRESS'; mig: string; step: string; text: string }
  | { type: 'JOB_FINISHED'; mig?: string; outcome: string; reason?: string }
  | { type: 'JOB_FAILED'; code: ErrorCode; message: string }
  | { type: 'READER_REQUESTED'; provider: string; op: ReaderOp; area: string; amount?: number; session: string }
  | { type: 'READER_FRAME'; session: string; data: string }
  | { type: 'READER_DONE' }
  | { type: 'READER_FAILED'; code: ErrorCode; message: string };

export type TerminalIntent =
  | { type: 'beginLogin'; user: string }
  | { type: 'proveLogin'; user: string; salt: string; N: number; r: number; p: number }
  | { type: 'loginFinished'; ok: boolean; code?: ErrorCode; message?: string }
  | { type: 'requestRegister' }
  | ({ type: 'requestMigrateOut' } & MigrateOutOptions)
  | { type: 'requestMigrateIn'; mig?: string; orders?: string[] }
  | { type: 'requestCancel'; mig: string }
  | { type: 'requestEndBackup'; mig: string }
  | { type: 'confirmChannel'; request: string }
  | { type: 'refuseChannel'; request: string; code: ErrorCode; message: string }
  | { type: 'confirmRelease'; request: string }
  | { type: 'relayToChip'; session: string; data: string }
  | { type: 'relayToServer'; session: string; data: string }
  | { type: 'relayToReaderSam'; provider: string; session: string; data: string }
  | { type: 'showProgress'; mig: string; step: string; text: string }
  | { type: 'jobFinished'; ok: boolean; kind: JobKind; mig?: string; outcome?: string; code?: ErrorCode; message?: string }
  | { type: 'beginReader'; provider: string; op: ReaderOp; area: string; amount?: number; session: string }
  | { type: 'readerRefused'; code: ErrorCode; message: string }
  | { type: 'readerFinished'; ok: boolean; code?: ErrorCode; message?: string };

type E<T extends TerminalEvent['type']> = Extract<TerminalEvent, { type: T }>;

export const terminalMachine = setup({
  types: {
    context: {} as TerminalContext,
    events: {} as TerminalEvent,
    emitted: {} as TerminalIntent,
    input: {} as { name: string },
  },
  guards: {
    channelReserved: stateIn({ account: { working: 'channelReserved' } }),
    accountChannel: stateIn({ account: { working: 'channelReserved' } }),
    accountWorking: stateIn({ account: 'working' }),
    /** A reservation for the wipe of a committed migration's backup: the server asks it of the source phone, job or not. */
    forBackup: ({ event }) => (event as E<'CHANNEL_RESERVE_REQUESTED'>).purpose === 'backup',
    readerSession: ({ context, event }) => context.reader !== null && (event as E<'CHIP_FRAME'>).session === context.reader.session,
    readerBusy: ({ context }) => context.reader !== null,
    loginVoided: ({ context }) => context.loginVoid,
  },
  actions: {
    rememberUser: assign({ user: ({ event }) => (event as E<'LOGIN_REQUESTED'>).user }),
    forgetUser: assign({ user: null, loginVoid: false }),
    voidLogin: assign({ loginVoid: true }),
    beginLogin: emit(({ event }) => ({ type: 'beginLogin' as const, user: (event as E<'LOGIN_REQUESTED'>).user })),
    proveLogin: emit(({ event }) => {
      const e = event as E<'CHALLENGE_RECEIVED'>;
      return { type: 'proveLogin' as const, user: e.user, salt: e.salt, N: e.N, r: e.r, p: e.p };
    }),
    loginSucceeded: emit({ type: 'loginFinished' as const, ok: true }),
    loginFailed: emit(({ event }) => {
      const e = event as E<'LOGIN_REJECTED'>;
      return { type: 'loginFinished' as const, ok: false, code: e.code, message: e.message };
    }),
    startRegister: enqueueActions(({ enqueue }) => {
      enqueue.assign({ job: { kind: 'register' } });
      enqueue.emit({ type: 'requestRegister' });
    }),
    startMigrateOut: enqueueActions(({ enqueue, event }) => {
      const e = event as E<'MIGRATE_OUT_REQUESTED'>;
      enqueue.assign({ job: { kind: 'migrate-out' } });
      enqueue.emit({ type: 'requestMigrateOut', destination: e.destination, deadlineMs: e.deadlineMs, only: e.only, leaveBehind: e.leaveBehind });
    }),
    startMigrateIn: enqueueActions(({ enqueue, event }) => {
      const e = event as E<'MIGRATE_IN_REQUESTED'>;
      enqueue.assign({ job: { kind: 'migrate-in', mig: e.mig } });
      enqueue.emit({ type: 'requestMigrateIn', mig: e.mig, ...(e.orders ? { orders: e.orders } : {}) });
    }),
    startCancel: enqueueActions(({ enqueue, event }) => {
      const e = event as E<'CANCEL_REQUESTED'>;
      enqueue.assign({ job: { kind: 'cancel', mig: e.mig } });
      enqueue.emit({ type: 'requestCancel', mig: e.mig });
    }),
    startEndBackup: enqueueActions(({ enqueue, event }) => {
      const e = event as E<'END_BACKUP_REQUESTED'>;
      enqueue.assign({ job: { kind: 'end-backup', mig: e.mig } });
      enqueue.emit({ type: 'requestEndBackup', mig: e.mig });
    }),
    confirmChannel: emit(({ event }) => ({ type: 'confirmChannel' as const, request: (event as E<'CHANNEL_RESERVE_REQUESTED'>).request })),
    refuseChannel: emit(({ event }) => ({
      type: 'refuseChannel' as const,
      request: (event as E<'CHANNEL_RESERVE_REQUESTED'>).request,
      code: 'BUSY' as const,
      message: 'the chip is in use by a reader session; try again when it ends',
    })),
    confirmRelease: emit(({ event }) => ({ type: 'confirmRelease' as const, request: (event as E<'CHANNEL_RELEASE_REQUESTED'>).request })),
    relayToChip: emit(({ event }) => {
      const e = event as E<'SERVER_FRAME'> | E<'READER_FRAME'>;
      return { type: 'relayToChip' as const, session: e.session, data: e.data };
    }),
    relayToServer: emit(({ event }) => {
      const e = event as E<'CHIP_FRAME'>;
      return { type: 'relayToServer' as const, session: e.session, data: e.data };
    }),
    relayToReaderSam: emit(({ context, event }) => {
      const e = event as E<'CHIP_FRAME'>;
      return { type: 'relayToReaderSam' as const, provider: context.reader!.provider, session: e.session, data: e.data };
    }),
    showProgress: emit(({ event }) => {
      const e = event as E<'PROGRESS'>;
      return { type: 'showProgress' as const, mig: e.mig, step: e.step, text: e.text };
    }),
    jobSucceeded: enqueueActions(({ enqueue, context, event }) => {
      const e = event as E<'JOB_FINISHED'>;
      enqueue.emit({ type: 'jobFinished', ok: true, kind: context.job?.kind ?? 'register', mig: e.mig, outcome: e.outcome, message: e.reason });
      enqueue.assign({ job: null, lastResult: { ok: true } });
    }),
    jobFailed: enqueueActions(({ enqueue, context, event }) => {
      const e = event as E<'JOB_FAILED'>;
      enqueue.emit({ type: 'jobFinished', ok: false, kind: context.job?.kind ?? 'register', code: e.code, message: e.message });
      enqueue.assign({ job: null, lastResult: { ok: false, code: e.code, message: e.message } });
    }),
    beginReader: enqueueActions(({ enqueue, event }) => {
      const e = event as E<'READER_REQUESTED'>;
      enqueue.assign({ reader: { provider: e.provider, session: e.session } });
      enqueue.emit({ type: 'beginReader', provider: e.provider, op: e.op, area: e.area, amount: e.amount, session: e.session });
    }),
    refuseReader: emit({
      type: 'readerRefused' as const,
      code: 'CHANNEL_RESERVED' as const,
      message: 'the chip-control channel is reserved for a migration; normal use waits until it is released',
    }),
    readerSucceeded: enqueueActions(({ enqueue }) => {
      enqueue.emit({ type: 'readerFinished', ok: true });
      enqueue.assign({ reader: null });
    }),
    readerFailed: enqueueActions(({ enqueue, event }) => {
      const e = event as E<'READER_FAILED'>;
      enqueue.emit({ type: 'readerFinished', ok: false, code: e.code, message: e.message });
      enqueue.assign({ reader: null });
    }),
  },
}).createMachine({
  id: 'terminal',
  type: 'parallel',
  context: ({ input }) => ({ name: input.name, user: null, job: null, reader: null, lastResult: null, loginVoid: false }),
  states: {
    account: {
      initial: 'loggedOut',
      states: {
        loggedOut: {
          on: { LOGIN_REQUESTED: { target: 'loggingIn', actions: ['rememberUser', 'beginLogin'] } },
        },
        loggingIn: {
          initial: 'awaitingChallenge',
          states: {
            awaitingChallenge: {
              description: "S1/S9: asked the server for this user's salt and scrypt parameters.",
              on: { CHALLENGE_RECEIVED: { target: 'provingPassword', actions: 'proveLogin' } },
            },
            provingPassword: {
              description: 'Sent the scrypt-derived proof inside the channel; the password itself never leaves the terminal.',
              on: { LOGIN_ACCEPTED: { target: '#terminal.account.loggedIn', actions: 'loginSucceeded' } },
            },
          },
          on: {
            LOGIN_REJECTED: { target: 'loggedOut', actions: ['forgetUser', 'loginFailed'] },
            RESTARTED: { target: 'loggedOut', actions: 'forgetUser' },
          },
        },
        loggedIn: {
          on: {
            REGISTER_REQUESTED: { target: 'working', actions: 'startRegister' },
            MIGRATE_OUT_REQUESTED: { target: 'working', actions: 'startMigrateOut' },
            MIGRATE_IN_REQUESTED: { target: 'working', actions: 'startMigrateIn' },
            CANCEL_REQUESTED: { target: 'working', actions: 'startCancel' },
            END_BACKUP_REQUESTED: { target: 'working', actions: 'startEndBackup' },
            // A new login replaces this one (the user's expectation when `--user` comes with each command); a failed one logs out.
            LOGIN_REQUESTED: { target: 'loggingIn', actions: ['rememberUser', 'beginLogin'] },
            LOGOUT: { target: 'loggedOut', actions: 'forgetUser' },
            SESSION_EXPIRED: { target: 'loggedOut', actions: 'forgetUser' },
            // A restarted terminal has a new connection: the server no longer knows its login.
            RESTARTED: { target: 'loggedOut', actions: 'forgetUser' },
          },
        },
        working: {
          initial: 'awaitingServer',
          states: {
            awaitingServer: {
              on: {
                CHANNEL_RESERVE_REQUESTED: [
                  { guard: and([not('forBackup'), 'readerBusy']), target: 'awaitingServer', actions: 'refuseChannel' },
                  { guard: not('forBackup'), target: 'channelReserved', actions: 'confirmChannel' },
                ],
                // Releasing a channel that is not reserved is already done (a repeated or early release).
                CHANNEL_RELEASE_REQUESTED: { guard: not('forBackup'), target: 'awaitingServer', actions: 'confirmRelease' },
              },
            },
            channelReserved: {
              description: 'The chip-control channel is ours (¶0084): relay frames between the server and the chip.',
              on: {
                SERVER_FRAME: { target: 'channelReserved', actions: 'relayToChip' },
                CHIP_FRAME: { guard: not('readerSession'), target: 'channelReserved', actions: 'relayToServer' },
                CHANNEL_RESERVE_REQUESTED: { guard: not('forBackup'), target: 'channelReserved', actions: 'confirmChannel' },
                CHANNEL_RELEASE_REQUESTED: { guard: not('forBackup'), target: 'awaitingServer', actions: 'confirmRelease' },
              },
            },
          },
          on: {
            PROGRESS: { actions: 'showProgress' },
            JOB_FINISHED: [
              { guard: 'loginVoided', target: 'loggedOut', actions: ['jobSucceeded', 'forgetUser'] },
              { target: 'loggedIn', actions: 'jobSucceeded' },
            ],
            JOB_FAILED: [
              { guard: 'loginVoided', target: 'loggedOut', actions: ['jobFailed', 'forgetUser'] },
              { target: 'loggedIn', actions: 'jobFailed' },
            ],
            SESSION_EXPIRED: { target: 'loggedOut', actions: ['jobFailed', 'forgetUser'] },
            // The job goes on (its request is sent again); the login does not survive the restart.
            RESTARTED: { actions: 'voidLogin' },
          },
        },
      },
    },
    reader: {
      initial: 'free',
      states: {
        free: {
          on: {
            READER_REQUESTED: [
              { guard: 'channelReserved', target: 'free', actions: 'refuseReader' },
              { target: 'active', actions: 'beginReader' },
            ],
            CHANNEL_RESERVE_REQUESTED: { guard: 'forBackup', target: 'backupChannel', actions: 'confirmChannel' },
            CHANNEL_RELEASE_REQUESTED: { guard: 'forBackup', target: 'free', actions: 'confirmRelease' },
          },
        },
        backupChannel: {
          description:
            "The server reserved the chip for the wipe of a committed migration's backup (protocol.md §3, after the commit), job or not: " +
            'its admin session is relayed here (unless a job holds the channel and relays it), and normal use waits.',
          on: {
            READER_REQUESTED: { target: 'backupChannel', actions: 'refuseReader' },
            // The wipe's progress, shown here when no job shows it.
            PROGRESS: { guard: not('accountWorking'), actions: 'showProgress' },
            SERVER_FRAME: { guard: not('accountChannel'), target: 'backupChannel', actions: 'relayToChip' },
            CHIP_FRAME: { guard: not('accountChannel'), target: 'backupChannel', actions: 'relayToServer' },
            CHANNEL_RESERVE_REQUESTED: { guard: 'forBackup', target: 'backupChannel', actions: 'confirmChannel' },
            CHANNEL_RELEASE_REQUESTED: { guard: 'forBackup', target: 'free', actions: 'confirmRelease' },
          },
        },
        active: {
          description: "Normal use (¶0033): relay between a provider's normal SAM and the chip.",
          on: {
            CHANNEL_RESERVE_REQUESTED: { guard: 'forBackup', target: 'active', actions: 'refuseChannel' },
            READER_FRAME: { target: 'active', actions: 'relayToChip' },
            CHIP_FRAME: { guard: 'readerSession', target: 'active', actions: 'relayToReaderSam' },
            READER_DONE: { target: 'free', actions: 'readerSucceeded' },
            READER_FAILED: { target: 'free', actions: 'readerFailed' },
          },
        },
      },
    },
  },
});
