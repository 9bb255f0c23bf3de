/**
 * The abstract state, packed in bytes so that millions of states fit and the
 * canonical key of a state is its bytes (a latin1 string).
 *
 * World: M migrations; migration m moves K items from chip SRCm to chip DSTm;
 * item i of every migration lives in area i and belongs to provider i (so
 * the migrations share the providers' migration SAMs). Item (m, i) is the
 * value token m*K+i. Spare chips start empty.
 *
 *   per chip, per area:     state, holder (migration + 1), token (+ 1)
 *   per migration:          record, destination (+ 1), temp keys, grants expired, upload grants issued,
 *                           chips download grants were issued for (mask), providers fenced (mask),
 *                           the honest server's open sessions (16 bits), what it knows (24 bits),
 *                           the requests it sent (24 bits)
 *   per (migration, item):  migration-SAM record, its token (+ 1), chips a receipt was signed for (mask)
 */
import { AREA_STATES, DECISIONS, HELD_STATES, KEY_STATES, type AreaState, type Decision, type Grant, type HeldState, type KeyState } from './types.ts';

export const ITEMS_MAX = 3;
export const MIGRATIONS_MAX = 3;
export const SPARE_CHIPS_MAX = 2;

const AREA_BYTES = 3;
const MIG_BYTES = 15;
const ITEM_BYTES = 3;
// Offsets inside a migration's block.
const DEC = 0;
const DEST = 1;
const KEYS = 2;
const EXPIRED = 3;
const GRANTS_UP = 4;
const GRANTS_DOWN = 5;
const FENCED = 6;
const SESSIONS = 7; // 2 bytes
const KNOWS = 9; // 3 bytes
const SENT = 12; // 3 bytes
// Offsets inside an item's block.
const HELD = 0;
const HELD_TOKEN = 1;
const RECEIPTS = 2;

export class Topology {
  readonly chips: number;
  readonly bytes: number;
  private readonly migBase: number;
  private readonly itemBase: number;

  constructor(
    readonly M: number,
    readonly K: number,
    readonly spare: number,
  ) {
    if (!Number.isInteger(K) || K < 1 || K > ITEMS_MAX) throw new RangeError(`items must be 1..${ITEMS_MAX}, not ${K}`);
    if (!Number.isInteger(M) || M < 1 || M > MIGRATIONS_MAX) throw new RangeError(`migrations must be 1..${MIGRATIONS_MAX}, not ${M}`);
    if (!Number.isInteger(spare) || spare < 0 || spare > SPARE_CHIPS_MAX) throw new RangeError(`spareChips must be 0..${SPARE_CHIPS_MAX}, not ${spare}`);
    this.chips = 2 * M + spare;
    this.migBase = this.chips * K * AREA_BYTES;
    this.itemBase = this.migBase + M * MIG_BYTES;
    this.bytes = this.itemBase + M * K * ITEM_BYTES;
  }

  src(m: number): number {
    return 2 * m;
  }

  dst(m: number): number {
    return 2 * m + 1;
  }

  token(m: number, i: number): number {
    return m * this.K + i;
  }

  /** The migration a token belongs to, and its item index. */
  ofToken(t: number): { m: number; i: number } {
    return { m: Math.floor(t / this.K), i: t % this.K };
  }

  chipName(c: number): string {
    if (c < 2 * this.M) return `${c % 2 === 0 ? 'SRC' : 'DST'}${this.M > 1 ? Math.floor(c / 2) : ''}`;
    return `X${c - 2 * this.M}`;
  }

  tokenName(t: number): string {
    const { m, i } = this.ofToken(t);
    return this.M > 1 ? `v${m}.${i}` : `v${i}`;
  }

  migName(m: number): string {
    return `m${m}`;
  }

  areaOffset(c: number, i: number): number {
    return (c * this.K + i) * AREA_BYTES;
  }

  migOffset(m: number): number {
    return this.migBase + m * MIG_BYTES;
  }

  itemOffset(m: number, i: number): number {
    return this.itemBase + (m * this.K + i) * ITEM_BYTES;
  }
}

export interface Area {
  st: AreaState;
  /** The migration holding the area (set by lock or format, cleared by activate, restore, wipe); -1: none. */
  holder: number;
  /** The value token in the area; -1: no data. */
  token: number;
}

/** One abstract state over a topology; mutable only while a successor is being built (see `with`). */
export class SafetyState {
  constructor(
    readonly t: Topology,
    readonly b: Uint8Array,
  ) {}

  static initial(t: Topology): SafetyState {
    const s = new SafetyState(t, new Uint8Array(t.bytes));
    for (let m = 0; m < t.M; m++) {
      for (let i = 0; i < t.K; i++) s.setArea(t.src(m), i, { st: 'mainActive', holder: -1, token: t.token(m, i) });
    }
    return s;
  }

  static fromKey(t: Topology, key: string): SafetyState {
    return new SafetyState(t, Uint8Array.from(Buffer.from(key, 'latin1')));
  }

  key(): string {
    return Buffer.from(this.b.buffer, this.b.byteOffset, this.b.byteLength).toString('latin1');
  }

  clone(): SafetyState {
    return new SafetyState(this.t, this.b.slice());
  }

  // ---- chips ------------------------------------------------------------------------------------

  area(c: number, i: number): Area {
    const o = this.t.areaOffset(c, i);
    return { st: AREA_STATES[this.b[o]!]!, holder: this.b[o + 1]! - 1, token: this.b[o + 2]! - 1 };
  }

  areaState(c: number, i: number): AreaState {
    return AREA_STATES[this.b[this.t.areaOffset(c, i)]!]!;
  }

  setArea(c: number, i: number, a: Area): void {
    const o = this.t.areaOffset(c, i);
    this.b[o] = AREA_STATES.indexOf(a.st);
    this.b[o + 1] = a.holder + 1;
    this.b[o + 2] = a.token + 1;
  }

  // ---- admin SAM ----------------------------------------------------------------------------------

  dec(m: number): Decision {
    return DECISIONS[this.b[this.t.migOffset(m) + DEC]!]!;
  }

  setDec(m: number, d: Decision): void {
    this.b[this.t.migOffset(m) + DEC] = DECISIONS.indexOf(d);
  }

  /** The record's destination chip; -1 until the first format binds it. */
  dest(m: number): number {
    return this.b[this.t.migOffset(m) + DEST]! - 1;
  }

  setDest(m: number, c: number): void {
    this.b[this.t.migOffset(m) + DEST] = c + 1;
  }

  keys(m: number): KeyState {
    return KEY_STATES[this.b[this.t.migOffset(m) + KEYS]!]!;
  }

  setKeys(m: number, k: KeyState): void {
    this.b[this.t.migOffset(m) + KEYS] = KEY_STATES.indexOf(k);
  }

  expired(m: number): boolean {
    return this.b[this.t.migOffset(m) + EXPIRED] === 1;
  }

  setExpired(m: number): void {
    this.b[this.t.migOffset(m) + EXPIRED] = 1;
  }

  uploadGrantsIssued(m: number): boolean {
    return this.b[this.t.migOffset(m) + GRANTS_UP] === 1;
  }

  setUploadGrantsIssued(m: number): void {
    this.b[this.t.migOffset(m) + GRANTS_UP] = 1;
  }

  downloadGrantChips(m: number): number {
    return this.b[this.t.migOffset(m) + GRANTS_DOWN]!;
  }

  addDownloadGrantChip(m: number, c: number): void {
    this.b[this.t.migOffset(m) + GRANTS_DOWN]! |= 1 << c;
  }

  /** Every grant the admin SAM has issued (what a server, honest or not, may hold). */
  grants(): Grant[] {
    const out: Grant[] = [];
    for (let m = 0; m < this.t.M; m++) {
      for (let i = 0; i < this.t.K; i++) {
        if (this.uploadGrantsIssued(m)) out.push({ m, i, purpose: 'upload', chip: this.t.src(m) });
        const down = this.downloadGrantChips(m);
        for (let c = 0; c < this.t.chips; c++) if (down & (1 << c)) out.push({ m, i, purpose: 'download', chip: c });
      }
    }
    return out;
  }

  // ---- migration SAMs -----------------------------------------------------------------------------

  fenced(m: number, provider: number): boolean {
    return (this.b[this.t.migOffset(m) + FENCED]! & (1 << provider)) !== 0;
  }

  setFenced(m: number, provider: number): void {
    this.b[this.t.migOffset(m) + FENCED]! |= 1 << provider;
  }

  held(m: number, i: number): HeldState {
    return HELD_STATES[this.b[this.t.itemOffset(m, i) + HELD]!]!;
  }

  heldToken(m: number, i: number): number {
    return this.b[this.t.itemOffset(m, i) + HELD_TOKEN]! - 1;
  }

  setHeld(m: number, i: number, h: HeldState, token = this.heldToken(m, i)): void {
    const o = this.t.itemOffset(m, i);
    this.b[o + HELD] = HELD_STATES.indexOf(h);
    this.b[o + HELD_TOKEN] = h === 'held' || h === 'receipted' ? token + 1 : 0;
  }

  /** Chips a download receipt for (m, i) was signed for (a history: receipts are signed tokens, they do not go away). */
  receiptChips(m: number, i: number): number {
    return this.b[this.t.itemOffset(m, i) + RECEIPTS]!;
  }

  addReceiptChip(m: number, i: number, c: number): void {
    this.b[this.t.itemOffset(m, i) + RECEIPTS]! |= 1 << c;
  }

  // ---- the honest server ---------------------------------------------------------------------------

  sessions(m: number): number {
    const o = this.t.migOffset(m) + SESSIONS;
    return this.b[o]! | (this.b[o + 1]! << 8);
  }

  setSessions(m: number, bits: number): void {
    const o = this.t.migOffset(m) + SESSIONS;
    this.b[o] = bits & 0xff;
    this.b[o + 1] = (bits >> 8) & 0xff;
  }

  knows(m: number): number {
    const o = this.t.migOffset(m) + KNOWS;
    return this.b[o]! | (this.b[o + 1]! << 8) | (this.b[o + 2]! << 16);
  }

  setKnows(m: number, bits: number): void {
    const o = this.t.migOffset(m) + KNOWS;
    this.b[o] = bits & 0xff;
    this.b[o + 1] = (bits >> 8) & 0xff;
    this.b[o + 2] = (bits >> 16) & 0xff;
  }

  sent(m: number): number {
    const o = this.t.migOffset(m) + SENT;
    return this.b[o]! | (this.b[o + 1]! << 8) | (this.b[o + 2]! << 16);
  }

  setSent(m: number, bits: number): void {
    const o = this.t.migOffset(m) + SENT;
    this.b[o] = bits & 0xff;
    this.b[o + 1] = (bits >> 8) & 0xff;
    this.b[o + 2] = (bits >> 16) & 0xff;
  }
}

/** A grant in words, for labels: `upload grant (m0, item 1) for SRC`. */
export function grantName(t: Topology, g: Grant): string {
  return `${g.purpose} grant (${t.migName(g.m)}, item ${g.i}) for ${t.chipName(g.chip)}`;
}
