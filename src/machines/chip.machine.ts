/**
 * The chip's session controller. A chip holds one authenticated session at a
 * time, as a smartcard's secure channel: a new AUTH request replaces the old
 * session. What a session may do depends on its purpose and on the key it
 * was opened with (protocol.md §2):
 *
 *   admin    (K_chip)        list, format, lock, restore, activate, wipe, and a batch of those (all or none)
 *   upload   (temp key)      read          - only out of a locked area (S6, S7)
 *   download (temp key)      download      - only into a provisioned area (S13, S14)
 *   normal   (main key)      read, write   - only on a mainActive area
 *
 * The crypto (proofs, session keys, AEAD frames) runs in the chip runtime,
 * which turns each verified step into an event here; decrypted commands never
 * enter this machine (they may hold keys), only their op names do. Whether a
 * command may change an area is the area lifecycle's call (area.machine.ts).
 */
import { assign, emit, setup } from 'xstate';
import type { ErrorCode, Refusal } from '../protocol/errors.ts';

export const CHIP_MACHINE_VERSION = 1;

export type SessionPurpose = 'admin' | 'upload' | 'download' | 'normal';

export const SESSION_OPS: Record<SessionPurpose, readonly string[]> = {
  admin: ['list', 'format', 'lock', 'restore', 'activate', 'wipe', 'wipeRevoked', 'batch'],
  upload: ['read'],
  download: ['download'],
  normal: ['read', 'write'],
};

export interface ChipSession {
  id: string;
  purpose: SessionPurpose;
  area: string;
  mig: string;
}

export type { Refusal };

export interface ChipContext {
  serial: string;
  session: ChipSession | null;
  /** Commands obeyed since power-on (a counter for status pages). */
  commands: number;
}

export type ChipEvent =
  | { type: 'AUTH_REQUESTED'; session: string; purpose: SessionPurpose; area: string; mig: string; refusal?: Refusal }
  | { type: 'SAM_PROVEN'; session: string }
  | { type: 'SAM_REJECTED'; session: string; code: ErrorCode; message: string }
  | { type: 'COMMAND'; session: string; op: string }
  | { type: 'FRAME_REJECTED'; session: string; code: ErrorCode; message: string }
  | { type: 'CLOSE'; session: string }
  | { type: 'POWER_ON' };

export type ChipIntent =
  | { type: 'answerChallenge'; session: string }
  | { type: 'refuseAuth'; session: string; code: ErrorCode; message: string }
  | { type: 'executeCommand'; session: string; op: string }
  | { type: 'refuseCommand'; session: string; op: string; code: ErrorCode; message: string }
  | { type: 'endSession'; session: string };

type E<T extends ChipEvent['type']> = Extract<ChipEvent, { type: T }>;

export const chipMachine = setup({
  types: {
    context: {} as ChipContext,
    events: {} as ChipEvent,
    emitted: {} as ChipIntent,
    input: {} as { serial: string },
  },
  guards: {
    authRefused: ({ event }) => (event as E<'AUTH_REQUESTED'>).refusal !== undefined,
    sameSession: ({ context, event }) => 'session' in event && context.session?.id === event.session,
    commandAllowed: ({ context, event }) => {
      const e = event as E<'COMMAND'>;
      return context.session?.id === e.session && SESSION_OPS[context.session.purpose].includes(e.op);
    },
  },
  actions: {
    beginSession: assign({
      session: ({ event }) => {
        const e = event as E<'AUTH_REQUESTED'>;
        return { id: e.session, purpose: e.purpose, area: e.area, mig: e.mig };
      },
    }),
    clearSession: assign({ session: null }),
    countCommand: assign({ commands: ({ context }) => context.commands + 1 }),
    answerChallenge: emit(({ event }) => ({ type: 'answerChallenge' as const, session: (event as E<'AUTH_REQUESTED'>).session })),
    refuseAuth: emit(({ event }) => {
      const e = event as E<'AUTH_REQUESTED'> | E<'SAM_REJECTED'>;
      const r = e.type === 'AUTH_REQUESTED' ? e.refusal! : { code: e.code, message: e.message };
      return { type: 'refuseAuth' as const, session: e.session, code: r.code, message: r.message };
    }),
    executeCommand: emit(({ event }) => {
      const e = event as E<'COMMAND'>;
      return { type: 'executeCommand' as const, session: e.session, op: e.op };
    }),
    refuseCommand: emit(({ context, event }) => {
      const e = event as E<'COMMAND'>;
      return {
        type: 'refuseCommand' as const,
        session: e.session,
        op: e.op,
        code: 'COMMAND_REFUSED' as const,
        message: `${e.op} is not allowed in a ${context.session?.purpose ?? 'closed'} session`,
      };
    }),
    endSession: emit(({ context, event }) => ({
      type: 'endSession' as const,
      session: 'session' in event ? event.session : (context.session?.id ?? '-'),
    })),
  },
}).createMachine({
  id: 'chip',
  context: ({ input }) => ({ serial: input.serial, session: null, commands: 0 }),
  initial: 'idle',
  on: {
    // A new authentication replaces whatever session was open (one secure channel per chip).
    AUTH_REQUESTED: [
      { guard: 'authRefused', target: '.idle', actions: ['clearSession', 'refuseAuth'] },
      { target: '.challenged', actions: ['beginSession', 'answerChallenge'] },
    ],
    // Power loss: RAM (session keys) is gone, non-volatile areas remain.
    POWER_ON: { target: '.idle', actions: 'clearSession' },
  },
  // A smartcard's session controller lives in RAM: every state is 'volatile', so the runtime writes this
  // machine's snapshot when the chip is made and never for a session (runtime/host.ts); power-on starts idle.
  states: {
    idle: { tags: ['volatile'] },
    challenged: {
      tags: ['volatile'],
      description: 'Answered the SAM challenge with our own and our proof; waiting for the SAM to prove it holds the key.',
      on: {
        SAM_PROVEN: { guard: 'sameSession', target: 'open' },
        SAM_REJECTED: { guard: 'sameSession', target: 'idle', actions: ['refuseAuth', 'endSession', 'clearSession'] },
      },
    },
    open: {
      tags: ['volatile'],
      description: 'Mutually authenticated; AEAD frames with strictly increasing counters.',
      on: {
        COMMAND: [
          { guard: 'commandAllowed', target: 'open', actions: ['countCommand', 'executeCommand'] },
          { guard: 'sameSession', target: 'open', actions: 'refuseCommand' },
        ],
        FRAME_REJECTED: { guard: 'sameSession', target: 'idle', actions: ['endSession', 'clearSession'] },
        CLOSE: { guard: 'sameSession', target: 'idle', actions: ['endSession', 'clearSession'] },
      },
    },
  },
});
