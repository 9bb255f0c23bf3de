/**
 * Issue 16, point 4: what a party keeps per peer is bounded and goes with the
 * peer's link. Any number of strangers may come and go; a reader holds a few
 * sessions at most, and none once its link is gone; a finished reader session
 * leaves nothing on disk.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { READER_SESSIONS_PER_LINK_MAX } from '../../src/actors/normalSam.actor.ts';
import { generateIdentity, systemRng, toB64, utf8 } from '../../src/crypto/index.ts';
import { decodeEnvelope, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { memoryLinkPair } from '../../src/transport/memory.transport.ts';
import { SecureResponderLink } from '../../src/transport/secure.link.ts';
import { storeOf } from '../fuzz/seats.ts';
import { testBench } from '../helpers/testParty.ts';
import { buildWorld, settle } from '../helpers/world.ts';

const STRANGERS = 500;

const privateMap = (party: object, field: string) => (party as unknown as Record<string, Map<unknown, unknown>>)[field]!;
/** What the party's links keep per peer (src/runtime/links.ts). */
const linkMap = (party: object, field: 'remoteIds' | 'refusals') => privateMap((party as unknown as { runtime: { links: object } }).runtime.links, field);

test(`${STRANGERS} strangers that connect to the server and go leave no per-peer entry behind; a terminal's "chip" alias stays`, async () => {
  const world = await buildWorld({ items: 1, register: false });
  try {
    const server = world.system.server;
    const before = new Map(linkMap(server, 'remoteIds'));
    const loginsBefore = new Map(privateMap(server, 'logins'));
    for (let i = 0; i < STRANGERS; i++) {
      const link = world.system.rawServerConnection(`stranger-${i}`);
      // One failed proof each: the server remembers its id for the link (a duplicate is not a second failure).
      link.send(
        utf8(
          JSON.stringify({
            v: 1,
            id: `terminal/stranger-${i}#1`,
            from: `terminal/stranger-${i}`,
            to: 'server',
            type: 'login.proof',
            body: { user: world.user, proof: 'AAAA' },
          }),
        ),
      );
      await settle(world, 2);
      link.close('bye');
    }
    await settle(world);
    assert.equal(linkMap(server, 'remoteIds'), before, "the server's remote ids are as before");
    assert.is(privateMap(server, 'proofIds').size, 0, 'no login.proof ids are kept for links that are gone');
    assert.equal(privateMap(server, 'logins'), loginsBefore, "the logins are the phones' own");
    assert.is(linkMap(world.oldPhone, 'remoteIds').get('chip'), world.source.id, "the terminal's alias for its chip stays");
  } finally {
    await world.cleanup();
  }
});

test("a responder keeps no refusal its initiator sent: the link is only closed (the name is the initiator's choice)", async () => {
  const b = await testBench();
  try {
    for (let i = 0; i < 50; i++) {
      const [raw, theirs] = memoryLinkPair(`terminal/r${i}`, 'test-party');
      const responder = new SecureResponderLink(theirs, {
        name: 'test-party',
        identity: generateIdentity(systemRng),
        trust: () => true,
        requireMutual: false,
        rng: systemRng,
      });
      b.party.attach(`terminal/r${i}`, responder);
      raw.send(utf8(JSON.stringify({ chan: 'refused', code: 'NOT_TRUSTED', message: `a refusal under a name the initiator chose, ${i}` })));
      await b.settle();
      assert.not.ok(responder.isOpen, 'closed');
      assert.is(responder.refusal, undefined);
    }
    assert.is(linkMap(b.party, 'refusals').size, 0);
    assert.is(linkMap(b.party, 'remoteIds').size, 1, "only the server's link is left");
  } finally {
    await b.close();
  }
});

test(`a reader link holds at most ${READER_SESSIONS_PER_LINK_MAX} open sessions at the normal SAM (then BUSY); when it closes they fail, their work and frames go, and a repeat on a new link gets the failure from the inbox`, async () => {
  const world = await buildWorld({ items: 1, register: false });
  try {
    const provider = world.providers[0]!;
    const nsam = world.system.providers.get(provider)!.normalSam;
    // A reader the provider enrolled: each link stands for a channel that proved its key.
    const key = toB64(generateIdentity(systemRng).signPublic);
    world.system.enrollReader(provider, key, 'terminal/reader', ['spend']);
    const connect = () => {
      const [mine, theirs] = memoryLinkPair('terminal/reader', nsam.id);
      Object.defineProperty(theirs, 'peerId', { value: key });
      nsam.attach('terminal/reader', theirs);
      const got: AnyEnvelope[] = [];
      mine.onMessage((b) => got.push(decodeEnvelope(b)));
      return {
        mine,
        got,
        begin: (n: number) =>
          mine.send(
            utf8(
              JSON.stringify({
                v: 1,
                id: `terminal/reader#${n}`,
                from: 'terminal/reader',
                to: nsam.id,
                type: 'normal.begin',
                body: { session: `terminal/reader:r${n}:x`, op: 'balance', area: provider },
              }),
            ),
          ),
      };
    };
    const first = connect();
    for (let n = 1; n <= READER_SESSIONS_PER_LINK_MAX + 1; n++) first.begin(n);
    await settle(world);
    const refusals = first.got.filter((e) => e.type === 'error');
    assert.equal(
      refusals.map((e) => [e.corr, e.type === 'error' && e.body.code, e.type === 'error' && e.body.message]),
      [
        [
          `terminal/reader#${READER_SESSIONS_PER_LINK_MAX + 1}`,
          'BUSY',
          `terminal/reader has ${READER_SESSIONS_PER_LINK_MAX} reader sessions open, the most one reader may; finish one first`,
        ],
      ],
    );
    assert.is(first.got.filter((e) => e.type === 'frame').length, READER_SESSIONS_PER_LINK_MAX, 'a challenge per open session');
    assert.is(privateMap(nsam, 'work').size, READER_SESSIONS_PER_LINK_MAX);
    first.mine.close('the reader goes');
    await settle(world);
    const store = storeOf(nsam);
    assert.is(privateMap(nsam, 'work').size, 0, 'its work went with the link');
    assert.equal(
      [...store.outbox.getRange()].map((e) => e.key),
      [],
      'its challenges are no longer waited on',
    );
    assert.equal(
      [...store.snapshots.getRange()].map((e) => e.key),
      [],
      'the failed sessions left no snapshot',
    );
    const again = connect();
    again.begin(1);
    await settle(world);
    assert.equal(
      again.got.map((e) => (e.type === 'error' ? `${e.corr} ${e.body.code}` : e.type)),
      ['terminal/reader#1 SESSION_FAILED'],
      'the stored failure, from the inbox',
    );
    again.mine.close('done');
  } finally {
    await world.cleanup();
  }
});

test("a finished reader session leaves no snapshot in the normal SAM's store; its request's record keeps the receipt for a repeat", async () => {
  const world = await buildWorld({ items: 1, register: false });
  try {
    const provider = world.providers[0]!;
    const nsam = world.system.providers.get(provider)!.normalSam;
    const store = storeOf(nsam);
    for (let i = 0; i < 5; i++) await world.oldPhone.normalUse(provider, 'pay', provider, 10);
    await settle(world);
    assert.equal(
      [...store.snapshots.getRange()].map((e) => e.key),
      [],
      'no done actor stays behind',
    );
    const begins = [...store.inbox.getRange()].filter((e) => e.value.type === 'normal.begin');
    assert.is(begins.length, 5);
    assert.ok(begins.every((e) => e.value.replies.map((r) => r.type).join() === 'normal.receipt'));
  } finally {
    await world.cleanup();
  }
});

test.run();
