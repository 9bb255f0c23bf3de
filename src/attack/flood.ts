/**
 * What a stranger with no key of any party can throw at a listening party
 * (issue 16): sockets that never say hello, bursts of hellos with random
 * keys, floods of anonymous requests. Each job runs in a worker process of
 * its own (`valmove attack-worker`), so the attacker's file descriptors are
 * not the limit being measured, and reports what each connection met.
 *
 * Every loop here is bounded: a job opens a given number of sockets, waits
 * at most `holdMs` for the party to act, and ends.
 */
import WebSocket from 'ws';
import { fromB64, generateIdentity, systemRng, toB64 } from '../crypto/index.ts';
import { SecureInitiatorLink } from '../transport/secure.link.ts';
import { WsLink } from '../transport/ws.transport.ts';

/** Sockets a job has opening at once (more would measure the attacker's own connect queue). */
export const OPENING_AT_ONCE_MAX = 256;

/** Every job may spread its sockets over several local source addresses (127.0.0.x: many hosts, as a botnet would be). */
interface Spread {
  /** Local addresses to connect from, socket i from address i mod n; the OS default when absent. */
  from?: string[];
}

export type FloodJob =
  | ({ kind: 'idle'; url: string; sockets: number; holdMs: number } & Spread)
  | ({ kind: 'hellos'; url: string; sockets: number; serverKey: string; holdMs: number } & Spread)
  | ({ kind: 'requests'; url: string; serverKey: string; connections: number; perConnection: number; holdMs: number } & Spread);

export interface FloodResult {
  kind: FloodJob['kind'];
  attempted: number;
  /** What each socket or request met, by outcome ("opened", "http 503", "accept", "refused BUSY", "reply login.challenge", …). */
  outcomes: Record<string, number>;
  /** How the party closed the sockets it had taken, by close code. */
  closedByParty: Record<string, number>;
  /** Milliseconds from a socket's open to the party's close (median, max), for the ones it closed. */
  closeMs?: { median: number; max: number };
  elapsedMs: number;
}

const now = () => performance.now();

function count(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

async function inBatches(n: number, each: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(n, OPENING_AT_ONCE_MAX) }, async () => {
    while (next < n) await each(next++);
  });
  await Promise.all(lanes);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]!;
}

function fromOf(job: Spread, i: number): string | undefined {
  return job.from && job.from.length > 0 ? job.from[i % job.from.length] : undefined;
}

/** Opens a socket; resolves once it is open or refused (never hangs past `timeoutMs`). */
function open(url: string, timeoutMs: number, localAddress?: string): Promise<{ ws?: WebSocket; outcome: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, ...(localAddress ? { localAddress } : {}) });
    let done = false;
    const finish = (r: { ws?: WebSocket; outcome: string }) => {
      if (done) return;
      done = true;
      resolve(r);
    };
    ws.once('open', () => finish({ ws, outcome: 'opened' }));
    ws.once('unexpected-response', (_req, res) => {
      finish({ outcome: `http ${res.statusCode ?? '?'}` });
      res.resume();
      ws.terminate();
    });
    ws.once('error', (e: NodeJS.ErrnoException) => finish({ outcome: `error ${e.code ?? e.message.slice(0, 40)}` }));
  });
}

/** Sockets that upgrade and then say nothing: how many the party takes, and how soon it closes them. */
async function idle(job: Extract<FloodJob, { kind: 'idle' }>): Promise<FloodResult> {
  const t0 = now();
  const outcomes: Record<string, number> = {};
  const closedByParty: Record<string, number> = {};
  const closeMs: number[] = [];
  const held: WebSocket[] = [];
  await inBatches(job.sockets, async (i) => {
    const r = await open(job.url, job.holdMs, fromOf(job, i));
    count(outcomes, r.outcome);
    if (!r.ws) return;
    const opened = now();
    held.push(r.ws);
    r.ws.on('close', (code) => {
      count(closedByParty, String(code));
      closeMs.push(now() - opened);
    });
  });
  // Wait for the party to close what it took (its handshake deadline), at most holdMs.
  const end = now() + job.holdMs;
  while (now() < end && held.some((w) => w.readyState === WebSocket.OPEN)) await new Promise((r) => setTimeout(r, 50));
  for (const w of held) if (w.readyState === WebSocket.OPEN) w.terminate();
  return {
    kind: 'idle',
    attempted: job.sockets,
    outcomes,
    closedByParty,
    closeMs: { median: median(closeMs), max: Math.max(0, ...closeMs) },
    elapsedMs: Math.round(now() - t0),
  };
}

/** Hellos with random keys and names, all at once: what the party answers, and how fast. */
async function hellos(job: Extract<FloodJob, { kind: 'hellos' }>): Promise<FloodResult> {
  const t0 = now();
  const outcomes: Record<string, number> = {};
  const closedByParty: Record<string, number> = {};
  await inBatches(job.sockets, async (i) => {
    const r = await open(job.url, job.holdMs, fromOf(job, i));
    if (!r.ws) return count(outcomes, r.outcome);
    const ws = r.ws;
    // What a stranger sends costs it nothing: random bytes where the keys go (any 32 bytes pass as an X25519
    // point, and an Ed25519 key is only checked at the finish, which never comes).
    const hello = {
      v: 1,
      from: `terminal/flood-h${i}-${toB64(systemRng.bytes(4))}`,
      id: toB64(systemRng.bytes(32)),
      eph: toB64(systemRng.bytes(32)),
      nonce: toB64(systemRng.bytes(16)),
    };
    const answer = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('no answer'), job.holdMs);
      ws.once('message', (data: Buffer) => {
        clearTimeout(timer);
        try {
          const m = JSON.parse(data.toString('utf8')) as { chan?: string; code?: string };
          resolve(m.chan === 'refused' ? `refused ${m.code ?? '?'}` : (m.chan ?? 'not a handshake'));
        } catch {
          resolve('not JSON');
        }
      });
      ws.once('close', (code) => {
        clearTimeout(timer);
        count(closedByParty, String(code));
        resolve(`closed ${code}`);
      });
      ws.send(JSON.stringify({ chan: 'hello', ...hello }));
    });
    count(outcomes, answer);
    ws.terminate();
  });
  return { kind: 'hellos', attempted: job.sockets, outcomes, closedByParty, elapsedMs: Math.round(now() - t0) };
}

/**
 * Anonymous requests: connections that prove a fresh device key (an unbound
 * name: all a stranger can have) and send login.begin with fresh ids, as
 * fast as the socket takes them. Counts the answers by type and code; the
 * rest were dropped (rate limit) or never answered.
 */
async function requests(job: Extract<FloodJob, { kind: 'requests' }>): Promise<FloodResult> {
  const t0 = now();
  const outcomes: Record<string, number> = {};
  const closedByParty: Record<string, number> = {};
  const enc = new TextEncoder();
  await Promise.all(
    Array.from({ length: job.connections }, async (_, c) => {
      const r = await open(job.url, job.holdMs, fromOf(job, c));
      if (!r.ws) {
        outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + job.perConnection;
        return;
      }
      const name = `terminal/flood-r${c}-${toB64(systemRng.bytes(4))}`;
      const link = new SecureInitiatorLink(new WsLink(`attack->${job.url}`, r.ws), {
        name,
        identity: generateIdentity(systemRng),
        peerSignPublic: fromB64(job.serverKey),
        rng: systemRng,
      });
      let answered = 0;
      link.onMessage((bytes) => {
        answered++;
        try {
          const env = JSON.parse(new TextDecoder().decode(bytes)) as { type?: string; body?: { code?: string } };
          count(outcomes, env.type === 'error' ? `error ${env.body?.code ?? '?'}` : `reply ${env.type ?? '?'}`);
        } catch {
          count(outcomes, 'not JSON');
        }
      });
      const closed = new Promise<void>((resolve) =>
        link.onClose((why) => {
          count(closedByParty, why.split(' ')[0] ?? '?');
          resolve();
        }),
      );
      try {
        await Promise.race([link.ready, new Promise((_, reject) => setTimeout(() => reject(new Error('handshake timeout')), job.holdMs))]);
      } catch (e) {
        outcomes[`no channel: ${(e as Error).message.slice(0, 60)}`] = (outcomes[`no channel: ${(e as Error).message.slice(0, 60)}`] ?? 0) + job.perConnection;
        r.ws.terminate();
        return;
      }
      for (let i = 1; i <= job.perConnection && link.isOpen; i++) {
        link.send(enc.encode(JSON.stringify({ v: 1, id: `${name}#${i}`, from: name, to: 'server', type: 'login.begin', body: { user: `nobody-${c}-${i}` } })));
        // Yield now and then, so the socket drains as a real client's would.
        if (i % 100 === 0) await new Promise((res) => setImmediate(res));
      }
      const end = now() + job.holdMs;
      while (now() < end && answered < job.perConnection && link.isOpen) await new Promise((res) => setTimeout(res, 50));
      const unanswered = job.perConnection - answered;
      if (unanswered > 0) outcomes['unanswered (dropped or closed)'] = (outcomes['unanswered (dropped or closed)'] ?? 0) + unanswered;
      link.close('flood done');
      await Promise.race([closed, new Promise((res) => setTimeout(res, 1_000))]);
    }),
  );
  return { kind: 'requests', attempted: job.connections * job.perConnection, outcomes, closedByParty, elapsedMs: Math.round(now() - t0) };
}

export async function runFloodJob(job: FloodJob): Promise<FloodResult> {
  switch (job.kind) {
    case 'idle':
      return idle(job);
    case 'hellos':
      return hellos(job);
    case 'requests':
      return requests(job);
  }
}

/** Adds up the results of several workers of one kind. */
export function mergeResults(rs: FloodResult[]): FloodResult {
  const out: FloodResult = { kind: rs[0]!.kind, attempted: 0, outcomes: {}, closedByParty: {}, elapsedMs: 0 };
  for (const r of rs) {
    out.attempted += r.attempted;
    out.elapsedMs = Math.max(out.elapsedMs, r.elapsedMs);
    for (const [k, v] of Object.entries(r.outcomes)) out.outcomes[k] = (out.outcomes[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.closedByParty)) out.closedByParty[k] = (out.closedByParty[k] ?? 0) + v;
    if (r.closeMs) out.closeMs = { median: Math.max(out.closeMs?.median ?? 0, r.closeMs.median), max: Math.max(out.closeMs?.max ?? 0, r.closeMs.max) };
  }
  return out;
}
