/**
 * Chip registration (protocol.md §1): a logged-in user registers the chip on
 * their terminal. The chip proves its serial to the admin SAM with K_chip in
 * an admin session relayed by the server, and only then does the server's
 * registry map serial -> user. A serial is never taken from what a terminal
 * claims.
 */
import { assign, emit, setup } from 'xstate';
import type { ErrorCode, Refusal } from '../protocol/errors.ts';
import type { AreaReport } from './migration.machine.ts';

/** 2: a refusal is kept as { code, message } (it was one "CODE: message" string, split again by the server). */
export const REGISTRATION_MACHINE_VERSION = 2;

export interface RegistrationContext {
  reg: string;
  user: string;
  terminal: string;
  request: string;
  session: string | null;
  serial: string | null;
  areas: string[];
  /** Why the registration was refused, as it goes to the terminal: code and sentence, two fields. */
  refusal: Refusal | null;
  attempts: number;
}

export type RegistrationEvent =
  | { type: 'CHANNEL_RESERVED' }
  | { type: 'CHANNEL_RELEASED' }
  | { type: 'CHIP_IDENTIFIED'; serial: string; areas: AreaReport[]; owner: string | null; now: number }
  | { type: 'STEP_FAILED'; code: ErrorCode; message: string }
  | { type: 'SAM_FRAME'; from: string; session: string; data: string }
  | { type: 'CHIP_FRAME'; from: string; session: string; data: string };

export type RegistrationIntent =
  | { type: 'reserveChannel'; terminal: string }
  | { type: 'identifyChip'; session: string }
  | { type: 'relayToChip'; terminal: string; session: string; data: string }
  | { type: 'relayToSam'; sam: string; session: string; data: string }
  | { type: 'releaseChannel'; terminal: string }
  | { type: 'recordRegistration'; serial: string; user: string; areas: string[] }
  | { type: 'answer'; terminal: string; request: string; serial: string | null; user: string; refusal: Refusal | null };

/** Identification attempts before the registration is refused. */
export const REGISTRATION_ATTEMPTS_MAX = 3;

type E<T extends RegistrationEvent['type']> = Extract<RegistrationEvent, { type: T }>;

export const registrationMachine = setup({
  types: {
    context: {} as RegistrationContext,
    events: {} as RegistrationEvent,
    emitted: {} as RegistrationIntent,
    input: {} as { reg: string; user: string; terminal: string; request: string },
  },
  guards: {
    ownerFree: ({ context, event }) => {
      const e = event as E<'CHIP_IDENTIFIED'>;
      return e.owner === null || e.owner === context.user;
    },
    samFrameOfSession: ({ context, event }) => {
      const e = event as E<'SAM_FRAME'>;
      return e.session === context.session && e.from === 'admin-sam';
    },
    chipFrameOfSession: ({ context, event }) => {
      const e = event as E<'CHIP_FRAME'>;
      return e.session === context.session && e.from === context.terminal;
    },
    attemptsLeft: ({ context }) => context.attempts + 1 < REGISTRATION_ATTEMPTS_MAX,
  },
  actions: {
    reserveChannel: emit(({ context }) => ({ type: 'reserveChannel' as const, terminal: context.terminal })),
    openSession: assign(({ context }) => ({ session: `${context.reg}:register:${context.attempts + 1}` })),
    identifyChip: emit(({ context }) => ({ type: 'identifyChip' as const, session: context.session! })),
    relayToChip: emit(({ context, event }) => {
      const e = event as E<'SAM_FRAME'>;
      return { type: 'relayToChip' as const, terminal: context.terminal, session: e.session, data: e.data };
    }),
    relayToSam: emit(({ event }) => {
      const e = event as E<'CHIP_FRAME'>;
      return { type: 'relayToSam' as const, sam: 'admin-sam', session: e.session, data: e.data };
    }),
    keepChip: assign({
      serial: ({ event }) => (event as E<'CHIP_IDENTIFIED'>).serial,
      areas: ({ event }) => (event as E<'CHIP_IDENTIFIED'>).areas.map((a) => a.area),
    }),
    refuseOwner: assign({
      serial: ({ event }) => (event as E<'CHIP_IDENTIFIED'>).serial,
      refusal: ({ event }) => ({ code: 'NOT_OWNER' as const, message: `chip ${(event as E<'CHIP_IDENTIFIED'>).serial} is registered to another user` }),
    }),
    refuseFailure: assign({ refusal: ({ event }) => ({ code: (event as E<'STEP_FAILED'>).code, message: (event as E<'STEP_FAILED'>).message }) }),
    countAttempt: assign({ attempts: ({ context }) => context.attempts + 1 }),
    record: emit(({ context }) => ({ type: 'recordRegistration' as const, serial: context.serial!, user: context.user, areas: context.areas })),
    releaseChannel: emit(({ context }) => ({ type: 'releaseChannel' as const, terminal: context.terminal })),
    answer: emit(({ context }) => ({
      type: 'answer' as const,
      terminal: context.terminal,
      request: context.request,
      serial: context.serial,
      user: context.user,
      refusal: context.refusal,
    })),
  },
}).createMachine({
  id: 'registration',
  context: ({ input }) => ({ ...input, session: null, serial: null, areas: [], refusal: null, attempts: 0 }),
  initial: 'reservingChannel',
  states: {
    reservingChannel: {
      entry: 'reserveChannel',
      on: {
        CHANNEL_RESERVED: 'identifying',
        STEP_FAILED: { target: 'done', actions: 'refuseFailure' },
      },
    },
    identifying: {
      description: 'The admin SAM runs an admin session with the chip; the chip proves its serial with K_chip.',
      entry: ['openSession', 'identifyChip'],
      on: {
        SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
        CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
        CHIP_IDENTIFIED: [
          { guard: 'ownerFree', target: 'releasing', actions: ['keepChip', 'record'] },
          { target: 'releasing', actions: 'refuseOwner' },
        ],
        STEP_FAILED: [
          { guard: 'attemptsLeft', target: 'identifying', reenter: true, actions: 'countAttempt' },
          { target: 'releasing', actions: 'refuseFailure' },
        ],
      },
    },
    releasing: {
      entry: 'releaseChannel',
      on: { CHANNEL_RELEASED: 'done' },
    },
    done: { type: 'final', entry: 'answer' },
  },
});
