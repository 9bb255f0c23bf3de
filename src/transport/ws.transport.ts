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
 * With a Door (door.ts), an upgrade beyond a connection cap is answered
 * 503 before any WebSocket exists, and stranger-facing routes see their
 * links through a message-rate limit.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import type { Logger } from '../log.ts';
import type { Admission, Door } from './door.ts';
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

  close(reason = 'closed', code = 1000): void {
    clearInterval(this.heartbeat);
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      // A close frame's reason is at most 123 bytes (RFC 6455 §5.5): cut by bytes, not characters.
      this.ws.close(code, Buffer.from(reason).subarray(0, 120).toString());
    }
  }
}

/** Answers an upgrade with an HTTP error and closes the socket once the answer is written (as ws does). */
function refuseUpgrade(socket: Duplex, status: string, body: string, extra = ''): void {
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`,
  );
}

/**
 * A route gets its link, the upgrade request, and (with a Door) its
 * admission: call `admission.established()` once the link's handshake
 * passed (or at once, for a route without one), and pass
 * `admission.responder` to the channel.
 */
export type WsRoute = (link: Link, req: IncomingMessage, admission?: Admission) => void;

/** Serves WebSocket upgrades on an HTTP(S) server, one handler per path; other paths get 404. */
export function serveWebSockets(server: HttpServer | HttpsServer, routes: Record<string, WsRoute>, log?: Logger, door?: Door): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: WS_PAYLOAD_BYTES_MAX });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const route = routes[path];
    if (!route) {
      socket.write('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      socket.destroy();
      return;
    }
    const remote = req.socket.remoteAddress ?? '?';
    const admission = door?.admit(path, remote);
    if (admission && !('established' in admission)) {
      // Before any WebSocket exists: the peer learns which limit, existing links and plain HTTP go on.
      refuseUpgrade(socket, '503 Service Unavailable', `${admission.message}\n`, 'Retry-After: 1\r\n');
      return;
    }
    if (admission) socket.once('close', () => admission.release());
    wss.handleUpgrade(req, socket, head, (ws) => {
      log?.debug('websocket accepted', { path, remote });
      const link = new WsLink(`ws${path}<-${remote}:${req.socket.remotePort ?? 0}`, ws);
      route(door ? door.gate(link, path) : link, req, admission);
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
