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

test.run();
