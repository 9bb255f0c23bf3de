/**
 * The requests a server sends to the admin SAM and the migration SAMs (§3),
 * and the honest server's bookkeeping as bits: the sessions it has open (they
 * live in RAM: a crash ends them), what it has learnt from answers (durable),
 * and which requests it has sent (its outbox).
 */
import type { Topology } from './state.ts';
import { grantName } from './state.ts';
import type { Grant } from './types.ts';

export type Request =
  | { kind: 'lock'; m: number }
  | { kind: 'format'; m: number; chip: number }
  | { kind: 'upload'; m: number; i: number; grant: Grant }
  | { kind: 'download'; m: number; i: number; grant: Grant }
  /** `receipts[i]`: the chip the receipt presented for item i is bound to; -1: none presented. */
  | { kind: 'commit'; m: number; receipts: number[] }
  | { kind: 'abort'; m: number }
  | { kind: 'activate'; m: number; chip: number }
  | { kind: 'restore'; m: number; chip: number }
  | { kind: 'wipe'; m: number; chip: number; role: 'source' | 'destination' }
  | { kind: 'fence'; m: number; provider: number }
  | { kind: 'clear'; m: number; i: number };

/** The protocol step a request belongs to, for labels. */
const STEP: Record<Request['kind'], string> = {
  lock: 'S3',
  upload: 'S4-S8',
  format: 'S10',
  download: 'S11-S14',
  commit: 'commit',
  activate: 'S16',
  clear: 'S17',
  abort: 'abort',
  fence: 'rollback(2)',
  restore: 'rollback(3)',
  wipe: 'wipe',
};

export function requestName(t: Topology, r: Request): string {
  const m = t.migName(r.m);
  switch (r.kind) {
    case 'lock':
    case 'abort':
      return `${STEP[r.kind]} ${r.kind}(${m})`;
    case 'format':
    case 'activate':
    case 'restore':
      return `${STEP[r.kind]} ${r.kind}(${m}, ${t.chipName(r.chip)})`;
    case 'wipe':
      return `${STEP[r.kind]} wipe ${r.role}(${m}, ${t.chipName(r.chip)})`;
    case 'upload':
    case 'download':
      return `${STEP[r.kind]} ${r.kind}(${m}, item ${r.i}) with ${grantName(t, r.grant)}`;
    case 'commit': {
      const shown = r.receipts.map((c, i) => (c < 0 ? `item ${i}: none` : `item ${i}: for ${t.chipName(c)}`));
      return `${STEP[r.kind]} commit(${m}) with receipts [${shown.join(', ')}]`;
    }
    case 'fence':
      return `${STEP[r.kind]} fence(${m}) at migration SAM ${r.provider}`;
    case 'clear':
      return `${STEP[r.kind]} clear(${m}, item ${r.i})`;
  }
}

/**
 * Bit positions, which depend on K. Knowledge: what the honest server learnt
 * from answers. Slots: one per request the honest server sends, for its
 * outbox (`sent`) and, for the requests that run a chip session, its open
 * sessions.
 */
export class Bits {
  // knowledge
  readonly LOCKED = 1 << 0;
  readonly FORMATTED = 1 << 1;
  readonly COMMITTED = 1 << 2;
  readonly ABORTED = 1 << 3;
  readonly ACTIVATED = 1 << 4;
  readonly RESTORED = 1 << 5;
  readonly WIPED = 1 << 6;
  readonly SOURCE_WIPED = 1 << 7;
  readonly CANCEL = 1 << 8;
  // slots
  readonly S_LOCK = 0;
  readonly S_FORMAT = 1;
  readonly S_COMMIT = 2;
  readonly S_ABORT = 3;
  readonly S_ACTIVATE = 4;
  readonly S_RESTORE = 5;
  readonly S_WIPE_DST = 6;
  readonly S_WIPE_SRC = 7;

  constructor(readonly K: number) {}

  uploaded(i: number): number {
    return 1 << (9 + i);
  }

  receipt(i: number): number {
    return 1 << (9 + this.K + i);
  }

  fencedAt(p: number): number {
    return 1 << (9 + 2 * this.K + p);
  }

  cleared(i: number): number {
    return 1 << (9 + 3 * this.K + i);
  }

  /** Every item's bit of a kind (uploaded, receipt, fencedAt, cleared). */
  every(bit: (i: number) => number): number {
    let out = 0;
    for (let i = 0; i < this.K; i++) out |= bit.call(this, i);
    return out;
  }

  sUpload(i: number): number {
    return 8 + i;
  }

  sDownload(i: number): number {
    return 8 + this.K + i;
  }

  sFence(p: number): number {
    return 8 + 2 * this.K + p;
  }

  sClear(i: number): number {
    return 8 + 3 * this.K + i;
  }

  get slots(): number {
    return 8 + 4 * this.K;
  }

  /** The knowledge that answers the request in `slot`: once known, a delivery of it is a late duplicate. */
  answeredBy(slot: number): number {
    const K = this.K;
    if (slot === this.S_LOCK) return this.LOCKED;
    if (slot === this.S_FORMAT) return this.FORMATTED;
    if (slot === this.S_COMMIT || slot === this.S_ABORT) return this.COMMITTED | this.ABORTED;
    if (slot === this.S_ACTIVATE) return this.ACTIVATED;
    if (slot === this.S_RESTORE) return this.RESTORED;
    if (slot === this.S_WIPE_DST) return this.WIPED;
    if (slot === this.S_WIPE_SRC) return this.SOURCE_WIPED;
    const j = slot - 8;
    if (j < K) return this.uploaded(j);
    if (j < 2 * K) return this.receipt(j - K);
    if (j < 3 * K) return this.fencedAt(j - 2 * K);
    return this.cleared(j - 3 * K);
  }

  /** Whether the request in `slot` runs a chip session (its session bit is the slot bit). */
  hasSession(slot: number): boolean {
    return slot !== this.S_COMMIT && slot !== this.S_ABORT && slot < 8 + 2 * this.K;
  }

  /** The request the honest server sends in `slot` for migration m: its own chips, its own grants, the receipts it holds. */
  request(t: Topology, m: number, slot: number, knows: number): Request {
    const K = this.K;
    switch (slot) {
      case this.S_LOCK:
        return { kind: 'lock', m };
      case this.S_FORMAT:
        return { kind: 'format', m, chip: t.dst(m) };
      case this.S_COMMIT:
        return { kind: 'commit', m, receipts: Array.from({ length: K }, (_, i) => (knows & this.receipt(i) ? t.dst(m) : -1)) };
      case this.S_ABORT:
        return { kind: 'abort', m };
      case this.S_ACTIVATE:
        return { kind: 'activate', m, chip: t.dst(m) };
      case this.S_RESTORE:
        return { kind: 'restore', m, chip: t.src(m) };
      case this.S_WIPE_DST:
        return { kind: 'wipe', m, chip: t.dst(m), role: 'destination' };
      case this.S_WIPE_SRC:
        return { kind: 'wipe', m, chip: t.src(m), role: 'source' };
    }
    const j = slot - 8;
    if (j < K) return { kind: 'upload', m, i: j, grant: { m, i: j, purpose: 'upload', chip: t.src(m) } };
    if (j < 2 * K) return { kind: 'download', m, i: j - K, grant: { m, i: j - K, purpose: 'download', chip: t.dst(m) } };
    if (j < 3 * K) return { kind: 'fence', m, provider: j - 2 * K };
    return { kind: 'clear', m, i: j - 3 * K };
  }
}
