/**
 * Selective migration (protocol.md §3, "Only some providers"): which of the
 * source's items a migration moves, which it leaves where they are, and what
 * became of each. Pure functions of the migration's context, used by the
 * migration machine's guards and actions (migration.logic.ts), the server's
 * answers (migrate.result) and `valmove status`.
 *
 * The user names the providers whose items move (`--only`); every other area
 * is *not chosen*. With `--leave-behind unavailable`, a provider that refuses
 * the preflight or does not answer in time is *left behind* instead of
 * refusing the whole migration. Either way such an area is never named in
 * any request of the migration (lock, upload, format, download, commit,
 * activate, restore): it stays mainActive, spendable on the source, and a
 * later migration may move it.
 */
import type { AreaReport, MigrationItem } from './migration.logic.ts';

/** What the user may leave behind: `unavailable`, a provider that refuses the preflight or does not answer it in time. */
export const LEAVE_BEHIND = ['unavailable'] as const;
export type LeaveBehind = (typeof LEAVE_BEHIND)[number];

/** The user's choice, from migrate.out: the providers whose items move (null: every item), and what may be left behind. */
export interface Selection {
  only: string[] | null;
  leaveBehind: LeaveBehind | null;
}

/** An area of the source this migration does not move, and why; it stays mainActive on the source. */
export interface SkippedItem {
  area: string;
  provider: string;
  outcome: 'notChosen' | 'leftBehind';
  reason: string;
}

/**
 * What became of an item: moved (spendable on the destination), uploaded (held by its migration SAM, the
 * source locked, the destination phase to come), pending (the migration is under way), refused (nothing was
 * changed), rolledBack (spendable on the source again), notChosen / leftBehind (never touched: spendable on
 * the source).
 */
export type ItemOutcome = 'moved' | 'uploaded' | 'pending' | 'refused' | 'rolledBack' | 'notChosen' | 'leftBehind';

export interface ItemOutcomeLine {
  area: string;
  provider: string;
  outcome: ItemOutcome;
  reason?: string;
}

export const EVERY_ITEM: Selection = { only: null, leaveBehind: null };

/** Whether the selection moves the items of `provider`. */
export const chosen = (sel: Selection, provider: string): boolean => sel.only === null || sel.only.includes(provider);

/** S2: the source's areas, split into the items this migration moves (numbered in chip order) and the ones it does not. */
export function chooseItems(areas: readonly AreaReport[], sel: Selection): { items: MigrationItem[]; skipped: SkippedItem[]; providers: string[] } {
  const picked = areas.filter((a) => chosen(sel, a.provider));
  const items = picked.map((a, i) => ({ item: i, area: a.area, provider: a.provider, recipient: `migration-sam/${a.provider}` }));
  const skipped = areas
    .filter((a) => !chosen(sel, a.provider))
    .map((a) => ({ area: a.area, provider: a.provider, outcome: 'notChosen' as const, reason: 'not chosen (--only)' }));
  return { items, skipped, providers: [...new Set(items.map((i) => i.provider))] };
}

/** Providers the user named that hold no item on the source (a typo, or the wrong chip): the migration is refused. */
export function unknownProviders(sel: Selection, items: readonly MigrationItem[], skipped: readonly SkippedItem[]): string[] {
  if (sel.only === null) return [];
  const held = new Set([...items, ...skipped].map((i) => i.provider));
  return [...new Set(sel.only.filter((p) => !held.has(p)))];
}

interface Remaining {
  items: MigrationItem[];
  providers: string[];
  answered: string[];
  skipped: SkippedItem[];
}

/**
 * Preflight, before the lock: the items of `gone` are left behind with `reason`, the rest renumbered (no item
 * number has left the server yet: the lock is the first request that names one).
 */
export function leaveBehind(c: Remaining, gone: readonly string[], reason: string): Remaining {
  const left = c.items.filter((i) => gone.includes(i.provider));
  const kept = c.items.filter((i) => !gone.includes(i.provider)).map((i, n) => ({ ...i, item: n }));
  return {
    items: kept,
    providers: c.providers.filter((p) => !gone.includes(p)),
    answered: c.answered.filter((p) => !gone.includes(p)),
    skipped: [...c.skipped, ...left.map((i) => ({ area: i.area, provider: i.provider, outcome: 'leftBehind' as const, reason }))],
  };
}

/** Whether leaving `gone` behind still leaves something to move, and whether every provider left has answered. */
export function afterLeaving(c: Remaining, gone: readonly string[]): { something: boolean; allAnswered: boolean } {
  const providers = c.providers.filter((p) => !gone.includes(p));
  return { something: providers.length > 0, allAnswered: providers.every((p) => c.answered.includes(p)) };
}

/** The per-item outcome of a migration, from what it moves and what it left, given how it stands (its outcome, or its answer to the source). */
export function itemOutcomes(
  c: { items: readonly MigrationItem[]; skipped: readonly SkippedItem[]; reason: string | null },
  stands: 'uploaded' | 'completed' | 'refused' | 'rolledBack' | 'failed' | null,
): ItemOutcomeLine[] {
  const of: Record<string, ItemOutcome> = { uploaded: 'uploaded', completed: 'moved', refused: 'refused', rolledBack: 'rolledBack' };
  const outcome = (stands !== null && of[stands]) || 'pending';
  return [
    ...c.items.map((i) => ({ area: i.area, provider: i.provider, outcome, ...(outcome === 'refused' && c.reason ? { reason: c.reason } : {}) })),
    ...c.skipped.map((s) => ({ area: s.area, provider: s.provider, outcome: s.outcome, reason: s.reason })),
  ];
}

/** One line per item for people: "emoney moved; transit left behind (NOT_TRUSTED: ...)". */
export function outcomeText(lines: readonly ItemOutcomeLine[]): string {
  const words: Record<ItemOutcome, string> = {
    moved: 'moved',
    uploaded: 'uploaded (held by its migration SAM; the destination phase moves it)',
    pending: 'under way',
    refused: 'not moved (refused), spendable on the source',
    rolledBack: 'rolled back, spendable on the source',
    notChosen: 'not chosen, spendable on the source',
    leftBehind: 'left behind, spendable on the source',
  };
  return lines.map((l) => `${l.provider} (${l.area}): ${words[l.outcome]}${l.outcome === 'leftBehind' && l.reason ? ` (${l.reason})` : ''}`).join('; ');
}
