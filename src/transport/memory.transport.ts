/**
 * In-memory links: two ends of a pipe that deliver each message
 * asynchronously, in order, through a Scheduler. Bytes are copied on send, so
 * a receiver can never alias the sender's buffers (as over a socket).
 */
import type { Link, LinkTap, Scheduler } from './link.ts';
import { immediateScheduler } from './link.ts';

/** Messages queued toward one end before it registers a handler; bounded like a socket buffer. */
export const PIPE_QUEUE_MESSAGES_MAX = 10_000;

class MemoryEnd implements Link {
  peer!: MemoryEnd;
  private handlers: Array<(data: Uint8Array) => void> = [];
  private closeHandlers: Array<(reason: string) => void> = [];
  private backlog: Uint8Array[] = [];
  private open = true;

  constructor(
    readonly label: string,
    private readonly self: string,
    private readonly other: string,
    private readonly scheduler: Scheduler,
    private readonly tap?: LinkTap,
  ) {}

  get isOpen(): boolean {
    return this.open;
  }

  send(data: Uint8Array): void {
    if (!this.open) return; // like a closed socket: the bytes are gone
    const copy = new Uint8Array(data);
    this.tap?.({ link: this.label, from: this.self, to: this.other, bytes: copy });
    const peer = this.peer;
    this.scheduler.defer(() => peer.receive(copy), { link: this.label, from: this.self, to: this.other, bytes: copy });
  }

  private receive(data: Uint8Array): void {
    if (!this.open) return;
    if (this.handlers.length === 0) {
      if (this.backlog.length >= PIPE_QUEUE_MESSAGES_MAX) return;
      this.backlog.push(data);
      return;
    }
    for (const h of this.handlers) h(data);
  }

  onMessage(handler: (data: Uint8Array) => void): void {
    this.handlers.push(handler);
    const pending = this.backlog;
    this.backlog = [];
    for (const d of pending) handler(d);
  }

  onClose(handler: (reason: string) => void): void {
    this.closeHandlers.push(handler);
  }

  close(reason = 'closed'): void {
    if (!this.open) return;
    this.open = false;
    for (const h of this.closeHandlers) h(reason);
    const peer = this.peer;
    this.scheduler.defer(() => peer.closeFromPeer(reason), { link: this.label, from: this.self, to: this.other });
  }

  private closeFromPeer(reason: string): void {
    if (!this.open) return;
    this.open = false;
    for (const h of this.closeHandlers) h(reason);
  }
}

/** Creates a connected pair: [a's end, b's end]. */
export function memoryLinkPair(a: string, b: string, opts: { scheduler?: Scheduler; tap?: LinkTap } = {}): [Link, Link] {
  const scheduler = opts.scheduler ?? immediateScheduler;
  const endA = new MemoryEnd(`${a}->${b}`, a, b, scheduler, opts.tap);
  const endB = new MemoryEnd(`${b}->${a}`, b, a, scheduler, opts.tap);
  endA.peer = endB;
  endB.peer = endA;
  return [endA, endB];
}
