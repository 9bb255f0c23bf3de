/**
 * protocol.md §4 over a stopped deployment's LMDB folders: every chip's
 * areas, every migration SAM's held items and the admin SAM's decision
 * records, read from disk and checked by the simulator's own store checks
 * (src/sim/invariants.ts: no duplication, no loss, commit point; the sum of
 * spendable balances).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EmbeddedSystem } from '../../src/actors/system.ts';
import { checkSafety, spendableWorth, type Violation } from '../../src/sim/invariants.ts';
import { AdminSamRecords } from '../../src/store/adminSam.store.ts';
import { ChipMemory } from '../../src/store/chip.store.ts';
import { MigrationSamRecords, type HeldItem } from '../../src/store/migrationSam.store.ts';
import { PartyStore } from '../../src/store/party.store.ts';

export interface StoredWorld {
  violation: Violation | null;
  /** The balances of every spendable copy, summed. */
  worth: number;
  /** Items the migration SAMs still hold. */
  held: number;
  decisions: Record<string, string>;
}

/** Reads `<dir>/data/*` (the processes stopped) and runs the store checks over the items `refs`. */
export async function checkStoredWorld(dir: string, refs: Iterable<string>): Promise<StoredWorld> {
  const data = join(dir, 'data');
  const stores: PartyStore[] = [];
  const opened = (path: string) => {
    const s = PartyStore.open(path);
    stores.push(s);
    return s;
  };
  try {
    const chips = new Map<string, { serial: string; memory: ChipMemory }>();
    const providers = new Map<string, { migrationSam: { held(): HeldItem[] } }>();
    for (const name of readdirSync(data)) {
      if (name.startsWith('chip-')) chips.set(name.slice(5), { serial: name.slice(5), memory: new ChipMemory(opened(join(data, name))) });
      const msam = join(data, name, 'migration-sam');
      if (name.startsWith('provider-') && existsSync(join(msam, 'data.mdb'))) {
        const records = new MigrationSamRecords(opened(msam));
        providers.set(name.slice(9), { migrationSam: { held: () => records.held() } });
      }
    }
    const admin = new AdminSamRecords(opened(join(data, 'admin-sam')));
    // The checks read only these parts of a system: chips' memories, migration SAMs' held items, the decisions.
    const system = { chips, providers, adminSam: { records: admin } } as unknown as EmbeddedSystem;
    const decisions: Record<string, string> = {};
    for (const { key, value } of admin.decisions.getRange()) decisions[String(key)] = value.state;
    return {
      violation: checkSafety(system, refs),
      worth: spendableWorth(system),
      held: [...providers.values()].reduce((n, p) => n + p.migrationSam.held().length, 0),
      decisions,
    };
  } finally {
    for (const s of stores) await s.close();
  }
}
