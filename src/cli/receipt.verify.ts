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
import { receiptFileSchema, type ReceiptFile } from '../transport/receipt.schemas.ts';
import { outcomeSigned, statementDigest, statementSigned, type Outcome, type Statement } from '../crypto/statement.ts';

export { RECEIPT_FORMAT, receiptFileSchema, type ReceiptFile } from '../transport/receipt.schemas.ts';

const signKey = z.object({ signPublic: z.string().max(256).optional() });
/** A party's key, and in a rotation window (`keygen rotate`, until `keygen retire`) the key it replaced. */
export const trustFileSchema = z.object({ keys: z.record(z.string(), signKey.extend({ previous: signKey.optional() })) });
export type TrustKeys = z.infer<typeof trustFileSchema>['keys'];

export type Verdict = { ok: true; summary: string } | { ok: false; problem: string };

/** The party's keys: its current one, and its previous one in a rotation window (a receipt made before it verifies). */
function keyOf(keys: TrustKeys, party: string): Uint8Array[] | undefined {
  const listed = [keys[party]?.signPublic, keys[party]?.previous?.signPublic].filter((k): k is string => k !== undefined);
  try {
    return listed.length > 0 ? listed.map(fromB64) : undefined;
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

/** Thrown when a file is not JSON or not the kind of file asked for: the receipt is refused (exit 1). */
export class NotAReceipt extends Error {}

function parseAs<T>(text: string, what: string, schema: z.ZodType<T>): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new NotAReceipt(`${what} is not JSON`);
  }
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new NotAReceipt(`${what} is malformed at ${issue?.path.join('.') || '(top)'}: ${issue?.message ?? 'not as expected'}`);
}

/** Parses a receipt file's and a trust file's text. */
export function parseReceiptFiles(receiptText: string, trustText: string): { receipt: ReceiptFile; keys: TrustKeys } {
  return { receipt: parseAs(receiptText, 'the receipt', receiptFileSchema), keys: parseAs(trustText, 'the trust file', trustFileSchema).keys };
}
