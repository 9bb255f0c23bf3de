/** The simulator's shared types: what a seed is asked to do, what it draws, and what it reports. */
import type { TerminalRuntime } from '../actors/terminal.actor.ts';
import type { ValueItem } from '../actors/value.ts';
import type { BreakProtocol } from '../testing/broken.ts';
import type { Violation } from './invariants.ts';
import type { RogueAttack, RogueStats } from './rogue.ts';

export const FAULT_KINDS = ['drop', 'dup', 'reorder', 'delay', 'crash', 'partition'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SimOptions {
  seed: string;
  /** Concurrent migrations (one user each). */
  migrations: number;
  /** Most value items per migration (each user's count is drawn from 1 to this), each from its own provider. */
  items: number;
  faults: readonly FaultKind[];
  /** Parent folder for the seed's LMDB stores (one subfolder per seed, removed after). */
  dataDir: string;
  /** Fault numbers that must not strike (shrinking). */
  mask?: ReadonlySet<number>;
  breakProtocol?: BreakProtocol;
  /**
   * The rogue server's attacks on (src/sim/rogue.ts): the server's seat on its links to the SAMs is an
   * adversary's, which now and then asks for what an honest server never would. 'download-kcv' makes some
   * users' destination chips defective instead (their migrations must never complete).
   */
  rogue?: readonly RogueAttack[];
  /**
   * Users try to pay (spend an item, or use a ticket) on both phones, before, during and after their
   * migration, and across crashes; each phone is a reader its providers enrolled. An item spent on both sides
   * of its move is a violation ('spent-twice'), checked on the receipts the phones got.
   */
  pay?: boolean;
  /** Keep the trace lines (they are always hashed). */
  keepTrace?: boolean;
}

export interface FaultMix {
  drop: number;
  dup: number;
  reorder: number;
  delay: number;
  delayMaxMs: number;
  /** Probability that a party crashes at a turn point. */
  crash: number;
  /** Partitions started per virtual second. */
  partition: number;
}

export interface SeedResult {
  seed: string;
  ok: boolean;
  violation?: Violation & { atMs: number; event: number };
  traceHash: string;
  trace: string[];
  mix: FaultMix;
  /** Fault numbers that struck, in order (the shrinker switches them off). */
  struck: number[];
  stats: {
    delivered: number;
    events: number;
    virtualMs: number;
    faults: Record<string, number>;
    crashes: number;
    restarts: number;
    partitions: number;
    outcomes: Record<string, number>;
    wallMs: number;
    /** Payments users tried: accepted (a receipt), refused or unanswered. */
    payments?: PaymentCounts;
    /** The rogue server's attacks: tried, refused by their check, unanswered (lost to faults). */
    rogue?: Record<string, RogueStats>;
  };
}

/** Payments users tried in one seed: accepted (a receipt), refused or unanswered. */
export interface PaymentCounts {
  tried: number;
  accepted: number;
  failed: number;
}

/** One simulated user: a source chip with its items, an empty destination, two phones, and what they plan to do. */
export interface User {
  name: string;
  index: number;
  source: string;
  destination: string;
  oldPhone: string;
  newPhone: string;
  items: ValueItem[];
  deadlineMs?: number;
  /** Virtual time before which the user does not bring the destination (to let a deadline pass). */
  arriveAfter: number;
  cancelAt?: number;
  cancelled: boolean;
  migs: string[];
  /** Its destination chip writes wrong main keys (rogue mode, 'download-kcv'): the migration must not complete. */
  defective: boolean;
  /** When the user last tapped cancel. */
  cancelTriedAt: number;
  /** What each phone is busy with for this user: the runtime asked, and since when (a crashed phone forgets). */
  inFlight: Map<string, { runtime: TerminalRuntime; since: number }>;
  lastAction: number;
}
