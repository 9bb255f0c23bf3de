/**
 * A party's links (src/runtime/links.ts), over in-memory pipes: one link per
 * peer name, a new connection replacing the old one without losing the name,
 * the party id behind an alias, what a closed link leaves behind (a
 * stranger's name goes with it, an alias stays), and the one place an
 * envelope is encoded, observed and sent.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../src/log.ts';
import { Links } from '../../src/runtime/links.ts';
import { decodeEnvelope, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { LinkWrapper, type Link } from '../../src/transport/link.ts';
import { memoryLinkPair } from '../../src/transport/memory.transport.ts';

const tick = () => new Promise((r) => setImmediate(r));

function bench() {
  const events: string[] = [];
  const taps: string[] = [];
  const counted: string[] = [];
  const links = new Links(
    'p',
    silentLogger,
    {
      tap: (party, direction, peer) => taps.push(`${party} ${direction} ${peer}`),
      observe: { message: (_party, direction, type) => counted.push(`${direction} ${type}`), turn: () => {} },
    },
    {
      message: (peer, bytes) => events.push(`message from ${peer}: ${new TextDecoder().decode(bytes)}`),
      attached: (peer) => events.push(`attached ${peer}`),
      closed: (peer, reason) => events.push(`closed ${peer}: ${reason}`),
    },
  );
  return { links, events, taps, counted };
}

const envelope = (to: string): AnyEnvelope => ({ v: 1, id: 'p#1', from: 'p', to, type: 'msam.clear', body: {} }) as AnyEnvelope;

test("a link brings its peer's messages; transmit encodes, taps, counts and sends; with no link a message waits (nothing sent)", async () => {
  const b = bench();
  const [mine, theirs] = memoryLinkPair('server', 'p');
  const got: AnyEnvelope[] = [];
  mine.onMessage((x) => got.push(decodeEnvelope(x)));
  b.links.attach('server', theirs, 'server');
  mine.send(new TextEncoder().encode('hello'));
  await tick();
  b.links.transmit({ peer: 'server', env: envelope('server') });
  b.links.transmit({ peer: 'nobody', env: envelope('nobody') });
  await tick();
  assert.equal(b.events, ['attached server', 'message from server: hello']);
  assert.equal(
    got.map((e) => e.type),
    ['msam.clear'],
  );
  assert.equal(b.taps, ['p out server']);
  assert.equal(b.counted, ['out msam.clear']);
  assert.ok(b.links.has('server'));
  assert.not.ok(b.links.has('nobody'));
  assert.equal(b.links.open(), ['server']);
});

test("a new connection under a name closes the old one; the old one's close does not take the name from the new", async () => {
  const b = bench();
  const [, first] = memoryLinkPair('terminal/a', 'p');
  const [, second] = memoryLinkPair('terminal/a', 'p');
  b.links.attach('terminal/a', first, 'terminal/a');
  b.links.attach('terminal/a', second, 'terminal/a');
  await tick();
  assert.not.ok(first.isOpen, 'the old connection was closed');
  assert.ok(b.links.has('terminal/a'), "the name is the new connection's");
  assert.equal(b.events, ['attached terminal/a', 'closed terminal/a: replaced by a new connection', 'attached terminal/a']);
});

test('an alias names the party behind it, and stays when its link closes; a name taken by a link goes with it', async () => {
  const b = bench();
  const [chipEnd, toChip] = memoryLinkPair('chip/X', 'p');
  const [, stranger] = memoryLinkPair('terminal/s', 'p');
  b.links.attach('chip', toChip, 'chip/X');
  b.links.attach('terminal/s', stranger, 'terminal/s');
  assert.is(b.links.remoteOf('chip'), 'chip/X');
  assert.is(b.links.peerOf('chip/X'), 'chip');
  assert.is(b.links.peerOf('server'), 'server', 'a party id no link aliases is its own name');
  chipEnd.close('unplugged');
  b.links.close('terminal/s', 'bye');
  await tick();
  assert.is(b.links.peerOf('chip/X'), 'chip', 'the alias stays');
  assert.is(b.links.remoteOf('terminal/s'), 'terminal/s');
  assert.ok(b.events.includes('closed chip: unplugged'));
  assert.ok(b.events.includes('closed terminal/s: bye'));
  assert.equal(b.links.open(), []);
});

test("a channel's refusal and proven key show through the link; closeAll closes and forgets every link", async () => {
  const b = bench();
  const [, inner] = memoryLinkPair('migration-sam/p0', 'p');
  class Channel extends LinkWrapper {
    readonly refusalSeen = { code: 'UNTRUSTED_PEER', message: 'not a server it trusts' };
    override get refusal() {
      return this.refusalSeen;
    }
    override get peerId() {
      return 'key-of-p0';
    }
    send(data: Uint8Array): void {
      this.inner.send(data);
    }
  }
  const channel: Link = new Channel(inner);
  b.links.attach('migration-sam/p0', channel, 'migration-sam/p0');
  assert.is(b.links.keyOf('migration-sam/p0'), 'key-of-p0');
  b.links.closeAll('party stopping');
  await tick();
  assert.equal(b.links.refusal('migration-sam/p0'), { code: 'UNTRUSTED_PEER', message: 'not a server it trusts' });
  assert.is(b.links.keyOf('migration-sam/p0'), undefined, 'forgotten');
  assert.not.ok(inner.isOpen);
});

test.run();
