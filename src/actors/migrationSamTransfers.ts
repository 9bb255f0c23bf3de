/**
 * A migration SAM's upload and download requests (S5, S12): the admin SAM's
 * grant checked for exactly its binding, the item spawned (an upload) or
 * placed from an issue order (an issuance or a recovery), the session opened.
 * Moved out of migrationSam.actor.ts (issue 22: its 400-line limit).
 */
import type { Actor, AnyStateMachine } from 'xstate';
import { openGrant, verifyGrant, type GrantBinding, type Identity, type Secret, type VerifiedSets } from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { MigrationSamRecords, type HeldItem } from '../store/migrationSam.store.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import type { Grant } from '../transport/messages.ts';
import { placeOrder } from './migrationSamOrders.ts';
import type { TurnContext } from './runtime.ts';

const ITEM = 'item:';

/** An item's work in progress (RAM only: its session's keys). */
export interface Working {
  /** The server link this item's sessions are relayed through. */
  server: string;
  grant: GrantBinding;
  tempKey: Secret;
  mainKey?: Secret;
  readData?: { data: Uint8Array; counter: number };
  kcv?: string;
  /** An item an order placed in this turn (not readable from the store until the turn commits). */
  placed?: HeldItem;
}

/** What a transfer request reads and changes of the migration SAM. */
export interface TransferHost {
  id: string;
  provider: string;
  identity: Identity;
  adminSamSignPublic: Uint8Array | readonly Uint8Array[];
  records: MigrationSamRecords;
  verifiedSets: VerifiedSets;
  working: Map<string, Working>;
  sessionOwner: Map<string, string>;
  sessionMs: number;
  actorOf(key: string): Actor<AnyStateMachine> | undefined;
  heldRecord(mig: string, item: number): HeldItem;
  requireMig(env: AnyEnvelope): string;
  /** Throws when the chip was reported lost (migrationSamRecovery.ts). */
  refuseUploadFrom(serial: string): void;
}

function checkGrant(sam: TransferHost, env: AnyEnvelope, grant: Grant, purpose: 'upload' | 'download', now: number): GrantBinding {
  const mig = sam.requireMig(env);
  if (env.item === undefined) throw new ProtocolError('BAD_ENVELOPE', `${env.type} needs an item (header "item")`);
  try {
    const expect = { mig, item: env.item, purpose, provider: sam.provider, recipient: sam.id };
    return verifyGrant(grant, sam.adminSamSignPublic, expect, now, sam.verifiedSets);
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'GRANT_INVALID';
    throw new ProtocolError('GRANT_REFUSED', `${code}: ${(e as Error).message}`);
  }
}

export function transferRequested(
  sam: TransferHost,
  turn: TurnContext,
  env: Extract<AnyEnvelope, { type: 'msam.upload' | 'msam.download' }>,
  now: number,
): void {
  const purpose = env.type === 'msam.upload' ? 'upload' : 'download';
  const binding = checkGrant(sam, env, env.body.grant, purpose, now);
  const mig = binding.mig;
  // protocol.md §2: a grant is never used for a migration this SAM has fenced — an upload grant neither. Found by
  // test/security/chipMisuse.test.ts: an msam.upload that arrived after the fence (delayed, or replayed by a relay)
  // spawned the item, wrote a held record for the aborted migration and opened an upload session; its clear had
  // already been answered, so the store was never empty again. (Relayed to a source still locked, the item would
  // be copied into the fenced SAM, and `holding` takes no CLEAR_REQUESTED: the rollback's clear would be refused.)
  if (sam.records.fenced.get(mig)) {
    throw new ProtocolError('MIGRATION_ABORTED', `migration ${mig} was aborted; this SAM is fenced and refuses every ${purpose} for it`);
  }
  if (purpose === 'upload') sam.refuseUploadFrom(binding.serial);
  const key = `${ITEM}${mig}:${binding.item}`;
  const session = env.body.session;
  let placed: HeldItem | undefined;
  if (!sam.actorOf(key)) {
    if (purpose === 'download') {
      const order = env.type === 'msam.download' ? env.body.order : undefined;
      if (!order) throw new ProtocolError('NO_MIGRATION', `this migration SAM never received item ${binding.item} of ${mig}`);
      placed = placeOrder(turn, key, order, binding, now, { identity: sam.identity, provider: sam.provider, records: sam.records });
    } else {
      turn.spawn(key, 'migrationSam', { mig, item: binding.item });
    }
  }
  const state = sam.actorOf(key)!.getSnapshot();
  const starts = purpose === 'upload' ? state.matches('idle') : state.matches('holding');
  if (starts) {
    const tempKey = openGrant(env.body.grant, sam.identity);
    sam.working.set(key, { server: env.from, grant: binding, tempKey, ...(placed ? { placed } : {}) });
    sam.sessionOwner.set(session, key);
    if (purpose === 'upload') {
      turn.write(() =>
        sam.records.items.put(MigrationSamRecords.keyOf(mig, binding.item), {
          mig,
          item: binding.item,
          area: binding.area,
          provider: binding.provider,
          uploadGrant: env.body.grant,
          downloadGrant: null,
          data: null,
          counter: 0,
          receipt: null,
          ...(env.body.receiptTo ? { receiptTo: env.body.receiptTo } : {}),
        }),
      );
    }
  }
  turn.dispatch(key, {
    type: purpose === 'upload' ? 'UPLOAD_REQUESTED' : 'DOWNLOAD_REQUESTED',
    request: env.id,
    session,
    deadline: now + sam.sessionMs,
  });
  if (starts && purpose === 'download') {
    // An item placed in this turn is not in the store until the turn commits.
    const rec = placed ?? sam.heldRecord(mig, binding.item);
    turn.write(() =>
      sam.records.items.put(MigrationSamRecords.keyOf(mig, binding.item), {
        ...rec,
        downloadGrant: env.body.grant,
        ...(env.body.receiptTo ? { receiptTo: env.body.receiptTo } : {}),
      }),
    );
  }
}
