/**
 * The WebSocket transport (ws): a Link over one socket, a listener that
 * routes upgrade requests by path, and a connector that reconnects with
 * bounded backoff. Channel security is not here: secure.link.ts wraps these
 * links exactly as it wraps in-memory ones, so every hop runs the same
 * handshake over TCP and in a test.
 *
 * Limits: a socket frame may be at most WS_PAYLOAD_BYTES_MAX (ws closes the
 * socket above it, code 1009); envelopes are held to ENVELOPE_BYTES_MAX
 * above that, with an error reply. Heartbeats ping every
 * HEARTBEAT_INTERVAL_MS; a socket that misses one pong is terminated.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import type { Logger } from '../log.ts';
import type { Link } from './link.ts';

export const WS_PAYLOAD_BYTES_MAX = 1024 * 1024;
export const HEARTBEAT_INTERVAL_MS = 15_000;
export const RECONNECT_BASE_MS = 100;
export const RECONNECT_CAP_MS = 5_000;
/** Messages a link keeps for a handler that is not registered yet. */
export const WS_BACKLOG_MESSAGES_MAX = 10_000;

function toBytes(data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class WsLink implements Link {
  private handlers: Array<(data: Uint8Array) => void> = [];
  private backlog: Uint8Array[] = [];
  private alive = true;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    readonly label: string,
    private readonly ws: WebSocket,
  ) {
    ws.on('message', (data) => {
      const bytes = toBytes(data);
      if (this.handlers.length === 0) {
        if (this.backlog.length < WS_BACKLOG_MESSAGES_MAX) this.backlog.push(bytes);
        return;
      }
      for (const h of this.handlers) h(bytes);
    });
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', () => {
      // 'close' follows; the error itself (a refused or reset connection) is not actionable here.
    });
    this.heartbeat = setInterval(() => {
      if (!this.alive) {
        ws.terminate();
        return;
      }
      this.alive = false;
      if (ws.readyState === WebSocket.OPEN) ws.ping();
    }, HEARTBEAT_INTERVAL_MS);
    this.heartbeat.unref();
    ws.on('close', () => clearInterval(this.heartbeat));
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(data: Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(data, { binary: true });
  }

  onMessage(handler: (data: Uint8Array) => void): void {
    this.handlers.push(handler);
    const pending = this.backlog;
    this.backlog = [];
    for (const d of pending) handler(d);
  }

  onClose(handler: (reason: string) => void): void {
    if (this.ws.readyState === WebSocket.CLOSED) {
      queueMicrotask(() => handler('closed'));
      return;
    }
    this.ws.on('close', (code, reason) => handler(`${code}${reason.length ? ` ${reason.toString().slice(0, 120)}` : ''}`));
  }

  close(reason = 'closed'): void {
    clearInterval(this.heartbeat);
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(1000, reason.slice(0, 120));
    }
  }
}

/** Serves WebSocket upgrades on an HTTP(S) server, one handler per path; other paths get 404. */
export function serveWebSockets(
  server: HttpServer | HttpsServer,
  routes: Record<string, (link: Link, req: IncomingMessage) => void>,
  log?: Logger,
): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: WS_PAYLOAD_BYTES_MAX });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const route = routes[path];
    if (!route) {
      socket.write('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      log?.debug('websocket accepted', { path, remote: req.socket.remoteAddress ?? '?' });
      route(new WsLink(`ws${path}<-${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`, ws), req);
    });
  });
  return wss;
}

export interface ConnectorOptions {
  url: string;
  /** CA certificate(s) (PEM) to trust for wss:// to a self-signed server. */
  ca?: string | Buffer;
  /** Called with a fresh link each time the socket opens (first connect and every reconnect). */
  onConnect: (link: Link) => void;
  log?: Logger;
}

/** A client socket that reconnects with exponential backoff, capped at RECONNECT_CAP_MS, until closed. */
export class WsConnector {
  private attempts = 0;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private current: WebSocket | undefined;

  constructor(private readonly opts: ConnectorOptions) {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const ws = new WebSocket(this.opts.url, { maxPayload: WS_PAYLOAD_BYTES_MAX, ...(this.opts.ca ? { ca: this.opts.ca } : {}) });
    this.current = ws;
    ws.on('open', () => {
      this.attempts = 0;
      this.opts.log?.info('connected', { url: this.opts.url });
      this.opts.onConnect(new WsLink(`ws->${this.opts.url}`, ws));
    });
    ws.on('error', (e) => this.opts.log?.debug('connection error', { url: this.opts.url, error: e.message }));
    ws.on('close', () => {
      if (this.closed) return;
      const delay = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** Math.min(this.attempts++, 16));
      this.timer = setTimeout(() => this.connect(), delay);
      this.timer.unref();
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.current?.close(1000, 'shutting down');
  }
}

/** One connection, no reconnects (a command-line tool's): resolves when open, rejects on failure. */
export function openWsLink(url: string, ca?: string | Buffer): Promise<Link> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: WS_PAYLOAD_BYTES_MAX, ...(ca ? { ca } : {}) });
    ws.once('open', () => resolve(new WsLink(`ws->${url}`, ws)));
    ws.once('error', (e) => reject(new Error(`can not connect to ${url}: ${e.message}`)));
  });
}
