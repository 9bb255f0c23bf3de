/**
 * Timers as data (architecture.md): a machine that waits keeps its absolute
 * deadline in its context (`context.timer`: when, and the event to deliver).
 * After each turn, and after a (re)start, the runtime arms one clock timer
 * per actor from that data; when it fires, the event is queued as a turn of
 * its own. Nothing about a timer lives anywhere but the machine's context.
 */
import type { Actor, AnyStateMachine, EventObject } from 'xstate';
import type { Clock } from '../clock.ts';
import type { TimerData } from './types.ts';

interface Armed {
  atMs: number;
  cancel: () => void;
}

/** The timer a machine's snapshot asks for, if it is active and waits. */
export function timerOf(actor: Actor<AnyStateMachine>): TimerData | undefined {
  const snap = actor.getSnapshot();
  const timer = (snap.context as { timer?: TimerData } | undefined)?.timer;
  return snap.status === 'active' && timer ? timer : undefined;
}

export class Timers {
  private readonly armed = new Map<string, Armed>();

  /** `fire` queues the timer's event for the actor under `key`. */
  constructor(
    private readonly clock: Clock,
    private readonly fire: (key: string, event: EventObject) => void,
  ) {}

  /** Arms (or re-arms, or cancels) the timer of the actor under `key` from its context; an unchanged deadline keeps its timer. */
  arm(key: string, actor: Actor<AnyStateMachine>): void {
    const timer = timerOf(actor);
    const current = this.armed.get(key);
    if (timer?.atMs === current?.atMs) return;
    this.cancel(key);
    if (!timer) return;
    const event = { type: timer.event };
    const cancel = this.clock.schedule(timer.atMs, () => {
      this.armed.delete(key);
      this.fire(key, event);
    });
    this.armed.set(key, { atMs: timer.atMs, cancel });
  }

  /** Whether a timer is armed for the actor under `key`. */
  has(key: string): boolean {
    return this.armed.has(key);
  }

  cancel(key: string): void {
    this.armed.get(key)?.cancel();
    this.armed.delete(key);
  }

  cancelAll(): void {
    for (const a of this.armed.values()) a.cancel();
    this.armed.clear();
  }
}
