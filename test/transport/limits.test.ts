/**
 * limits.ts and the channel's side of the door, in memory and on a virtual
 * clock (no sockets, no waiting): the handshake deadline, the hello size
 * checked before parsing, the handshake bucket asked after the trust check
 * and before any public-key work, the per-link message rate, the caps'
 * bookkeeping, and the throttled refusal log.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChannelInitiator, ChannelResponder, type CryptoError, generateIdentity, seededRng, toB64 } from '../../src/crypto/index.ts';
import { createLogger } from '../../src/log.ts';
import { diff, snapshot } from '../../src/metrics/counters.ts';
import { VirtualClock } from '../../src/sim/world.ts';
import { Door, LogThrottle, RateLimitedLink, TokenBucket } from '../../src/transport/door.ts';
import { REFUSAL_LOG_INTERVAL_MS, REFUSAL_LOG_LINES_MAX, type LimitName } from '../../src/transport/limits.ts';
import { CLOSE_POLICY, type Link } from '../../src/transport/link.ts';
import { memoryLinkPair } from '../../src/transport/memory.transport.ts';
import { SecureInitiatorLink, SecureResponderLink } from '../../src/transport/secure.link.ts';

const rng = seededRng('limits-tests');
const serverId = generateIdentity(rng);
const samId = generateIdentity(rng);
const dec = new TextDecoder();
const tick = () => new Promise((r) => setImmediate(r));

/** A door on a virtual clock that records what it refused. */
function door(limits: ConstructorParameters<typeof Door>[0]['limits'] = {}) {
  const clock = new VirtualClock();
  const refused: LimitName[] = [];
  return { clock, refused, door: new Door({ limits, clock, count: (l) => refused.push(l) }) };
}

/** The raw end a peer holds, recording what arrives and how it was closed. */
function peerEnd(link: Link) {
  const got: string[] = [];
  let closed: string | undefined;
  link.onMessage((b) => got.push(dec.decode(b)));
  link.onClose((r) => (closed = r));
  return { got, closed: () => closed };
}

function responder(raw: Link, d: Door, path = '/terminal') {
  return new SecureResponderLink(raw, { name: 'server', identity: serverId, trust: () => true, requireMutual: false, rng }, {}, d.responder(path));
}

test('a responder whose peer never says hello is refused HANDSHAKE_TIMEOUT at the deadline, not before (in memory, virtual clock)', async () => {
  const { clock, refused, door: d } = door({ handshakeMs: 1_000 });
  const [a, b] = memoryLinkPair('terminal/silent', 'server');
  const peer = peerEnd(a);
  const link = responder(b, d);
  let rejected = '';
  link.ready.catch((e: Error) => (rejected = e.message));
  clock.advanceTo(clock.now() + 999);
  while (clock.fireNext());
  await tick();
  assert.equal([peer.got, peer.closed(), refused], [[], undefined, []], 'nothing before the deadline');
  clock.advanceTo(clock.now() + 1);
  while (clock.fireNext());
  await tick();
  assert.is(peer.got.length, 1);
  const r = JSON.parse(peer.got[0]!) as { chan: string; code: string; message: string };
  assert.equal([r.chan, r.code], ['refused', 'HANDSHAKE_TIMEOUT']);
  assert.match(r.message, /^no channel within 1000 ms/);
  assert.match(peer.closed() ?? '', /^HANDSHAKE_TIMEOUT: /);
  assert.match(rejected, /^HANDSHAKE_TIMEOUT: /);
  assert.equal(refused, ['handshake_timeout']);
});

test('a channel established in time is left alone by the deadline, and its timer is cancelled', async () => {
  const { clock, refused, door: d } = door({ handshakeMs: 1_000 });
  const [a, b] = memoryLinkPair('terminal/quick', 'server');
  const init = new SecureInitiatorLink(a, { name: 'terminal/quick', peerSignPublic: serverId.signPublic, rng });
  const link = responder(b, d);
  await init.ready;
  await link.ready;
  assert.is(clock.pending, 0, 'no deadline left armed');
  clock.advanceTo(clock.now() + 5_000);
  while (clock.fireNext());
  await tick();
  assert.ok(a.isOpen && b.isOpen);
  assert.equal(refused, []);
});

test('a handshake message over HELLO_BYTES_MAX is refused TOO_LARGE before it is parsed', async () => {
  const { refused, door: d } = door({ helloBytesMax: 512 });
  const [a, b] = memoryLinkPair('terminal/big', 'server');
  const peer = peerEnd(a);
  responder(b, d);
  // Not even JSON: parsed, it would be answered UNAUTHENTICATED (an error envelope), not refused TOO_LARGE.
  a.send(new TextEncoder().encode(`{${'x'.repeat(600)}`));
  await tick();
  await tick();
  assert.is(peer.got.length, 1);
  const r = JSON.parse(peer.got[0]!) as { chan: string; code: string; message: string };
  assert.equal([r.chan, r.code, r.message], ['refused', 'TOO_LARGE', 'a message before the channel is up is at most 512 bytes; this one is 601']);
  assert.equal(refused, ['hello_bytes']);
  assert.match(peer.closed() ?? '', /^TOO_LARGE/);
});

test('past the handshake bucket a hello is refused BUSY with no public-key work; a key outside the trust list is refused before it takes a token', () => {
  const admits: boolean[] = [];
  const resp = (admit: boolean) =>
    new ChannelResponder(
      { name: 'migration-sam/x', identity: samId, trust: (k) => k === toB64(serverId.signPublic), requireMutual: true, rng },
      {
        admit: () => {
          admits.push(admit);
          return admit;
        },
      },
    );
  const helloFrom = (id = serverId) => new ChannelInitiator({ name: 'server', identity: id, peerSignPublic: samId.signPublic, rng }).hello();
  const hello = helloFrom();
  const stranger = helloFrom(generateIdentity(rng));
  const before = snapshot();
  let code = '';
  try {
    resp(false).hello(hello);
  } catch (e) {
    code = (e as CryptoError).code;
  }
  assert.is(code, 'BUSY');
  try {
    resp(false).hello(stranger);
  } catch (e) {
    code = (e as CryptoError).code;
  }
  assert.is(code, 'UNTRUSTED_PEER');
  const spent = Object.values(diff(snapshot(), before).crypto).flatMap((row) => Object.keys(row));
  assert.equal(spent, [], `no crypto for a refused hello, saw ${spent.join(', ')}`);
  assert.equal(admits, [false], 'the bucket was asked once: for the trusted key, not for the stranger');
  resp(true).hello(hello);
  const after = diff(snapshot(), before).crypto;
  assert.ok(
    Object.values(after).some((row) => (row['ed25519.sign']?.n ?? 0) === 1),
    'an admitted hello does the public-key work',
  );
});

test("a route's handshake bucket: the burst passes, the rest is refused BUSY, and tokens come back at the rate", async () => {
  const { clock, refused, door: d } = door({ handshakesPerS: 2, handshakeBurst: 3 });
  const attempt = async (i: number) => {
    const [a, b] = memoryLinkPair(`terminal/t${i}`, 'server');
    const init = new SecureInitiatorLink(a, { name: `terminal/t${i}`, peerSignPublic: serverId.signPublic, rng });
    responder(b, d);
    return init.ready.then(
      () => 'ok',
      (e: Error) => e.message,
    );
  };
  const first = await Promise.all([0, 1, 2, 3, 4].map(attempt));
  assert.equal(first, ['ok', 'ok', 'ok', 'BUSY: too many handshakes; retry in a moment', 'BUSY: too many handshakes; retry in a moment']);
  assert.equal(refused, ['handshakes_per_s', 'handshakes_per_s']);
  clock.advanceTo(clock.now() + 500);
  assert.equal(await Promise.all([5, 6].map(attempt)), ['ok', 'BUSY: too many handshakes; retry in a moment'], 'one token after 500 ms at 2/s');
  // Another route has its own bucket.
  const [a, b] = memoryLinkPair('server', 'migration-sam/x');
  const init = new SecureInitiatorLink(a, { name: 'server', identity: serverId, peerSignPublic: samId.signPublic, rng });
  new SecureResponderLink(
    b,
    { name: 'migration-sam/x', identity: samId, trust: (k) => k === toB64(serverId.signPublic), requireMutual: true, rng },
    {},
    d.responder('/migration-sam'),
  );
  await init.ready;
});

test('TokenBucket: starts full, refills at its rate up to the burst, and a clock stepping back adds nothing', () => {
  let now = 1_000;
  const b = new TokenBucket(10, 5, () => now);
  assert.equal(
    Array.from({ length: 6 }, () => b.take()),
    [true, true, true, true, true, false],
  );
  now += 100;
  assert.equal([b.take(), b.take()], [true, false], 'one token per 100 ms at 10/s');
  now += 10_000;
  assert.is(Array.from({ length: 10 }, () => b.take()).filter(Boolean).length, 5, 'never more than the burst');
  now -= 5_000;
  assert.is(b.take(), false);
  assert.throws(() => new TokenBucket(0, 5, () => now), /positive rate/);
});

/** A link that records how it was closed, and lets a test deliver messages into it. */
function recordingLink() {
  const handlers: Array<(d: Uint8Array) => void> = [];
  const state = { closed: undefined as undefined | [string | undefined, number | undefined] };
  const link: Link = {
    label: 'ws/terminal<-127.0.0.1:1',
    get isOpen() {
      return state.closed === undefined;
    },
    send() {},
    onMessage: (h) => void handlers.push(h),
    onClose() {},
    close: (reason, code) => void (state.closed = [reason, code]),
  };
  return {
    link,
    state,
    deliver: (s: string) => {
      for (const h of handlers) h(new TextEncoder().encode(s));
    },
  };
}

test('a flooding link: messages over the rate are dropped and counted; past MESSAGE_DROPS_MAX in the window the link is closed 1008', () => {
  const clock = new VirtualClock();
  const refused: LimitName[] = [];
  const inner = recordingLink();
  const limited = new RateLimitedLink(
    inner.link,
    { messagesPerS: 2, messageBurst: 4, messageDropsMax: 5, messageDropsWindowMs: 10_000 },
    clock,
    (l) => void refused.push(l),
  );
  const got: string[] = [];
  limited.onMessage((b) => got.push(dec.decode(b)));
  limited.onMessage(() => {}); // a second handler takes no second token
  for (let i = 0; i < 8; i++) inner.deliver(`m${i}`);
  assert.equal(got, ['m0', 'm1', 'm2', 'm3']);
  assert.is(limited.dropped, 4);
  assert.is(inner.state.closed, undefined, 'four drops are a burst, not yet a flood');
  clock.advanceTo(clock.now() + 500);
  inner.deliver('m8');
  assert.equal(got.at(-1), 'm8', 'the rate refills the bucket');
  inner.deliver('m9');
  inner.deliver('m10');
  assert.equal(inner.state.closed, ['more than 5 messages over 2/s within 10000 ms', CLOSE_POLICY]);
  assert.equal(refused, ['messages_per_s', 'messages_per_s', 'messages_per_s', 'messages_per_s', 'messages_per_s', 'messages_per_s', 'message_drops']);
});

test('drops are counted per window: a link that drops a few now and then is not closed', () => {
  const clock = new VirtualClock();
  const inner = recordingLink();
  const limited = new RateLimitedLink(inner.link, { messagesPerS: 1, messageBurst: 1, messageDropsMax: 2, messageDropsWindowMs: 1_000 }, clock, () => {});
  limited.onMessage(() => {});
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 3; i++) inner.deliver('x'); // one passes, two are dropped
    clock.advanceTo(clock.now() + 1_000);
  }
  assert.is(limited.dropped, 10);
  assert.is(inner.state.closed, undefined);
});

test('Door: the caps refuse by name and count nothing they refused; established frees the pending place, release frees the link', () => {
  const { refused, door: d } = door({ linksMax: 3, linksPerAddressMax: 2, pendingHandshakesMax: 2, pendingPerAddressMax: 1 });
  const admitted = (path: string, address: string) => {
    const a = d.admit(path, address);
    if (!('established' in a)) throw new Error(`refused: ${a.message}`);
    return a;
  };
  const first = admitted('/terminal', '10.0.0.1');
  assert.equal(d.admit('/terminal', '10.0.0.1'), { limit: 'pending_per_address', message: 'too many connections in their handshake from 10.0.0.1 (limit 1)' });
  first.established();
  first.established();
  const again = admitted('/terminal', '10.0.0.1');
  assert.equal(d.admit('/terminal', '10.0.0.1'), { limit: 'links_per_address', message: 'too many connections from 10.0.0.1 (limit 2)' });
  admitted('/terminal', '10.0.0.2');
  assert.equal(d.admit('/terminal', '10.0.0.3'), { limit: 'links', message: 'too many connections (limit 3)' });
  assert.equal(d.counts, { links: 3, pending: 2, addresses: 2 });
  again.release();
  again.release();
  assert.equal(d.counts, { links: 2, pending: 1, addresses: 2 });
  first.release();
  assert.equal(d.counts, { links: 1, pending: 1, addresses: 1 }, 'an address with no link is forgotten');
  assert.equal(refused, ['pending_per_address', 'links_per_address', 'links']);
});

test('LogThrottle: at most REFUSAL_LOG_LINES_MAX lines of a kind per interval, then one line with how many were left out', () => {
  const clock = new VirtualClock();
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', sink: { write: (l) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
  const t = new LogThrottle(log, clock);
  for (let i = 0; i < 25; i++) t.warn('links', 'refused at the door', { limit: 'links', n: i });
  t.warn('channel', 'channel refused a message', { code: 'UNTRUSTED_PEER' });
  assert.is(lines.length, REFUSAL_LOG_LINES_MAX + 1, 'ten of one kind, and the other kind is not held back by it');
  clock.advanceTo(clock.now() + REFUSAL_LOG_INTERVAL_MS);
  while (clock.fireNext());
  assert.equal(lines.at(-1)?.msg, 'more refusals, not logged one by one');
  assert.equal([lines.at(-1)?.kind, lines.at(-1)?.suppressed], ['links', 25 - REFUSAL_LOG_LINES_MAX]);
  t.warn('links', 'refused at the door', { limit: 'links' });
  assert.is(lines.at(-1)?.msg, 'refused at the door', 'a new interval logs again');
  t.close();
});

test.run();
