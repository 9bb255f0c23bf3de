/**
 * A migration SAM's statements for the user's receipt (protocol.md §3, "The
 * receipt"): when an item leaves the source (S7) or reaches the destination
 * (S14), the SAM, which holds it in plaintext, signs what moved — the item's
 * public state, never its encoding or ref — keeps it in its provider's audit
 * record, and seals it to the phone the server named, so the server relays
 * ciphertext only.
 */
import type { Identity, Rng } from '../crypto/index.ts';
import { sealStatement, signStatement, type SealedStatement } from '../crypto/statement.ts';
import type { HeldItem, MigrationSamRecords } from '../store/migrationSam.store.ts';
import { SEALED_STATEMENT_CHARS_MAX } from '../transport/receipt.schemas.ts';
import type { TurnContext } from './runtime.ts';
import { decodeValue, publicState } from './value.ts';

export interface StatementSigner {
  identity: Identity;
  provider: string;
  records: MigrationSamRecords;
  rng: Rng;
}

/**
 * The item's statement, sealed to the phone, and kept in the audit record (in
 * this turn's commit); undefined when the server named no phone or the item's
 * data is not at hand.
 */
export function itemStatement(
  turn: TurnContext,
  signer: StatementSigner,
  rec: HeldItem,
  direction: 'out' | 'in',
  data: Uint8Array | null,
  now: number,
): SealedStatement | undefined {
  const grant = direction === 'out' ? rec.uploadGrant : rec.downloadGrant;
  if (!rec.receiptTo || !data || !grant) return undefined;
  let value: ReturnType<typeof publicState>;
  try {
    value = publicState(decodeValue(data));
  } catch {
    return undefined;
  }
  const statement = signStatement(
    { mig: rec.mig, item: rec.item, provider: signer.provider, area: rec.area, serial: grant.serial, direction, value, at: now },
    signer.identity,
  );
  turn.write(() => signer.records.keepAudit(statement));
  const sealed = sealStatement(statement, rec.receiptTo, signer.rng);
  // Too long for the wire (very long names): kept in the audit record, not sent.
  return sealed.sealed.length <= SEALED_STATEMENT_CHARS_MAX ? sealed : undefined;
}
