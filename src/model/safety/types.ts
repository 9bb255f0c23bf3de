/**
 * The abstract safety model's vocabulary (issue 17, point 4): a second model
 * of the migration, written from protocol.md and not from the statecharts.
 * Its rules are data (RULES), so a deliberately broken build is one rule
 * switched off (MISTAKES), and its invariants are named after protocol.md §4
 * (INVARIANTS), so a counterexample says which promise broke.
 */

/** The area key lifecycle of protocol.md §2; the index is the state's code in the packed state. */
export const AREA_STATES = ['absent', 'provisioned', 'loaded', 'mainActive', 'locked'] as const;
export type AreaState = (typeof AREA_STATES)[number];

/** The admin SAM's decision record of one migration (§3, Commit); `none`: no record yet. */
export const DECISIONS = ['none', 'pending', 'committed', 'aborted'] as const;
export type Decision = (typeof DECISIONS)[number];

/** The temp keys of one migration at the admin SAM: made at the lock (S3), ended when the items are settled (issue 16). */
export const KEY_STATES = ['none', 'live', 'ended'] as const;
export type KeyState = (typeof KEY_STATES)[number];

/**
 * What a migration SAM holds of one (migration, item): `open` is the record an
 * upload writes before the chip answers (no data yet), `held` the uploaded
 * item, `receipted` the item after a download it signed a receipt for, and
 * `cleared` the record S17 leaves behind (the item and its grants dropped).
 */
export const HELD_STATES = ['none', 'open', 'held', 'receipted', 'cleared'] as const;
export type HeldState = (typeof HELD_STATES)[number];

/**
 * A guard of the protocol, at the party that enforces it. Each one is a rule
 * of protocol.md; switching one off (a mistake) weakens exactly that guard.
 */
export const RULES = {
  lockWhilePending: { party: 'admin SAM', says: 'a source is locked only to open a record or while it is pending', ref: '§3 S3, Commit' },
  formatWhilePending: { party: 'admin SAM', says: 'a destination is formatted only while the record is pending', ref: '§3 S10' },
  oneDestination: { party: 'admin SAM', says: "the first destination formatted is the migration's only destination", ref: '§3 S10' },
  destinationIsNotSource: {
    party: 'admin SAM',
    says: 'the source chip is never bound as the destination (a rollback would wipe the backup)',
    ref: '§3 S10; found by this model',
  },
  commitNeedsAllReceipts: { party: 'admin SAM', says: 'the record becomes committed only with a valid receipt for every item', ref: '§3 Commit' },
  decisionCompareAndSet: { party: 'admin SAM', says: 'a record leaves pending once and never changes after', ref: '§3 Commit' },
  activateOnlyCommitted: { party: 'admin SAM', says: 'the destination is activated only under a committed record', ref: '§3 S16, §4.3' },
  activateOnlyOwnDestination: { party: 'admin SAM', says: "activation only for the record's own destination", ref: '§3 S16' },
  restoreOnlyAborted: { party: 'admin SAM', says: 'the source is restored only under an aborted record', ref: '§3 Rollback (3)' },
  wipeDestinationOnlyAborted: { party: 'admin SAM', says: 'a destination is wiped only under an aborted record', ref: '§2 lifecycle, §3 Rollback (5)' },
  wipeSourceOnlyCommitted: { party: 'admin SAM', says: 'the source backup is wiped only after the commit', ref: '§3 After the commit' },
  tempKeysEndWhenSettled: {
    party: 'admin SAM',
    says: 'temp keys end once the items are settled (activated, or restored), not at the decision',
    ref: '§2 temp keys, issue 16',
  },
  grantBinding: { party: 'migration SAM', says: 'a grant is used only for exactly its binding (migration, item, purpose)', ref: '§2 grants' },
  grantUnexpired: { party: 'migration SAM', says: 'a grant is used only before its expiry', ref: '§2 grants' },
  fenceStopsTransfers: { party: 'migration SAM', says: 'no upload or download for a migration it has fenced', ref: '§2 grants, §3 Rollback (2)' },
  clearedIsFinal: { party: 'migration SAM', says: 'a cleared item is never taken again (S17 drops its grants)', ref: '§3 S17, §4.5' },
  serverEndsWhenClean: { party: 'server', says: 'a migration ends only once every step of its outcome is acknowledged', ref: '§4.2 end states' },
} as const;
export type RuleName = keyof typeof RULES;

/** The named invariants, each a promise of protocol.md §4 (or the rule of §3 it rests on). */
export const INVARIANTS = {
  'no-duplication': '§4.1: each item is spendable (area mainActive) on at most one chip',
  'no-latent-duplication':
    '§4.1 with §4.3: whichever way the record can still go, at most one chip holds the item spendable or about to be ' +
    '(a loaded destination or a downloadable migration-SAM copy under committed, a locked source under aborted)',
  'no-loss':
    '§4.2 with §4.3: each item is recoverable from what is durable: spendable, or locked on the source while the record can still roll back, ' +
    'or loaded on the destination under committed (roll forward)',
  'commit-point': "§4.3, S16: an item is spendable on a chip other than its source only under a committed record, on that record's destination",
  'commit-needs-receipts': '§3 Commit: a committed record has a download receipt for every item, bound to its destination',
  'decision-final': '§3 Commit: a decided record never changes, and a bound destination never changes',
  'one-destination': '§3 S10: every area a migration formats is on its one destination',
  'grant-discipline':
    '§2, §4.6: a migration SAM moves an item only under an admin-SAM grant bound to exactly that (migration, item, purpose), before its expiry',
  'fence-holds': '§3 Rollback (2): no upload or download at a migration SAM that has fenced the migration',
  'temp-key-lifetime': "§2, issue 16: a migration's temp keys end only once its items are settled, and never come back",
  'settled-clean':
    '§4.2: a migration the server ended is really over: completed (destination spendable, source locked or wiped) ' +
    'or rolled back (source spendable, destination wiped), SAM stores empty, temp keys ended',
} as const;
export type InvariantName = keyof typeof INVARIANTS;

/** A deliberately broken build: one rule switched off, and the invariant that must then catch it. */
export const MISTAKES = {
  commitWithoutAllReceipts: { breaks: 'commitNeedsAllReceipts', caughtBy: 'commit-needs-receipts' },
  activateWhilePending: { breaks: 'activateOnlyCommitted', caughtBy: 'commit-point' },
  restoreWhileNotAborted: { breaks: 'restoreOnlyAborted', caughtBy: 'no-latent-duplication' },
  abortAfterCommit: { breaks: 'decisionCompareAndSet', caughtBy: 'decision-final' },
  formatSecondDestination: { breaks: 'oneDestination', caughtBy: 'one-destination' },
  formatSourceAsDestination: { breaks: 'destinationIsNotSource', caughtBy: 'no-loss' },
  acceptForeignGrant: { breaks: 'grantBinding', caughtBy: 'grant-discipline' },
  acceptExpiredGrant: { breaks: 'grantUnexpired', caughtBy: 'grant-discipline' },
  downloadAfterFence: { breaks: 'fenceStopsTransfers', caughtBy: 'fence-holds' },
  wipeSourceBeforeCommit: { breaks: 'wipeSourceOnlyCommitted', caughtBy: 'no-loss' },
  wipeDestinationWhileNotAborted: { breaks: 'wipeDestinationOnlyAborted', caughtBy: 'no-loss' },
  endTempKeysAtDecision: { breaks: 'tempKeysEndWhenSettled', caughtBy: 'temp-key-lifetime' },
  reuploadAfterClear: { breaks: 'clearedIsFinal', caughtBy: 'settled-clean' },
  completeWithoutClearing: { breaks: 'serverEndsWhenClean', caughtBy: 'settled-clean' },
} as const satisfies Record<string, { breaks: RuleName; caughtBy: InvariantName }>;
export type Mistake = keyof typeof MISTAKES;

export interface SafetyOptions {
  /** K: value items per migration (one area and one provider each; providers are shared between migrations). 1..3. */
  items?: number;
  /** Concurrent migrations, each from its own source chip to its own destination chip. 1..3. */
  migrations?: number;
  /** Empty chips besides the sources and destinations (a stray phone a rogue server could name). 0..2. */
  spareChips?: number;
  /** The honest server drives each migration (default true); off, only the rogue server acts (conformance). */
  honestServer?: boolean;
  /** A party crashes (its sessions, which live in RAM, are lost) or one session fails. */
  crashes?: boolean;
  /** A request already answered is delivered again, late. */
  duplicates?: boolean;
  /** An answer is lost on the way back (the request stays in the sender's outbox and is sent again). */
  losses?: boolean;
  /** The user cancels (or the destination deadline passes) at any time. */
  cancels?: boolean;
  /** A rogue server asks for anything it can name, with any grant or receipt it has seen. */
  rogue?: boolean;
  /** Grants expire (time passes). */
  expiry?: boolean;
  /** Rules switched off, to prove the invariants catch them. */
  mistakes?: Partial<Record<Mistake, boolean>>;
  /** Exploration stops (incomplete) past this many states. */
  statesMax?: number;
}

/** A grant the admin SAM issued: the temp key of (m, i) for one chip and purpose (§2). */
export interface Grant {
  m: number;
  i: number;
  purpose: 'upload' | 'download';
  chip: number;
}

/** What a transfer at a migration SAM used, for the transition invariants (grant-discipline, fence-holds). */
export interface GrantUse {
  /** The (migration, item) the migration SAM acted for. */
  m: number;
  i: number;
  purpose: 'upload' | 'download';
  grant: Grant;
}

export interface Violation {
  invariant: InvariantName;
  /** What was seen, in words. */
  detail: string;
  /** Action labels from the initial state. */
  path: string[];
}

export interface ExploreResult {
  states: number;
  transitions: number;
  ms: number;
  /** False when statesMax stopped the search. */
  complete: boolean;
  /** The first (shortest) counterexample found for each invariant that failed. */
  violations: Violation[];
}
