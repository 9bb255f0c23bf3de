/**
 * The keys a run makes and never stores, caught as they are used, so a
 * secret-hygiene scan can search for them too:
 *
 *  - every chip session's direction keys (chip <-> SAM sessions: admin,
 *    upload, download, normal use, issuing), as the real FrameSealer and
 *    FrameOpener use them;
 *  - every channel's direction keys (server <-> SAMs, terminal -> server,
 *    terminal -> normal SAM), as the real ChannelCipher uses them;
 *  - every 32-byte draw of the run's random source: in valmove that is only
 *    ever a secret (X25519 ephemerals of channels and sealed grants, temp
 *    keys, identity seeds, masters, the server's fake-salt key).
 *
 * Nothing is replaced: the methods run as before, and the random source
 * hands out the same bytes in the same order (a seeded run replays). The
 * prototypes are put back by `restore()`.
 */
import { ChannelCipher, FrameOpener, FrameSealer, type Rng, type Secret } from '../../src/crypto/index.ts';
import type { Needle } from './secrets.ts';

export interface KeyCapture {
  /** Wraps a random source: its 32-byte draws are kept (copied: the caller may wipe them). */
  rng<R extends Rng>(inner: R): R;
  sessionKeys(): Uint8Array[];
  channelKeys(): Uint8Array[];
  draws(): Uint8Array[];
  /** All of them as needles, leaving out any whose bytes are already a needle in `known` (named better there). */
  needles(known: Needle[]): Needle[];
  restore(): void;
}

type Method = (this: unknown, b: Uint8Array) => Uint8Array;

export function captureKeys(): KeyCapture {
  const sessions = new Map<string, Uint8Array>();
  const channels = new Map<string, Uint8Array>();
  const draws = new Map<string, Uint8Array>();
  const keep = (into: Map<string, Uint8Array>, s: Secret | undefined) => {
    if (!s) return;
    const b = s.reveal();
    const hex = Buffer.from(b).toString('hex');
    if (!into.has(hex)) into.set(hex, new Uint8Array(b));
  };
  const undo: Array<() => void> = [];
  const wrap = (proto: object, method: string, keys: string[], into: Map<string, Uint8Array>) => {
    const p = proto as Record<string, Method>;
    const original = p[method]!;
    p[method] = function (this: unknown, b: Uint8Array) {
      for (const k of keys) keep(into, (this as Record<string, Secret | undefined>)[k]);
      return original.call(this, b);
    };
    undo.push(() => (p[method] = original));
  };
  wrap(FrameSealer.prototype, 'seal', ['key'], sessions);
  wrap(FrameOpener.prototype, 'open', ['key'], sessions);
  wrap(ChannelCipher.prototype, 'seal', ['sendKey', 'recvKey'], channels);
  wrap(ChannelCipher.prototype, 'open', ['sendKey', 'recvKey'], channels);
  return {
    rng<R extends Rng>(inner: R): R {
      return new Proxy(inner, {
        get(target, prop, receiver) {
          if (prop !== 'bytes') return Reflect.get(target, prop, receiver);
          return (n: number) => {
            const b = target.bytes(n);
            if (n === 32) draws.set(Buffer.from(b).toString('hex'), new Uint8Array(b));
            return b;
          };
        },
      });
    },
    sessionKeys: () => [...sessions.values()],
    channelKeys: () => [...channels.values()],
    draws: () => [...draws.values()],
    needles(known) {
      const seen = new Set(known.map((n) => Buffer.from(n.bytes).toString('hex')));
      const out: Needle[] = [];
      const add = (what: string, m: Map<string, Uint8Array>) => {
        let i = 0;
        for (const [hex, bytes] of m) {
          i++;
          if (seen.has(hex)) continue;
          seen.add(hex);
          out.push({ name: `${what} #${i}`, bytes });
        }
      };
      add('chip session key', sessions);
      add('channel key', channels);
      add('random 32-byte secret (ephemeral X25519, temp or issuing key)', draws);
      return out;
    },
    restore() {
      for (const u of undo.reverse()) u();
      undo.length = 0;
    },
  };
}
