/**
 * The admin SAM's decision record of each migration (decision.machine.ts;
 * protocol.md §4.3, the commit point): created `pending` by the lock (or by
 * an issuance's first format, or by an abort that overtook the lock), it
 * gates every admin session that changes keys, and leaves `pending` once, by
 * compare-and-set inside the commit that writes it: `committed` with a valid
 * receipt for every item, or `aborted`.
 */
import type { Actor, AnyStateMachine } from 'xstate';
import { verifyReceipt, type Identity } from '../crypto/index.ts';
import { signOutcome, type Outcome } from '../crypto/statement.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import type { DecisionContext, DecisionIntent } from '../machines/decision.machine.ts';
import type { MigrationItem } from '../machines/migration.machine.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { AdminSamRecords } from '../store/adminSam.store.ts';
import type { Receipt } from '../transport/messages.ts';
import type { MigrationSamKeys, TempKeys } from './adminTempKeys.ts';
import type { MachineEvent, TurnContext } from './runtime.ts';

/** The key of a migration's decision record among the admin SAM's actors. */
export const DECISION = 'decision:';

export class Decisions {
  /** Set when the decision machine refused the request being handled (the reply is already sent). */
  refusedInTurn = false;

  constructor(
    private readonly records: AdminSamRecords,
    private readonly actorOf: (key: string) => Actor<AnyStateMachine> | undefined,
    /** Signs a migration's outcome for the user's receipt (the admin SAM's identity, its clock). */
    private readonly outcomeSigner?: { identity: Identity; now: () => number },
  ) {}

  /**
   * The user's receipt: the decision, the record's items, and the digests of
   * the statements the server reported with its commit or abort, under one
   * signature (protocol.md §3, "The receipt").
   */
  private outcome(mig: string, decision: 'committed' | 'aborted', inbound: AnyEnvelope | undefined): Outcome | undefined {
    const snap = this.snapshot(mig);
    if (!this.outcomeSigner || !snap) return undefined;
    const ctx = snap.context;
    const reported = inbound?.type === 'admin.commit' || inbound?.type === 'admin.abort' ? (inbound.body.statements ?? []) : [];
    const items = ctx.items.map((i) => ({ item: i.item, area: i.area, provider: i.provider }));
    const statements = reported.filter((s) => items.some((i) => i.item === s.item));
    const body = { mig, decision, source: ctx.source, destination: ctx.destination ?? '', items, statements, at: this.outcomeSigner.now() };
    return signOutcome(body, this.outcomeSigner.identity);
  }

  /** The state of a migration's record as written (pending, committed, aborted), if it has one. */
  stateOf(mig: string): string | undefined {
    return this.records.decisions.get(mig)?.state;
  }

  has(mig: string): boolean {
    return this.actorOf(DECISION + mig) !== undefined;
  }

  /** Creates the record, `pending` (written by its entry, in this turn's commit). */
  open(turn: TurnContext, mig: string, source: string, items: MigrationItem[]): void {
    turn.spawn(DECISION + mig, 'decision', { mig, source, items });
  }

  /** The record's context (source, destination, items); NO_MIGRATION when there is none. */
  context(mig: string): DecisionContext {
    const a = this.actorOf(DECISION + mig);
    if (!a) throw new ProtocolError('NO_MIGRATION', `no decision record for migration ${mig}: its source was never locked`);
    return a.getSnapshot().context as DecisionContext;
  }

  /** The record's state and context as its machine has them now, if there is a record. */
  snapshot(mig: string): { value: unknown; context: DecisionContext } | undefined {
    return this.actorOf(DECISION + mig)?.getSnapshot();
  }

  /** Sends an event to the decision record, refusing with `why` when the record does not allow it. */
  gate(turn: TurnContext, mig: string, event: MachineEvent, why: string): void {
    const a = this.actorOf(DECISION + mig);
    if (!a) throw new ProtocolError('NO_MIGRATION', `no decision record for migration ${mig}: its source was never locked`);
    const snap = a.getSnapshot();
    if (!snap.can(event)) throw new ProtocolError('DECISION_STANDS', `${why}; the record of ${mig} is ${String(snap.value)}`);
    turn.dispatch(DECISION + mig, event);
  }

  commit(turn: TurnContext, mig: string, check: { ok: boolean; problem?: string }): void {
    turn.dispatch(DECISION + mig, { type: 'COMMIT_REQUESTED', receiptsValid: check.ok, problem: check.problem });
  }

  abort(turn: TurnContext, mig: string, reason: string, source: string | undefined): void {
    if (!this.has(mig)) {
      // The abort overtook the lock (lost, delayed, or never sent): record the decision now, with no items,
      // so a lock that arrives later is refused and the source, never locked, is "restored" by doing nothing.
      this.open(turn, mig, source ?? '', []);
    }
    turn.dispatch(DECISION + mig, { type: 'ABORT_REQUESTED', reason });
  }

  /**
   * The commit's check (after S14): a receipt for every item, signed by the
   * item's migration SAM, bound to this migration, its destination, the
   * item's area and provider; the receipts' key check values are then kept
   * with the temp keys.
   */
  checkReceipts(
    turn: TurnContext,
    mig: string,
    receipts: readonly Receipt[],
    migrationSams: Record<string, MigrationSamKeys>,
    keys: TempKeys,
  ): { ok: boolean; problem?: string } {
    const ctx = this.context(mig);
    if (ctx.destination === null) return { ok: false, problem: 'no destination was formatted for this migration' };
    for (const item of ctx.items) {
      const r = receipts.find((x) => x.item === item.item);
      if (!r) return { ok: false, problem: `no receipt for item ${item.item} (${item.area})` };
      const msam = migrationSams[item.recipient];
      if (!msam) return { ok: false, problem: `${item.recipient} is not a known migration SAM` };
      try {
        const body = verifyReceipt(r, msam.signPublic);
        if (body.mig !== mig || body.serial !== ctx.destination || body.area !== item.area || body.provider !== item.provider) {
          return { ok: false, problem: `the receipt for item ${item.item} is bound to another migration, chip, area or provider` };
        }
      } catch {
        return { ok: false, problem: `the receipt for item ${item.item} is not signed by ${item.recipient}` };
      }
    }
    // The receipts' key check values are what activation must show (S16).
    for (const item of ctx.items) {
      const r = receipts.find((x) => x.item === item.item)!;
      keys.update(turn, { ...keys.get(mig, item.item), destinationMainKcv: r.kcv });
    }
    return { ok: true };
  }

  /** What the record's machine asks for: its compare-and-set write, its answer, or a refusal. */
  onIntent(turn: TurnContext, mig: string, intent: DecisionIntent): void {
    const inbound = turn.inbound;
    switch (intent.type) {
      case 'recordDecision': {
        const decisions = this.records.decisions;
        const next = { mig, state: intent.decision, destination: intent.destination };
        // Compare-and-set inside the commit: a record leaves `pending` once, and never changes after.
        turn.write(() => {
          const cur = decisions.get(mig);
          if (cur && cur.state !== 'pending') {
            throw new Error(`decision record of ${mig} is ${cur.state}; refusing to write ${intent.decision}`);
          }
          decisions.put(mig, next);
        });
        return;
      }
      case 'answerDecision':
        if (inbound) {
          const outcome = this.outcome(mig, intent.decision, inbound);
          turn.reply(inbound, 'admin.decision', {
            decision: intent.decision,
            ...(intent.reason ? { reason: intent.reason } : {}),
            ...(outcome ? { outcome } : {}),
          });
        }
        return;
      case 'refuse':
        this.refusedInTurn = true;
        if (inbound) turn.reply(inbound, 'error', { code: intent.code, message: intent.message });
        return;
    }
  }
}
