/**
 * `valmove inspect`: a local web page that shows every statechart and, when a
 * demo or a deployment is attached, each actor's current state and the
 * message sequence as it happens. Works offline: the page, its script and
 * the charts (rendered here by Graphviz/WASM) are all served by this process.
 *
 *   GET  /                        the page (src/inspect/public/)
 *   GET  /api/machines            the machines the page can draw
 *   GET  /api/chart/NAME.svg      one statechart, SVG (state elements carry id="NAME:path")
 *   GET  /api/sequence.json?mig=  the recorded message sequence, grouped by step S1–S17
 *   GET  /api/sequence.svg?mig=   the same, drawn
 *   POST /api/demo                run an embedded demo migration in this process, attached
 *   WS   /feed                    producers push run records (src/trace/records.ts)
 *   WS   /live                    pages receive every record: first the history, then live
 *
 * Loopback only by default: the feed accepts records from whoever can reach it.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../log.ts';
import type { RunRecord } from '../trace/records.ts';
import { FEED_MESSAGE_BYTES_MAX, parseFeedMessage } from './feed.ts';
import { chartSvg, machineNames, sequenceJson, sequenceSvg } from './views.ts';

/** Records kept for pages that connect later; the oldest go first beyond this. */
export const HISTORY_RECORDS_MAX = 50_000;
/** A page that has this much unsent data is too slow and is disconnected (it reconnects and gets the history). */
export const LIVE_BUFFERED_BYTES_MAX = 8 * 1024 * 1024;
/** Static files the page is made of (name -> content type). */
const STATIC: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};
const PUBLIC_DIR = join(dirname(fileURLToPath(import.meta.url)), 'public');

export interface DemoResult {
  outcome: string;
  mig: string;
}

export interface InspectServerOptions {
  host?: string;
  port?: number;
  log: Logger;
  /** Runs one embedded demo migration whose records reach `feedUrl`; enables POST /api/demo. */
  runDemo?: (feedUrl: string) => Promise<DemoResult>;
  /** Also called with every record taken in (the Stately bridge). */
  onRecord?: (record: RunRecord) => void;
}

export class InspectServer {
  private readonly history: RunRecord[] = [];
  private readonly pages = new Set<WebSocket>();
  private demo: Promise<DemoResult> | null = null;
  private lastDemo: DemoResult | { error: string } | null = null;
  /** Records refused at the feed since the start (bad producers show up here and in the log). */
  refused = 0;

  private constructor(
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    private readonly opts: InspectServerOptions,
    readonly url: string,
  ) {}

  get feedUrl(): string {
    return `${this.url.replace(/^http/, 'ws')}feed`;
  }

  static async start(opts: InspectServerOptions): Promise<InspectServer> {
    const http = createServer();
    const wss = new WebSocketServer({ noServer: true, maxPayload: FEED_MESSAGE_BYTES_MAX });
    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(opts.port ?? 0, host, () => resolve());
    });
    const port = (http.address() as AddressInfo).port;
    const self = new InspectServer(http, wss, opts, `http://${host.includes(':') ? `[${host}]` : host}:${port}/`);
    http.on('request', (req, res) => {
      self.onRequest(req, res).catch((e: unknown) => self.reply(res, 500, { error: e instanceof Error ? e.message : String(e) }));
    });
    http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => self.onUpgrade(req, socket, head));
    return self;
  }

  /** Takes one record (from the feed, or from a producer in this process). */
  ingest(record: RunRecord): void {
    this.history.push(record);
    if (this.history.length > HISTORY_RECORDS_MAX) this.history.splice(0, this.history.length - HISTORY_RECORDS_MAX);
    const text = JSON.stringify(record);
    for (const page of this.pages) this.sendToPage(page, text);
    this.opts.onRecord?.(record);
  }

  records(): readonly RunRecord[] {
    return this.history;
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    await this.demo?.catch(() => undefined);
  }

  private sendToPage(page: WebSocket, text: string): void {
    if (page.bufferedAmount > LIVE_BUFFERED_BYTES_MAX) {
      this.opts.log.warn('inspect page too slow; disconnected', { buffered_bytes: page.bufferedAmount });
      page.terminate();
      return;
    }
    page.send(text);
  }

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== '/feed' && path !== '/live') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => (path === '/feed' ? this.onProducer(ws) : this.onPage(ws)));
  }

  private onProducer(ws: WebSocket): void {
    ws.on('message', (data, isBinary) => {
      try {
        if (isBinary) throw new Error('feed messages are JSON text, not binary');
        this.ingest(parseFeedMessage(data.toString()));
      } catch (e) {
        this.refused++;
        const message = e instanceof Error ? e.message : String(e);
        this.opts.log.warn('feed record refused', { reason: message });
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ error: message }));
      }
    });
    ws.on('error', () => undefined);
  }

  private onPage(ws: WebSocket): void {
    this.pages.add(ws);
    ws.on('close', () => this.pages.delete(ws));
    ws.on('error', () => this.pages.delete(ws));
    // Pages only listen; anything they send is ignored.
    for (const r of this.history) this.sendToPage(ws, JSON.stringify(r));
  }

  private reply(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
    if (res.headersSent) return void res.end();
    const text = type === 'application/json' ? `${JSON.stringify(body)}\n` : String(body);
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const mig = url.searchParams.get('mig') ?? undefined;
    if (req.method === 'POST' && path === '/api/demo') return this.startDemo(res);
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return this.reply(res, 405, { error: `${req.method} is not served here; GET the page, or POST /api/demo` });
    if (path === '/' || path === '/index.html') return this.serveStatic(res, 'index.html');
    if (path.startsWith('/') && STATIC[path.slice(1)]) return this.serveStatic(res, path.slice(1));
    if (path === '/api/machines') return this.reply(res, 200, { machines: machineNames(), demo: this.demoStatus() });
    const chart = /^\/api\/chart\/([A-Za-z0-9]+)\.svg$/.exec(path);
    if (chart) {
      const svg = await chartSvg(chart[1]!);
      if (svg === null) return this.reply(res, 404, { error: `no machine named "${chart[1]}"; one of ${machineNames().join(', ')}` });
      return this.reply(res, 200, svg, 'image/svg+xml');
    }
    if (path === '/api/sequence.json') return this.reply(res, 200, sequenceJson(this.history, mig));
    if (path === '/api/sequence.svg') return this.reply(res, 200, sequenceSvg(this.history, mig), 'image/svg+xml');
    return this.reply(res, 404, { error: `nothing at ${path}` });
  }

  private async serveStatic(res: ServerResponse, name: string): Promise<void> {
    this.reply(res, 200, await readFile(join(PUBLIC_DIR, name), 'utf8'), STATIC[name]);
  }

  private demoStatus(): string {
    if (this.demo) return 'running';
    if (!this.lastDemo) return this.opts.runDemo ? 'ready' : 'unavailable';
    return 'error' in this.lastDemo ? `failed: ${this.lastDemo.error}` : `${this.lastDemo.outcome} (${this.lastDemo.mig})`;
  }

  private startDemo(res: ServerResponse): void {
    const run = this.opts.runDemo;
    if (!run) return this.reply(res, 404, { error: 'this inspector was started without a demo' });
    if (this.demo) return this.reply(res, 409, { error: 'a demo migration is already running' });
    this.demo = run(this.feedUrl);
    this.demo
      .then(
        (r) => {
          this.lastDemo = r;
          this.opts.log.info('demo migration finished', { outcome: r.outcome, mig: r.mig });
        },
        (e: unknown) => {
          this.lastDemo = { error: e instanceof Error ? e.message : String(e) };
          this.opts.log.error('demo migration failed', { reason: this.lastDemo.error });
        },
      )
      .finally(() => (this.demo = null));
    this.reply(res, 202, { started: true });
  }
}
