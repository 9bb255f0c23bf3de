/**
 * A lost phone's report from the new phone (issue 22, protocol.md §3
 * "Recovery of a lost phone"): the user, logged in here, names the lost chip
 * and gives the operator's one-time recovery code; the server answers each
 * provider's outcome (its areas revoked, or why not) and the issue orders
 * the providers signed for this phone's chip. This phone then receives them
 * as an issuance: S9–S17, under a decision record, receipts and activation,
 * like any migration's destination.
 */
import type { Clock } from '../clock.ts';
import { decodeIssueOrder } from '../crypto/index.ts';
import type { BodyOf } from '../transport/messages.ts';
import type { TurnContext } from './runtime.ts';
import { SERVER_PEER } from './terminalRequests.ts';
import { failure, type Waiter } from './terminalUser.ts';

export type RecoveryOrders = BodyOf<'recover.orders'>;

export interface RecoveryResult {
  /**
   * completed: every provider revoked and its items are here; partial: some provider refused, or more orders wait
   * than one answer carries (report again); failed.
   */
  outcome: 'completed' | 'partial' | 'failed';
  lost: string;
  to: string;
  /** Per provider: `revoked` (its areas, re-issued here) or `refused` (why). */
  providers: RecoveryOrders['providers'];
  /** The issuance that placed the items here (null when no provider had any). */
  issuance: BodyOf<'migrate.result'> | null;
}

/** What the report reads of the terminal. */
export interface RecoveryPhone {
  runLocal(fn: (turn: TurnContext) => void): Promise<void>;
  clock: Clock;
  /** How long the user waits for every provider's answer (Timing.preflightMs, as a preflight does). */
  waitMs: number;
  selectChip(): Promise<{ serial: string; areas: Array<{ area: string }> }>;
  issue(orders: string[]): Promise<BodyOf<'migrate.result'>>;
}

/** A report's caller, and the end of its wait. */
type Pending = Waiter<RecoveryOrders> & { cancel?: () => void };

/** The report's one outstanding answer, at most one at a time per terminal (the newest report's). */
export class RecoveryReports {
  private waiter: Pending | null = null;

  /** Reports the chip lost, then receives its items here. */
  async recover(phone: RecoveryPhone, lost: string, code: string): Promise<RecoveryResult> {
    const { serial: to, areas } = await phone.selectChip();
    const answer = await new Promise<RecoveryOrders>((resolve, reject) => {
      phone
        .runLocal((turn) => {
          // A report made again while one waits replaces it (its caller gave up, or a provider is slow): the server
          // answers the newest report, asking again each provider that has not revoked.
          const earlier = this.waiter;
          earlier?.cancel?.();
          if (earlier) turn.afterTurn(() => earlier.reject(failure('REPLACED', 'the lost phone was reported again; the newer report gets the answer')));
          const mine: Pending = { resolve, reject };
          this.waiter = mine;
          // The user's wait is bounded (a provider may be away for hours); the report stands at the server, which
          // answers it when every provider has (the answer then settles the request), and a report made again
          // later receives the orders.
          turn.afterTurn(() => {
            mine.cancel = phone.clock.schedule(phone.clock.now() + phone.waitMs, () => {
              if (this.waiter !== mine) return;
              this.waiter = null;
              reject(failure('RECOVERY_PENDING', `not every provider has answered within ${phone.waitMs} ms; the report stands: report again later`));
            });
          });
          turn.abandonRequestsTo(SERVER_PEER, 'recover.report');
          turn.send(SERVER_PEER, 'recover.report', { lost, to, code, held: areas.map((a) => a.area) });
        })
        .catch((e) => {
          this.waiter = null;
          reject(e);
        });
    });
    // A report made again (a provider was away the first time) answers every provider's orders: those whose
    // items this chip holds already were used, and would abort the issuance of the others.
    const have = new Set(areas.map((a) => a.area));
    const orders = answer.orders.filter((t) => !have.has(decodeIssueOrder(t).area));
    const issuance = orders.length > 0 ? await phone.issue(orders) : null;
    const placed = issuance === null || issuance.outcome === 'completed';
    const all = answer.providers.every((p) => p.outcome === 'revoked') && !answer.more;
    const outcome = !placed ? 'failed' : all ? 'completed' : 'partial';
    return { outcome, lost, to, providers: answer.providers, issuance };
  }

  /** The server's answer (recover.orders), or its refusal. */
  answered(turn: TurnContext, body: RecoveryOrders): void {
    const w = this.waiter;
    this.waiter = null;
    w?.cancel?.();
    if (w) turn.afterTurn(() => w.resolve(body));
  }

  refused(turn: TurnContext, err: Error): void {
    const w = this.waiter;
    this.waiter = null;
    w?.cancel?.();
    if (w) turn.afterTurn(() => w.reject(err));
  }
}
