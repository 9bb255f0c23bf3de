/**
 * The invariants of protocol.md §4, over the abstract state (state
 * invariants) and over each step (transition invariants). Each returns what
 * it saw, in words, when it fails; types.ts INVARIANTS says what each one
 * promises and where the promise comes from.
 */
import type { ServerOutcome, Transition } from './model.ts';
import type { SafetyState } from './state.ts';
import type { Decision, InvariantName } from './types.ts';

export interface Failure {
  invariant: InvariantName;
  detail: string;
}

/** How the record of a migration can still go: its decision if taken; a pending record either way; no record: only an abort. */
function outcomesOf(d: Decision): Array<'committed' | 'aborted'> {
  if (d === 'pending') return ['aborted', 'committed'];
  if (d === 'committed') return ['committed'];
  return ['aborted'];
}

type Fail = (invariant: InvariantName, detail: string) => void;

/**
 * State invariants. `outcome(m)` is what the honest server claims about
 * migration m (settled-clean holds it to that claim).
 */
export function checkState(s: SafetyState, outcome: (m: number) => ServerOutcome | null): Failure[] {
  const out: Failure[] = [];
  const fail: Fail = (invariant, detail) => {
    out.push({ invariant, detail });
  };
  for (let m = 0; m < s.t.M; m++) checkMigration(s, m, outcome, fail);
  return out;
}

/** The chips on which some area satisfies `pred`, each once, in order. */
function chipsWhere(s: SafetyState, pred: (c: number, i: number) => boolean): number[] {
  const t = s.t;
  const found: number[] = [];
  for (let c = 0; c < t.chips; c++) for (let i = 0; i < t.K; i++) if (pred(c, i) && !found.includes(c)) found.push(c);
  return found;
}

function chipNames(s: SafetyState, cs: number[]): string {
  return cs.map((c) => s.t.chipName(c)).join(' and ');
}

/** Every state invariant of migration m: its items, its one destination, its temp keys, and the server's claim. */
function checkMigration(s: SafetyState, m: number, outcome: (m: number) => ServerOutcome | null, fail: Fail): void {
  const t = s.t;
  const d = s.dec(m);
  const src = t.src(m);
  const dest = s.dest(m);
  const mig = t.migName(m);
  for (let i = 0; i < t.K; i++) checkItem(s, m, i, fail);

  for (let c = 0; c < t.chips; c++) {
    if (c === src) continue;
    for (let k = 0; k < t.K; k++) {
      if (s.area(c, k).holder === m && c !== dest) {
        fail('one-destination', `${t.chipName(c)} area ${k} is ${s.areaState(c, k)} for ${mig}, whose destination is ${dest >= 0 ? t.chipName(dest) : 'none'}`);
      }
    }
  }

  if (s.keys(m) === 'ended' && !settled(s, m)) {
    fail('temp-key-lifetime', `the temp keys of ${mig} ended while its record is ${d} and its items are not settled`);
  }

  const claim = outcome(m);
  if (claim) {
    const problems = settledCleanProblems(s, m, claim);
    if (problems.length > 0) fail('settled-clean', `the server ended ${mig} ${claim}, but ${problems.join('; ')}`);
  }
}

/** Where item i of migration m is, or could still become spendable. */
function copiesOf(s: SafetyState, m: number, i: number): { spendable: number[]; lockedOnSource: boolean; loadedOnDest: boolean; samCopyDownloadable: boolean } {
  const t = s.t;
  const src = t.src(m);
  const dest = s.dest(m);
  const tok = t.token(m, i);
  const spendable = chipsWhere(s, (c, k) => s.areaState(c, k) === 'mainActive' && s.area(c, k).token === tok);
  // Restorable: locked on the source by this migration, whose record has items (an abort that overtook the
  // lock has none, and restores nothing).
  const lockedOnSource =
    chipsWhere(s, (c, k) => c === src && s.areaState(c, k) === 'locked' && s.area(c, k).holder === m && s.area(c, k).token === tok).length > 0 &&
    s.keys(m) !== 'none';
  const loadedOnDest =
    dest >= 0 && chipsWhere(s, (c, k) => c === dest && s.areaState(c, k) === 'loaded' && s.area(c, k).holder === m && s.area(c, k).token === tok).length > 0;
  // A migration-SAM copy that can still reach the destination (the download grant's chip) and be activated there.
  const h = s.held(m, i);
  const samCopyDownloadable =
    dest >= 0 &&
    (h === 'held' || h === 'receipted') &&
    s.heldToken(m, i) === tok &&
    !s.fenced(m, i) &&
    !s.expired(m) &&
    (s.downloadGrantChips(m) & (1 << dest)) !== 0 &&
    s.areaState(dest, i) === 'provisioned' &&
    s.area(dest, i).holder === m;
  return { spendable, lockedOnSource, loadedOnDest, samCopyDownloadable };
}

/** The invariants of item i of migration m: no duplication (now or latent), no loss, the commit point, receipts before commit. */
function checkItem(s: SafetyState, m: number, i: number, fail: Fail): void {
  const t = s.t;
  const d = s.dec(m);
  const src = t.src(m);
  const dest = s.dest(m);
  const mig = t.migName(m);
  const tok = t.token(m, i);
  const item = `item ${t.tokenName(tok)}`;
  const { spendable, lockedOnSource, loadedOnDest, samCopyDownloadable } = copiesOf(s, m, i);

  if (spendable.length > 1) fail('no-duplication', `${item} is spendable (mainActive) on ${chipNames(s, spendable)}`);

  for (const o of outcomesOf(d)) {
    const could = new Set(spendable);
    if (o === 'aborted' && lockedOnSource) could.add(src);
    if (o === 'committed' && (loadedOnDest || samCopyDownloadable)) could.add(dest);
    if (could.size > 1) {
      fail('no-latent-duplication', `record of ${mig} is ${d}; if it ends ${o}, ${item} is spendable on ${chipNames(s, [...could])}`);
    }
  }

  const recoverable = spendable.length > 0 || (d === 'committed' ? loadedOnDest : lockedOnSource);
  if (!recoverable) {
    const where =
      d === 'committed'
        ? `not spendable and not loaded on the destination (${dest >= 0 ? t.chipName(dest) : 'none bound'})`
        : 'not spendable and not locked on the source';
    fail('no-loss', `record of ${mig} is ${d}; ${item} is ${where}; the migration SAM holds ${s.held(m, i)}`);
  }

  for (let c = 0; c < t.chips; c++) {
    for (let k = 0; k < t.K; k++) {
      if (c === src || s.areaState(c, k) !== 'mainActive' || s.area(c, k).token !== tok) continue;
      if (d !== 'committed' || c !== dest) {
        fail(
          'commit-point',
          `${item} is spendable on ${t.chipName(c)} (area ${k}) while the record of ${mig} is ${d} with destination ${dest >= 0 ? t.chipName(dest) : 'none'}`,
        );
      }
    }
  }

  if (d === 'committed' && (dest < 0 || (s.receiptChips(m, i) & (1 << dest)) === 0)) {
    fail(
      'commit-needs-receipts',
      `record of ${mig} is committed, but no receipt for item ${i} was signed for its destination (${dest >= 0 ? t.chipName(dest) : 'none'})`,
    );
  }
}

/** Settled: committed and every destination area activated, or aborted and no source area still locked by it. */
function settled(s: SafetyState, m: number): boolean {
  const t = s.t;
  const d = s.dec(m);
  if (d === 'committed') {
    const dest = s.dest(m);
    if (dest < 0) return false;
    for (let i = 0; i < t.K; i++) if (s.areaState(dest, i) !== 'mainActive') return false;
    return true;
  }
  if (d === 'aborted') {
    for (let i = 0; i < t.K; i++) if (s.areaState(t.src(m), i) === 'locked' && s.area(t.src(m), i).holder === m) return false;
    return true;
  }
  return false;
}

function settledCleanProblems(s: SafetyState, m: number, claim: ServerOutcome): string[] {
  const t = s.t;
  const problems: string[] = [];
  for (let i = 0; i < t.K; i++) {
    const tok = t.token(m, i);
    const h = s.held(m, i);
    if (h === 'open' || h === 'held' || h === 'receipted') problems.push(`migration SAM ${i} still holds item ${i} (${h})`);
    if (claim === 'completed') {
      const a = s.area(t.dst(m), i);
      if (a.st !== 'mainActive' || a.token !== tok) problems.push(`${t.chipName(t.dst(m))} area ${i} is ${a.st}, not spendable`);
      const sa = s.area(t.src(m), i);
      if (!(sa.st === 'absent' || (sa.st === 'locked' && sa.holder === m)))
        problems.push(`${t.chipName(t.src(m))} area ${i} is ${sa.st}, neither locked nor wiped`);
    } else {
      const a = s.area(t.src(m), i);
      if (a.st !== 'mainActive' || a.token !== tok) problems.push(`${t.chipName(t.src(m))} area ${i} is ${a.st}, not spendable again`);
      for (let c = 0; c < t.chips; c++) if (s.area(c, i).holder === m) problems.push(`${t.chipName(c)} area ${i} is still ${s.areaState(c, i)} for it`);
    }
  }
  const keys = s.keys(m);
  if (keys === 'live') problems.push('its temp keys are still live');
  return problems;
}

/** Transition invariants: what a single step may never do. */
export function checkTransition(prev: SafetyState, tr: Transition): Failure[] {
  const t = prev.t;
  const next = tr.next;
  const out: Failure[] = [];
  for (let m = 0; m < t.M; m++) {
    const d = prev.dec(m);
    if ((d === 'committed' || d === 'aborted') && next.dec(m) !== d) {
      out.push({ invariant: 'decision-final', detail: `the record of ${t.migName(m)} went ${d} -> ${next.dec(m)}` });
    }
    if (prev.dest(m) >= 0 && next.dest(m) !== prev.dest(m)) {
      out.push({
        invariant: 'decision-final',
        detail: `the destination of ${t.migName(m)} went ${t.chipName(prev.dest(m))} -> ${next.dest(m) >= 0 ? t.chipName(next.dest(m)) : 'none'}`,
      });
    }
    if (prev.keys(m) === 'ended' && next.keys(m) !== 'ended') {
      out.push({ invariant: 'temp-key-lifetime', detail: `the temp keys of ${t.migName(m)} came back after they ended` });
    }
  }
  const use = tr.use;
  if (use) {
    const g = use.grant;
    const at = `migration SAM ${use.i} moved (${t.migName(use.m)}, item ${use.i}) by ${use.purpose}`;
    if (g.m !== use.m || g.i !== use.i || g.purpose !== use.purpose) {
      out.push({ invariant: 'grant-discipline', detail: `${at} under the ${g.purpose} grant of (${t.migName(g.m)}, item ${g.i}) for ${t.chipName(g.chip)}` });
    }
    if (prev.expired(g.m)) out.push({ invariant: 'grant-discipline', detail: `${at} under an expired grant` });
    if (prev.fenced(use.m, use.i)) out.push({ invariant: 'fence-holds', detail: `${at} after it fenced ${t.migName(use.m)}` });
  }
  return out;
}
