/**
 * What `valmove demo` and `valmove up` add for issue 22 (point 5): the
 * ordered list of the steps a migration announced (`--json`), a cancel at a
 * chosen step (`--cancel-at STEP`: the user sees a rollback), and the user's
 * receipt written beside the data (protocol.md §3, "The receipt").
 */
import { join } from 'node:path';
import type { ReceiptFile } from '../transport/receipt.schemas.ts';
import { type ReceiptKeys, writeReceipt } from '../actors/terminalReceipt.ts';
import type { MigrationResult } from '../actors/terminal.actor.ts';
import type { ProgressEvent } from '../actors/terminalUser.ts';
import { RemoteError } from '../protocol/errors.ts';
import { STEP_TABLE, STEPS } from '../protocol/steps.ts';

/** One step as the migration announced it: its id (S1…S17, preflight, commit, rollback), its line, who acts, when. */
export interface StepEntry {
  id: string;
  text: string;
  party: string;
  /** The phone the line was shown on. */
  terminal: string;
  at: string;
}

/** Who does the work of a step: the admin SAM (an admin session), a migration SAM (an item session) or the server. */
export function partyOfStep(id: string): string {
  const requests: readonly string[] = STEP_TABLE.find((s) => s.id === id)?.requests ?? [];
  if (requests.some((r) => r.startsWith('admin.'))) return 'admin-sam';
  if (requests.some((r) => r.startsWith('msam.') || r === 'frame')) return 'migration-sam';
  return 'server';
}

/** The steps in the order the phones were told them (bounded: a migration announces a few lines per item). */
export class StepLog {
  static readonly MAX = 2000;
  readonly steps: StepEntry[] = [];

  record(e: ProgressEvent, at = new Date()): void {
    if (this.steps.length >= StepLog.MAX) return;
    this.steps.push({ id: e.step, text: e.text, party: partyOfStep(e.step), terminal: e.terminal, at: at.toISOString() });
  }
}

/** The steps at which a cancel is certain to be taken before the commit: from the lock (S3) to the last download (S14). */
export const CANCELLABLE_STEPS: readonly string[] = STEPS.slice(STEPS.indexOf('S3'), STEPS.indexOf('S14') + 1);

/** `--cancel-at STEP`: the step, or a usage problem (a RangeError) saying which steps can be cancelled. */
export function parseCancelAt(step: string): string {
  if (CANCELLABLE_STEPS.includes(step)) return step;
  const known = (STEPS as readonly string[]).includes(step);
  const why = known
    ? step === 'S1' || step === 'S2' || step === 'preflight'
      ? 'nothing is locked yet at that step (a cancel there refuses the migration, no rollback to show)'
      : 'that step is at or after the commit point: a committed migration can not be cancelled'
    : 'no such step';
  throw new RangeError(`--cancel-at ${step}: ${why}; one of ${CANCELLABLE_STEPS.join(', ')}`);
}

/** Why `--cancel-at` can not be done as asked (a usage error), or undefined. */
export function cancelAtProblem(step: string, faulty: boolean): string | undefined {
  if (faulty) return '--cancel-at runs the migration step by step: not with --crash-at or --faults';
  try {
    parseCancelAt(step);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** What a migration's answer is made of, here (a phone's own, or through the control API). */
type Answer = Pick<MigrationResult, 'mig' | 'outcome' | 'reason'>;

export interface CancelPhones<R extends Answer> {
  oldPhone: { migrateOut(o?: { destination?: string }): Promise<R>; cancel(mig: string): Promise<{ decision: string }> };
  newPhone: { migrateIn(o: { mig?: string }): Promise<R>; cancel(mig: string): Promise<{ decision: string }> };
  onProgress(listener: (e: { step: string; mig: string; terminal: string }) => void): void;
}

/**
 * The migration with the user's cancel at `step`, from the phone that is not
 * running that step; then the source phone comes back for its keys (a
 * rollback waits for the source, protocol.md §3). Resolves with the source
 * phone's last answer (`rolledBack`, with its receipt) and the decision.
 */
export async function migrateWithCancel<R extends Answer>(
  phones: CancelPhones<R>,
  destination: string,
  step: string,
  say: (line: string) => void,
): Promise<{ mig: string; outcome: string; result: R; decision: string }> {
  let cancel: Promise<{ decision: string }> | undefined;
  phones.onProgress((e) => {
    if (e.step !== step || cancel) return;
    const other = e.terminal.endsWith('/old') || e.terminal.endsWith('old-phone') ? phones.newPhone : phones.oldPhone;
    say(`  >> the user cancels migration ${e.mig} at ${step}, from the other phone`);
    cancel = other.cancel(e.mig);
  });
  let result = await phones.oldPhone.migrateOut({ destination });
  if (result.outcome === 'uploaded') {
    say(`source phase done (migration ${result.mig}); destination phase (Fig. 4)`);
    const done = await phones.newPhone.migrateIn({ mig: result.mig }).catch((e: unknown) => {
      // Cancelled before the destination came: a fenced migration takes no destination.
      if (e instanceof RemoteError && e.code === 'NO_MIGRATION') return undefined;
      throw e;
    });
    if (done) say(`destination phase: ${done.outcome}${done.reason ? ` (${done.reason})` : ''}`);
    say('the source phone comes back for its keys (the rollback waits for it)');
    result = await phones.oldPhone.migrateOut();
  }
  if (!cancel) throw new Error(`--cancel-at ${step}: the migration never announced ${step}, so it was not cancelled`);
  const { decision } = await cancel;
  return { mig: result.mig, outcome: result.outcome, result, decision };
}

/** Writes the receipt and the public keys it is checked against into the data folder; the paths, or undefined without a receipt. */
export function saveDemoReceipt(
  dataDir: string,
  receipt: ReceiptFile | undefined,
  keys: ReceiptKeys,
): { path: string; trust: string; outcome: string; statements: number } | undefined {
  if (!receipt) return undefined;
  const written = writeReceipt(join(dataDir, 'receipt.json'), receipt, keys);
  return { path: written.receipt, trust: written.trust!, outcome: receipt.outcome.decision, statements: receipt.statements.length };
}
