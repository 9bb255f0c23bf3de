/**
 * The hostile relay's tools for test/security/hostileRelay.test.ts: what a
 * server or terminal that is not honest can do to the session frames it
 * carries (protocol.md §2: they are opaque to it, not out of its reach).
 *
 *  - `HostileRelay`: a `Tamper` (src/transport/tamper.link.ts) that records
 *    every envelope every party sends and lets a `Rule` rewrite it; it reads
 *    back the refusals parties sent and the sessions each step opened.
 *  - frame surgery: `carrying` (the same envelope, another frame), `forged`
 *    (a frame envelope made up), `flipBox` and `truncateBox` (on the sealed
 *    box of a frame), `tamperFirst` (a rule for the first N messages picked,
 *    the same way for every resend of each).
 *  - `tamperingProxy`: the same relay on a real WebSocket, between two
 *    processes' sockets on 127.0.0.1.
 */
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { fromB64, toB64 } from '../../src/crypto/index.ts';
import { decodeChipFrame, encodeJson, type ChipFrame } from '../../src/transport/chip.frames.ts';
import { decodeEnvelope, encodeEnvelope, PROTOCOL_VERSION, type AnyEnvelope } from '../../src/transport/envelope.ts';
import type { Tamper, TamperSite } from '../../src/testing/tamper.link.ts';
import { attackId } from './relay.ts';

// ---- the hostile relay ------------------------------------------------------------------------------

/** One envelope as a party sent it (before any tampering), and the chip frame it carries. */
export interface Sent {
  site: TamperSite;
  env: AnyEnvelope;
  frame?: ChipFrame;
}

/** What the relay does with one message: the messages to send instead, or undefined to pass it. */
export type Rule = (s: Sent, bytes: Uint8Array) => Uint8Array[] | undefined;

/**
 * Plays the hostile relay on every link: records every envelope every party
 * sends and lets `rule` rewrite it. Bytes that are not an envelope pass.
 */
export class HostileRelay {
  rule: Rule | null = null;
  readonly sent: Sent[] = [];

  readonly tamper: Tamper = (bytes, site) => {
    let env: AnyEnvelope;
    try {
      env = decodeEnvelope(bytes);
    } catch {
      return [bytes];
    }
    const s: Sent = { site, env };
    if (env.type === 'frame') {
      try {
        s.frame = decodeChipFrame(fromB64(env.body.data));
      } catch {
        // not a chip frame (a test's own garbage): carried as is
      }
    }
    this.sent.push(s);
    return this.rule?.(s, bytes) ?? [bytes];
  };

  /**
   * The refusals `by` sent (once per message id): a chip's `err` frames, and
   * `error` envelopes failing a request (a SAM failing the step whose session
   * broke). With `ofFrames`, instead the `error` envelopes refusing a frame
   * (a hop that will not take a frame of a session that is over).
   */
  refusals(by: string, to?: string, ofFrames = false): Array<{ code: string; message: string; session?: string }> {
    const frames = new Set(this.sent.filter((s) => s.env.type === 'frame').map((s) => s.env.id));
    const ids = new Set<string>();
    const out: Array<{ code: string; message: string; session?: string }> = [];
    for (const s of this.sent) {
      if (s.site.from !== by || (to !== undefined && s.site.to !== to) || ids.has(s.env.id)) continue;
      if (!ofFrames && s.frame?.t === 'err' && s.env.type === 'frame') out.push({ code: s.frame.code, message: s.frame.message, session: s.env.body.session });
      else if (s.env.type === 'error' && frames.has(s.env.corr ?? '') === ofFrames) out.push({ code: s.env.body.code, message: s.env.body.message });
      else continue;
      ids.add(s.env.id);
    }
    return out;
  }

  /** The distinct session ids of `step` whose frames crossed from `from` to `to`, in order of first sight. */
  sessions(step: string, from: string, to: string): string[] {
    const out: string[] = [];
    for (const s of this.sent) {
      if (s.env.type !== 'frame' || s.site.from !== from || s.site.to !== to || stepOf(s.env.body.session) !== step) continue;
      if (!out.includes(s.env.body.session)) out.push(s.env.body.session);
    }
    return out;
  }
}

export const stepOf = (session: string): string => session.split(':')[1] ?? '';

export function sessionOf(s: Sent): string {
  return s.env.type === 'frame' ? s.env.body.session : '';
}

/** The envelope again, carrying `frame` instead (what a relay that rewrites a frame sends on). */
export function carrying(env: AnyEnvelope, frame: ChipFrame): Uint8Array {
  if (env.type !== 'frame') throw new Error(`${env.type} carries no frame`);
  return encodeEnvelope({ ...env, body: { ...env.body, data: toB64(encodeJson(frame)) } });
}

/** A frame envelope the relay makes up, as `from` would send it to `to`. */
export function forged(from: string, to: string, session: string, frame: ChipFrame): Uint8Array {
  const id = attackId(from);
  return encodeEnvelope({ v: PROTOCOL_VERSION, id, from, to, type: 'frame', body: { session, data: toB64(encodeJson(frame)) } });
}

/** The sealed box of a cmd/auth3/resp/close frame, with one bit of its ciphertext flipped (past the 8-byte counter). */
export function flipBox(frame: ChipFrame): ChipFrame {
  if (!('box' in frame)) throw new Error(`a ${frame.t} frame has no sealed box`);
  const box = fromB64(frame.box);
  box[8 + 3]! ^= 0x01;
  return { ...frame, box: toB64(box) };
}

/** The sealed box cut to its first `keep` bytes. */
export function truncateBox(frame: ChipFrame, keep: number): ChipFrame {
  if (!('box' in frame)) throw new Error(`a ${frame.t} frame has no sealed box`);
  return { ...frame, box: toB64(fromB64(frame.box).subarray(0, keep)) };
}

/** Applies `change` to the first `times` distinct messages `pick` selects, and the same way to every copy of each (a party sends a frame again until a hop acknowledges it). */
export function tamperFirst(times: number, pick: (s: Sent) => boolean, change: (s: Sent, nth: number) => Uint8Array[]): Rule {
  const done = new Map<string, Uint8Array[]>();
  return (s) => {
    if (!pick(s)) return undefined;
    let out = done.get(s.env.id);
    if (!out) {
      if (done.size >= times) return undefined;
      out = change(s, done.size);
      done.set(s.env.id, out);
    }
    return out;
  };
}

/** Messages the proxy keeps for an upstream socket that is still opening (a socket's buffer is bounded too). */
export const PROXY_WAITING_MESSAGES_MAX = 1_000;

/**
 * A WebSocket proxy on 127.0.0.1 in front of `target` (ws://host:port): every
 * connection is carried to the same path and query there, and every message,
 * either way, goes through `tamper` (site.from is the side that sent it).
 */
export async function tamperingProxy(
  target: string,
  names: { client: string; server: string },
  tamper: Tamper,
): Promise<{ url: string; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const sockets = new Set<WebSocket>();
  const bytesOf = (data: WebSocket.RawData): Uint8Array => new Uint8Array(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer));
  wss.on('connection', (client, req) => {
    const upstream = new WebSocket(`${target}${req.url ?? '/'}`);
    sockets.add(client).add(upstream);
    const waiting: Uint8Array[] = [];
    const toClient: TamperSite = { from: names.server, to: names.client, link: `proxy->${names.client}` };
    const toServer: TamperSite = { from: names.client, to: names.server, link: `proxy->${names.server}` };
    upstream.on('open', () => {
      for (const m of waiting.splice(0)) upstream.send(m);
    });
    client.on('message', (data) => {
      for (const out of tamper(bytesOf(data), toServer)) {
        if (upstream.readyState === WebSocket.OPEN) upstream.send(out);
        else if (waiting.length < PROXY_WAITING_MESSAGES_MAX) waiting.push(out);
      }
    });
    upstream.on('message', (data) => {
      for (const out of tamper(bytesOf(data), toClient)) if (client.readyState === WebSocket.OPEN) client.send(out);
    });
    client.on('close', () => upstream.close());
    upstream.on('close', () => client.close());
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  const port = (wss.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of sockets) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}
