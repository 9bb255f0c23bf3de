/**
 * The inbox: per request a party received, the replies it sent, so that a
 * repeat (a lost reply, a retransmission, a network duplicate) is answered
 * with the same replies and never applied twice. Notices (frames, progress)
 * have no record: a duplicate is dropped by a bounded memory of their ids.
 *
 * Bounded: a record answered longer ago than the retention window
 * (Timing.inboxRetentionMs), whose migration is settled, is pruned by a
 * sweep that rides on a batch's transaction. Per sender, the highest
 * sequence number pruned is kept (its floor): a request at or below it that
 * is not in the inbox was answered long ago, and is refused STALE_REQUEST,
 * never applied a second time.
 *
 * It also keeps new work out when the store can not take it: a store past
 * its budget, or one whose last commit failed, refuses new requests
 * STORE_FULL and serves work in progress.
 */
import type { Clock } from '../clock.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { Logger } from '../log.ts';
import type { InboxEntry, PartyStore } from '../store/party.store.ts';
import type { Timing } from '../timing.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { parseRequestId } from './types.ts';

/**
 * Notice ids (frames, progress: no inbox record) are numbered per sender run: `<party>#n<tag>.<n>` (MessageIds).
 * A duplicate is dropped by a window per stream (sender and tag): the highest n seen and which of the
 * NOTICE_WINDOW below it came. A notice older than the window is dropped as well: for a notice, a drop is a
 * loss, which the session's resends cover (issue 19). Streams kept at most; past it the least recently
 * advanced is forgotten. Ids of another shape are remembered one by one, as many at most.
 */
export const NOTICE_STREAMS_MAX = 20_000;
export const NOTICE_IDS_REMEMBERED_MAX = NOTICE_STREAMS_MAX;
/** Notices below a stream's highest that may still arrive (reordered) and be taken once. */
export const NOTICE_WINDOW = 32;
const NOTICE_ID = /^(.+#n[0-9a-f]+)\.(\d{1,15})$/;
/**
 * Inbox records a party keeps at most (~0.5 KB each: some 50 MB). Over it,
 * a sweep prunes the oldest answered records whatever their age (the floor
 * keeps their repeats from being applied again); while still over (all of
 * them unanswered work), new requests are refused BUSY.
 */
export const INBOX_RECORDS_MAX = 100_000;
/** A batch also sweeps the inbox when this long (ms, the party's clock) has passed since the last sweep. */
export const INBOX_SWEEP_EVERY_MS = 1_000;
/** Inbox records one sweep prunes at most, so a sweep never holds its batch's answers long; one that hit it goes on in the next batch. */
export const INBOX_PRUNES_PER_SWEEP_MAX = 1_000;
/** Inbox records one sweep looks at, pruned or not (unanswered work at the head of the inbox must not make every sweep long). */
export const INBOX_SWEEP_SCAN_MAX = 4_000;
/**
 * After a commit failed (a full disk), new requests are refused STORE_FULL
 * for this long (ms, the party's clock), unless a sweep frees space first:
 * work in progress gets the space there is, and new work is tried again
 * later rather than failing a commit, and reloading the party, each time.
 */
export const STORE_FULL_AFTER_FAILED_COMMIT_MS = 60_000;

export interface InboxDeps {
  party: string;
  store: PartyStore;
  clock: Clock;
  timing: Timing;
  log: Logger;
  /** INBOX_RECORDS_MAX unless the party says otherwise (read when needed). */
  recordsMax(): number;
  /** Whether the migration `mig` is settled, so its records may be pruned once the window has passed. */
  isSettled(mig: string): boolean;
}

/** How a new request is admitted: `fresh` ones keep no record. */
export interface Admission {
  fresh: boolean;
}

export class Inbox {
  /** Records in the inbox, as the last committed batch left them (kept in step by the writes; recounted on reload). */
  private records = 0;
  /** The party's clock reading at or after which a batch sweeps the inbox again. */
  private nextSweepAt = 0;
  /** Where the last sweep stopped, when it stopped at a limit (the next one goes on from there). */
  private sweepFrom: [number, string] | undefined;
  /**
   * Records a sweep prunes at most: INBOX_PRUNES_PER_SWEEP_MAX, halved after
   * each failed commit that swept (deleting needs a few new pages too, and a
   * full disk may have room for a small sweep only), doubled back after each
   * sweep that commits.
   */
  private pruneLimit = INBOX_PRUNES_PER_SWEEP_MAX;
  /** When a commit last failed, until a sweep frees space or STORE_FULL_AFTER_FAILED_COMMIT_MS pass. */
  private failedCommitAt: number | undefined;
  /** Batches run so far; `storeFull` is measured at most once per batch. */
  private batches = 0;
  private fullMeasured: { batch: number; full: boolean } | undefined;
  private readonly notices = new Set<string>();
  /** Per stream of notices: the highest number seen, and a bit per number below it (bit i: highest - i). */
  private readonly noticeStreams = new Map<string, { high: number; mask: number }>();

  constructor(private readonly deps: InboxDeps) {}

  /** Counts the records again and starts sweeping afresh (a start, or a reload after a failed commit). */
  reset(): void {
    this.records = this.deps.store.inboxCount();
    this.nextSweepAt = 0;
    this.sweepFrom = undefined;
  }

  /**
   * Inbox records written before they carried their arrival time have no
   * place in the by-time index the sweep reads: they get one, as if they had
   * arrived now (so they live one more retention window). Once per store.
   */
  async index(): Promise<void> {
    const { store } = this.deps;
    if ((store.inboxByTime.getStats() as { entryCount: number }).entryCount >= store.inboxCount()) return;
    const now = this.deps.clock.now();
    // In chunks, each read afresh from where the last one stopped (no cursor held across a commit).
    let after: string | undefined;
    for (;;) {
      const chunk: Array<[string, InboxEntry]> = [];
      let more = false;
      for (const { key, value } of store.inbox.getRange(after === undefined ? {} : { start: after })) {
        if (key === after) continue;
        if (chunk.length >= INBOX_PRUNES_PER_SWEEP_MAX) {
          more = true;
          break;
        }
        after = key;
        if (value.at === undefined) chunk.push([key, value]);
      }
      await store.commit(() => {
        for (const [id, rec] of chunk) {
          store.inbox.put(id, { ...rec, at: now });
          store.inboxByTime.put([now, id], 1);
        }
      });
      if (!more) return;
    }
  }

  /** Whether this notice came before from this sender (a network duplicate: dropped). Remembers it otherwise. */
  seenNotice(from: string, id: string): boolean {
    // Per sender: an id one peer sent must not silence the same id from another.
    const m = NOTICE_ID.exec(id);
    if (m) return this.seenInStream(`${from}\u0000${m[1]}`, Number(m[2]));
    const key = `${from}\u0000${id}`;
    if (this.notices.has(key)) return true;
    this.notices.add(key);
    if (this.notices.size > NOTICE_IDS_REMEMBERED_MAX) {
      const oldest = this.notices.values().next().value;
      if (oldest !== undefined) this.notices.delete(oldest);
    }
    return false;
  }

  private seenInStream(key: string, n: number): boolean {
    const streams = this.noticeStreams;
    const s = streams.get(key);
    if (!s) {
      streams.set(key, { high: n, mask: 1 });
      if (streams.size > NOTICE_STREAMS_MAX) streams.delete(streams.keys().next().value!);
      return false;
    }
    if (n > s.high) {
      const shift = n - s.high;
      s.mask = ((shift >= NOTICE_WINDOW ? 0 : s.mask << shift) | 1) >>> 0;
      s.high = n;
      // Least recently advanced first, for the bound.
      streams.delete(key);
      streams.set(key, s);
      return false;
    }
    const below = s.high - n;
    if (below >= NOTICE_WINDOW) return true;
    const bit = (1 << below) >>> 0;
    if ((s.mask & bit) !== 0) return true;
    s.mask = (s.mask | bit) >>> 0;
    return false;
  }

  /**
   * Admits a request: the replies stored for it when it is a repeat;
   * undefined when it is new and may be handled. Throws when it must be
   * refused: a malformed or stolen id, a repeat answered long ago
   * (STALE_REQUEST), an inbox at its limit (BUSY), a full store (STORE_FULL).
   */
  admit(env: AnyEnvelope, how: Admission): AnyEnvelope[] | undefined {
    // The id names its sender and a sequence number: what the floor below is compared with.
    const sent = parseRequestId(env.id);
    if (!sent || sent.from !== env.from) {
      throw new ProtocolError('BAD_ENVELOPE', `request id ${env.id} is not "${env.from}#<sequence number>" (optionally ".<16 hex digits>" after it)`);
    }
    if (how.fresh) {
      // A request answered fresh keeps no record, but its id may name one that did (a used id on another type):
      // that request's answer, never a second handling under the same id.
      const stored = this.storedAnswer(env);
      if (stored) return stored;
    } else {
      const repeat = this.repeatOf(env, sent.seq);
      if (repeat) return repeat;
    }
    if (this.storeFull()) {
      throw new ProtocolError('STORE_FULL', `${this.deps.party}'s store is full; it serves work in progress and refuses new work`);
    }
    return undefined;
  }

  /** The stored answer of a request with this id (refused if another sender used the id), or undefined. */
  private storedAnswer(env: AnyEnvelope): AnyEnvelope[] | undefined {
    const seen = this.deps.store.inbox.get(env.id);
    if (seen && seen.from !== env.from) throw new ProtocolError('BAD_ENVELOPE', `request id ${env.id} was already used by another sender`);
    if (seen) this.deps.log.debug('duplicate request answered from the inbox', { type: env.type, id: env.id });
    return seen?.replies;
  }

  /** The replies stored for a request seen before; throws for one that must not be applied. */
  private repeatOf(env: AnyEnvelope, seq: number): AnyEnvelope[] | undefined {
    const { store, party } = this.deps;
    const stored = this.storedAnswer(env);
    if (stored) return stored;
    // Not in the inbox, and at or below what was pruned of this sender: answered long ago. Never applied again.
    const floor = store.inboxFloors.get(env.from);
    if (floor !== undefined && seq <= floor) {
      throw new ProtocolError('STALE_REQUEST', `request ${env.id} was answered long ago and its record is gone; send a new request`);
    }
    if (this.records >= this.deps.recordsMax()) {
      this.nextSweepAt = 0; // the next batch prunes what it can
      throw new ProtocolError(
        'BUSY',
        `${party} holds ${this.records} requests, its limit; it answers repeats and takes new requests once older ones are answered`,
      );
    }
    return undefined;
  }

  /** Opens the record of a request handled now (inside its turn's transaction). */
  record(env: AnyEnvelope, at: number): void {
    const { store } = this.deps;
    store.inbox.put(env.id, { from: env.from, type: env.type, replies: [], at, ...(env.mig !== undefined ? { mig: env.mig } : {}) });
    store.inboxByTime.put([at, env.id], 1);
    this.records++;
  }

  /** Adds a reply to the record of the request it answers, if there is one (inside a transaction). */
  addReply(reply: AnyEnvelope): void {
    if (reply.corr === undefined) return;
    const { store } = this.deps;
    const rec = store.inbox.get(reply.corr);
    if (!rec) return;
    // The first reply that names a migration ties the record to it (migrate.out is answered with its id).
    const mig = rec.mig ?? reply.mig;
    store.inbox.put(reply.corr, { ...rec, replies: [...rec.replies, reply], ...(mig !== undefined ? { mig } : {}) });
  }

  /** The sender of a request this party received, while its record is kept. */
  senderOf(id: string): string | undefined {
    return this.deps.store.inbox.get(id)?.from;
  }

  /** Whether `id` is a reply stored in the record of request `corr`. */
  holdsReply(corr: string, id: string): boolean {
    return this.deps.store.inbox.get(corr)?.replies.some((r) => r.id === id) ?? false;
  }

  // ---- pruning -----------------------------------------------------------------------

  /** Whether a sweep is due at `now`. */
  sweepDue(now: number): boolean {
    return now >= this.nextSweepAt;
  }

  /**
   * Prunes the inbox (inside the running write transaction): answered
   * records older than the retention window whose migration is settled,
   * and, while the inbox holds more than its limit, the oldest answered
   * ones whatever their age. Unanswered records are work in progress and
   * stay. Each pruned record raises its sender's floor. Returns how many.
   */
  sweep(now: number): number {
    const { store, log } = this.deps;
    const { prune, stoppedAt } = this.pickPrunes(now);
    for (const { key, rec } of prune) {
      store.inboxByTime.remove(key);
      if (!rec) continue;
      store.inbox.remove(key[1]);
      this.records--;
      const sent = parseRequestId(key[1]);
      if (sent && sent.seq > (store.inboxFloors.get(rec.from) ?? -1)) store.inboxFloors.put(rec.from, sent.seq);
    }
    if (prune.length > 0) log.debug('inbox pruned', { records: prune.length, left: this.records });
    this.sweepFrom = stoppedAt;
    this.nextSweepAt = stoppedAt ? now : now + INBOX_SWEEP_EVERY_MS;
    return prune.length;
  }

  /** The records a sweep at `now` prunes, oldest first, and where it stopped if it hit a limit. */
  private pickPrunes(now: number): { prune: Array<{ key: [number, string]; rec: InboxEntry | undefined }>; stoppedAt?: [number, string] } {
    const { store } = this.deps;
    const cutoff = now - this.deps.timing.inboxRetentionMs;
    // At the cap or past it, the oldest answered records make room for the next request.
    let over = this.records - this.deps.recordsMax() + 1;
    const prune: Array<{ key: [number, string]; rec: InboxEntry | undefined }> = [];
    let scanned = 0;
    for (const { key } of store.inboxByTime.getRange(this.sweepFrom ? { start: this.sweepFrom } : {})) {
      if (key[0] > cutoff && over <= 0) break;
      if (prune.length >= this.pruneLimit || scanned >= INBOX_SWEEP_SCAN_MAX) return { prune, stoppedAt: key };
      scanned++;
      const rec = store.inbox.get(key[1]);
      if (!rec) {
        prune.push({ key, rec }); // an index entry left without its record
        continue;
      }
      if (rec.replies.length === 0) continue;
      const expired = key[0] <= cutoff && (rec.mig === undefined || this.deps.isSettled(rec.mig));
      if (!expired && over <= 0) continue;
      over--;
      prune.push({ key, rec });
    }
    return { prune };
  }

  /** Whether a sweep at `now` would prune anything (read outside a transaction). */
  hasPrunes(now: number): boolean {
    return this.pickPrunes(now).prune.length > 0;
  }

  /** A sweep that had nothing to prune was not run: the next one is an interval away, as after a sweep. */
  sweepSkipped(now: number): void {
    this.nextSweepAt = now + INBOX_SWEEP_EVERY_MS;
  }

  /** A sweep's transaction committed: space it freed lets new work in again, and the next sweep may be larger. */
  sweepCommitted(pruned: number): void {
    if (pruned === 0) return;
    this.failedCommitAt = undefined;
    this.pruneLimit = Math.min(INBOX_PRUNES_PER_SWEEP_MAX, this.pruneLimit * 2);
  }

  /** A sweep's transaction failed: a smaller one at once, down to one record; then one per interval. */
  sweepFailed(): void {
    if (this.pruneLimit > 1) this.pruneLimit = Math.max(1, this.pruneLimit >> 1);
    else this.nextSweepAt = this.deps.clock.now() + INBOX_SWEEP_EVERY_MS;
  }

  // ---- a store that can not take new work ------------------------------------------------

  /** A batch starts (the store's fullness is measured at most once per batch). */
  newBatch(): void {
    this.batches++;
  }

  /** A commit failed (a full disk): new work is refused for a while. */
  commitFailed(): void {
    this.failedCommitAt = this.deps.clock.now();
  }

  /** Whether the last commit failed and no sweep has freed space since: pruning goes first, in a transaction of its own. */
  get recovering(): boolean {
    return this.failedCommitAt !== undefined;
  }

  /** Whether the store passed its budget (STORE_FULL_FRACTION), measured at most once per batch, or a commit failed lately. */
  private storeFull(): boolean {
    if (this.failedCommitAt !== undefined) {
      if (this.deps.clock.now() < this.failedCommitAt + STORE_FULL_AFTER_FAILED_COMMIT_MS) return true;
      this.failedCommitAt = undefined;
    }
    if (this.fullMeasured?.batch !== this.batches) this.fullMeasured = { batch: this.batches, full: this.deps.store.isFull };
    return this.fullMeasured.full;
  }
}
