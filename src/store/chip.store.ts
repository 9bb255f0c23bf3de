/**
 * Chip memory (protocol.md §1): the serial, K_chip, and per value item an
 * area: its data, main-key slot, temp-key slot, lifecycle state (which
 * implies the active slot), a monotonic counter, the migration holding it
 * and the last admin command it obeyed with the answer it gave. A chip
 * command is one LMDB transaction: an area write happens whole or not at all.
 */
import type { Database } from 'lmdb';
import type { AreaState } from '../machines/area.machine.ts';
import type { ChipReply } from '../transport/chip.frames.ts';
import type { PartyStore } from './party.store.ts';

export { CHIP_AREAS_MAX } from '../machines/area.machine.ts';

export interface AreaRecord {
  area: string;
  provider: string;
  state: AreaState;
  data: Uint8Array | null;
  mainKey: Uint8Array | null;
  tempKey: Uint8Array | null;
  counter: number;
  /** The migration that holds this area (set by lock or format, cleared by restore or activate). */
  holder: string | null;
  /** The last admin command obeyed, by (migration id, step), and its answer: a repeat gets the same answer. */
  last: { mig: string; step: string; op: string; reply: ChipReply } | null;
}

export interface ChipIdentity {
  serial: string;
  kChip: Uint8Array;
}

export class ChipMemory {
  readonly areas: Database<AreaRecord, string>;
  private readonly identity: Database<ChipIdentity, string>;

  constructor(readonly store: PartyStore) {
    this.areas = store.db<AreaRecord>('areas');
    this.identity = store.db<ChipIdentity>('identity');
  }

  getIdentity(): ChipIdentity | undefined {
    return this.identity.get('chip');
  }

  /** Manufacturing: the serial and K_chip are written once, when the chip is made. */
  async personalise(id: ChipIdentity): Promise<void> {
    await this.store.commit(() => {
      if (this.identity.get('chip')) throw new Error('chip is already personalised');
      this.identity.put('chip', id);
    });
  }

  list(): AreaRecord[] {
    return [...this.areas.getRange()].map((e) => e.value).sort((a, b) => a.area.localeCompare(b.area));
  }

  get(area: string): AreaRecord | undefined {
    return this.areas.get(area);
  }
}
