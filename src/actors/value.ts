/**
 * Value items: what an area's data holds, as the owning provider's SAMs read
 * it (e-money, a transit pass, an event ticket, points). Only a chip and the
 * provider's SAMs ever see these in plaintext; the receipt of normal use is
 * deliberately public (protocol.md §1) and carries no `ref`.
 */
import { z } from 'zod';
import { ProtocolError } from '../protocol/errors.ts';

export const BALANCE_MAX = 1_000_000_000;

const ref = z.string().regex(/^[0-9a-f]{32}$/);
export const valueSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('emoney'), currency: z.string().max(8), balance: z.number().int().min(0).max(BALANCE_MAX), ref }),
  z.strictObject({ kind: z.literal('transit'), line: z.string().max(64), balance: z.number().int().min(0).max(BALANCE_MAX), ref }),
  z.strictObject({ kind: z.literal('ticket'), event: z.string().max(128), seat: z.string().max(32), used: z.boolean(), ref }),
  z.strictObject({ kind: z.literal('points'), program: z.string().max(64), balance: z.number().int().min(0).max(BALANCE_MAX), ref }),
]);
export type ValueItem = z.infer<typeof valueSchema>;
export type ValueKind = ValueItem['kind'];

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function encodeValue(v: ValueItem): Uint8Array {
  return enc.encode(JSON.stringify(valueSchema.parse(v)));
}

export function decodeValue(bytes: Uint8Array): ValueItem {
  let raw: unknown;
  try {
    raw = JSON.parse(dec.decode(bytes));
  } catch {
    throw new ProtocolError('BAD_BODY', 'the area holds no readable value item');
  }
  const parsed = valueSchema.safeParse(raw);
  if (!parsed.success) throw new ProtocolError('BAD_BODY', 'the area holds no readable value item');
  return parsed.data;
}

/** The amount a value item is worth for conservation checks (tickets count as one unit each). */
export function worth(v: ValueItem): number {
  return v.kind === 'ticket' ? 0 : v.balance;
}

export interface NormalReceipt {
  kind: ValueKind;
  amount?: number;
  balance?: number;
  state?: string;
}

export type NormalOutcome =
  | { next: ValueItem | null; receipt: NormalReceipt }
  | { error: { code: 'INSUFFICIENT_FUNDS' | 'TICKET_USED' | 'COMMAND_REFUSED'; message: string } };

/** What normal use shows an item's holder (also what the user's receipt states): never its `ref`. */
export function publicState(v: ValueItem): NormalReceipt {
  if (v.kind === 'ticket') return { kind: v.kind, state: `${v.event}, seat ${v.seat}, ${v.used ? 'used' : 'unused'}` };
  return { kind: v.kind, balance: v.balance };
}

/** The provider's logic of normal use: what to write back, and the public receipt. */
export function applyNormalOp(v: ValueItem, op: 'balance' | 'pay' | 'topup' | 'use', amount = 0): NormalOutcome {
  if (op === 'balance') return { next: null, receipt: publicState(v) };
  if (v.kind === 'ticket') {
    if (op !== 'use') return { error: { code: 'COMMAND_REFUSED', message: `a ticket can not be used for ${op}` } };
    if (v.used) return { error: { code: 'TICKET_USED', message: `the ticket for ${v.event} was already used` } };
    const next = { ...v, used: true };
    return { next, receipt: publicState(next) };
  }
  if (!Number.isInteger(amount) || amount <= 0) return { error: { code: 'COMMAND_REFUSED', message: `${op} needs a positive whole amount` } };
  if (op === 'topup') {
    if (v.balance + amount > BALANCE_MAX) return { error: { code: 'COMMAND_REFUSED', message: `a balance can not exceed ${BALANCE_MAX}` } };
    const next = { ...v, balance: v.balance + amount };
    return { next, receipt: { kind: v.kind, amount, balance: next.balance } };
  }
  // pay and use (a transit fare) both spend.
  if (v.balance < amount) return { error: { code: 'INSUFFICIENT_FUNDS', message: `balance ${v.balance} is less than ${amount}` } };
  const next = { ...v, balance: v.balance - amount };
  return { next, receipt: { kind: v.kind, amount, balance: next.balance } };
}
