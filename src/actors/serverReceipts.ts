/**
 * What the server keeps of each migration's receipt (protocol.md §3, "The
 * receipt"): the statements the migration SAMs sealed to the user's phones
 * (ciphertext: the server can not open them) and the admin SAM's signed
 * outcome; one record per migration, at most one statement per item and
 * direction, so bounded as the migration records are. At the end the phone
 * gets the outcome and the statements sealed to it, in migrate.result.
 */
import type { Database } from 'lmdb';
import { fromB64 } from '../crypto/index.ts';
import { receiptKeyOf, type Outcome, type SealedStatement } from '../crypto/statement.ts';
import type { PartyStore } from '../store/party.store.ts';
import { RESULT_STATEMENTS_MAX } from '../transport/receipt.schemas.ts';
import type { TurnContext } from './runtime.ts';

export interface ReceiptRecord {
  mig: string;
  statements: SealedStatement[];
  outcome: Outcome | null;
}

/** This turn's receipt writes, read before its commit (a commit or an answer may follow in the same turn). */
const pending = new WeakMap<TurnContext, Map<string, ReceiptRecord>>();

export class ServerReceipts {
  readonly db: Database<ReceiptRecord, string>;

  constructor(store: PartyStore) {
    this.db = store.db<ReceiptRecord>('receipts');
  }

  private current(turn: TurnContext, mig: string): ReceiptRecord {
    return pending.get(turn)?.get(mig) ?? this.db.get(mig) ?? { mig, statements: [], outcome: null };
  }

  private put(turn: TurnContext, rec: ReceiptRecord): void {
    let m = pending.get(turn);
    if (!m) pending.set(turn, (m = new Map()));
    m.set(rec.mig, rec);
    turn.write(() => this.db.put(rec.mig, rec));
  }

  /** A migration SAM's sealed statement for `item` (the item its request named): a repeat replaces the one before. */
  keepStatement(turn: TurnContext, mig: string, item: number, s: SealedStatement | undefined): void {
    if (!s || s.item !== item) return;
    const rec = this.current(turn, mig);
    const statements = [...rec.statements.filter((x) => !(x.item === s.item && x.direction === s.direction)), s];
    this.put(turn, { ...rec, statements });
  }

  keepOutcome(turn: TurnContext, mig: string, outcome: Outcome | undefined): void {
    if (!outcome || outcome.mig !== mig) return;
    this.put(turn, { ...this.current(turn, mig), outcome });
  }

  /** The statements' digests, for the admin SAM to sign in the outcome. */
  digests(turn: TurnContext, mig: string): Array<{ item: number; direction: 'out' | 'in'; digest: string }> {
    return this.current(turn, mig).statements.map((s) => ({ item: s.item, direction: s.direction, digest: s.digest }));
  }

  /** What a phone gets at the end: the outcome and the statements sealed to its key; undefined before the decision. */
  forPhone(turn: TurnContext, mig: string, receiptKey: string | undefined): { outcome: Outcome; statements: SealedStatement[] } | undefined {
    const rec = this.current(turn, mig);
    if (!rec.outcome) return undefined;
    const mine = rec.statements.filter((s) => receiptKey !== undefined && s.to === receiptKey);
    return { outcome: rec.outcome, statements: mine.slice(0, RESULT_STATEMENTS_MAX) };
  }
}

/** The X25519 key a phone's statements are sealed to, from the device key bound to its name; undefined for none. */
export function phoneReceiptKey(deviceKeyOf: (name: string) => string | undefined, terminal: string | null): string | undefined {
  const key = terminal ? deviceKeyOf(terminal) : undefined;
  if (!key) return undefined;
  try {
    return receiptKeyOf(fromB64(key));
  } catch {
    return undefined;
  }
}
