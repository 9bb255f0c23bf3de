/**
 * The admin SAM's temp keys (protocol.md §2): one fresh random key per
 * (migration, item), made when the source is locked (or by an issuance's
 * first format), installed on the chips by the lock and format sessions,
 * sealed into grants for the migration SAMs, and deleted once the migration
 * is settled (endTempKeys, below). Each key's record outlives
 * its bytes: it keeps the key check values the later sessions are checked
 * against (the source's set-aside main key, the destination's new one).
 */
import { issueGrants, Secret, type Identity, type Rng } from '../crypto/index.ts';
import type { AdminSessionContext } from '../machines/adminSession.machine.ts';
import type { MigrationItem } from '../machines/migration.machine.ts';
import { usesTempKey, type AdminOpEntry } from '../protocol/adminOps.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { AdminSamRecords, type TempKeyRecord } from '../store/adminSam.store.ts';
import type { Grant } from '../transport/messages.ts';
import type { TurnContext } from './runtime.ts';

export interface MigrationSamKeys {
  /** Its receipts' key, or its keys during its rotation window (either signs). */
  signPublic: Uint8Array | readonly Uint8Array[];
  boxPublic: Uint8Array;
}

/** The refusal of a lock, format or grant whose temp key was deleted (endTempKeys). Names no key, only the migration. */
export function keysGoneSentence(mig: string, decision: string | undefined): string {
  return `the temp keys of ${mig} were deleted when its record became ${decision ?? 'settled'}: no lock, format or grant runs for it any more`;
}

export class TempKeys {
  /** Temp keys generated in this turn, not yet committed (the lock session reads them before the commit). */
  private readonly pending = new Map<string, TempKeyRecord>();

  constructor(
    readonly records: AdminSamRecords,
    private readonly rng: Rng,
    /** The migration SAMs temp keys are granted to, by party id ("migration-sam/<provider>"). */
    private readonly migrationSams: Record<string, MigrationSamKeys>,
    /** The state of a migration's decision record, if it has one. */
    private readonly decisionOf: (mig: string) => string | undefined,
  ) {}

  requireRecipient(recipient: string): void {
    if (!this.migrationSams[recipient]) throw new ProtocolError('NOT_TRUSTED', `${recipient} is not a migration SAM this admin SAM grants keys to`);
  }

  /** The item's temp key: made in this turn's commit unless it exists. */
  ensure(turn: TurnContext, mig: string, item: MigrationItem): void {
    const k = AdminSamRecords.keyOf(mig, item.item);
    if (this.records.tempKeys.get(k)) return;
    this.requireRecipient(item.recipient);
    // Fresh, random, one per (migration, item), never reused (protocol.md §2).
    const rec: TempKeyRecord = {
      mig,
      item: item.item,
      area: item.area,
      provider: item.provider,
      recipient: item.recipient,
      key: this.rng.bytes(32),
      sourceMainKcv: null,
      destinationMainKcv: null,
    };
    turn.write(() => {
      if (!this.records.tempKeys.get(k)) this.records.tempKeys.put(k, rec);
    });
    this.pending.set(k, rec);
  }

  get(mig: string, item: number): TempKeyRecord {
    const k = AdminSamRecords.keyOf(mig, item);
    const rec = this.pending.get(k) ?? this.records.tempKeys.get(k);
    // Deleted with the source's backup (endTempKeys, a wipe under `committed`): nothing runs for that migration any more.
    if (!rec) throw new ProtocolError('DECISION_STANDS', `no temp-key record for ${k}: its migration is over and its backup was wiped`);
    return rec;
  }

  update(turn: TurnContext, rec: TempKeyRecord): void {
    const k = AdminSamRecords.keyOf(rec.mig, rec.item);
    this.pending.set(k, rec);
    turn.write(() => this.records.tempKeys.put(k, rec));
  }

  /** The turn is being committed: what it wrote is read from the store from now on. */
  committed(): void {
    this.pending.clear();
  }

  /**
   * The temp key of a record, for a lock, a format or a grant. Those run only
   * while the decision record is pending, and the key is deleted only once it
   * is committed or aborted (endTempKeys), so a null key here is a session
   * that outlived its record: `onFrame` refuses it before the session moves
   * (`gone`), and this is the assertion behind that check.
   */
  live(rec: TempKeyRecord): Secret {
    if (rec.key === null) throw new ProtocolError('DECISION_STANDS', keysGoneSentence(rec.mig, this.decisionOf(rec.mig)));
    return Secret.of(rec.key);
  }

  /**
   * Why a lock or format session can not go on, or null when it can: the
   * temp key of one of its items was deleted (its migration is settled). A
   * session opened while the record was pending may outlive it: one the
   * server gave up on and a relay keeps feeding, or one that lost a race
   * with the commit or the abort. Checked before the session moves, because
   * past that point the key is read inside the machine's step (command,
   * verifyReply, grants), where a refusal would stop the SAM (runtime.ts).
   */
  gone(ctx: AdminSessionContext): string | null {
    if (!usesTempKey(ctx.op) || ctx.mig === null) return null;
    for (const cmd of ctx.commands) {
      if (this.get(ctx.mig, cmd.item!).key === null) return keysGoneSentence(ctx.mig, this.decisionOf(ctx.mig));
    }
    return null;
  }

  /**
   * Issue 16: a temp key ends with its item. Its bytes are deleted (the
   * record stays, with its key check values, area, provider and recipient,
   * for the audit trail) in the turn that answers the session which settles
   * the migration's items, so that answer never goes out while a key is
   * still on disk (persist, then speak; a crash leaves the key and no
   * answer, or no key and the answer in the inbox). Which sessions settle
   * them is the admin operation table's `endsTempKeys` (adminSam.actor.ts
   * calls this from their `sessionDone`):
   *
   *  - `committed`: once S16 verified every destination area (the activate
   *    session). The source backup is still locked under the
   *    temp key, and stays so until it is wiped; yet nobody can legitimately
   *    ask for the key again. The decision record refuses every lock and
   *    format of a committed migration, so no grant is ever issued again;
   *    the migration SAMs drop the grants they hold at S17; the wipe of the
   *    source backup (protocol.md, "After the commit") is an admin session
   *    under K_chip; a retried activation checks `destinationMainKcv`, kept
   *    here. protocol.md deletes the keys only after that wipe, which may be
   *    a retention period away: a key kept until then opens the backup's
   *    upload sessions and serves no one. The records themselves go
   *    with the backup's wipe (endBackup, below).
   *  - `aborted`: once the source's areas are back on their main keys
   *    (the restore session, each area checked against
   *    `sourceMainKcv`, kept here for a retried restore). The destination's
   *    wipe is under K_chip too. An abort that overtook the lock made no
   *    keys: nothing to delete.
   *
   * Only under the record that settles the items: a session that ran under
   * any other (the simulator's deliberately broken build activates under
   * `pending`) leaves the keys, which a pending migration still needs.
   */
  endTempKeys(
    turn: TurnContext,
    mig: string,
    op: Pick<AdminOpEntry, 'endsTempKeys' | 'chipCommand'>,
    itemsOf: (mig: string) => readonly MigrationItem[],
  ): void {
    if (op.endsTempKeys === null || this.decisionOf(mig) !== op.endsTempKeys) return;
    if (op.chipCommand === 'wipe') return this.endBackup(turn, mig, itemsOf(mig));
    for (const item of itemsOf(mig)) {
      const rec = this.get(mig, item.item);
      if (rec.key !== null) this.update(turn, { ...rec, key: null });
    }
  }

  /**
   * Issue 22, the end of the backup: the source's areas, locked under the
   * temp keys since S3, are wiped (a wipe session under `committed`: only the
   * source may be wiped then). Their temp-key records go in the turn that
   * answers it, bytes and key check values alike: no session of this
   * migration runs any more (a lock or format is refused by the record; an
   * activation was answered before the backup began), so nothing of its
   * temp keys is kept for ever. A repeated wipe finds them gone: nothing to do.
   */
  private endBackup(turn: TurnContext, mig: string, items: readonly MigrationItem[]): void {
    for (const item of items) {
      const k = AdminSamRecords.keyOf(mig, item.item);
      this.pending.delete(k);
      turn.write(() => {
        if (this.records.tempKeys.get(k)) this.records.tempKeys.remove(k);
      });
    }
  }

  /** The grants a lock (upload) or format (download) session issues: each item's temp key, sealed to its migration SAM. */
  grants(ctx: AdminSessionContext, purpose: 'upload' | 'download', identity: Identity): Grant[] {
    // One signature for the session's grants (issue 19): each is sealed to its own recipient.
    const orders = ctx.commands.map((cmd) => {
      const rec = this.get(ctx.mig!, cmd.item!);
      const binding = {
        mig: ctx.mig!,
        item: rec.item,
        area: rec.area,
        serial: ctx.serial!,
        purpose,
        provider: rec.provider,
        recipient: rec.recipient,
        expiresAt: ctx.expiresAt ?? 0,
      };
      return { binding, tempKey: this.live(rec), recipientBoxPublic: this.migrationSams[rec.recipient]!.boxPublic };
    });
    return issueGrants(orders, identity, this.rng);
  }
}
