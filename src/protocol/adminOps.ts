/**
 * The admin operation table: one declaration per kind of admin session, the
 * sessions the admin SAM runs with a chip under K_chip (docs/protocol.md §2),
 * relayed by the server and the chip's terminal. The admin SAM reads
 * everything it does per operation from here: the request it takes and the
 * answer it gives, the step its messages carry, the chip command it sends per
 * area, what the chip's key check value is compared with, the decision-record
 * event that must allow the session first, the grants its success issues, and
 * whether its success ends the migration's temp keys. The server reads the
 * request's step and what the answer becomes for the machine that asked.
 *
 * Adding an operation: docs/architecture.md, "Adding an admin operation".
 *
 * Pure data, like the step table (steps.ts): no import but types, so every
 * layer (the machines included) may read it.
 */
import type { Step } from './steps.ts';

/** Why an identify runs: the step its request carries follows it. */
export type AdminPurpose = 'register' | 'source' | 'destination';

/** The chip commands of admin sessions (their schemas: src/transport/chip.frames.ts). */
export type AdminChipCommand = 'list' | 'lock' | 'format' | 'activate' | 'restore' | 'wipe' | 'wipeRevoked';

/**
 * What the key check value the chip answers after each command is compared
 * with (protocol.md §2), always in constant time (sameKcv):
 *
 *  - `none`: no key was installed or switched (a list, a wipe).
 *  - `tempKey`: the temp key this SAM made and the command installed.
 *  - `tempKeyAndSetAsideMain`: the temp key; and the check value of the main
 *    key the command set aside (`prevKcv`), kept here for the restore (and, on
 *    a repeated lock, compared with the one kept).
 *  - `receiptMainKey`: the destination's main key, as the item's receipt (S14)
 *    gave its check value at the commit.
 *  - `setAsideSourceMain`: the source's main key, as the lock kept its check
 *    value (an area the lock never reached has none to compare).
 */
export type KeyCheck = 'none' | 'tempKey' | 'tempKeyAndSetAsideMain' | 'receiptMainKey' | 'setAsideSourceMain';

export interface AdminOpDeclaration {
  readonly op: string;
  readonly title: string;
  /**
   * The step the request carries, and with it the session's chip commands
   * and its answer. Identify's request follows its purpose; the session
   * keeps no purpose, so its answer carries the source's (`adminStepOf`).
   */
  readonly step: Step | Readonly<Record<AdminPurpose, Step>>;
  /** The request the server sends (its schema: src/transport/messages.ts). */
  readonly request: `admin.${string}`;
  /** The answer to a session that succeeded (a failed one is answered `error`). */
  readonly reply: `admin.${string}`;
  readonly chipCommand: AdminChipCommand;
  /** What each chip command carries besides its area, migration and step. */
  readonly carries: readonly ('provider' | 'tempKey')[];
  /** The areas the session runs its command on: the request's items, the decision record's, or none (one command for the chip). */
  readonly items: 'request' | 'record' | null;
  /** With no item in the decision record (an abort overtook the lock: no area was switched), the request is answered at once. */
  readonly answeredWithoutItems: boolean;
  readonly keyCheck: KeyCheck;
  /**
   * The decision-record event (decision.machine.ts) that must be accepted
   * before the session opens, with the refusal's sentence when it is not. An
   * operation with a gate names its migration (header "mig"); one without may.
   */
  readonly gate: { readonly event: string; readonly refusal: string } | null;
  /** The grants a success issues (sealed temp keys for the migration SAMs), if any. */
  readonly grants: 'upload' | 'download' | null;
  /**
   * The decision a success settles the migration's temp keys under: they are deleted in the turn that answers it
   * (a wipe, the source backup's end, deletes their records too; under any other decision it deletes nothing).
   */
  readonly endsTempKeys: 'committed' | 'aborted' | null;
  /** The event the server gives the machine that asked, when the answer comes (migration.logic.ts, registration.machine.ts). */
  readonly answers: string;
}

export const ADMIN_OP_TABLE = [
  {
    op: 'identify',
    title: 'the chip proves its serial and lists its areas',
    step: { register: 'register', source: 'S1', destination: 'S9' },
    request: 'admin.identify',
    reply: 'admin.identified',
    chipCommand: 'list',
    carries: [],
    items: null,
    answeredWithoutItems: false,
    keyCheck: 'none',
    gate: null,
    grants: null,
    endsTempKeys: null,
    answers: 'CHIP_IDENTIFIED',
  },
  {
    op: 'lock',
    title: 'lock the source: main key -> temp key, per area',
    step: 'S3',
    request: 'admin.lock',
    reply: 'admin.locked',
    chipCommand: 'lock',
    carries: ['tempKey'],
    items: 'request',
    answeredWithoutItems: false,
    keyCheck: 'tempKeyAndSetAsideMain',
    gate: { event: 'LOCK_REQUESTED', refusal: 'the source can be locked only while the record is pending, and only the source it was created for' },
    grants: 'upload',
    endsTempKeys: null,
    answers: 'SOURCE_LOCKED',
  },
  {
    op: 'format',
    title: 'format the destination: install the temp key, per area',
    step: 'S10',
    request: 'admin.format',
    reply: 'admin.formatted',
    chipCommand: 'format',
    carries: ['provider', 'tempKey'],
    items: 'record',
    answeredWithoutItems: false,
    keyCheck: 'tempKey',
    gate: { event: 'FORMAT_REQUESTED', refusal: 'a destination can be formatted only while the record is pending' },
    grants: 'download',
    endsTempKeys: null,
    answers: 'DESTINATION_FORMATTED',
  },
  {
    op: 'activate',
    title: 'activate the destination: temp key -> main key, per area',
    step: 'S16',
    request: 'admin.activate',
    reply: 'admin.activated',
    chipCommand: 'activate',
    carries: [],
    items: 'record',
    answeredWithoutItems: false,
    keyCheck: 'receiptMainKey',
    gate: { event: 'ACTIVATE_REQUESTED', refusal: 'activation needs a committed decision record, for its own destination' },
    grants: null,
    endsTempKeys: 'committed',
    answers: 'DESTINATION_ACTIVATED',
  },
  {
    op: 'restore',
    title: 'restore the source: temp key -> main key, per area',
    step: 'rollback',
    request: 'admin.restore',
    reply: 'admin.restored',
    chipCommand: 'restore',
    carries: [],
    items: 'record',
    answeredWithoutItems: true,
    keyCheck: 'setAsideSourceMain',
    gate: { event: 'RESTORE_REQUESTED', refusal: 'the source is restored only under an aborted decision record' },
    grants: null,
    endsTempKeys: 'aborted',
    answers: 'SOURCE_RESTORED',
  },
  {
    op: 'wipe',
    title: "wipe: the destination's areas in a rollback, or the source's backup after the commit",
    step: 'rollback',
    request: 'admin.wipe',
    reply: 'admin.wiped',
    chipCommand: 'wipe',
    carries: [],
    items: 'record',
    answeredWithoutItems: true,
    keyCheck: 'none',
    gate: { event: 'WIPE_REQUESTED', refusal: 'a destination is wiped only when aborted, a source only when committed' },
    grants: null,
    // Under `committed` only (the source's backup, after the commit): the temp-key records of its areas are deleted.
    endsTempKeys: 'committed',
    answers: 'DESTINATION_WIPED',
  },
  {
    // No decision record: each area's authority is its provider's revocation (src/actors/adminLostWipe.ts checks it).
    op: 'wipeLost',
    title: "wipe a found-again lost chip's revoked areas, each under its provider's signed revocation",
    step: 'rollback',
    request: 'admin.wipe-lost',
    reply: 'admin.wiped-lost',
    chipCommand: 'wipeRevoked',
    carries: [],
    items: 'request',
    answeredWithoutItems: false,
    keyCheck: 'none',
    gate: null,
    grants: null,
    endsTempKeys: null,
    // Never a migration's: the server gives its answer to the lost chip's wipe actor (serverLostWipe.ts) as SOURCE_WIPED.
    answers: 'DESTINATION_WIPED',
  },
] as const satisfies readonly AdminOpDeclaration[];

/** One declaration of the table, with its literal types. */
export type AdminOpEntry = (typeof ADMIN_OP_TABLE)[number];

/** An admin operation's name. */
export type AdminOp = AdminOpEntry['op'];
/** The requests of admin operations, and their answers. */
export type AdminRequestType = AdminOpEntry['request'];
export type AdminReplyType = AdminOpEntry['reply'];

/** Every admin operation, by name. */
export const ADMIN_OPS = Object.fromEntries(ADMIN_OP_TABLE.map((d) => [d.op, d])) as { readonly [O in AdminOp]: Extract<AdminOpEntry, { op: O }> };

const BY_REQUEST = new Map<string, AdminOpEntry>(ADMIN_OP_TABLE.map((d) => [d.request, d]));
const BY_REPLY = new Map<string, AdminOpEntry>(ADMIN_OP_TABLE.map((d) => [d.reply, d]));

/** The operation a request asks for, if it is an admin operation's. */
export function adminOpOfRequest(type: string): AdminOpEntry | undefined {
  return BY_REQUEST.get(type);
}

/** The operation an answer ends, if it is an admin operation's. */
export function adminOpOfReply(type: string): AdminOpEntry | undefined {
  return BY_REPLY.get(type);
}

/** The step an operation's request carries (an identify's, by its purpose; with none, the source's, as its session's answer does). */
export function adminStepOf(op: AdminOp, purpose: AdminPurpose = 'source'): Step {
  const step = ADMIN_OPS[op].step;
  return typeof step === 'string' ? step : step[purpose];
}

/**
 * Whether the operation's commands install the migration's temp key (and its
 * success seals it into grants): it can run only while that key lives, i.e.
 * while the decision record is pending.
 */
export function usesTempKey(op: AdminOp): boolean {
  return (ADMIN_OPS[op].carries as readonly string[]).includes('tempKey');
}
