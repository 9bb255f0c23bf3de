/**
 * A direct link to a chip, for the issuing desk (issuer.ts) and for any tool
 * that speaks to a chip frame by frame: it sends session frames and waits for
 * the chip's answer, as a reader held against the chip would.
 */
import { fromB64, toB64 } from '../crypto/index.ts';
import { decodeChipFrame, type ChipFrame } from '../transport/chip.frames.ts';
import { decodeEnvelope, encodeEnvelope, PROTOCOL_VERSION } from '../transport/envelope.ts';
import type { Link } from '../transport/link.ts';
import { memoryLinkPair } from '../transport/memory.transport.ts';
import type { ChipRuntime } from './chip.actor.ts';

/** How long the console waits for the chip's answer to one frame. */
export const CONSOLE_REPLY_TIMEOUT_MS = 5_000;

export class ChipConsole {
  private seq: number;
  private readonly seen = new Set<string>();
  private waiting: { resolve: (f: ChipFrame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;

  /** A console over any link to the chip (in memory, or a socket to a chip process). */
  /**
   * `firstSeq`: where its request numbers start. A chip refuses a request at
   * or below what it pruned of the sender (STALE_REQUEST), so a console that
   * comes again under the same name must count on from where the last one
   * stopped: open() counts from the chip's clock, as a new store does.
   */
  constructor(
    private readonly link: Link,
    readonly id: string,
    private readonly chipId: string,
    firstSeq = 0,
  ) {
    this.seq = firstSeq;
    link.onMessage((bytes) => {
      let env: ReturnType<typeof decodeEnvelope>;
      try {
        env = decodeEnvelope(bytes);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      if (env.type === 'frame') {
        // Frames pass as notices (no acknowledgement): a repeat is taken only once.
        if (this.seen.has(env.id)) return;
        this.seen.add(env.id);
      }
      const w = this.waiting;
      if (!w) return;
      this.waiting = null;
      clearTimeout(w.timer);
      try {
        if (env.type !== 'frame') throw new Error(`chip console: the chip answered ${env.type}: ${JSON.stringify(env.body)}`);
        w.resolve(decodeChipFrame(fromB64(env.body.data)));
      } catch (e) {
        w.reject(e as Error);
      }
    });
  }

  static open(chip: ChipRuntime, name = 'terminal/console'): ChipConsole {
    const [mine, theirs] = memoryLinkPair(name, chip.id);
    chip.attach(name, theirs);
    return new ChipConsole(mine, name, chip.id, chip.now());
  }

  private post(session: string, frame: Uint8Array): void {
    this.link.send(
      encodeEnvelope({
        v: PROTOCOL_VERSION,
        id: `${this.id}#${++this.seq}`,
        from: this.id,
        to: this.chipId,
        type: 'frame',
        body: { session, data: toB64(frame) },
      }),
    );
  }

  private fail(e: Error): void {
    const w = this.waiting;
    this.waiting = null;
    if (w) {
      clearTimeout(w.timer);
      w.reject(e);
    }
  }

  /** Sends one frame and resolves with the chip's answer. */
  exchange(session: string, frame: Uint8Array): Promise<ChipFrame> {
    if (this.waiting) return Promise.reject(new Error('chip console: one frame at a time'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(new Error(`chip console: no answer within ${CONSOLE_REPLY_TIMEOUT_MS} ms`));
      }, CONSOLE_REPLY_TIMEOUT_MS);
      this.waiting = { resolve, reject, timer };
      this.post(session, frame);
    });
  }

  close(): void {
    this.link.close('console closed');
  }
}
