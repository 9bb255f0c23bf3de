/**
 * protocol.md §4, checked by the simulator against the real state of every
 * chip area, migration SAM store and decision record (never against logs or
 * messages), for any number of concurrent migrations.
 */
import type { EmbeddedSystem } from '../actors/system.ts';
import { decodeValue, worth } from '../actors/value.ts';
import { revokedChips, revokedHere } from './recovery.ts';

export interface Violation {
  invariant:
    | 'no-duplication'
    | 'no-loss'
    | 'commit-point'
    | 'liveness'
    | 'outcome'
    | 'conservation'
    | 'sam-stores-empty'
    | 'temp-keys-ended'
    | 'end-state'
    | 'rogue'
    | 'spent-twice'
    | 'persist-then-speak'
    | 'selection'
    | 'uncaught';
  message: string;
}

export interface ItemLocation {
  spendable: string[];
  /** Locked on a chip by a migration whose decision is not committed (a backup that can still be restored). */
  lockedBackup: string[];
  heldBy: string[];
  /** Chips on which its provider revoked it (a lost phone): not spendable; its value is in the provider's ledger. */
  revokedOn: string[];
}

/** Parties whose stores the checks read; a crashed one is skipped until it is back (its store does not change meanwhile). */
export function observable(_system: EmbeddedSystem, down: ReadonlySet<string>): boolean {
  return (
    down.size === 0 || ![...down].some((id) => id === 'admin-sam' || id.startsWith('chip/') || id.startsWith('migration-sam/') || id.startsWith('normal-sam/'))
  );
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
  for (const ref of refs) out.set(ref, { spendable: [], lockedBackup: [], heldBy: [], revokedOn: [] });
  for (const chip of system.chips.values()) {
    for (const area of chip.memory.list()) {
      if (!area.data) continue;
      const where = out.get(decodeValue(area.data).ref);
      if (!where) continue;
      if (revokedHere(system, area.provider, chip.serial)) where.revokedOn.push(chip.serial);
      else if (area.state === 'mainActive') where.spendable.push(chip.serial);
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

/** Recoverable nowhere: not spendable, not a backup, held by no migration SAM, and not revoked into its provider's ledger. */
const lost = (w: ItemLocation) => w.spendable.length === 0 && w.lockedBackup.length === 0 && w.heldBy.length === 0 && w.revokedOn.length === 0;

const noLoss = (ref: string): Violation => ({
  invariant: 'no-loss',
  message: `item ${ref} is not spendable anywhere, not locked under an uncommitted migration, held by no migration SAM, nor revoked into a ledger`,
});

/** §4.1 no duplication, §4.2 no loss, §4.3 commit point: the first violation found, or null. */
export function checkSafety(system: EmbeddedSystem, refs: Iterable<string>): Violation | null {
  for (const [ref, w] of locateItems(system, refs)) {
    if (w.spendable.length > 1) return { invariant: 'no-duplication', message: `item ${ref} is spendable on ${w.spendable.join(' and ')}` };
    if (lost(w)) return noLoss(ref);
  }
  const decided = decisions(system);
  for (const chip of system.chips.values()) {
    for (const area of chip.memory.list()) {
      const last = area.last;
      if (area.state === 'mainActive' && last?.op === 'activate' && last.step === 'S16' && decided.get(last.mig) !== 'committed') {
        return {
          invariant: 'commit-point',
          message:
            `area ${area.area} of chip ${chip.serial} was activated (S16) by ${last.mig}, ` +
            `whose decision record is ${decided.get(last.mig) ?? 'missing'}, not committed`,
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
    for (const area of chip.memory.list()) {
      if (area.state === 'mainActive' && area.data && !revokedHere(system, area.provider, chip.serial)) sum += worth(decodeValue(area.data));
    }
  }
  return sum;
}

interface ChipView {
  serial: string;
  areas: Array<{
    area: string;
    provider: string;
    ref: string | null;
    state: string;
    holder: string | null;
    last: { mig: string; step: string; op: string } | null;
  }>;
}

/**
 * The same checks as checkSafety, kept fast for a check after every
 * delivered message: each store is read again only when a message reached
 * its party (or the party restarted); the other parties' stores have not
 * changed since they were last read.
 */
export class SafetyChecker {
  private readonly chips = new Map<string, ChipView>();
  private readonly held = new Map<string, string[]>();
  private decided = new Map<string, string>();
  /** Per provider, the chips its normal SAM revoked (lost phones). */
  private readonly revoked = new Map<string, Set<string>>();

  constructor(
    private readonly system: EmbeddedSystem,
    private readonly refs: ReadonlySet<string>,
  ) {}

  /** Reads the party's store again (after a message reached it). */
  refresh(party: string): void {
    const s = this.system;
    if (party === 'admin-sam') {
      this.decided = new Map();
      for (const { key, value } of s.adminSam.records.decisions.getRange()) this.decided.set(String(key), value.state);
    } else if (party.startsWith('migration-sam/')) {
      const p = party.slice('migration-sam/'.length);
      const prov = s.providers.get(p);
      if (prov)
        this.held.set(
          p,
          prov.migrationSam.held().flatMap((h) => (h.data ? [decodeValue(h.data).ref] : [])),
        );
    } else if (party.startsWith('normal-sam/')) {
      const p = party.slice('normal-sam/'.length);
      this.revoked.set(p, revokedChips(s, p));
    } else if (party.startsWith('chip/')) {
      const serial = party.slice('chip/'.length);
      const chip = s.chips.get(serial);
      if (!chip) return;
      this.chips.set(serial, {
        serial,
        areas: chip.memory.list().map((a) => ({
          area: a.area,
          provider: a.provider,
          ref: a.data ? decodeValue(a.data).ref : null,
          state: a.state,
          holder: a.holder,
          last: a.last ? { mig: a.last.mig, step: a.last.step, op: a.last.op } : null,
        })),
      });
    }
  }

  refreshAll(): void {
    this.refresh('admin-sam');
    for (const p of this.system.providers.keys()) this.refresh(`migration-sam/${p}`);
    for (const p of this.system.providers.keys()) this.refresh(`normal-sam/${p}`);
    for (const serial of this.system.chips.keys()) this.refresh(`chip/${serial}`);
  }

  check(): Violation | null {
    const where = new Map<string, ItemLocation>();
    for (const ref of this.refs) where.set(ref, { spendable: [], lockedBackup: [], heldBy: [], revokedOn: [] });
    for (const chip of this.chips.values()) {
      for (const a of chip.areas) {
        if (a.state === 'mainActive' && a.last?.op === 'activate' && a.last.step === 'S16' && this.decided.get(a.last.mig) !== 'committed') {
          return {
            invariant: 'commit-point',
            message:
              `area ${a.area} of chip ${chip.serial} was activated (S16) by ${a.last.mig}, ` +
              `whose decision record is ${this.decided.get(a.last.mig) ?? 'missing'}, not committed`,
          };
        }
        const w = a.ref === null ? undefined : where.get(a.ref);
        if (!w) continue;
        if (this.revoked.get(a.provider)?.has(chip.serial)) w.revokedOn.push(chip.serial);
        else if (a.state === 'mainActive') w.spendable.push(chip.serial);
        if (a.state === 'locked' && a.holder !== null && this.decided.get(a.holder) !== 'committed') w.lockedBackup.push(chip.serial);
      }
    }
    for (const [p, refs] of this.held) for (const ref of refs) where.get(ref)?.heldBy.push(p);
    for (const [ref, w] of where) {
      if (w.spendable.length > 1) return { invariant: 'no-duplication', message: `item ${ref} is spendable on ${w.spendable.join(' and ')}` };
      if (lost(w)) return noLoss(ref);
    }
    return null;
  }
}
