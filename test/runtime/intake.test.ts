/**
 * What a party does with the bytes it receives (src/runtime/intake.ts),
 * through a bare party: an envelope must be addressed to it and come from
 * the party its link names; a refusal is an error that names the request,
 * and nothing answers an error or a reply (no ping-pong); a reply to
 * nothing of ours is dropped; a duplicated notice reaches nobody twice.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyEnvelope } from '../../src/transport/envelope.ts';
import { memoryLinkPair } from '../../src/transport/memory.transport.ts';
import { testBench } from '../helpers/testParty.ts';

const brief = (envs: AnyEnvelope[]) => envs.map((e) => (e.type === 'error' ? `error ${e.body.code} to ${e.corr ?? '-'}` : e.type));

test("an envelope for another party, or from another party than its link's, is refused with an error naming it; nothing is applied", async () => {
  const b = await testBench();
  try {
    b.send({ id: 'server#1', type: 'msam.clear', to: 'someone-else', body: {} });
    b.send({ id: 'admin-sam#2', type: 'msam.clear', from: 'admin-sam', body: {} });
    await b.settle();
    assert.equal(brief(b.got), ['error BAD_ENVELOPE to server#1', 'error BAD_SENDER to admin-sam#2']);
    assert.equal(b.party.applied, []);
  } finally {
    await b.close();
  }
});

test('bytes that are no envelope are refused; an error or a reply that is refused gets no answer', async () => {
  const b = await testBench();
  try {
    b.link.send(new TextEncoder().encode('not json'));
    b.send({ id: 'server#e1', type: 'error', corr: 'test-party#1', to: 'someone-else', body: { code: 'BUSY', message: 'x' } });
    b.send({ id: 'server#3', type: 'msam.cleared', corr: 'test-party#1', to: 'someone-else', body: {} });
    await b.settle();
    assert.equal(brief(b.got), ['error BAD_JSON to -']);
  } finally {
    await b.close();
  }
});

test('a reply to nothing this party asked is dropped without a word; a duplicated notice is handled once', async () => {
  const b = await testBench();
  try {
    b.send({ id: 'server#4', type: 'msam.cleared', corr: 'test-party#999', body: {} });
    const progress = { id: 'server#5', type: 'progress', body: { mig: 'm-1', step: 'S1', text: 'hello' } };
    b.send(progress);
    b.send(progress);
    await b.settle();
    assert.equal(brief(b.got), ['error UNEXPECTED to server#5'], 'no answer to the stray reply; the party refused the notice once');
    assert.equal(b.party.applied, ['server#5'], 'the duplicate never reached it');
  } finally {
    await b.close();
  }
});

/**
 * Found by the fuzzer (issue 8): an answer was taken as an acknowledgement
 * against the whole outbox, not against the requests sent on the link it
 * came in on; any peer that guessed an id (they count up) stopped the party
 * resending a request to another peer.
 */
test('an answer on one link does not settle a request the party sent on another; on the right link it does', async () => {
  const b = await testBench();
  const [other, theirs] = memoryLinkPair('terminal/other', 'test-party');
  b.party.attach('terminal/other', theirs);
  try {
    const id = await b.party.request('server');
    await b.settle();
    assert.ok(b.party.partyStore.outbox.get(id), 'the request waits for its answer');
    other.send(
      new TextEncoder().encode(
        JSON.stringify({ v: 1, id: 'terminal/other#1', corr: id, from: 'terminal/other', to: 'test-party', type: 'channel.reserved', body: {} }),
      ),
    );
    await b.settle();
    assert.ok(b.party.partyStore.outbox.get(id), 'it still waits, whatever another link says');
    b.send({ id: 'server#1', corr: id, type: 'channel.reserved', body: {} });
    await b.settle();
    assert.is(b.party.partyStore.outbox.get(id), undefined, 'answered on its own link: settled');
  } finally {
    other.close('test over');
    await b.close();
  }
});

test.run();
