/**
 * The statecharts as test models: for each machine, the very machine object
 * the runtime runs, an input, the events to try in a state (payloads sampled
 * explicitly, so the failure, cancel and rollback branches are reached, not
 * only the happy path), and a state key that keeps the graph finite (counters
 * that only grow are abstracted away).
 */
import type { AnyStateMachine, EventObject, SnapshotFrom } from 'xstate';
import { adminSessionMachine } from '../machines/adminSession.machine.ts';
import { AREA_COMMANDS, AREA_SESSION_EVENTS, areaMachine } from '../machines/area.machine.ts';
import { chipMachine } from '../machines/chip.machine.ts';
import { backupMachine } from '../machines/backup.machine.ts';
import { decisionMachine } from '../machines/decision.machine.ts';
import { migrationMachine, type MigrationContext } from '../machines/migration.machine.ts';
import { migrationSamMachine } from '../machines/migrationSam.machine.ts';
import { normalSamMachine } from '../machines/normalSam.machine.ts';
import { registrationMachine } from '../machines/registration.machine.ts';
import { terminalMachine } from '../machines/terminal.machine.ts';
import { DEFAULT_TIMING } from '../timing.ts';
import { sampleB64, sampleFrame, sampleGrants, sampleOrder, sampleReceipt } from './samples.ts';

export interface Model {
  name: string;
  machine: AnyStateMachine;
  input?: unknown;
  /** Other inputs to explore from (branches that depend on input, not on events). */
  variants?: Array<{ name: string; input: unknown }>;
  events: (snapshot: SnapshotFrom<AnyStateMachine>) => EventObject[];
  serialize: (snapshot: SnapshotFrom<AnyStateMachine>) => string;
}

const plain = (...types: string[]): EventObject[] => types.map((type) => ({ type }));
const valueKey = (s: SnapshotFrom<AnyStateMachine>) => JSON.stringify(s.value);

/** The migration's sample world: user alice, source SRC on terminal/old, destination DST on terminal/new, two items. */
const { retryBaseMs, retryCapMs, preflightMs } = DEFAULT_TIMING;
export const MIGRATION_INPUT = {
  mig: 'm-model',
  user: 'alice',
  terminal: 'terminal/old',
  request: 'req-out',
  destination: undefined as string | undefined,
  timing: { retryBaseMs, retryCapMs, preflightMs },
};

/** An issuance in the same world: terminal/new asks, with one order per provider for its chip DST. */
export const ISSUANCE_INPUT = {
  ...MIGRATION_INPUT,
  terminal: 'terminal/new',
  request: 'req-issue',
  issuance: {
    serial: 'DST',
    items: [
      { item: 0, area: 'emoney', provider: 'emoney', recipient: 'migration-sam/emoney' },
      { item: 1, area: 'transit', provider: 'transit', recipient: 'migration-sam/transit' },
    ],
    orders: [sampleOrder('emoney', 'DST', 'emoney'), sampleOrder('transit', 'DST', 'transit')],
  },
};

const AREAS_OK = [
  { area: 'emoney', provider: 'emoney', state: 'mainActive' as const },
  { area: 'transit', provider: 'transit', state: 'mainActive' as const },
];

function migrationEvents(s: SnapshotFrom<AnyStateMachine>): EventObject[] {
  const c = s.context as MigrationContext;
  const now = 1_000;
  const current = c.items[c.cursor];
  const events: Array<EventObject & Record<string, unknown>> = [
    { type: 'CHANNEL_RESERVED', chip: 'source' },
    { type: 'CHANNEL_RESERVED', chip: 'destination' },
    { type: 'CHANNEL_RELEASED', chip: 'source', now },
    { type: 'CHANNEL_RELEASED', chip: 'destination', now },
    // S1 / S9: what the admin SAM proved about the chip
    { type: 'CHIP_IDENTIFIED', chip: 'source', serial: 'SRC', areas: AREAS_OK, owner: 'alice', now },
    { type: 'CHIP_IDENTIFIED', chip: 'source', serial: 'SRC', areas: AREAS_OK, owner: null, now },
    { type: 'CHIP_IDENTIFIED', chip: 'source', serial: 'SRC', areas: AREAS_OK, owner: 'bob', now },
    { type: 'CHIP_IDENTIFIED', chip: 'source', serial: 'SRC', areas: [{ ...AREAS_OK[0]!, state: 'locked' }], owner: 'alice', now },
    { type: 'CHIP_IDENTIFIED', chip: 'source', serial: 'SRC', areas: [], owner: 'alice', now },
    { type: 'CHIP_IDENTIFIED', chip: 'destination', serial: 'DST', areas: [], owner: 'alice', now },
    { type: 'CHIP_IDENTIFIED', chip: 'destination', serial: 'SRC', areas: [], owner: 'alice', now },
    { type: 'SOURCE_LOCKED', grants: sampleGrants(c.mig, 'SRC', 'upload', c.items) },
    { type: 'DESTINATION_FORMATTED', grants: sampleGrants(c.mig, 'DST', 'download', c.items) },
    { type: 'STEP_FAILED', code: 'SESSION_FAILED', message: 'a lost frame', now },
    { type: 'STEP_FAILED', code: 'AUTH_FAILED', message: 'a chip that does not prove', now },
    { type: 'RETRY_DUE' },
    { type: 'DECIDED', decision: 'aborted' },
    { type: 'DESTINATION_ACTIVATED' },
    { type: 'CANCEL_REQUESTED', reason: 'cancelled by alice', terminal: 'terminal/old', request: 'req-cancel' },
    { type: 'DEADLINE_PASSED' },
    { type: 'SOURCE_RESTORED' },
    { type: 'DESTINATION_WIPED' },
  ];
  // A request from a phone means the phone is connected (the server saw it come back before it reads a word from it).
  if (!c.offline.includes('terminal/new')) events.push({ type: 'DESTINATION_ARRIVED', terminal: 'terminal/new', request: 'req-in' });
  if (!c.offline.includes('terminal/old')) events.push({ type: 'SOURCE_ARRIVED', terminal: 'terminal/old', request: 'req-back' });
  // The admin SAM can answer "committed" only to a migration that asked it to commit: every item downloaded.
  if (c.items.length > 0 && c.receipts.length >= c.items.length) events.push({ type: 'DECIDED', decision: 'committed' });
  // The server tells a migration about the terminals it knows: the ones attached to it, and the ones it saw go.
  for (const t of [c.source.terminal, c.destination.terminal]) {
    if (t !== null && !c.offline.includes(t)) events.push({ type: 'TERMINAL_LOST', terminal: t });
  }
  for (const t of c.offline) events.push({ type: 'TERMINAL_BACK', terminal: t });
  for (const p of c.providers) {
    if (!c.answered.includes(p)) events.push({ type: 'PROVIDER_READY', provider: p }, { type: 'PROVIDER_FENCED', provider: p });
  }
  if (c.providers[1]) events.push({ type: 'PROVIDER_REFUSED', provider: c.providers[1], code: 'RIGHT_DENIED', message: 'no download right' });
  if (current) {
    events.push({ type: 'ITEM_UPLOADED', item: current.item });
    events.push({ type: 'ITEM_DOWNLOADED', item: current.item, receipt: sampleReceipt(c.mig, 'DST', current) });
  }
  for (const i of c.items) if (!c.answered.includes(String(i.item))) events.push({ type: 'ITEM_CLEARED', item: i.item });
  // An issuance's migration SAM refuses its order (forged, spent, expired) at S14.
  if (c.issuance) events.push({ type: 'STEP_FAILED', code: 'ORDER_REFUSED', message: 'the order was used already', now });
  if (c.session) {
    const terminal = c.session.chip === 'source' ? c.source.terminal : c.destination.terminal;
    events.push({ type: 'SAM_FRAME', from: c.session.sam, session: c.session.id, data: sampleFrame(`${c.session.id}/sam`) });
    if (terminal) events.push({ type: 'CHIP_FRAME', from: terminal, session: c.session.id, data: sampleFrame(`${c.session.id}/chip`) });
  }
  return events;
}

function migrationKey(s: SnapshotFrom<AnyStateMachine>): string {
  const c = s.context as MigrationContext;
  return JSON.stringify([
    s.value,
    c.cursor,
    c.answered.length,
    Math.min(c.attempts, 3),
    c.decision,
    c.items.length > 0 && c.receipts.length >= c.items.length,
    c.destinationFormatted,
    c.sourceRestored,
    c.destinationWiped,
    c.source.terminal !== null,
    c.destination.terminal !== null,
    c.destination.serial !== null,
    [...c.offline].sort(),
    c.items.length,
    c.cancel !== null,
  ]);
}

/** A committed migration's backup: source SRC on terminal/old, two areas, a retention that ends at 1000. */
const BACKUP_INPUT = {
  mig: 'm',
  user: 'alice',
  terminal: 'terminal/old',
  serial: 'SRC',
  areas: ['emoney', 'transit'],
  retainUntil: 1_000,
  online: true,
  timing: { retryBaseMs: 10, retryCapMs: 100 },
};

export const MODELS: Record<string, Model> = {
  area: {
    name: 'area',
    machine: areaMachine,
    events: () => plain(...AREA_COMMANDS, ...AREA_SESSION_EVENTS),
    serialize: valueKey,
  },
  migration: {
    name: 'migration',
    machine: migrationMachine,
    input: MIGRATION_INPUT,
    variants: [
      // A destination named up front that the server found unusable (not registered, not the user's).
      { name: 'named-destination-unusable', input: { ...MIGRATION_INPUT, destination: 'DST', destinationProblem: 'destination DST is not registered' } },
      // A destination named up front that holds an area this migration needs.
      { name: 'named-destination-full', input: { ...MIGRATION_INPUT, destination: 'DST', destinationAreas: ['emoney'] } },
      // An issuance: no source; the provider's orders name the destination DST, the phone that asked.
      { name: 'issuance', input: ISSUANCE_INPUT },
      // Selective migration (selection.ts): a provider that refuses or is silent at the preflight is left behind at the user's choice.
      { name: 'leave-behind', input: { ...MIGRATION_INPUT, selection: { only: null, leaveBehind: 'unavailable' } } },
      // The user names a provider that holds no item on the source.
      { name: 'only-unknown', input: { ...MIGRATION_INPUT, selection: { only: ['nosuch'], leaveBehind: null } } },
    ],
    events: migrationEvents,
    serialize: migrationKey,
  },
  chip: {
    name: 'chip',
    machine: chipMachine,
    input: { serial: 'SRC' },
    events: () => [
      { type: 'AUTH_REQUESTED', session: 's1', purpose: 'admin', area: '*', mig: 'm' },
      { type: 'AUTH_REQUESTED', session: 's2', purpose: 'normal', area: 'emoney', mig: '-', refusal: { code: 'AREA_LOCKED', message: 'locked' } },
      { type: 'SAM_PROVEN', session: 's1' },
      { type: 'SAM_REJECTED', session: 's1', code: 'AUTH_FAILED', message: 'bad proof' },
      { type: 'COMMAND', session: 's1', op: 'lock' },
      { type: 'COMMAND', session: 's1', op: 'write' },
      { type: 'FRAME_REJECTED', session: 's1', code: 'FRAME_REPLAY', message: 'replay' },
      { type: 'CLOSE', session: 's1' },
      { type: 'POWER_ON' },
    ],
    serialize: (s) => JSON.stringify([s.value, (s.context as { session: unknown }).session]),
  },
  terminal: {
    name: 'terminal',
    machine: terminalMachine,
    input: { name: 'terminal/old' },
    events: () => [
      { type: 'LOGIN_REQUESTED', user: 'alice' },
      { type: 'CHALLENGE_RECEIVED', user: 'alice', salt: sampleB64('salt/alice', 16), N: 1024, r: 8, p: 1 },
      { type: 'LOGIN_ACCEPTED' },
      { type: 'LOGIN_REJECTED', code: 'LOGIN_FAILED', message: 'wrong password' },
      { type: 'LOGOUT' },
      { type: 'SESSION_EXPIRED', code: 'UNAUTHENTICATED', message: 'log in again' },
      { type: 'RESTARTED' },
      { type: 'REGISTER_REQUESTED' },
      { type: 'MIGRATE_OUT_REQUESTED' },
      { type: 'MIGRATE_IN_REQUESTED' },
      { type: 'CANCEL_REQUESTED', mig: 'm' },
      { type: 'CHANNEL_RESERVE_REQUESTED', request: 'r1', purpose: 'source' },
      { type: 'CHANNEL_RELEASE_REQUESTED', request: 'r2' },
      { type: 'END_BACKUP_REQUESTED', mig: 'm' },
      { type: 'CHANNEL_RESERVE_REQUESTED', request: 'r5', purpose: 'backup', mig: 'm' },
      { type: 'CHANNEL_RELEASE_REQUESTED', request: 'r6', purpose: 'backup' },
      { type: 'SERVER_FRAME', session: 'm:S3:1', data: sampleFrame('m:S3:1/sam') },
      { type: 'CHIP_FRAME', session: 'm:S3:1', data: sampleFrame('m:S3:1/chip') },
      { type: 'CHIP_FRAME', session: 'terminal/old:r1', data: sampleFrame('terminal/old:r1/chip') },
      { type: 'PROGRESS', mig: 'm', step: 'S3', text: 'locking' },
      { type: 'JOB_FINISHED', mig: 'm', outcome: 'uploaded' },
      { type: 'JOB_FAILED', code: 'BUSY', message: 'busy' },
      { type: 'READER_REQUESTED', provider: 'emoney', op: 'pay', area: 'emoney', amount: 5, session: 'terminal/old:r1' },
      { type: 'READER_FRAME', session: 'terminal/old:r1', data: sampleFrame('terminal/old:r1/reader') },
      { type: 'READER_DONE' },
      { type: 'READER_FAILED', code: 'AREA_LOCKED', message: 'locked' },
    ],
    serialize: (s) => {
      const c = s.context as { reader: unknown; loginVoid: boolean; user: unknown };
      return JSON.stringify([s.value, c.reader !== null, c.loginVoid, c.user !== null]);
    },
  },
  adminSession: {
    name: 'adminSession',
    machine: adminSessionMachine,
    input: {
      session: 's1',
      op: 'lock',
      mig: 'm',
      serial: 'SRC',
      commands: [
        { op: 'lock', area: 'emoney', item: 0 },
        { op: 'lock', area: 'transit', item: 1 },
      ],
      request: 'r1',
      expiresAt: 10_000,
      deadline: 5_000,
    },
    events: () => [
      { type: 'CHIP_ANSWERED', serial: 'SRC', proofOk: true },
      { type: 'CHIP_ANSWERED', serial: 'SRC', proofOk: false },
      { type: 'CHIP_ANSWERED', serial: 'OTHER', proofOk: true },
      { type: 'CHIP_REFUSED', code: 'AREA_HELD', message: 'held' },
      { type: 'CHIP_REPLIED', ok: true, verified: true },
      { type: 'CHIP_REPLIED', ok: true, verified: false },
      { type: 'CHIP_REPLIED', ok: false, verified: false, code: 'AREA_STATE', message: 'state' },
      { type: 'DEADLINE_PASSED' },
      { type: 'SESSION_LOST' },
    ],
    serialize: (s) => JSON.stringify([s.value, (s.context as { cursor: number }).cursor]),
  },
  decision: {
    name: 'decision',
    machine: decisionMachine,
    input: { mig: 'm', source: 'SRC', items: [{ item: 0, area: 'emoney', provider: 'emoney', recipient: 'migration-sam/emoney' }] },
    events: () => [
      { type: 'LOCK_REQUESTED', serial: 'SRC' },
      { type: 'LOCK_REQUESTED', serial: 'OTHER' },
      { type: 'FORMAT_REQUESTED', serial: 'DST' },
      { type: 'FORMAT_REQUESTED', serial: 'DST2' },
      { type: 'COMMIT_REQUESTED', receiptsValid: true },
      { type: 'COMMIT_REQUESTED', receiptsValid: false, problem: 'no receipt for item 0' },
      { type: 'ABORT_REQUESTED', reason: 'cancelled' },
      { type: 'ACTIVATE_REQUESTED', serial: 'DST' },
      { type: 'RESTORE_REQUESTED', serial: 'SRC' },
      { type: 'WIPE_REQUESTED', serial: 'DST', role: 'destination' },
      { type: 'WIPE_REQUESTED', serial: 'SRC', role: 'source' },
    ],
    serialize: (s) => JSON.stringify([s.value, (s.context as { destination: unknown }).destination]),
  },
  migrationSam: {
    name: 'migrationSam',
    machine: migrationSamMachine,
    input: { mig: 'm', item: 0 },
    events: () => [
      { type: 'UPLOAD_REQUESTED', request: 'r1', session: 's1', deadline: 5_000 },
      // An issue order honoured (S14 of an issuance): the item is placed in the store, to be downloaded.
      { type: 'ISSUE_PLACED' },
      { type: 'DOWNLOAD_REQUESTED', request: 'r2', session: 's2', deadline: 5_000 },
      { type: 'MAIN_KEY_RECEIVED' },
      { type: 'CHIP_ANSWERED', proofOk: true },
      { type: 'CHIP_ANSWERED', proofOk: false },
      { type: 'CHIP_REFUSED', code: 'AREA_STATE', message: 'state' },
      { type: 'CHIP_REPLIED', ok: true, verified: true },
      { type: 'CHIP_REPLIED', ok: true, verified: false },
      { type: 'CHIP_REPLIED', ok: false, verified: false, code: 'AREA_STATE', message: 'state' },
      { type: 'DEADLINE_PASSED' },
      { type: 'SESSION_LOST' },
      { type: 'FENCE_REQUESTED', request: 'r3' },
      { type: 'CLEAR_REQUESTED', request: 'r4' },
    ],
    serialize: valueKey,
  },
  normalSam: {
    name: 'normalSam',
    machine: normalSamMachine,
    input: { session: 's1', op: 'pay', area: 'emoney', request: 'r1', deadline: 5_000 },
    events: () => [
      { type: 'CHIP_ANSWERED', proofOk: true },
      { type: 'CHIP_ANSWERED', proofOk: false },
      { type: 'CHIP_REFUSED', code: 'AREA_LOCKED', message: 'locked' },
      { type: 'VALUE_READ', ok: true, next: 'write' },
      { type: 'VALUE_READ', ok: true, next: 'done' },
      { type: 'VALUE_READ', ok: false, next: 'refuse', code: 'INSUFFICIENT_FUNDS', message: 'poor' },
      { type: 'VALUE_WRITTEN', ok: true },
      { type: 'VALUE_WRITTEN', ok: false, code: 'STALE_COUNTER', message: 'raced' },
      { type: 'DEADLINE_PASSED' },
      { type: 'SESSION_LOST' },
    ],
    serialize: valueKey,
  },
  backup: {
    name: 'backup',
    machine: backupMachine,
    input: BACKUP_INPUT,
    variants: [{ name: 'source-offline', input: { ...BACKUP_INPUT, online: false } }],
    events: (s) => {
      const session = (s.context as { session: { id: string } | null }).session?.id ?? 'none';
      return [
        { type: 'END_REQUESTED' },
        { type: 'DEADLINE_PASSED' },
        { type: 'RETRY_DUE' },
        { type: 'TERMINAL_LOST', terminal: 'terminal/old' },
        { type: 'TERMINAL_BACK', terminal: 'terminal/old' },
        { type: 'TERMINAL_BACK', terminal: 'terminal/new' },
        { type: 'CHANNEL_RESERVED' },
        { type: 'CHANNEL_RELEASED' },
        { type: 'SAM_FRAME', from: 'admin-sam', session, data: sampleFrame(`${session}/sam`) },
        { type: 'CHIP_FRAME', from: 'terminal/old', session, data: sampleFrame(`${session}/chip`) },
        { type: 'SOURCE_WIPED', now: 500 },
        { type: 'STEP_FAILED', code: 'SESSION_FAILED', message: 'lost', now: 500 },
      ];
    },
    serialize: (s) => {
      const c = s.context as { online: boolean; endedBy: unknown; attempts: number };
      return JSON.stringify([s.value, c.online, c.endedBy, Math.min(c.attempts, 2)]);
    },
  },
  registration: {
    name: 'registration',
    machine: registrationMachine,
    input: { reg: 'reg-1', user: 'alice', terminal: 'terminal/old', request: 'r1' },
    events: (s) => {
      const session = (s.context as { session: string | null }).session ?? 'none';
      return [
        { type: 'CHANNEL_RESERVED' },
        { type: 'CHANNEL_RELEASED' },
        { type: 'CHIP_IDENTIFIED', serial: 'SRC', areas: [], owner: null, now: 0 },
        { type: 'CHIP_IDENTIFIED', serial: 'SRC', areas: [], owner: 'bob', now: 0 },
        { type: 'STEP_FAILED', code: 'SESSION_FAILED', message: 'lost' },
        { type: 'SAM_FRAME', from: 'admin-sam', session, data: sampleFrame(`${session}/sam`) },
        { type: 'CHIP_FRAME', from: 'terminal/old', session, data: sampleFrame(`${session}/chip`) },
      ];
    },
    serialize: (s) => JSON.stringify([s.value, Math.min((s.context as { attempts: number }).attempts, 3)]),
  },
};

export const MODEL_NAMES = Object.keys(MODELS);
