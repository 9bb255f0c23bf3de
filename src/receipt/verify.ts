/**
 * `valmove receipt verify`: checks a receipt file offline against a
 * deployment's public keys (trust.json's `keys`): the admin SAM's signature
 * on the outcome, each migration SAM's signature on its statements, that each
 * statement belongs to this migration and one of its items, and that its
 * digest is among those the admin SAM signed. A completed migration's receipt
 * must hold an `in` statement for every item.
 */
import { z } from 'zod';
import { fromB64 } from '../crypto/bytes.ts';
import { receiptFileSchema, type ReceiptFile } from './schemas.ts';
import { outcomeSigned, statementDigest, statementSigned, type Outcome, type Statement } from './statement.ts';

export { RECEIPT_FORMAT, receiptFileSchema, type ReceiptFile } from './schemas.ts';

export const trustFileSchema = z.object({ keys: z.record(z.string(), z.object({ signPublic: z.string().max(256).optional() })) });
export type TrustKeys = z.infer<typeof trustFileSchema>['keys'];

export type Verdict = { ok: true; summary: string } | { ok: false; problem: string };

function keyOf(keys: TrustKeys, party: string): Uint8Array | undefined {
  const k = keys[party]?.signPublic;
  try {
    return k ? fromB64(k) : undefined;
  } catch {
    return undefined;
  }
}

/** The first problem with one statement, or null. */
function statementProblem(s: Statement, i: number, outcome: Outcome, keys: TrustKeys): string | null {
  const what = `statement ${i} (item ${s.item}, ${s.provider}, ${s.direction})`;
  const key = keyOf(keys, `migration-sam/${s.provider}`);
  if (!key) return `${what}: the trust file has no key for migration-sam/${s.provider}`;
  if (!statementSigned(s, key)) {
    return `${what}: the signature of migration-sam/${s.provider} does not check (a field such as the amount was changed, or another key signed it)`;
  }
  if (s.mig !== outcome.mig) return `${what}: it is about migration ${s.mig}, not ${outcome.mig}`;
  const item = outcome.items.find((x) => x.item === s.item);
  if (!item || item.provider !== s.provider || item.area !== s.area) return `${what}: the outcome lists no such item for this provider and area`;
  const digest = statementDigest(s);
  if (!outcome.statements.some((d) => d.item === s.item && d.direction === s.direction && d.digest === digest)) {
    return `${what}: its digest is not among those the admin SAM signed in the outcome`;
  }
  return null;
}

/** Checks a parsed receipt against the trust keys. */
export function verifyReceiptFile(receipt: ReceiptFile, keys: TrustKeys): Verdict {
  const { outcome, statements } = receipt;
  const admin = keyOf(keys, 'admin-sam');
  if (!admin) return { ok: false, problem: 'the trust file has no key for admin-sam' };
  if (!outcomeSigned(outcome, admin)) {
    return { ok: false, problem: 'outcome: the signature of admin-sam does not check (a field was changed, or another key signed it)' };
  }
  for (const [i, s] of statements.entries()) {
    const problem = statementProblem(s, i, outcome, keys);
    if (problem) return { ok: false, problem };
  }
  if (outcome.decision === 'committed') {
    const missing = outcome.items.filter((it) => !statements.some((s) => s.item === it.item && s.direction === 'in'));
    if (missing.length > 0)
      return { ok: false, problem: `outcome committed, but no statement of what reached the destination for item(s) ${missing.map((m) => m.item).join(', ')}` };
  }
  const result = outcome.decision === 'committed' ? 'completed' : 'rolled back';
  return {
    ok: true,
    summary: `migration ${outcome.mig} ${result}: ${outcome.items.length} item(s), ${statements.length} statement(s), every signature checks`,
  };
}

/** Parses the two files' JSON; a usage problem (not JSON, not a receipt) is thrown as a RangeError. */
export function parseReceiptFiles(receiptText: string, trustText: string): { receipt: ReceiptFile; keys: TrustKeys } {
  const parse = (text: string, what: string, schema: z.ZodType) => {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new RangeError(`${what} is not JSON`);
    }
    const r = schema.safeParse(raw);
    if (!r.success)
      throw new RangeError(
        `${what} is not a ${what === 'the receipt' ? 'valmove receipt' : 'trust file'}: ${r.error.issues[0]?.path.join('.') ?? ''} ${r.error.issues[0]?.message ?? ''}`,
      );
    return r.data;
  };
  return {
    receipt: parse(receiptText, 'the receipt', receiptFileSchema) as ReceiptFile,
    keys: (parse(trustText, 'the trust file', trustFileSchema) as { keys: TrustKeys }).keys,
  };
}
