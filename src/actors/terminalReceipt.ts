/**
 * The phone's side of the receipt: at the end of a migration, migrate.result
 * brings the admin SAM's signed outcome and the statements sealed to this
 * phone; the phone opens them with its device key and writes one file, which
 * `valmove receipt verify` checks offline. Beside it, the public keys verify
 * needs (the trust file), when the caller has them.
 */
import { writeFileSync } from 'node:fs';
import type { Identity } from '../crypto/identity.ts';
import type { BodyOf } from '../transport/messages.ts';
import { RECEIPT_FORMAT, type ReceiptFile, statementSchema } from '../transport/receipt.schemas.ts';
import { openStatement } from '../crypto/statement.ts';

/** The receipt file of a migration that ended, opened with the phone's device key; undefined when the result holds none. */
export function assembleReceipt(device: Identity, result: BodyOf<'migrate.result'>): ReceiptFile | undefined {
  if (!result.receipt) return undefined;
  // A box that does not open, or holds no statement, is left out: verify then says what is missing.
  const statements = result.receipt.statements.flatMap((s) => {
    try {
      const parsed = statementSchema.safeParse(openStatement(device, result.mig, s));
      return parsed.success ? [parsed.data] : [];
    } catch {
      return [];
    }
  });
  statements.sort((a, b) => a.item - b.item || a.direction.localeCompare(b.direction));
  return { format: RECEIPT_FORMAT, outcome: result.receipt.outcome, statements };
}

/** The public keys a receipt is checked against: trust.json's `keys`, or the embedded system's. */
export type ReceiptKeys = Record<string, { signPublic: string }>;

/** Writes the receipt (and, with keys, FILE.trust.json beside it); returns the paths written. */
export function writeReceipt(path: string, receipt: ReceiptFile, keys?: ReceiptKeys): { receipt: string; trust?: string } {
  writeFileSync(path, `${JSON.stringify(receipt, null, 2)}\n`);
  if (!keys) return { receipt: path };
  const trust = trustPathBeside(path);
  writeFileSync(trust, `${JSON.stringify({ note: 'public keys only: the admin SAM and the migration SAMs of this deployment', keys }, null, 2)}\n`);
  return { receipt: path, trust };
}

export function trustPathBeside(receiptPath: string): string {
  return `${receiptPath.replace(/\.json$/, '')}.trust.json`;
}
