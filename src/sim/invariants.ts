/**
 * protocol.md §4, checked by the simulator against the real state of every
 * chip area, migration SAM store and decision record (never against logs or
 * messages), for any number of concurrent migrations.
 */
import type { EmbeddedSystem } from '../actors/system.ts';
import { decodeValue, worth } from '../actors/value.ts';

export interface Violation {
  invariant: 'no-duplication' | 'no-loss' | 'commit-point' | 'liveness' | 'outcome' | 'conservation' | 'sam-stores-empty';
  message: string;
}

export interface ItemLocation {
  spendable: string[];
  /** Locked on a chip by a migration whose decision is not committed (a backup that can still be restored). */
  lockedBackup: string[];
  heldBy: string[];
}

/** Parties whose stores the checks read; a crashed one is skipped until it is back (its store does not change meanwhile). */
export function observable(system: EmbeddedSystem, down: ReadonlySet<string>): boolean {
  return down.size === 0 || ![...down].some((id) => id === 'admin-sam' || id.startsWith('chip/') || id.startsWith('migration-sam/'));
}

function decisions(system: EmbeddedSystem): Map<string, string> {
  const out = new Map<string, string>();
  for (const { key, value } of system.adminSam.records.decisions.getRange()) out.set(String(key), value.state);
  return out;
}

/** Where every tracked item is, read from the stores. */
export function locateItems(system: EmbeddedSystem, refs: Iterable<string>): Map<string, ItemLocation> {
  const decided = decisions(system);
  const out = new Map<string, ItemLocation>();
  for (const ref of refs) out.set(ref, { spendable: [], lockedBackup: [], heldBy: [] });
  for (const chip of system.chips.values()) {
    for (const area of chip.memory.list()) {
      if (!area.data) continue;
      const where = out.get(decodeValue(area.data).ref);
      if (!where) continue;
      if (area.state === 'mainActive') where.spendable.push(chip.serial);
      if (area.state === 'locked' && area.holder !== null && decided.get(area.holder) !== 'committed') where.lockedBackup.push(chip.serial);
    }
  }
  for (const [p, prov] of system.providers) {
    for (const held of prov.migrationSam.held()) {
      if (!held.data) continue;
      const where = out.get(decodeValue(held.data).ref);
      if (where) where.heldBy.push(p);
    }
  }
  return out;
}

/** §4.1 no duplication, §4.2 no loss, §4.3 commit point: the first violation found, or null. */
export function checkSafety(system: EmbeddedSystem, refs: Iterable<string>): Violation | null {
  for (const [ref, w] of locateItems(system, refs)) {
    if (w.spendable.length > 1) return { invariant: 'no-duplication', message: `item ${ref} is spendable on ${w.spendable.join(' and ')}` };
    if (w.spendable.length === 0 && w.lockedBackup.length === 0 && w.heldBy.length === 0) {
      return { invariant: 'no-loss', message: `item ${ref} is not spendable anywhere, not locked under an uncommitted migration, and held by no migration SAM` };
    }
  }
  const decided = decisions(system);
  for (const chip of system.chips.values()) {
    for (const area of chip.memory.list()) {
      const last = area.last;
      if (area.state === 'mainActive' && last?.op === 'activate' && last.step === 'S16' && decided.get(last.mig) !== 'committed') {
        return {
          invariant: 'commit-point',
          message: `area ${area.area} of chip ${chip.serial} was activated (S16) by ${last.mig}, whose decision record is ${decided.get(last.mig) ?? 'missing'}, not committed`,
        };
      }
    }
  }
  return null;
}

/** The sum of the balances of every spendable copy of every item. */
export function spendableWorth(system: EmbeddedSystem): number {
  let sum = 0;
  for (const chip of system.chips.values()) {
    for (const area of chip.memory.list()) if (area.state === 'mainActive' && area.data) sum += worth(decodeValue(area.data));
  }
  return sum;
}
