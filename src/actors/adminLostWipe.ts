/**
 * The admin SAM's check of a found-again lost chip's wipe (issue 22,
 * protocol.md §3 "Recovery of a lost phone", §4.9). `admin.wipe-lost` wipes
 * `mainActive` areas: spendable value, were it not revoked. No decision record
 * stands for it; what does is each area's provider's revocation, signed by
 * its migration SAM in the turn its normal SAM revoked the area and the
 * re-issue order was made (src/crypto/revocation.ts). The server relays the
 * revocations but can not make one, so a rogue server that names a chip
 * "lost" wipes nothing: every area the request names needs a revocation, by
 * the migration SAM the item names, for that provider, that chip and that
 * area. Checked whole before the session opens (nothing is written on a
 * refusal), and for every request, whatever its headers.
 */
import { CryptoError, decodeRevocation, verifyRevocation } from '../crypto/index.ts';
import type { MigrationItem } from '../machines/migration.machine.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { MigrationSamKeys } from './adminTempKeys.ts';

export function admitLostWipe(env: { type: string; body: unknown }, migrationSams: Record<string, MigrationSamKeys>): void {
  if (env.type !== 'admin.wipe-lost') return;
  const body = env.body as { serial?: string; items?: readonly MigrationItem[]; revocations?: readonly string[] };
  const serial = body.serial;
  const items = body.items ?? [];
  if (serial === undefined || items.length === 0) throw new ProtocolError('NOT_REVOKED', 'admin.wipe-lost names a chip and its areas');
  for (const item of items) {
    if (!migrationSams[item.recipient]) throw new ProtocolError('NOT_TRUSTED', `${item.recipient} is not a migration SAM this admin SAM knows`);
  }
  // Each token is verified once (at most one signature check per token), against the migration SAM of the item of
  // its provider: a revocation says which provider revoked, and only that provider's migration SAM can sign one.
  const recipientOf = new Map(items.map((i) => [i.provider, i.recipient]));
  const covered = new Set<string>();
  for (const token of body.revocations ?? []) {
    try {
      const recipient = recipientOf.get(decodeRevocation(token).provider);
      if (recipient === undefined) continue;
      const r = verifyRevocation(token, migrationSams[recipient]!.signPublic);
      if (r.serial === serial) covered.add(`${recipient}|${r.provider}|${r.area}`);
    } catch (e) {
      if (!(e instanceof CryptoError)) throw e;
    }
  }
  for (const item of items) {
    if (!covered.has(`${item.recipient}|${item.provider}|${item.area}`)) {
      throw new ProtocolError('NOT_REVOKED', `area ${item.area} of chip ${serial}: no revocation by ${item.recipient} for ${item.provider} allows its wipe`);
    }
  }
}
