/** channel.ts: SIGMA-style channels (server <-> SAMs mutual; terminal -> server anonymous) and their AEAD messages. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CHANNEL_REPLAY_WINDOW,
  ChannelInitiator,
  ChannelResponder,
  generateIdentity,
  seededRng,
  toB64,
  toHex,
  utf8,
  type ChannelAccept,
  type ChannelHello,
  type Identity,
  type Rng,
} from '../../src/crypto/index.ts';
import { codeOf, errorOf, flipByte } from './helpers.ts';

const rng = seededRng('channel-tests');
const server = generateIdentity(rng);
const sam = generateIdentity(rng);

/** JSON round trip: every handshake message must survive the wire as plain JSON. */
const wire = <T>(m: T): T => JSON.parse(JSON.stringify(m)) as T;

interface Setup {
  initiatorIdentity?: Identity;
  /** The key the initiator expects the responder to have. */
  peerSignPublic?: Uint8Array;
  responderIdentity?: Identity;
  trusted?: (k: string | undefined) => boolean;
  requireMutual?: boolean;
  r?: Rng;
}

function parties(s: Setup = {}) {
  const r = s.r ?? rng;
  const i = new ChannelInitiator({ name: 'server', identity: s.initiatorIdentity, peerSignPublic: s.peerSignPublic ?? sam.signPublic, rng: r });
  const resp = new ChannelResponder({
    name: 'migration-sam/emoney',
    identity: s.responderIdentity ?? sam,
    trust: s.trusted ?? ((k) => k === toB64(server.signPublic)),
    requireMutual: s.requireMutual ?? true,
    rng: r,
  });
  return { i, resp };
}

/** A full handshake over JSON; returns both ciphers. */
function mutual(s: Setup = {}) {
  const { i, resp } = parties({ initiatorIdentity: server, ...s });
  const accept = resp.hello(wire(i.hello()));
  const { finish, cipher: ic } = i.accept(wire(accept));
  assert.ok(finish, 'an identified initiator sends a finish');
  const rc = resp.finish(wire(finish));
  return { ic, rc, i, resp };
}

function anonymous() {
  const { i, resp } = parties({ trusted: (k) => k === undefined, requireMutual: false });
  const hello = wire(i.hello());
  assert.is(hello.id, undefined);
  const accept = resp.hello(hello);
  const { finish, cipher: ic } = i.accept(wire(accept));
  assert.is(finish, undefined, 'an anonymous initiator has nothing to prove');
  const rc = resp.finish();
  return { ic, rc, resp };
}

test("mutual handshake: both directions work and the responder learns the initiator's proven key", () => {
  const { ic, rc, resp } = mutual();
  assert.equal(rc.open(ic.seal(utf8('msam.upload'))), utf8('msam.upload'));
  assert.equal(ic.open(rc.seal(utf8('msam.uploaded'))), utf8('msam.uploaded'));
  assert.is(resp.peerId, toB64(server.signPublic));
});

test('anonymous handshake (a terminal): the server is authenticated, the initiator is not, and the channel works', () => {
  const { ic, rc, resp } = anonymous();
  assert.equal(rc.open(ic.seal(utf8('login.begin'))), utf8('login.begin'));
  assert.equal(ic.open(rc.seal(utf8('login.challenge'))), utf8('login.challenge'));
  assert.is(resp.peerId, undefined);
});

test('the handshake draws only from the Rng: the same seed gives the same messages and keys', () => {
  const run = () => {
    const r = seededRng('channel-replay');
    const { i, resp } = parties({ initiatorIdentity: server, r });
    const hello = i.hello();
    const accept = resp.hello(hello);
    const { finish, cipher } = i.accept(accept);
    resp.finish(finish);
    return JSON.stringify({ hello, accept, finish, box: toHex(cipher.seal(utf8('x'))) });
  };
  assert.is(run(), run());
});

test('an untrusted initiator is refused with UNTRUSTED_PEER before anything is signed', () => {
  const stranger = generateIdentity(rng);
  const { i, resp } = parties({ initiatorIdentity: stranger });
  const e = errorOf(() => resp.hello(i.hello()));
  assert.is(e.code, 'UNTRUSTED_PEER');
  assert.match(e.message, /server is not trusted here/);
  assert.is(resp.peerId, undefined);
});

test('a channel that requires mutual authentication refuses an anonymous initiator', () => {
  const { i, resp } = parties({ trusted: () => true, requireMutual: true });
  assert.is(
    codeOf(() => resp.hello(i.hello())),
    'UNTRUSTED_PEER',
  );
});

test('a responder with the wrong key is refused: UNTRUSTED_PEER', () => {
  const impostor = generateIdentity(rng);
  const { i, resp } = parties({ initiatorIdentity: server, responderIdentity: impostor });
  const accept = resp.hello(i.hello());
  assert.is(
    codeOf(() => i.accept(accept)),
    'UNTRUSTED_PEER',
  );
});

test('an accept claiming the right key but signed by another, or with a swapped ephemeral key, is HANDSHAKE_FAILED', () => {
  const impostor = generateIdentity(rng);
  const { i, resp } = parties({ initiatorIdentity: server, responderIdentity: impostor });
  const hello = i.hello();
  const forged = { ...resp.hello(hello), id: toB64(sam.signPublic) };
  assert.is(
    codeOf(() => i.accept(forged)),
    'HANDSHAKE_FAILED',
  );

  const honest = parties({ initiatorIdentity: server });
  const accept = honest.resp.hello(honest.i.hello());
  const mitmEph = parties({ initiatorIdentity: server }).i.hello().eph;
  assert.is(
    codeOf(() => honest.i.accept({ ...accept, eph: mitmEph })),
    'HANDSHAKE_FAILED',
    'the signature covers the ephemeral key',
  );
  // a failed accept changes nothing: the genuine accept still completes
  const { finish } = honest.i.accept(accept);
  assert.ok(honest.resp.finish(finish));
});

test('a finish from another handshake, a garbage finish, or none from an initiator that named a key, is refused', () => {
  const { i, resp } = parties({ initiatorIdentity: server });
  i.accept(resp.hello(i.hello()));
  // a genuine finish by the same server, replayed from another handshake: signed over another transcript
  const elsewhere = parties({ initiatorIdentity: server });
  const { finish: replayed } = elsewhere.i.accept(elsewhere.resp.hello(elsewhere.i.hello()));
  assert.is(
    codeOf(() => resp.finish(replayed)),
    'HANDSHAKE_FAILED',
  );
  assert.is(
    codeOf(() => resp.finish({ v: 1, sig: toB64(new Uint8Array(64)) })),
    'HANDSHAKE_FAILED',
  );
  assert.is(
    codeOf(() => resp.finish()),
    'HANDSHAKE_FAILED',
  );
  assert.is(resp.peerId, undefined, 'nothing proven, nothing learned');
  // an initiator naming a key on a channel that does not require one still has to prove it
  const claim = parties({ initiatorIdentity: server, requireMutual: false, trusted: () => true });
  claim.resp.hello(claim.i.hello());
  assert.is(
    codeOf(() => claim.resp.finish()),
    'HANDSHAKE_FAILED',
  );
});

test('the handshake runs once: a second hello, accept or finish is HANDSHAKE_FAILED (a second cipher would reuse nonces)', () => {
  const { i, resp } = parties({ initiatorIdentity: server });
  const hello = i.hello();
  assert.equal(i.hello(), hello, 'asking again gives the same hello');
  const accept = resp.hello(hello);
  assert.is(
    codeOf(() => resp.hello(hello)),
    'HANDSHAKE_FAILED',
  );
  const { finish } = i.accept(accept);
  assert.is(
    codeOf(() => i.accept(accept)),
    'HANDSHAKE_FAILED',
  );
  resp.finish(finish);
  assert.is(
    codeOf(() => resp.finish(finish)),
    'HANDSHAKE_FAILED',
  );
  const fresh = parties({ initiatorIdentity: server });
  assert.is(
    codeOf(() => fresh.resp.finish()),
    'HANDSHAKE_FAILED',
    'finish before hello',
  );
  assert.is(
    codeOf(() => fresh.i.accept(accept)),
    'HANDSHAKE_FAILED',
    'accept before hello',
  );
});

test('malformed handshake messages are HANDSHAKE_FAILED, not TypeErrors', () => {
  const good = parties({ initiatorIdentity: server }).i.hello();
  const bad: unknown[] = [
    null,
    {},
    { ...good, v: 2 },
    { ...good, from: '' },
    { ...good, from: 'x'.repeat(1000) },
    { ...good, eph: undefined },
    { ...good, eph: toB64(new Uint8Array(31)) },
    { ...good, eph: `${good.eph}=` },
    { ...good, nonce: 'A'.repeat(10_000) },
    { ...good, id: toB64(new Uint8Array(33)) },
    { ...good, id: 17 },
  ];
  for (const m of bad) {
    const { resp } = parties({ trusted: () => true });
    assert.is(
      codeOf(() => resp.hello(m as ChannelHello)),
      'HANDSHAKE_FAILED',
      JSON.stringify(m)?.slice(0, 80),
    );
  }
  const { i, resp } = parties({ initiatorIdentity: server });
  const accept = resp.hello(i.hello());
  for (const m of [null, { ...accept, v: 0 }, { ...accept, sig: 'short' }, { ...accept, eph: toB64(new Uint8Array(32)) }]) {
    assert.is(
      codeOf(() => i.accept(m as ChannelAccept)),
      'HANDSHAKE_FAILED',
      JSON.stringify(m)?.slice(0, 80),
    );
  }
});

test('channel messages tolerate loss and reordering but refuse replay; a failed open changes nothing', () => {
  const { ic, rc } = mutual();
  const m = [0, 1, 2, 3, 4].map((n) => ic.seal(utf8(`m${n}`)));
  assert.equal(rc.open(m[2]!), utf8('m2'));
  assert.equal(rc.open(m[0]!), utf8('m0'), 'older but within the window');
  assert.is(
    codeOf(() => rc.open(m[2]!)),
    'CHANNEL_REPLAY',
  );
  assert.is(
    codeOf(() => rc.open(m[0]!)),
    'CHANNEL_REPLAY',
  );
  assert.is(
    codeOf(() => rc.open(flipByte(m[3]!, 10))),
    'CHANNEL_TAMPERED',
  );
  assert.is(
    codeOf(() => rc.open(flipByte(m[3]!, -1))),
    'CHANNEL_TAMPERED',
  );
  assert.is(
    codeOf(() => rc.open(m[3]!.subarray(0, 20))),
    'CHANNEL_TAMPERED',
  );
  assert.equal(rc.open(m[3]!), utf8('m3'), 'the genuine message still opens after the tampered ones');
  assert.equal(rc.open(m[4]!), utf8('m4'));
  // m1 was lost and arrives last: still accepted once
  assert.equal(rc.open(m[1]!), utf8('m1'));
  assert.is(
    codeOf(() => rc.open(m[1]!)),
    'CHANNEL_REPLAY',
  );
});

test(`a message older than the replay window (${CHANNEL_REPLAY_WINDOW}) is CHANNEL_REPLAY even if never seen`, () => {
  const { ic, rc } = anonymous();
  const boxes = Array.from({ length: CHANNEL_REPLAY_WINDOW + 6 }, (_, n) => ic.seal(utf8(String(n))));
  const last = boxes.length - 1; // 1029
  assert.equal(rc.open(boxes[last]!), utf8(String(last)));
  assert.is(
    codeOf(() => rc.open(boxes[last - CHANNEL_REPLAY_WINDOW]!)),
    'CHANNEL_REPLAY',
    'just outside the window',
  );
  assert.equal(rc.open(boxes[last - CHANNEL_REPLAY_WINDOW + 1]!), utf8(String(last - CHANNEL_REPLAY_WINDOW + 1)), 'just inside');
});

test('a counter at or past 2^53 is refused before any AEAD work (counters are exact numbers below it); the head names it, and the nonce is direction then counter', () => {
  const { ic, rc } = mutual();
  const box = ic.seal(utf8('x'));
  assert.equal([...box.subarray(0, 8)], [0, 0, 0, 0, 0, 0, 0, 0], 'the first message counts 0');
  const far = new Uint8Array(box);
  new DataView(far.buffer).setUint32(0, 2 ** 21);
  assert.is(
    codeOf(() => rc.open(far)),
    'CHANNEL_TAMPERED',
  );
  const second = ic.seal(utf8('y'));
  assert.equal([...second.subarray(0, 8)], [0, 0, 0, 0, 0, 0, 0, 1]);
  assert.equal(rc.open(second), utf8('y'), 'the refusal changed nothing');
  assert.equal(rc.open(box), utf8('x'));
});

test('the replay window, against a model that remembers every counter: any order of arrivals, repeats and long gaps, the same verdicts', () => {
  const r = seededRng('channel-window-model');
  const { ic, rc } = anonymous();
  const total = 12 * CHANNEL_REPLAY_WINDOW;
  const boxes = Array.from({ length: total }, (_, n) => ic.seal(utf8(String(n))));
  const opened = new Set<number>();
  let highest = -1;
  let cursor = 0;
  for (let step = 0; step < 20_000; step++) {
    // Mostly forward with jitter, sometimes anywhere behind, now and then a jump past the whole window.
    const roll = r.nextFloat();
    const n =
      roll < 0.03
        ? Math.floor(r.nextFloat() * (cursor + 1))
        : roll < 0.0315
          ? Math.min(total - 1, cursor + CHANNEL_REPLAY_WINDOW + Math.floor(r.nextFloat() * 50))
          : Math.max(0, Math.min(total - 1, cursor + Math.floor(r.nextFloat() * 40) - 16));
    cursor = Math.max(cursor, n);
    const fresh = !opened.has(n) && n + CHANNEL_REPLAY_WINDOW > highest;
    if (fresh) {
      assert.equal(rc.open(boxes[n]!), utf8(String(n)), `counter ${n} (highest ${highest}) opens`);
      opened.add(n);
      highest = Math.max(highest, n);
    } else {
      assert.is(
        codeOf(() => rc.open(boxes[n]!)),
        'CHANNEL_REPLAY',
        `counter ${n} (highest ${highest}) is refused`,
      );
    }
  }
});

test('channel messages do not cross directions or channels', () => {
  const a = mutual();
  const b = mutual();
  assert.is(
    codeOf(() => a.ic.open(a.ic.seal(utf8('reflected')))),
    'CHANNEL_TAMPERED',
  );
  assert.is(
    codeOf(() => b.rc.open(a.ic.seal(utf8('other channel')))),
    'CHANNEL_TAMPERED',
  );
});

test.run();
