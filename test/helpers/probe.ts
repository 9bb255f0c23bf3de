/** A raw client for live processes: a WebSocket, optionally the channel handshake, then bytes or JSON out and replies in. */
import { fromB64, systemRng, type Identity } from '../../src/crypto/index.ts';
import type { Link } from '../../src/transport/link.ts';
import { SecureInitiatorLink } from '../../src/transport/secure.link.ts';
import { openWsLink } from '../../src/transport/ws.transport.ts';

export interface Probe {
  link: Link;
  send(msg: object | string | Uint8Array): void;
  /** The next message received, parsed as JSON. */
  next(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Rejects with the channel's refusal, if the handshake was refused. */
  ready: Promise<void>;
  close(): void;
}

export async function probe(url: string, channel?: { name: string; peerSignPublic: string; identity?: Identity }): Promise<Probe> {
  const raw = await openWsLink(url);
  const link = channel
    ? new SecureInitiatorLink(raw, { name: channel.name, identity: channel.identity, peerSignPublic: fromB64(channel.peerSignPublic), rng: systemRng })
    : raw;
  const inbox: Uint8Array[] = [];
  const waiters: Array<(b: Uint8Array) => void> = [];
  link.onMessage((b) => {
    const w = waiters.shift();
    if (w) w(b);
    else inbox.push(b);
  });
  const enc = new TextEncoder();
  return {
    link,
    ready: link instanceof SecureInitiatorLink ? link.ready : Promise.resolve(),
    send(msg) {
      link.send(msg instanceof Uint8Array ? msg : enc.encode(typeof msg === 'string' ? msg : JSON.stringify(msg)));
    },
    next(timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const take = (b: Uint8Array) => resolve(JSON.parse(new TextDecoder().decode(b)) as Record<string, unknown>);
        const got = inbox.shift();
        if (got) return take(got);
        const timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((b) => {
          clearTimeout(timer);
          take(b);
        });
      });
    },
    close() {
      link.close('probe done');
    },
  };
}
