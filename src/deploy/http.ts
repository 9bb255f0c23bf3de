/**
 * Every process's HTTP face: `GET /healthz`, Prometheus `GET /metrics`
 * (prom-client; metrics.ts), `GET /readyz` (a route, ready.ts), the WebSocket
 * upgrades of its role, and for terminals the local control API. One server
 * per process, on its configured address.
 *
 * Say only what is needed: /healthz tells anyone `{"status":"ok"}` and tells
 * the operator (`authorization: Bearer <operatorToken>` from the process's
 * key file) the detail: role, id, uptime, parties with their links and
 * queues. /metrics is open unless the config asks for the token. A route
 * with an `auth` check runs it before the body is read, so a request
 * without the token costs no more than its headers.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttps, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { Registry } from 'prom-client';
import type { RuntimeObserver } from '../actors/runtime.ts';
import { systemClock, type Clock } from '../clock.ts';
import { equalBytes, utf8 } from '../crypto/index.ts';
import type { Logger } from '../log.ts';
import { Door } from '../transport/door.ts';
import { HTTP_CHECK_INTERVAL_MS, type Limits } from '../transport/limits.ts';
import { defaultMetrics, processMetrics } from './metrics.ts';

/** Largest request body the control API reads. */
export const HTTP_BODY_BYTES_MAX = 64 * 1024;

export type Handler = (req: IncomingMessage, body: unknown) => Promise<{ status: number; json: unknown }>;
/** Runs before the body is read; throws an HttpError (401) to refuse. */
export type Auth = (req: IncomingMessage) => void;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ProcessHttp {
  server: HttpServer | HttpsServer;
  registry: Registry;
  observer: RuntimeObserver;
  /** The door every WebSocket upgrade of this process passes (door.ts). */
  door: Door;
  /** `auth`: 'operator' (the key file's operatorToken) or a check of its own; either runs before the body is read. */
  route(method: 'GET' | 'POST', path: string, handler: Handler, auth?: Auth | 'operator'): void;
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > HTTP_BODY_BYTES_MAX) throw new HttpError(413, 'TOO_LARGE', `request body is over ${HTTP_BODY_BYTES_MAX} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'BAD_JSON', 'request body is not JSON');
  }
}

/** `close`: end the connection after this answer (a body is left unread: Node would otherwise read the rest, 10 MB say, to reuse the connection). */
function send(res: ServerResponse, status: number, body: unknown, type = 'application/json', close = false): void {
  const text = type === 'application/json' ? `${JSON.stringify(body)}\n` : String(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), ...(close ? { connection: 'close' } : {}) });
  res.end(text);
}

/**
 * A check of `authorization: Bearer <token>`, in constant time. The refusal
 * says what needs which token from where. No token configured: every
 * request is refused.
 */
export function bearer(token: string | undefined, says: { what: string; token: string; where: string }): Auth {
  const expected = token ? utf8(`Bearer ${token}`) : undefined;
  return (req) => {
    if (expected && equalBytes(utf8(req.headers.authorization ?? ''), expected)) return;
    throw new HttpError(401, 'UNAUTHENTICATED', `${says.what} needs "authorization: Bearer <${says.token}>" from ${says.where}`);
  };
}

/** Whether a request carries the token, in constant time (no refusal: /healthz answers either way). */
function carries(req: IncomingMessage, token: string | undefined): boolean {
  return token !== undefined && equalBytes(utf8(req.headers.authorization ?? ''), utf8(`Bearer ${token}`));
}

export interface ProcessHttpOptions {
  role: string;
  id: string;
  tls?: { cert: string; key: string };
  health: () => Record<string, unknown>;
  log: Logger;
  /** From the process's key file: unlocks /healthz detail, /metrics when required, and 'operator' routes. */
  operatorToken?: string;
  /** /metrics only with the operator token (default: open, for a scraper on a private network). */
  metricsRequireToken?: boolean;
  /** The config's `limits` block over the defaults of limits.ts. */
  limits?: Partial<Limits>;
  clock?: Clock;
}

interface Route {
  handler: Handler;
  auth?: Auth;
}

export function createProcessHttp(opts: ProcessHttpOptions): ProcessHttp {
  const registry = new Registry();
  registry.setDefaultLabels({ role: opts.role, process: opts.id });
  defaultMetrics(registry);
  const { observer, refusals } = processMetrics(registry);
  const started = Date.now();
  const door = new Door({ limits: opts.limits, clock: opts.clock ?? systemClock, log: opts.log, count: (limit) => refusals.inc({ limit }) });
  const operator = bearer(opts.operatorToken, { what: 'this request', token: 'operatorToken', where: `${opts.id}'s key file` });
  const routes = new Map<string, Route>();
  const handle = requestHandler(opts, { registry, door, operator, routes, started });
  const server = httpServer(opts, door, handle);
  // Every socket, upgraded ones (WebSockets) included: closing the process closes them all.
  const sockets = new Set<Socket>();
  server.on('connection', (sock: Socket) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
  });

  return {
    server,
    registry,
    observer,
    door,
    route(method, path, handler, auth) {
      routes.set(`${method} ${path}`, { handler, auth: auth === 'operator' ? operator : auth });
    },
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const addr = server.address();
          resolve(typeof addr === 'object' && addr ? addr.port : port);
        });
      });
    },
    close() {
      door.close();
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const sock of sockets) sock.destroy();
      });
    },
  };
}

/** Answers /healthz and /metrics itself, and every other request by its route, after the route's check. */
function requestHandler(
  opts: ProcessHttpOptions,
  ctx: { registry: Registry; door: Door; operator: Auth; routes: ReadonlyMap<string, Route>; started: number },
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { registry, door, operator, routes, started } = ctx;
  /** Runs a route's check; a refusal is counted and throttle-logged like every other refusal at the door. */
  const authorize = (auth: Auth, req: IncomingMessage, path: string) => {
    try {
      auth(req);
    } catch (e) {
      door.refused('bearer_token', 'a request without the right token', { path, remote: req.socket.remoteAddress ?? '?' });
      throw e;
    }
  };
  return async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    let unread = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    try {
      if (req.method === 'GET' && path === '/healthz') {
        // Anyone may ask whether the process is up; who its peers are is for the operator only.
        if (!carries(req, opts.operatorToken)) return send(res, 200, { status: 'ok' });
        send(res, 200, { status: 'ok', role: opts.role, id: opts.id, uptimeS: Math.round((Date.now() - started) / 1000), door: door.counts, ...opts.health() });
        return;
      }
      if (req.method === 'GET' && path === '/metrics') {
        if (opts.metricsRequireToken) authorize(operator, req, path);
        send(res, 200, await registry.metrics(), registry.contentType);
        return;
      }
      const route = routes.get(`${req.method} ${path}`);
      if (!route) throw new HttpError(404, 'NOT_FOUND', `no ${req.method} ${path} here`);
      if (route.auth) authorize(route.auth, req, path);
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > HTTP_BODY_BYTES_MAX) throw new HttpError(413, 'TOO_LARGE', `request body is over ${HTTP_BODY_BYTES_MAX} bytes`);
      const body = req.method === 'POST' ? await readBody(req) : {};
      unread = false;
      const out = await route.handler(req, body);
      send(res, out.status, out.json);
    } catch (e) {
      const err = e instanceof HttpError ? e : new HttpError(500, 'INTERNAL', e instanceof Error ? e.message : 'internal error');
      if (err.status >= 500) opts.log.error('http handler failed', { path, error: err.message });
      send(res, err.status, { error: { code: err.code, message: err.message } }, 'application/json', unread && !req.complete);
    }
  };
}

/** The HTTP (or HTTPS) server, with the door's time limits on requests and its count of what Node refuses. */
function httpServer(opts: ProcessHttpOptions, door: Door, handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>): HttpServer | HttpsServer {
  // A connection that does not send a whole request in time is answered 408 and closed (Node checks every HTTP_CHECK_INTERVAL_MS).
  // Upgraded sockets leave these checks: ws clears the socket's timeout and Node stops tracking it (test/deploy/door.test.ts).
  const timeouts = {
    headersTimeout: door.limits.httpHeadersMs,
    requestTimeout: door.limits.httpRequestMs,
    connectionsCheckingInterval: HTTP_CHECK_INTERVAL_MS,
  };
  const server = opts.tls
    ? // A TLS handshake that never comes would otherwise hold its socket for Node's 120 s: the same budget as the headers.
      createHttps(
        { ...timeouts, handshakeTimeout: door.limits.httpHeadersMs, cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) },
        (req, res) => void handle(req, res),
      )
    : createHttp(timeouts, (req, res) => void handle(req, res));
  // Node's own answer to a malformed or late request, counted: a listener here replaces Node's default, so it does
  // what that does (answer if nothing was written yet, then destroy the socket at once).
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const late = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if (late) door.refused('http_timeout', 'a request did not arrive whole in time', { remote: socket.remoteAddress ?? '?' });
    if (socket.writable && socket.bytesWritten === 0 && err.code !== 'ECONNRESET') {
      socket.write(
        late
          ? 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n'
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n'
            : 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n',
      );
    }
    socket.destroy();
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT')
      door.refused('http_timeout', 'a TLS handshake did not complete in time', { remote: socket.remoteAddress ?? '?' });
  });
  return server;
}
