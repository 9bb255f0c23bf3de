/**
 * The admin SAM's side of one admin session with a chip (K_chip), relayed by
 * the server and the chip's terminal. One actor per session; the commands it
 * runs are fixed when it starts:
 *
 *   identify   list                    (S1, S9, registration: the chip proves its serial)
 *   lock       lock(temp) per area     (S3)
 *   format     format(temp) per area   (S10)
 *   activate   activate per area       (S16)
 *   restore    restore per area        (rollback, source)
 *   wipe       wipe per area           (rollback destination, or the source after commit)
 *
 * The area commands go to the chip as one batch (issue 19), which it applies
 * all or none and answers with one reply per command: one exchange, whatever
 * the number of areas (`covers` says how many commands a reply answered).
 * After each key install or slot switch the chip answers a key check value;
 * the runtime compares it with what the admin SAM knows (the temp key, or the
 * receipt's value for the destination's main key) and reports `verified`.
 * A session that stalls fails at its deadline and the server retries.
 *
 * What each operation runs and checks is declared in the admin operation
 * table (src/protocol/adminOps.ts); this machine is the same for all of them.
 */
import { and, assign, emit, setup } from 'xstate';
import type { AdminChipCommand, AdminOp } from '../protocol/adminOps.ts';
import type { ErrorCode, Refusal } from '../protocol/errors.ts';

export const ADMIN_SESSION_MACHINE_VERSION = 3;

/** A command as the machine sees it: no key material (the runtime adds temp keys from its store). */
export interface AdminCommand {
  op: AdminChipCommand;
  area?: string;
  item?: number;
  provider?: string;
  recipient?: string;
}

export interface AdminSessionInput {
  session: string;
  op: AdminOp;
  mig: string | null;
  /** The serial this session must reach; null when the session is there to learn it (identify). */
  serial: string | null;
  commands: AdminCommand[];
  request: string;
  /** Expiry of the grants a lock or format session issues when it is done. */
  expiresAt: number | null;
  /** When the session fails if it has not finished (absolute ms on the runtime's clock). */
  deadline: number;
}

export interface AdminSessionContext extends Omit<AdminSessionInput, 'deadline'> {
  cursor: number;
  provenSerial: string | null;
  failure: Refusal | null;
  timer: { atMs: number; event: 'DEADLINE_PASSED' } | null;
}

export type AdminSessionEvent =
  | { type: 'CHIP_ANSWERED'; serial: string; proofOk: boolean }
  | { type: 'CHIP_REFUSED'; code: ErrorCode; message: string }
  /** The chip's reply to `covers` commands from the cursor (a batch covers several); `at`: which of them failed its check. */
  | { type: 'CHIP_REPLIED'; ok: boolean; verified: boolean; covers?: number; at?: number; code?: ErrorCode; message?: string }
  | { type: 'DEADLINE_PASSED' }
  | { type: 'SESSION_LOST' };

export type AdminSessionIntent =
  | { type: 'beginAuth'; session: string }
  | { type: 'sendCommand'; session: string; index: number; first: boolean }
  | { type: 'sessionDone'; session: string }
  | { type: 'sessionFailed'; session: string; code: ErrorCode; message: string };

/**
 * How many commands, from `index`, go to the chip as one (issue 19: one
 * authenticated command per admin session): every area command that is
 * left, as a batch the chip applies all or none; a list alone.
 */
export function batchSize(ctx: Pick<AdminSessionContext, 'commands'>, index: number): number {
  return ctx.commands[index]?.op === 'list' ? 1 : ctx.commands.length - index;
}

type E<T extends AdminSessionEvent['type']> = Extract<AdminSessionEvent, { type: T }>;

export const adminSessionMachine = setup({
  types: {
    context: {} as AdminSessionContext,
    events: {} as AdminSessionEvent,
    emitted: {} as AdminSessionIntent,
    input: {} as AdminSessionInput,
  },
  guards: {
    chipProven: ({ context, event }) => {
      const e = event as E<'CHIP_ANSWERED'>;
      return e.proofOk && (context.serial === null || context.serial === e.serial);
    },
    replyAccepted: ({ event }) => {
      const e = event as E<'CHIP_REPLIED'>;
      return e.ok && e.verified;
    },
    moreCommands: ({ context, event }) => context.cursor + ((event as E<'CHIP_REPLIED'>).covers ?? 1) < context.commands.length,
  },
  actions: {
    beginAuth: emit(({ context }) => ({ type: 'beginAuth' as const, session: context.session })),
    noteSerial: assign({ provenSerial: ({ event }) => (event as E<'CHIP_ANSWERED'>).serial }),
    sendFirst: emit(({ context }) => ({ type: 'sendCommand' as const, session: context.session, index: 0, first: true })),
    sendNext: emit(({ context }) => ({ type: 'sendCommand' as const, session: context.session, index: context.cursor, first: false })),
    advance: assign({ cursor: ({ context, event }) => context.cursor + ((event as E<'CHIP_REPLIED'>).covers ?? 1) }),
    failAuth: assign({
      failure: ({ context, event }) => {
        const e = event as E<'CHIP_ANSWERED'>;
        return e.proofOk
          ? { code: 'AUTH_FAILED', message: `the chip proved serial ${e.serial}, but this session is for ${context.serial}` }
          : { code: 'AUTH_FAILED', message: "the chip's proof does not verify under K_chip for the serial it claims" };
      },
    }),
    failRefused: assign({
      failure: ({ event }) => {
        const e = event as E<'CHIP_REFUSED'>;
        return { code: e.code, message: e.message };
      },
    }),
    failReply: assign({
      failure: ({ context, event }) => {
        const e = event as E<'CHIP_REPLIED'>;
        const cmd = context.commands[context.cursor + (e.at ?? 0)];
        return e.ok
          ? { code: 'KEY_CHECK_FAILED', message: `the key check value after ${cmd?.op} on ${cmd?.area} does not match` }
          : { code: e.code ?? 'COMMAND_REFUSED', message: e.message ?? `${cmd?.op} refused by the chip` };
      },
    }),
    failTimeout: assign({ failure: { code: 'SESSION_FAILED', message: 'the admin session did not finish before its deadline' } }),
    failLost: assign({
      failure: { code: 'SESSION_FAILED', message: 'the admin SAM restarted and lost the session keys; the step is retried with a new session' },
    }),
    disarm: assign({ timer: null }),
    done: emit(({ context }) => ({ type: 'sessionDone' as const, session: context.session })),
    failed: emit(({ context }) => ({
      type: 'sessionFailed' as const,
      session: context.session,
      code: context.failure?.code ?? 'SESSION_FAILED',
      message: context.failure?.message ?? 'admin session failed',
    })),
  },
}).createMachine({
  id: 'adminSession',
  context: ({ input }) => ({
    session: input.session,
    op: input.op,
    mig: input.mig,
    serial: input.serial,
    commands: input.commands,
    request: input.request,
    expiresAt: input.expiresAt,
    cursor: 0,
    provenSerial: null,
    failure: null,
    timer: { atMs: input.deadline, event: 'DEADLINE_PASSED' },
  }),
  initial: 'authenticating',
  states: {
    authenticating: {
      description: 'Challenge sent; the chip answers with its serial, its challenge and a proof under K_chip(serial).',
      entry: 'beginAuth',
      on: {
        CHIP_ANSWERED: [
          { guard: 'chipProven', target: 'exchanging', actions: ['noteSerial', 'sendFirst'] },
          { target: 'failed', actions: 'failAuth' },
        ],
        CHIP_REFUSED: { target: 'failed', actions: 'failRefused' },
      },
    },
    exchanging: {
      // Volatile: the session keys are RAM only, so a restart fails the session whatever its cursor (SESSION_LOST);
      // the runtime does not write the snapshot of each command's reply (runtime/host.ts).
      tags: ['volatile'],
      description: 'Our proof went with the first command; each reply is checked (key check value) before the next command.',
      on: {
        CHIP_REPLIED: [
          { guard: and(['replyAccepted', 'moreCommands']), target: 'exchanging', actions: ['advance', 'sendNext'] },
          { guard: 'replyAccepted', target: 'done', actions: 'advance' },
          { target: 'failed', actions: 'failReply' },
        ],
        CHIP_REFUSED: { target: 'failed', actions: 'failRefused' },
      },
    },
    done: { type: 'final', entry: ['disarm', 'done'] },
    failed: { type: 'final', entry: ['disarm', 'failed'] },
  },
  on: {
    DEADLINE_PASSED: { target: '.failed', actions: 'failTimeout' },
    // After a restart: session keys lived in RAM only.
    SESSION_LOST: { target: '.failed', actions: 'failLost' },
  },
});
