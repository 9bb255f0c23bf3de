/**
 * The protocol table: one declaration per step of a migration (docs/protocol.md
 * §3), in the order a migration runs them. Everything that names a step reads
 * it from here: the envelope header's `step` (transport/envelope.ts), the
 * trace's step groups and titles, `valmove status` (what a migration in each
 * state waits for), `--crash-at`, and the step index of the docs
 * (docs/steps.md, written by `valmove steps`; a test keeps it current).
 *
 * `states` lists every state of the migration machine that belongs to the
 * step, by its path; a test checks that each of the machine's states is in
 * exactly one step and that each progress line a state announces names that
 * step, so a renamed state fails there instead of silently.
 *
 * Pure data: no import but types, so every layer (the machines included) may
 * read it.
 */

/** What a migration in a state waits for, for `valmove status`. `{provider}` and `{item}` name the current item. */
export type Waiting =
  | string
  /** A retry timer: "a retry at <time> after: <reason>". */
  | { retry: true };

export interface StepDeclaration {
  /** The step's name in envelope headers, traces and `--crash-at`. */
  readonly id: string;
  readonly title: string;
  /** Which chip (or none) the step works on. */
  readonly chip: 'source' | 'destination' | 'both' | null;
  /** The requests that carry this step in their header (their replies carry it back). */
  readonly requests: readonly string[];
  /** The chip command the step runs, if it runs one. */
  readonly chipCommand?: string;
  /** The key check value compared after the chip's answer, if there is one: what it is compared with. */
  readonly keyCheck?: string;
  /** The migration machine's states in this step (paths), and what the migration waits for in each. */
  readonly states: Readonly<Record<string, Waiting>>;
  /** Where the step's code is, the first file to open first (at most 5): the docs' step index. */
  readonly files: readonly string[];
}

const RETRY = { retry: true } as const;
const RESERVE = 'the terminal to reserve its chip-control channel';
const RELEASE = 'the terminal to release its chip-control channel';
const PROVE = 'the chip to prove its serial to the admin SAM';
const CLEAR = 'the migration SAMs to clear their copies';

const TABLE = [
  {
    id: 'S1',
    title: 'source: log in, prove serial, reserve channel',
    chip: 'source',
    requests: ['migrate.out', 'channel.reserve', 'admin.identify'],
    chipCommand: 'list (under K_chip)',
    states: {
      starting: 'the migration to start',
      'sourcePhase.reservingChannel': RESERVE,
      'sourcePhase.reserveRetry': RETRY,
      'sourcePhase.identifying': PROVE,
      'sourcePhase.identifyRetry': RETRY,
    },
    files: [
      'src/machines/migration.machine.ts',
      'src/actors/serverIntents.ts',
      'src/protocol/adminOps.ts',
      'src/actors/adminSam.actor.ts',
      'src/actors/chipAreas.ts',
    ],
  },
  {
    id: 'S2',
    title: 'find the value items',
    chip: 'source',
    requests: [],
    states: { 'sourcePhase.recordingItems': "the chip's value items to be recorded" },
    files: ['src/machines/migration.machine.ts', 'src/machines/migration.logic.ts'],
  },
  {
    id: 'issue',
    title: 'issue orders recorded',
    chip: null,
    requests: [],
    states: {},
    files: ['src/machines/migration.machine.ts', 'src/actors/issuer.ts'],
  },
  {
    id: 'preflight',
    title: 'preflight checks',
    chip: 'source',
    requests: ['msam.preflight'],
    states: {
      'sourcePhase.preflight.checkingChip': "the chip's areas to be checked against the items",
      'sourcePhase.preflight.askingProviders': "every provider's answer to the preflight",
      'sourcePhase.refusing': RELEASE,
    },
    files: ['src/machines/migration.logic.ts', 'src/machines/migration.machine.ts', 'src/actors/serverRoutes.ts', 'src/actors/migrationSam.actor.ts'],
  },
  {
    id: 'S3',
    title: 'lock source (temp keys)',
    chip: 'source',
    requests: ['admin.lock'],
    chipCommand: 'lock: main key -> temp key, per area',
    keyCheck: "the temp key's check value (the admin SAM made the key), and the set-aside main key's, kept for the restore",
    states: { 'sourcePhase.lockingSource': 'the admin SAM to lock the source', 'sourcePhase.lockRetry': RETRY },
    files: [
      'src/machines/migration.machine.ts',
      'src/actors/serverIntents.ts',
      'src/protocol/adminOps.ts',
      'src/actors/adminSam.actor.ts',
      'src/actors/chipAreas.ts',
    ],
  },
  {
    id: 'S4',
    title: 'next item',
    chip: 'source',
    requests: [],
    states: { 'sourcePhase.uploading.selectingItem': 'the next item to be taken' },
    files: ['src/machines/migration.machine.ts', 'src/machines/migration.logic.ts'],
  },
  {
    id: 'S5',
    title: 'link chip to migration SAM',
    chip: 'source',
    requests: ['msam.upload'],
    states: { 'sourcePhase.uploading.transferring.linking': 'the migration SAM of {provider} to upload item {item}' },
    files: ['src/machines/migration.machine.ts', 'src/actors/serverRoutes.ts', 'src/actors/migrationSam.actor.ts', 'src/machines/migrationSam.machine.ts'],
  },
  {
    id: 'S6',
    title: 'authenticate with temp key',
    chip: 'source',
    requests: ['frame'],
    chipCommand: 'auth (mutual, under the temp key)',
    states: { 'sourcePhase.uploading.transferring.authenticating': 'the migration SAM of {provider} to upload item {item}' },
    files: ['src/actors/samSession.ts', 'src/actors/chip.actor.ts', 'src/machines/chip.machine.ts', 'src/crypto/session.ts'],
  },
  {
    id: 'S7',
    title: 'upload item',
    chip: 'source',
    requests: ['frame'],
    chipCommand: 'upload',
    states: {
      'sourcePhase.uploading.transferring.copying': 'the migration SAM of {provider} to upload item {item}',
      'sourcePhase.uploading.backingOff': RETRY,
    },
    files: ['src/actors/migrationSam.actor.ts', 'src/machines/migrationSam.machine.ts', 'src/actors/chip.actor.ts', 'src/store/migrationSam.store.ts'],
  },
  {
    id: 'S8',
    title: 'item uploaded',
    chip: 'source',
    requests: ['channel.release'],
    states: { 'sourcePhase.releasingChannel': RELEASE },
    files: ['src/machines/migration.machine.ts', 'src/actors/serverRoutes.ts', 'src/machines/terminal.machine.ts'],
  },
  {
    id: 'S9',
    title: 'destination: log in, prove serial, reserve channel',
    chip: 'destination',
    requests: ['migrate.in', 'channel.reserve', 'admin.identify'],
    chipCommand: 'list (under K_chip)',
    states: {
      awaitingDestination: 'the destination chip{deadline}',
      'destinationPhase.reservingChannel': RESERVE,
      'destinationPhase.identifying': PROVE,
      'destinationPhase.identifyRetry': RETRY,
      'destinationPhase.rejecting': 'the terminal to release the chip that is not the destination',
    },
    files: [
      'src/machines/migration.machine.ts',
      'src/actors/serverIntents.ts',
      'src/protocol/adminOps.ts',
      'src/actors/adminSam.actor.ts',
      'src/machines/adminSession.machine.ts',
    ],
  },
  {
    id: 'S10',
    title: 'format destination',
    chip: 'destination',
    requests: ['admin.format'],
    chipCommand: 'format: install the temp key, per area',
    keyCheck: "the temp key's check value",
    states: { 'destinationPhase.formatting': 'the admin SAM to format the destination', 'destinationPhase.formatRetry': RETRY },
    files: [
      'src/machines/migration.machine.ts',
      'src/protocol/adminOps.ts',
      'src/actors/adminSam.actor.ts',
      'src/machines/decision.machine.ts',
      'src/actors/chipAreas.ts',
    ],
  },
  {
    id: 'S11',
    title: 'next item',
    chip: 'destination',
    requests: [],
    states: { 'destinationPhase.downloading.selectingItem': 'the next item to be taken' },
    files: ['src/machines/migration.machine.ts', 'src/machines/migration.logic.ts'],
  },
  {
    id: 'S12',
    title: 'link chip to migration SAM',
    chip: 'destination',
    requests: ['msam.download', 'nsam.main-key'],
    states: { 'destinationPhase.downloading.transferring.linking': 'the migration SAM of {provider} to download item {item}' },
    files: ['src/actors/migrationSam.actor.ts', 'src/actors/normalSam.actor.ts', 'src/machines/migrationSam.machine.ts', 'src/machines/migration.machine.ts'],
  },
  {
    id: 'S13',
    title: 'authenticate with temp key',
    chip: 'destination',
    requests: ['frame'],
    chipCommand: 'auth (mutual, under the temp key)',
    states: { 'destinationPhase.downloading.transferring.authenticating': 'the migration SAM of {provider} to download item {item}' },
    files: ['src/actors/samSession.ts', 'src/actors/chip.actor.ts', 'src/crypto/session.ts'],
  },
  {
    id: 'S14',
    title: 'download item and main key',
    chip: 'destination',
    requests: ['frame'],
    chipCommand: "download: the item and the destination's new main key",
    keyCheck: "the new main key's check value, signed into the receipt",
    states: {
      'destinationPhase.downloading.transferring.copying': 'the migration SAM of {provider} to download item {item}',
      'destinationPhase.downloading.backingOff': RETRY,
    },
    files: ['src/actors/migrationSam.actor.ts', 'src/machines/migrationSam.machine.ts', 'src/actors/chip.actor.ts', 'src/machines/area.machine.ts'],
  },
  {
    id: 'S15',
    title: 'receipt kept',
    chip: 'destination',
    requests: [],
    states: {},
    files: ['src/machines/migration.logic.ts', 'src/actors/migrationSam.actor.ts', 'src/crypto/grant.ts'],
  },
  {
    id: 'commit',
    title: 'commit decision',
    chip: null,
    requests: ['admin.commit'],
    states: { committing: "the admin SAM's decision (commit)", commitRetry: RETRY },
    files: ['src/machines/decision.machine.ts', 'src/actors/adminSam.actor.ts', 'src/store/adminSam.store.ts', 'src/machines/migration.machine.ts'],
  },
  {
    id: 'S16',
    title: 'activate destination',
    chip: 'destination',
    requests: ['admin.activate'],
    chipCommand: 'activate: temp key -> main key, per area',
    keyCheck: "the main key's check value from the item's receipt (S14)",
    states: { activating: 'the admin SAM to activate the destination', activateRetry: RETRY },
    files: [
      'src/machines/migration.machine.ts',
      'src/protocol/adminOps.ts',
      'src/actors/adminSam.actor.ts',
      'src/machines/decision.machine.ts',
      'src/actors/chipAreas.ts',
    ],
  },
  {
    id: 'S17',
    title: 'clear migration SAMs',
    chip: 'destination',
    requests: ['msam.clear', 'channel.release'],
    states: { clearing: CLEAR, clearRetry: RETRY, releasingDestination: RELEASE },
    files: ['src/machines/migration.machine.ts', 'src/actors/migrationSam.actor.ts', 'src/machines/migrationSam.machine.ts', 'src/store/migrationSam.store.ts'],
  },
  {
    id: 'rollback',
    title: 'rollback: restore source, clear SAMs',
    chip: 'both',
    // admin.wipe-lost: a found-again lost chip's wipe carries this step too (serverBackups.ts, LOST_WIPE).
    requests: ['admin.abort', 'msam.fence', 'admin.restore', 'admin.wipe', 'admin.wipe-lost', 'msam.clear', 'channel.reserve', 'channel.release'],
    chipCommand: 'restore (source: temp key -> main key), wipe (destination)',
    keyCheck: "restore: the set-aside main key's check value, kept at S3",
    states: {
      aborting: "the admin SAM's decision (abort)",
      abortRetry: RETRY,
      'rollingBack.fencing': 'every migration SAM to confirm it is fenced',
      'rollingBack.fenceRetry': RETRY,
      'rollingBack.deciding': 'the next rollback task to be chosen',
      'rollingBack.clearingOrders': 'the migration SAMs to clear their copies of the ordered items',
      'rollingBack.clearOrdersRetry': RETRY,
      'rollingBack.awaitingSource': 'the source chip to come back (its main keys are restored then)',
      'rollingBack.awaitingDestinationWipe': 'the destination chip to come back (its unused areas are wiped then)',
      'rollingBack.source.reserving': RESERVE,
      'rollingBack.source.reserveRetry': RETRY,
      'rollingBack.source.restoring': "the admin SAM to restore the source's main keys",
      'rollingBack.source.restoreRetry': RETRY,
      'rollingBack.source.clearingStores': CLEAR,
      'rollingBack.source.clearRetry': RETRY,
      'rollingBack.source.releasing': RELEASE,
      'rollingBack.destination.checking': "the destination's areas to be checked",
      'rollingBack.destination.reserving': RESERVE,
      'rollingBack.destination.reserveRetry': RETRY,
      'rollingBack.destination.wiping': 'the admin SAM to wipe the destination',
      'rollingBack.destination.wipeRetry': RETRY,
      'rollingBack.destination.releasing': RELEASE,
    },
    files: [
      'src/machines/migration.machine.ts',
      'src/machines/decision.machine.ts',
      'src/actors/adminSam.actor.ts',
      'src/machines/migrationSam.machine.ts',
      'src/machines/area.machine.ts',
    ],
  },
  {
    id: 'normal',
    title: 'normal use',
    chip: null,
    requests: ['normal.begin'],
    states: {},
    files: ['src/actors/normalSam.actor.ts', 'src/machines/normalSam.machine.ts', 'src/actors/chip.actor.ts'],
  },
  {
    id: 'register',
    title: 'register chip',
    chip: null,
    requests: ['chip.register', 'admin.identify'],
    chipCommand: 'list (under K_chip)',
    states: {},
    files: ['src/machines/registration.machine.ts', 'src/actors/serverRoutes.ts', 'src/actors/adminSam.actor.ts'],
  },
] as const satisfies readonly StepDeclaration[];

/** A step's name, as envelope headers carry it. */
export type Step = (typeof TABLE)[number]['id'];

/** The protocol table: every step, in protocol order. */
export const STEP_TABLE: readonly (StepDeclaration & { readonly id: Step })[] = TABLE;

/** Every step's name, in protocol order. */
export const STEPS: readonly Step[] = STEP_TABLE.map((s) => s.id);

/** The final states of a migration: nothing to wait for. */
export const FINAL_STATES = ['completed', 'refused', 'rolledBack'] as const;

const BY_ID = new Map<string, StepDeclaration>(STEP_TABLE.map((s) => [s.id, s]));
const BY_STATE = new Map<string, { step: StepDeclaration; waiting: Waiting }>(
  STEP_TABLE.flatMap((s) => Object.entries(s.states).map(([path, waiting]) => [path, { step: s, waiting }] as const)),
);

export function isStep(s: string | undefined): s is Step {
  return s !== undefined && BY_ID.has(s);
}

export function stepOf(id: string): StepDeclaration | undefined {
  return BY_ID.get(id);
}

/** The step a migration-machine state (its path, "a.b.c") belongs to, and what it waits for there. */
export function stepOfState(path: string): { step: StepDeclaration; waiting: Waiting } | undefined {
  return BY_STATE.get(path);
}
