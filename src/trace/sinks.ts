/**
 * Where a recorder's records go: a JSON Lines file, or a live page's
 * WebSocket feed. Neither may slow down or break the protocol it watches: a
 * write never throws and never waits on the network; what cannot be kept is
 * dropped, counted, and reported once.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { WebSocket } from 'ws';
import type { RunRecord } from './records.ts';
import { RUN_FILE_BYTES_MAX, type RecordSink } from './recorder.ts';

/** Records a WebSocket sink holds while it connects; the oldest are dropped beyond it. */
export const FEED_BUFFER_RECORDS_MAX = 20_000;
/** Bytes queued on an open socket; beyond it records are dropped (the page reads too slowly). */
export const FEED_QUEUED_BYTES_MAX = 16 * 1024 * 1024;
/** How long close() waits for a feed to connect and drain before giving up on what it holds. */
export const FEED_CLOSE_TIMEOUT_MS = 3_000;
/** How long a feed may take to connect; after that it is reported as failed and records are dropped. */
export const FEED_CONNECT_TIMEOUT_MS = 5_000;

/** How a sink reports trouble (once per sink): a logger's warn, or stderr. */
export type Report = (message: string) => void;

export const stderrReport: Report = (message) => {
  process.stderr.write(`valmove: ${message}\n`);
};

export interface FileSinkOptions {
  /** 'truncate' starts a new file (a demo); 'append' adds a run to it (a restarted process: one more segment). */
  mode?: 'truncate' | 'append';
  report?: Report;
}

/**
 * A JSON Lines run file. Each record is appended as it comes (one write per
 * record), so a process killed mid-run leaves every record it made before.
 * The folder is created; a file that cannot be opened throws here, before
 * the run starts.
 */
export function fileSink(path: string, opts: FileSinkOptions = {}): RecordSink & { readonly dropped: number } {
  const report = opts.report ?? stderrReport;
  mkdirSync(dirname(path), { recursive: true });
  let fd: number | undefined = openSync(path, opts.mode === 'append' ? 'a' : 'w', 0o644);
  let written = 0;
  let dropped = 0;
  let failed = false;
  const fail = (why: string) => {
    dropped++;
    if (failed) return;
    failed = true;
    report(`recording to ${path} stopped: ${why}; later records are dropped`);
  };
  return {
    get dropped() {
      return dropped;
    },
    write(record: RunRecord) {
      if (fd === undefined || failed) {
        dropped++;
        return;
      }
      const line = Buffer.from(`${JSON.stringify(record)}\n`);
      if (written + line.length > RUN_FILE_BYTES_MAX) return fail(`the file reached ${RUN_FILE_BYTES_MAX} bytes`);
      try {
        writeSync(fd, line);
        written += line.length;
      } catch (e) {
        fail((e as Error).message);
      }
    },
    async close() {
      if (fd === undefined) return;
      const f = fd;
      fd = undefined;
      try {
        fsyncSync(f);
      } catch {
        // a pipe or a special file: nothing to sync
      }
      closeSync(f);
    },
  };
}

export interface FeedSinkOptions {
  report?: Report;
  bufferRecordsMax?: number;
  closeTimeoutMs?: number;
  connectTimeoutMs?: number;
}

export interface FeedSink extends RecordSink {
  /** Records dropped: beyond the connect buffer, beyond the socket's queue, or after the connection failed. */
  readonly dropped: number;
  readonly sent: number;
}

/**
 * A live page's feed (`ws://host:port/feed`): the run header, then each
 * record, as one JSON text message each. Records made while the socket
 * connects wait in a bounded buffer (the oldest are dropped beyond it, the
 * header never). A connection that fails is reported once; there is no
 * reconnect (the page shows a run from where it joined anyway).
 */
export function feedSink(url: string, opts: FeedSinkOptions = {}): FeedSink {
  return new LiveFeed(url, opts);
}

class LiveFeed implements FeedSink {
  private readonly report: Report;
  private readonly bufferMax: number;
  private header: string | undefined;
  private buffer: string[] = [];
  private droppedCount = 0;
  private sentCount = 0;
  private state: 'connecting' | 'open' | 'failed' | 'closed' = 'connecting';
  private reported = false;
  private readonly ws: WebSocket | undefined;
  /** Settles once the socket opened, failed or closed (at once when there is none). */
  private readonly opened: Promise<void>;

  constructor(
    private readonly url: string,
    private readonly opts: FeedSinkOptions,
  ) {
    this.report = opts.report ?? stderrReport;
    this.bufferMax = opts.bufferRecordsMax ?? FEED_BUFFER_RECORDS_MAX;
    try {
      this.ws = new WebSocket(url, { handshakeTimeout: opts.connectTimeoutMs ?? FEED_CONNECT_TIMEOUT_MS });
    } catch (e) {
      // A malformed URL: the run goes on, recorded nowhere live.
      this.ws = undefined;
      this.fail((e as Error).message);
    }
    this.opened = this.watch();
  }

  get dropped(): number {
    return this.droppedCount;
  }

  get sent(): number {
    return this.sentCount;
  }

  /** The socket's events: open sends the header and what waited; an error or the page's close fails the feed. */
  private watch(): Promise<void> {
    const { ws } = this;
    return new Promise<void>((resolve) => {
      if (!ws) return resolve();
      ws.on('open', () => {
        if (this.state !== 'connecting') return resolve();
        this.state = 'open';
        if (this.header !== undefined) this.send(this.header);
        for (const m of this.buffer) this.send(m);
        this.buffer = [];
        resolve();
      });
      ws.on('error', (e) => {
        this.fail(`could not connect or send (${e.message})`);
        resolve();
      });
      ws.on('close', () => {
        if (this.state === 'open') this.fail('the page closed the connection');
        resolve();
      });
      // Whatever the page sends is not for us.
      ws.on('message', () => {});
    });
  }

  private fail(why: string): void {
    if (this.state === 'closed' || this.state === 'failed') return;
    this.droppedCount += this.buffer.length;
    this.buffer = [];
    this.state = 'failed';
    this.reportOnce(`live feed ${this.url}: ${why}; the run goes on without it`);
  }

  private reportOnce(message: string): void {
    if (this.reported) return;
    this.reported = true;
    this.report(message);
  }

  private send(message: string): void {
    const ws = this.ws!;
    if (ws.bufferedAmount > FEED_QUEUED_BYTES_MAX) {
      this.droppedCount++;
      return;
    }
    ws.send(message);
    this.sentCount++;
  }

  write(record: RunRecord): void {
    const message = JSON.stringify(record);
    if (record.kind === 'run' && this.header === undefined) this.header = message;
    switch (this.state) {
      case 'open':
        this.send(message);
        return;
      case 'connecting':
        if (record.kind === 'run' && message === this.header) return;
        this.buffer.push(message);
        if (this.buffer.length > this.bufferMax) {
          this.buffer.shift();
          this.droppedCount++;
        }
        return;
      default:
        this.droppedCount++;
    }
  }

  async close(): Promise<void> {
    const { ws } = this;
    if (!ws || this.state === 'closed') return;
    const timeoutMs = this.opts.closeTimeoutMs ?? FEED_CLOSE_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.opened, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    while (this.state === 'open' && ws.bufferedAmount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (this.state === 'connecting') {
      this.droppedCount += this.buffer.length;
      this.buffer = [];
      this.reportOnce(`live feed ${this.url}: not connected within ${timeoutMs} ms; its records were dropped`);
    }
    this.state = 'closed';
    const done = new Promise<void>((r) => {
      if (ws.readyState === WebSocket.CLOSED) return r();
      ws.once('close', () => r());
      setTimeout(r, 500).unref();
    });
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close(1000, 'run ended');
    await done;
  }
}
