/**
 * Every process's HTTP face: `GET /healthz`, Prometheus `GET /metrics`
 * (prom-client), the WebSocket upgrades of its role, and for terminals the
 * local control API. One server per process, on its configured address.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttps, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RuntimeObserver } from '../actors/runtime.ts';
import type { Logger } from '../log.ts';
import { snapshot, type Tally } from '../metrics/counters.ts';

/** Largest request body the control API reads. */
export const HTTP_BODY_BYTES_MAX = 64 * 1024;

export type Handler = (req: IncomingMessage, body: unknown) => Promise<{ status: number; json: unknown }>;

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
  route(method: 'GET' | 'POST', path: string, handler: Handler): void;
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

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = type === 'application/json' ? `${JSON.stringify(body)}\n` : String(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function createProcessHttp(opts: {
  role: string;
  id: string;
  tls?: { cert: string; key: string };
  health: () => Record<string, unknown>;
  log: Logger;
}): ProcessHttp {
  const registry = new Registry();
  registry.setDefaultLabels({ role: opts.role, process: opts.id });
  collectDefaultMetrics({ register: registry, prefix: 'valmove_' });
  const messages = new Counter({ name: 'valmove_messages_total', help: 'Envelopes handled (in) and sent (out), by type', labelNames: ['party', 'direction', 'type'], registers: [registry] });
  const bytes = new Counter({ name: 'valmove_message_bytes_total', help: 'Envelope bytes handled and sent', labelNames: ['party', 'direction'], registers: [registry] });
  const turns = new Histogram({
    name: 'valmove_turn_seconds',
    help: 'Duration of one party turn: validate, machine, commit to LMDB, send',
    labelNames: ['party', 'committed'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
    registers: [registry],
  });
  const observer: RuntimeObserver = {
    message(party, direction, type, n) {
      messages.inc({ party, direction, type });
      bytes.inc({ party, direction }, n);
    },
    turn(party, ms, committed) {
      turns.observe({ party, committed: String(committed) }, ms / 1000);
    },
  };
  // Issue 7's work counters (crypto by party and kind, durable LMDB operations by store folder), read when scraped.
  const counterGauge = (name: string, help: string, labelNames: [string, string], rows: () => Record<string, Partial<Record<string, Tally>>>, value: (t: Tally | undefined) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const [a, row] of Object.entries(rows())) {
          for (const [kind, t] of Object.entries(row)) {
            const v = value(t);
            if (v !== undefined) this.set({ [labelNames[0]]: a, [labelNames[1]]: kind }, v);
          }
        }
      },
    });
  counterGauge('valmove_crypto_ops', 'Crypto operations since start, by party and kind (a count; see src/metrics/counters.ts)', ['party', 'kind'], () => snapshot().crypto, (t) => t?.n ?? 0);
  counterGauge('valmove_crypto_bytes', 'Bytes through AEAD operations since start, by party and kind', ['party', 'kind'], () => snapshot().crypto, (t) => t?.bytes || undefined);
  counterGauge('valmove_lmdb_ops', 'Durable LMDB operations since start (commit, commit.sync, flush), by store folder', ['store', 'kind'], () => snapshot().stores, (t) => t?.n ?? 0);
  const started = Date.now();
  new Gauge({ name: 'valmove_up', help: '1 while the process serves', registers: [registry] }).set(1);

  const routes = new Map<string, Handler>();
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    try {
      if (req.method === 'GET' && path === '/healthz') {
        send(res, 200, { status: 'ok', role: opts.role, id: opts.id, uptimeS: Math.round((Date.now() - started) / 1000), ...opts.health() });
        return;
      }
      if (req.method === 'GET' && path === '/metrics') {
        send(res, 200, await registry.metrics(), registry.contentType);
        return;
      }
      const handler = routes.get(`${req.method} ${path}`);
      if (!handler) throw new HttpError(404, 'NOT_FOUND', `no ${req.method} ${path} here`);
      const body = req.method === 'POST' ? await readBody(req) : {};
      const out = await handler(req, body);
      send(res, out.status, out.json);
    } catch (e) {
      const err = e instanceof HttpError ? e : new HttpError(500, 'INTERNAL', e instanceof Error ? e.message : 'internal error');
      if (err.status >= 500) opts.log.error('http handler failed', { path, error: err.message });
      send(res, err.status, { error: { code: err.code, message: err.message } });
    }
  };
  const server = opts.tls
    ? createHttps({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, (req, res) => void handle(req, res))
    : createHttp((req, res) => void handle(req, res));
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
    route(method, path, handler) {
      routes.set(`${method} ${path}`, handler);
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
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const sock of sockets) sock.destroy();
      });
    },
  };
}
