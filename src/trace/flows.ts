/**
 * What story a recorded message belongs to. A run file holds more than
 * migrations: a demo registers both phones (`reg-…`), has value issued to
 * the source chip (`i-…`, the destination phase of the migration machine
 * with no source), and pays with it (normal use). A trace tells the
 * migrations' story by default; the rest comes on request (`--include`).
 */
import type { SeqMessage, SequenceOptions } from './sequence.ts';

/** The kinds of flow a message can belong to. */
export const FLOW_KINDS = ['migration', 'registration', 'issuing', 'normal', 'other'] as const;
export type FlowKind = (typeof FLOW_KINDS)[number];

/** Flow kinds that have an id of their own (the header's `mig` field). */
export type IdentifiedFlowKind = Extract<FlowKind, 'migration' | 'registration' | 'issuing'>;

/** The step a registration's messages carry, and the one a progress notice opens an issuing with (src/protocol/steps.ts). */
const REGISTRATION_STEP = 'register';
const ISSUING_STEP = 'issue';

/**
 * The kind of the flow `id`, from the steps its messages were filed under and
 * its id's prefix (the server names registrations `reg-…`, issuings `i-…` and
 * migrations `m-…`, src/actors/server.actor.ts, serverMigrations.ts); the steps
 * win, so a run from a server that names them otherwise is still told apart.
 */
export function flowKindOf(id: string, steps: ReadonlySet<string>): IdentifiedFlowKind {
  if (steps.has(ISSUING_STEP)) return 'issuing';
  if (steps.has(REGISTRATION_STEP)) return 'registration';
  if (id.startsWith('reg-')) return 'registration';
  if (id.startsWith('i-')) return 'issuing';
  return 'migration';
}

/** The kind of a message outside any flow with an id, by the loose step it was filed under. */
export function looseKindOf(step: string): FlowKind {
  if (step === REGISTRATION_STEP) return 'registration';
  if (step === 'normal') return 'normal';
  return 'other';
}

/** The flows with an id that a sequence shows, by kind, each in order of first message. */
export interface FlowIds {
  migrations: string[];
  registrations: string[];
  issuings: string[];
}

/** Each message's kind of flow (sequence.ts, step 5). A flow with an id is judged on all its messages (an issuing by its `issue` notice). */
export function flowKindsOf(messages: readonly SeqMessage[]): (m: SeqMessage) => FlowKind {
  const stepsOf = new Map<string, Set<string>>();
  for (const m of messages) {
    if (!m.mig) continue;
    const steps = stepsOf.get(m.mig) ?? new Set<string>();
    steps.add(m.step);
    stepsOf.set(m.mig, steps);
  }
  const kinds = new Map([...stepsOf].map(([mig, steps]) => [mig, flowKindOf(mig, steps)]));
  return (m) => (m.mig ? kinds.get(m.mig)! : looseKindOf(m.step));
}

/**
 * An issuing's opening request is filed under `issue`, not S9: the user's
 * `migrate.in` marks S9 by its type before the server's first notice says
 * the flow is an issuing (`issue`, then S9). Moves those leading messages
 * (of a flow that has that notice: without the server's file there is none).
 */
export function fileIssuingRequests(messages: SeqMessage[]): void {
  const issuings = new Set(messages.flatMap((m) => (m.mig && m.step === ISSUING_STEP ? [m.mig] : [])));
  const opened = new Set<string>();
  for (const m of messages) {
    if (!m.mig || !issuings.has(m.mig) || opened.has(m.mig)) continue;
    if (m.step === ISSUING_STEP) opened.add(m.mig);
    else m.step = ISSUING_STEP;
  }
}

/** Whether the options keep a message: `mig` names one flow (whatever its kind), else `include` picks kinds; `hide` drops types. */
export function isShown(m: SeqMessage, kind: FlowKind, opts: SequenceOptions): boolean {
  if (opts.mig !== undefined) {
    if (m.mig !== opts.mig) return false;
  } else if (opts.include && !opts.include.includes(kind)) return false;
  return !opts.hide?.includes(m.type);
}

/** The ids of the flows shown, by kind, in order of their first message. */
export function flowIdsOf(messages: readonly SeqMessage[], kindOf: (m: SeqMessage) => FlowKind): FlowIds {
  const ids: FlowIds = { migrations: [], registrations: [], issuings: [] };
  const lists: Partial<Record<FlowKind, string[]>> = { migration: ids.migrations, registration: ids.registrations, issuing: ids.issuings };
  for (const m of messages) {
    const list = m.mig ? lists[kindOf(m)] : undefined;
    if (list && !list.includes(m.mig!)) list.push(m.mig!);
  }
  return ids;
}

/** `1 migration`, `2 migrations`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * A trace's title: `migration m-…` for one migration, else counts of what it
 * shows (`2 migrations, 1 registration`). A registration or an issuing is not
 * a migration, so it is never counted as one.
 */
export function storyTitle(flows: FlowIds): string {
  const { migrations: migration, registrations: registration, issuings: issuing } = flows;
  const parts: string[] = [];
  if (migration.length === 1) parts.push(`migration ${migration[0]}`);
  else if (migration.length > 1) parts.push(plural(migration.length, 'migration'));
  if (registration.length === 1 && parts.length === 0 && issuing.length === 0) parts.push(`registration ${registration[0]}`);
  else if (registration.length > 0) parts.push(plural(registration.length, 'registration'));
  if (issuing.length === 1 && parts.length === 0) parts.push(`issuing ${issuing[0]}`);
  else if (issuing.length > 0) parts.push(plural(issuing.length, 'issuing'));
  return `valmove trace${parts.length ? ` — ${parts.join(', ')}` : ''}`;
}

/** Parses an `--include` list: kinds separated by commas ("all" for every kind). Throws naming a bad kind. */
export function parseFlowKinds(text: string): FlowKind[] {
  const kinds = text
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  if (kinds.includes('all')) return [...FLOW_KINDS];
  for (const k of kinds) {
    if (!(FLOW_KINDS as readonly string[]).includes(k)) throw new Error(`"${k}" is no kind of flow; the kinds are ${FLOW_KINDS.join(', ')} (or all)`);
  }
  return kinds as FlowKind[];
}
