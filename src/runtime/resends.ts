/**
 * Session frames sent again, end to end (issue 19). A frame is a notice: no
 * hop acknowledges, stores or resends it. The SAM that drives a chip
 * session keeps its last frame of each session in RAM and sends it again,
 * under a new message id, on the outbox's backoff, until a frame of that
 * session comes back, it sends the session's next frame, or it has tried
 * RESENDS_MAX times (the first after a tenth of the session's time, then
 * doubling up to the outbox's cap); the chip answers a repeat of the frame it last
 * answered with the same answer, without running it again (chip.actor.ts),
 * and the SAM drops a repeated answer (samSession.ts). Nothing here is
 * written: a restart ends the session anyway (its keys were RAM), and its
 * deadline and the step's retry take over.
 */
import type { Clock } from '../clock.ts';
import type { Timing } from '../timing.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import type { OutMessage } from './types.ts';

/** Times a session's last frame is sent again before the session's deadline is left to end it. */
export const RESENDS_MAX = 6;
/** Sessions whose last frame a party keeps for sending again (a bound: the oldest goes first). */
export const RESENT_SESSIONS_MAX = 10_000;

export interface ResendDeps {
  clock: Clock;
  timing: Timing;
  /** A new id for the copy (a hop drops a repeated id as a network duplicate). */
  newId(): string;
  transmit(o: OutMessage): void;
  stopped(): boolean;
}

interface Tracked {
  o: OutMessage;
  sent: number;
  cancel: () => void;
}

export class Resends {
  private readonly bySession = new Map<string, Tracked>();

  constructor(private readonly deps: ResendDeps) {}

  /** A frame this party just sent: its session's earlier frame is superseded, this one is sent again until answered. */
  sent(o: OutMessage): void {
    if (o.env.type !== 'frame') return;
    const session = o.env.body.session;
    this.answered(session);
    if (this.bySession.size >= RESENT_SESSIONS_MAX) this.answered(this.bySession.keys().next().value!);
    const t: Tracked = { o, sent: 0, cancel: () => {} };
    this.bySession.set(session, t);
    this.arm(session, t);
  }

  /** A frame of `session` arrived: whatever it says, the last one we sent got there. */
  answered(session: string): void {
    const t = this.bySession.get(session);
    if (!t) return;
    t.cancel();
    this.bySession.delete(session);
  }

  /** A received envelope: a frame answers its session. */
  received(env: AnyEnvelope): void {
    if (env.type === 'frame') this.answered(env.body.session);
  }

  /** Sessions being sent again now. */
  get size(): number {
    return this.bySession.size;
  }

  cancelAll(): void {
    for (const t of this.bySession.values()) t.cancel();
    this.bySession.clear();
  }

  private arm(session: string, t: Tracked): void {
    const { timing, clock } = this.deps;
    // Not before a tenth of the session's time: an answer that is only slow (a busy chip, a loaded server) is no loss.
    const first = Math.max(timing.retransmitMs, timing.sessionMs / 10);
    const delay = Math.min(Math.max(timing.retransmitCapMs, first), first * 2 ** t.sent);
    t.cancel = clock.schedule(clock.now() + delay, () => {
      if (this.bySession.get(session) !== t || this.deps.stopped()) return;
      if (t.sent >= RESENDS_MAX) {
        this.bySession.delete(session);
        return;
      }
      t.sent++;
      this.deps.transmit({ peer: t.o.peer, env: { ...t.o.env, id: this.deps.newId() } as AnyEnvelope });
      this.arm(session, t);
    });
  }
}
