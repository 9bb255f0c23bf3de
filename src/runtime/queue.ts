/**
 * One party, one queue (architecture.md): jobs (an inbound message, a local
 * command, a timer) wait here and run one at a time, as turns.
 *
 * Group commit: a batch runs queued jobs as turns, one after another,
 * inside ONE LMDB write transaction, awaits its flush once, then lets each
 * turn speak in order (a turn with nothing to write, such as a relayed
 * frame, runs and speaks before it, with no transaction at all). Every turn still sees the writes of the turns before
 * it (reads inside the transaction see its writes), so a duplicate request
 * handled in the same batch is answered from the inbox as before; and
 * whatever a turn would send at once waits for the flush too, so nothing is
 * spoken before it is on disk. A crash anywhere keeps exactly what the
 * transaction committed.
 *
 * How many turns share a commit is the CommitPolicy, injected: a server
 * takes up to TURNS_PER_COMMIT_MAX; the simulator takes one, which is the
 * one-message-at-a-time order its seeds replay in. Same path either way.
 */
import { stopwatch } from './stopwatch.ts';

/** Jobs waiting for the party's queue; beyond this, new jobs are refused (BUSY). */
export const QUEUE_JOBS_MAX = 50_000;
/** Turns committed together in one LMDB transaction (group commit). */
export const TURNS_PER_COMMIT_MAX = 256;
/** A batch stops taking jobs after this much work, ms, so its first turn's answer is not held too long. */
export const BATCH_WORK_MS_MAX = 50;

export interface CommitPolicy {
  /** Turns one transaction takes at most. */
  turnsPerCommit: number;
  /** A batch stops taking jobs after this much work, ms (wall time of the turns; never the first one). */
  workMsPerCommit: number;
}

/** Many turns per transaction: a party serving many peers. */
export const GROUP_COMMIT: CommitPolicy = { turnsPerCommit: TURNS_PER_COMMIT_MAX, workMsPerCommit: BATCH_WORK_MS_MAX };
/** One turn per transaction: the simulator's order, where every message is its own turn and its own commit. */
export const ONE_TURN_PER_COMMIT: CommitPolicy = { turnsPerCommit: 1, workMsPerCommit: BATCH_WORK_MS_MAX };

/** A job that ran as a turn in memory, waiting for its batch's commit. */
export interface RanTurn {
  /** The batch stops at this turn (it failed after a state change, or a crash was injected before its commit). */
  stops: boolean;
  /** The turn has nothing to write: it speaks without a transaction (queue.ts, runBatch). */
  empty: boolean;
}

/** What the queue asks of the party around each batch. */
export interface BatchHost<J, T extends RanTurn> {
  /** Before the batch's transaction opens; false when the batch is over already (it was handled). */
  prepare(): Promise<boolean>;
  /** Runs one job as a turn in memory, inside the batch's transaction (it reads what earlier turns wrote), or before it opens. */
  run(job: J): T;
  /** Puts a turn's writes into the transaction, unless the turn stops the batch (then it says so in `stops`). */
  write(turn: T): void;
  /** The last work inside the transaction, when no turn stopped the batch (the inbox sweep). */
  closing(): void;
  /** Whether `closing` has work to do (then a batch whose turns wrote nothing still commits, for it alone). */
  closingDue(): boolean;
  /** Runs `fn` in one write transaction and resolves once it is durable. */
  commit(fn: () => void): Promise<void>;
  /** The transaction is on disk: the turns speak, in order. */
  committed(turns: T[]): Promise<void>;
  /** The transaction failed: nothing of the batch is on disk. */
  failed(turns: T[], error: unknown): Promise<void>;
}

export type Enqueued = 'queued' | 'closed' | 'full';

export class TurnQueue<J, T extends RanTurn> {
  private jobs: J[] = [];
  private draining = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly host: BatchHost<J, T>,
    private readonly policy: CommitPolicy,
    private readonly jobsMax = QUEUE_JOBS_MAX,
  ) {}

  /** Queues a job and starts the queue if it is idle; says why a job was not taken. */
  push(job: J): Enqueued {
    if (this.closed) return 'closed';
    if (this.jobs.length >= this.jobsMax) return 'full';
    this.jobs.push(job);
    void this.drain();
    return 'queued';
  }

  /** Takes no more jobs; those queued stay where they are. */
  close(): void {
    this.closed = true;
  }

  /** Takes no more jobs, and hands back those queued. */
  clear(): J[] {
    this.closed = true;
    const jobs = this.jobs;
    this.jobs = [];
    return jobs;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** A batch is running or jobs are queued. */
  get busy(): boolean {
    return this.draining || this.jobs.length > 0;
  }

  get length(): number {
    return this.jobs.length;
  }

  /** Resolves when the queue is empty and no batch is running. */
  idle(): Promise<void> {
    if (!this.draining && this.jobs.length === 0) return Promise.resolve();
    return new Promise((res) => this.idleWaiters.push(res));
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.jobs.length > 0 && !this.closed) await this.runBatch();
    } finally {
      this.draining = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async runBatch(): Promise<void> {
    if (!(await this.host.prepare())) return;
    // Turns that write nothing (a relayed frame) run and speak without a transaction; the first that writes
    // opens one, and the turns after it run inside it, as before.
    let first: T | undefined;
    while (this.jobs.length > 0 && !this.closed) {
      const turn = this.host.run(this.jobs.shift()!);
      if (!turn.empty) {
        first = turn;
        break;
      }
      this.host.write(turn);
      await this.host.committed([turn]);
      if (turn.stops) return;
    }
    if (!first) {
      // No turn wrote, but the batch has closing work due (the inbox sweep): it gets a transaction of its own,
      // unless a turn's crash closed the party (its store is closed: nothing more is written).
      if (this.closed || !this.host.closingDue()) return;
      try {
        await this.host.commit(() => this.host.closing());
      } catch (e) {
        return this.host.failed([], e);
      }
      return this.host.committed([]);
    }
    const turns: T[] = [];
    try {
      await this.host.commit(() => {
        if (this.take(turns, first)) this.host.closing();
      });
    } catch (e) {
      return this.host.failed(turns, e);
    }
    await this.host.committed(turns);
  }

  /**
   * Puts `first` (run already) and then queued jobs into `turns`, as many as
   * the policy lets one transaction take; false when a turn stopped the batch.
   */
  private take(turns: T[], first: T): boolean {
    const budgetEnd = stopwatch.now() + this.policy.workMsPerCommit;
    let ran: T | undefined = first;
    while (ran || (this.jobs.length > 0 && !this.closed && turns.length < this.policy.turnsPerCommit)) {
      if (!ran && turns.length > 0 && stopwatch.now() > budgetEnd) break;
      const turn = ran ?? this.host.run(this.jobs.shift()!);
      ran = undefined;
      // In the batch before its writes: if they throw, the transaction fails and the turn is told so with the rest.
      turns.push(turn);
      this.host.write(turn);
      if (turn.stops) return false;
    }
    return true;
  }
}
