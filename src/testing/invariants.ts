/**
 * protocol.md §4.1 and §4.2, checked against the real state of every chip
 * area, migration SAM store and decision record of an embedded system (not
 * against logs): no item spendable twice, none lost.
 */
import type { EmbeddedSystem } from '../actors/system.ts';
import { decodeValue, type ValueItem } from '../actors/value.ts';

/** The system to look at, the items it must keep (by their `ref`), and the chip they started on. */
export interface Holdings {
  system: EmbeddedSystem;
  values: readonly ValueItem[];
  source: { serial: string };
}

export interface Where {
  spendable: string[];
  lockedOnSource: boolean;
  /** The migration that holds the locked source area (its decision says whether the backup may still be restored). */
  lockedBy: string | null;
  heldBySam: string[];
  /** Chips whose area of this item its provider revoked (a lost phone, issue 22): not spendable, re-issued from the ledger. */
  revokedOn: string[];
}

export function locate(world: Holdings): Map<string, Where> {
  const out = new Map<string, Where>();
  for (const v of world.values) out.set(v.ref, { spendable: [], lockedOnSource: false, lockedBy: null, heldBySam: [], revokedOn: [] });
  for (const chip of world.system.chips.values()) {
    for (const area of chip.memory.list()) {
      if (!area.data) continue;
      const ref = decodeValue(area.data).ref;
      const w = out.get(ref);
      if (!w) continue;
      // A revoked area opens no normal session: its provider's normal SAM refuses it (AREA_REVOKED).
      const revoked = world.system.providers.get(area.provider)?.normalSam.ledger.revoked(chip.serial, area.area) ?? false;
      if (revoked) w.revokedOn.push(chip.serial);
      else if (area.state === 'mainActive') w.spendable.push(chip.serial);
      if (area.state === 'locked' && chip.serial === world.source.serial) {
        w.lockedOnSource = true;
        w.lockedBy = area.holder;
      }
    }
  }
  for (const [p, prov] of world.system.providers) {
    for (const held of prov.migrationSam.held()) {
      if (!held.data) continue;
      const w = out.get(decodeValue(held.data).ref);
      if (w) w.heldBySam.push(p);
    }
  }
  return out;
}

/** Throws, naming the item and what was seen, when an item is spendable twice or nowhere recoverable. */
export function checkInvariants(world: Holdings): void {
  // A party between crash and restart has no observable state; the check resumes once it is back.
  if (world.system.restarting.size > 0) return;
  // Per migration: a source may hold the locked backup of a committed migration next to an area a later one is moving.
  const committed = new Set([...world.system.adminSam.records.decisions.getRange()].filter((e) => e.value.state === 'committed').map((e) => String(e.key)));
  for (const [ref, w] of locate(world)) {
    if (w.spendable.length > 1) throw new Error(`DUPLICATION: item ${ref} is spendable on ${w.spendable.join(' and ')}`);
    // A revoked item is recoverable until it is re-issued: its value stays in its provider's ledger.
    const recoverable = w.spendable.length === 1 || (w.lockedOnSource && !committed.has(w.lockedBy ?? '')) || w.heldBySam.length > 0 || w.revokedOn.length > 0;
    if (!recoverable) throw new Error(`LOSS: item ${ref} is not recoverable: ${JSON.stringify(w)}`);
  }
}
