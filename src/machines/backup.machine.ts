/**
 * The end of the backup (issue 22, point 3; protocol.md §3, "After the
 * commit"): one actor per committed migration, hosted by the server, spawned
 * when the migration completes. The source chip's areas stay locked under
 * the temp key (the backup) until the user confirms the move
 * (`valmove terminal end-backup`) or the retention period ends; then the
 * admin SAM wipes them in an admin session under K_chip (the decision record
 * allows a source wipe only when `committed`), and deletes the temp-key
 * records it kept for them.
 *
 *   kept  --END_REQUESTED (the user) | DEADLINE_PASSED (retention)-->  ending
 *   ending: awaitingSource (its phone is not connected) -> reserving
 *           -> wiping (admin session, relayed) -> releasing  -> wiped
 *
 * The retention end is data (`timer`, from `retainUntil`), as every
 * deadline: no `after`. The wipe is idempotent (its chip commands carry the
 * migration and step, and the chip answers a repeat with the same answer),
 * so a step that failed, or a party that crashed mid-wipe, is simply asked
 * again; a source phone that goes away is waited for.
 */
import { assign, emit, setup } from 'xstate';
import { retryAt } from './retry.ts';

export const BACKUP_MACHINE_VERSION = 1;

/** Default retention of a committed migration's backup: 14 days (protocol.md §3, "After the commit", says why). */
export const BACKUP_RETENTION_MS_DEFAULT = 14 * 24 * 60 * 60 * 1000;

export interface BackupInput {
  mig: string;
  user: string;
  /** The source phone's terminal: the wipe's admin session runs through it. */
  terminal: string;
  /** The source chip. */
  serial: string;
  /** The backup's areas (the migration's items). */
  areas: string[];
  /** When the retention period ends (ms, the server's clock). */
  retainUntil: number;
  /** Whether the source phone's terminal is connected. */
  online: boolean;
  timing: { retryBaseMs: number; retryCapMs: number };
}

export interface BackupContext extends BackupInput {
  /** Who ended the backup: the user, or the retention period. */
  endedBy: 'user' | 'retention' | null;
  session: { id: string } | null;
  sessions: number;
  attempts: number;
  /** The deadline the runtime delivers (timers as data): the retention's end, or a retry's. */
  timer: { atMs: number; event: 'DEADLINE_PASSED' | 'RETRY_DUE' } | null;
  reason: string | null;
  /** When the admin SAM answered that the source areas are wiped. */
  wipedAt: number | null;
}

export type BackupEvent =
  | { type: 'END_REQUESTED' }
  | { type: 'DEADLINE_PASSED' }
  | { type: 'RETRY_DUE' }
  | { type: 'TERMINAL_BACK'; terminal: string }
  | { type: 'TERMINAL_LOST'; terminal: string }
  | { type: 'CHANNEL_RESERVED' }
  | { type: 'CHANNEL_RELEASED' }
  | { type: 'SAM_FRAME'; from: string; session: string; data: string }
  | { type: 'CHIP_FRAME'; from: string; session: string; data: string }
  | { type: 'SOURCE_WIPED'; now: number }
  | { type: 'STEP_FAILED'; code: string; message: string; now: number };

export type BackupIntent =
  | { type: 'reserveChannel'; terminal: string }
  | { type: 'releaseChannel'; terminal: string }
  | { type: 'wipeSource'; session: string; serial: string }
  | { type: 'relayToChip'; terminal: string; session: string; data: string }
  | { type: 'relayToSam'; session: string; data: string }
  | { type: 'progress'; terminal: string; text: string };

type E<T extends BackupEvent['type']> = Extract<BackupEvent, { type: T }>;

const ADMIN_SAM = 'admin-sam';

const backupSetup = setup({
  types: {
    context: {} as BackupContext,
    events: {} as BackupEvent,
    emitted: {} as BackupIntent,
    input: {} as BackupInput,
  },
  guards: {
    online: ({ context }) => context.online,
    ourTerminal: ({ context, event }) => (event as E<'TERMINAL_BACK'>).terminal === context.terminal,
    samFrameOfSession: ({ context, event }) => {
      const e = event as E<'SAM_FRAME'>;
      return context.session !== null && e.session === context.session.id && e.from === ADMIN_SAM;
    },
    chipFrameOfSession: ({ context, event }) => {
      const e = event as E<'CHIP_FRAME'>;
      return context.session !== null && e.session === context.session.id && e.from === context.terminal;
    },
  },
  actions: {
    markOnline: assign({ online: ({ context, event }) => ((event as E<'TERMINAL_BACK'>).terminal === context.terminal ? true : context.online) }),
    markOffline: assign({ online: ({ context, event }) => ((event as E<'TERMINAL_LOST'>).terminal === context.terminal ? false : context.online) }),
    endedByUser: assign({ endedBy: 'user' as const, timer: null }),
    endedByRetention: assign({ endedBy: 'retention' as const, timer: null }),
    reserveChannel: emit(({ context }) => ({ type: 'reserveChannel' as const, terminal: context.terminal })),
    releaseChannel: emit(({ context }) => ({ type: 'releaseChannel' as const, terminal: context.terminal })),
    openSession: assign(({ context }) => ({ session: { id: `bk-${context.mig}:${context.sessions + 1}` }, sessions: context.sessions + 1 })),
    closeSession: assign({ session: null }),
    wipeSource: emit(({ context }) => ({ type: 'wipeSource' as const, session: context.session!.id, serial: context.serial })),
    relayToChip: emit(({ context, event }) => {
      const e = event as E<'SAM_FRAME'>;
      return { type: 'relayToChip' as const, terminal: context.terminal, session: e.session, data: e.data };
    }),
    relayToSam: emit(({ event }) => {
      const e = event as E<'CHIP_FRAME'>;
      return { type: 'relayToSam' as const, session: e.session, data: e.data };
    }),
    progressWiping: emit(({ context }) => ({
      type: 'progress' as const,
      terminal: context.terminal,
      text: `wiping the backup of ${context.mig} on chip ${context.serial} (${context.areas.length} locked area(s))`,
    })),
    noteWiped: assign({ wipedAt: ({ event }) => (event as E<'SOURCE_WIPED'>).now, reason: null }),
    noteFailure: assign({ reason: ({ event }) => `${(event as E<'STEP_FAILED'>).code}: ${(event as E<'STEP_FAILED'>).message}` }),
    countAttempt: assign({ attempts: ({ context }) => context.attempts + 1 }),
    resetAttempts: assign({ attempts: 0 }),
    armRetry: assign({
      timer: ({ context, event }) => ({
        atMs: retryAt((event as E<'STEP_FAILED'>).now, context.attempts, context.timing),
        event: 'RETRY_DUE' as const,
      }),
    }),
    disarmTimer: assign({ timer: null }),
  },
});

/** A step's request failed: wait out the backoff (a timer kept in the context), then ask again. */
const backOff = (retry: string) => ({ STEP_FAILED: { target: retry, actions: ['noteFailure', 'armRetry', 'countAttempt'] } }) as const;
const retryTo = (step: string) => ({ on: { RETRY_DUE: { target: step, actions: 'disarmTimer' } } }) as const;
/** The source phone went away: the session ends, and the backup waits for it to connect again. */
const LOST = {
  TERMINAL_LOST: { guard: 'ourTerminal', target: '#backup.ending.awaitingSource', actions: ['markOffline', 'closeSession', 'disarmTimer'] },
} as const;

export const backupMachine = backupSetup.createMachine({
  id: 'backup',
  context: ({ input }) => ({
    ...input,
    endedBy: null,
    session: null,
    sessions: 0,
    attempts: 0,
    timer: { atMs: input.retainUntil, event: 'DEADLINE_PASSED' as const },
    reason: null,
    wipedAt: null,
  }),
  initial: 'kept',
  on: {
    TERMINAL_BACK: { actions: 'markOnline' },
    TERMINAL_LOST: { actions: 'markOffline' },
  },
  states: {
    kept: {
      description: 'Committed: the value is spendable on the destination; the source stays locked under the temp key until the retention ends.',
      on: {
        END_REQUESTED: { target: 'ending', actions: 'endedByUser' },
        DEADLINE_PASSED: { target: 'ending', actions: 'endedByRetention' },
      },
    },
    ending: {
      initial: 'checking',
      entry: 'resetAttempts',
      states: {
        checking: {
          always: [{ guard: 'online', target: 'reserving' }, { target: 'awaitingSource' }],
        },
        awaitingSource: {
          description: "The source phone is not connected: the wipe waits until it connects again (the server's TERMINAL_BACK).",
          on: { TERMINAL_BACK: { guard: 'ourTerminal', target: 'reserving', actions: 'markOnline' } },
        },
        reserving: {
          entry: 'reserveChannel',
          on: { CHANNEL_RESERVED: 'wiping', ...backOff('reserveRetry'), ...LOST },
        },
        reserveRetry: { on: { ...retryTo('reserving').on, ...LOST } },
        wiping: {
          description: 'Under the committed record only, the admin SAM wipes every source area (locked -> absent) and deletes their temp keys.',
          entry: ['openSession', 'progressWiping', 'wipeSource'],
          exit: 'closeSession',
          on: {
            SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
            CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
            SOURCE_WIPED: { target: 'releasing', actions: 'noteWiped' },
            ...backOff('wipeRetry'),
            ...LOST,
          },
        },
        // A failed wipe reserves the channel again before its next session: another backup of the same phone
        // may have released it meanwhile (its phone answers a reservation it holds with a confirmation).
        wipeRetry: { on: { ...retryTo('reserving').on, ...LOST } },
        releasing: {
          entry: 'releaseChannel',
          on: {
            CHANNEL_RELEASED: '#backup.wiped',
            ...backOff('releaseRetry'),
            // The areas are wiped; the channel is released when the phone is back (its reader waits until then).
            TERMINAL_LOST: { guard: 'ourTerminal', target: 'releaseLater', actions: ['markOffline', 'disarmTimer'] },
          },
        },
        releaseRetry: {
          on: { ...retryTo('releasing').on, TERMINAL_LOST: { guard: 'ourTerminal', target: 'releaseLater', actions: ['markOffline', 'disarmTimer'] } },
        },
        releaseLater: {
          description: 'Wiped; the source phone went away before its channel was released.',
          on: { TERMINAL_BACK: { guard: 'ourTerminal', target: 'releasing', actions: 'markOnline' } },
        },
      },
    },
    wiped: {
      type: 'final',
      description: 'The source areas are absent and the admin SAM holds no temp-key record for them.',
    },
  },
});
