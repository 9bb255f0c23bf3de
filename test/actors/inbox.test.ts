/**
 * The inbox is bounded (issue 16, point 2): a request's record (the replies
 * that answer its repeats) is kept for the retention window, then pruned
 * once answered and once its migration is settled; a repeat after that is
 * refused STALE_REQUEST by the sender's floor, never applied a second time.
 * On a bare party (test/helpers/testParty.ts) with a manual clock.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { INBOX_PRUNES_PER_SWEEP_MAX, INBOX_SWEEP_EVERY_MS } from '../../src/actors/runtime.ts';
import { silentLogger } from '../../src/log.ts';
import { PartyStore } from '../../src/store/party.store.ts';
import { FAST_TIMING } from '../../src/timing.ts';
import { systemRng } from '../../src/crypto/index.ts';
import type { AnyEnvelope } from '../../src/transport/envelope.ts';
import { TestParty, testBench } from '../helpers/testParty.ts';

const WINDOW_MS = FAST_TIMING.inboxRetentionMs;

const brief = (envs: AnyEnvelope[]) => envs.map((e) => (e.type === 'error' ? `error ${e.body.code}` : e.type));

test('a repeat within the retention window is answered from the inbox with the same reply, and not applied again', async () => {
  const b = await testBench();
  try {
    const first = await b.ask('msam.clear', 1);
    b.clock.t += WINDOW_MS - 1;
    await b.ask('msam.clear', 2); // a batch, so a sweep runs
    const again = await b.ask('msam.clear', 1);
    assert.equal(brief(first), ['msam.cleared']);
    assert.equal(again, first, 'the stored reply, the same envelope');
    assert.equal(b.party.applied, ['server#1', 'server#2']);
  } finally {
    await b.close();
  }
});

test('an answered request past the window is pruned; its late repeat is refused STALE_REQUEST and not applied; newer requests are served', async () => {
  const b = await testBench();
  try {
    await b.ask('msam.clear', 5);
    b.clock.t += WINDOW_MS + INBOX_SWEEP_EVERY_MS;
    await b.ask('msam.clear', 6); // this batch's sweep prunes #5
    assert.is(b.party.partyStore.inbox.get('server#5'), undefined, 'the record is gone');
    assert.is(b.party.partyStore.inboxFloors.get('server'), 5, "the sender's floor");
    const late = await b.ask('msam.clear', 5);
    assert.equal(brief(late), ['error STALE_REQUEST']);
    assert.is(
      (late[0] as Extract<AnyEnvelope, { type: 'error' }>).body.message,
      'request server#5 was answered long ago and its record is gone; send a new request',
    );
    // Below the floor too, even never seen: it can only be older than what was pruned.
    assert.equal(brief(await b.ask('msam.clear', 3)), ['error STALE_REQUEST']);
    assert.equal(brief(await b.ask('msam.clear', 7)), ['msam.cleared']);
    assert.equal(brief(await b.ask('msam.clear', 6)), ['msam.cleared'], '#6 is still in its window: answered from the inbox');
    assert.equal(b.party.applied, ['server#5', 'server#6', 'server#7'], 'each applied once');
  } finally {
    await b.close();
  }
});

test('the floor is durable: after a restart a late repeat is still refused STALE_REQUEST', async () => {
  const b = await testBench();
  try {
    await b.ask('msam.clear', 10);
    b.clock.t += WINDOW_MS + INBOX_SWEEP_EVERY_MS;
    await b.ask('msam.clear', 11);
    await b.party.kill();
    const again = new TestParty({ id: 'test-party', store: PartyStore.open(b.dir), clock: b.clock, rng: systemRng, log: silentLogger, timing: FAST_TIMING });
    await again.start();
    const { memoryLinkPair } = await import('../../src/transport/memory.transport.ts');
    const { decodeEnvelope } = await import('../../src/transport/envelope.ts');
    const [mine, theirs] = memoryLinkPair('server', 'test-party');
    again.attach('server', theirs);
    const got: AnyEnvelope[] = [];
    mine.onMessage((x) => got.push(decodeEnvelope(x)));
    mine.send(new TextEncoder().encode(JSON.stringify({ v: 1, id: 'server#10', from: 'server', to: 'test-party', type: 'msam.clear', body: {} })));
    for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(brief(got), ['error STALE_REQUEST']);
    assert.equal(again.applied, []);
    mine.close('done');
    await again.stop();
  } finally {
    await b.close();
  }
});

test('an unanswered request is work in progress: kept past the window; once answered, a repeat gets that answer', async () => {
  const b = await testBench();
  try {
    assert.equal(await b.ask('msam.fence', 20), [], 'no answer yet');
    b.clock.t += 10 * WINDOW_MS;
    await b.ask('msam.clear', 21);
    assert.ok(b.party.partyStore.inbox.get('server#20'), 'still kept');
    assert.equal(await b.ask('msam.fence', 20), [], 'a repeat of work in progress is not applied again, and waits');
    await b.party.answer('server#20');
    await b.settle();
    assert.equal(brief(await b.ask('msam.fence', 20)), ['msam.fenced'], 'the answer, from the inbox');
    assert.equal(b.party.applied, ['server#20', 'server#21']);
  } finally {
    await b.close();
  }
});

test('a record naming a migration that is not settled stays past the window; once settled it is pruned', async () => {
  const b = await testBench();
  try {
    await b.ask('msam.clear', 30, { mig: 'm-1' });
    b.clock.t += WINDOW_MS + INBOX_SWEEP_EVERY_MS;
    await b.ask('msam.clear', 31);
    assert.ok(b.party.partyStore.inbox.get('server#30'), 'kept while m-1 runs');
    assert.is(b.party.partyStore.inbox.get('server#30')!.mig, 'm-1');
    b.party.settled.add('m-1');
    b.clock.t += INBOX_SWEEP_EVERY_MS;
    await b.ask('msam.clear', 32);
    assert.is(b.party.partyStore.inbox.get('server#30'), undefined, 'pruned once m-1 is settled');
    assert.equal(brief(await b.ask('msam.clear', 30, { mig: 'm-1' })), ['error STALE_REQUEST']);
  } finally {
    await b.close();
  }
});

test('a request id that is not "<sender>#<seq>" of its sender is refused BAD_ENVELOPE and keeps nothing', async () => {
  const b = await testBench();
  try {
    for (const id of ['server#x1', 'server#', 'other#5', 'server#5.abc', 'server#1234567890123456']) {
      const from = b.got.length;
      b.send({ id, type: 'msam.clear', body: {} });
      await b.settle();
      const answer = b.got.slice(from);
      assert.equal(brief(answer), ['error BAD_ENVELOPE'], id);
      assert.match((answer[0] as Extract<AnyEnvelope, { type: 'error' }>).body.message, /is not "server#<sequence number>"/);
    }
    assert.equal(brief(await b.ask('msam.clear', '5.0123456789abcdef')), ['msam.cleared'], 'an unguessable id is one');
    assert.equal(b.party.applied, ['server#5.0123456789abcdef']);
    assert.is(b.party.partyStore.inboxCount(), 1);
  } finally {
    await b.close();
  }
});

test('a sweep prunes at most INBOX_PRUNES_PER_SWEEP_MAX records, and the next batch goes on', async () => {
  const b = await testBench();
  try {
    const n = INBOX_PRUNES_PER_SWEEP_MAX + 200;
    for (let i = 1; i <= n; i++) b.send({ id: `server#${i}`, type: 'msam.clear', body: {} });
    await b.settle();
    assert.is(b.party.partyStore.inboxCount(), n);
    b.clock.t += WINDOW_MS + INBOX_SWEEP_EVERY_MS;
    await b.ask('msam.clear', n + 1);
    assert.is(b.party.partyStore.inboxCount(), n + 1 - INBOX_PRUNES_PER_SWEEP_MAX, "one sweep's worth");
    await b.ask('msam.clear', n + 2);
    assert.is(b.party.partyStore.inboxCount(), 2, 'the rest in the next batch, without waiting for the interval');
    assert.is(b.party.partyStore.inboxFloors.get('server'), n);
  } finally {
    await b.close();
  }
});

test('over the inbox cap the oldest answered records go whatever their age; while only unanswered work is over it, new requests are refused BUSY and repeats answered', async () => {
  const b = await testBench({ inboxRecordsMax: 10 });
  try {
    for (let i = 1; i <= 9; i++) b.send({ id: `server#${i}`, type: i <= 4 ? 'msam.clear' : 'msam.fence', body: {} });
    await b.settle();
    await b.ask('msam.fence', 10); // the cap; no sweep is due (the clock stands still)
    // At the cap: the next new request is refused, and the next batch prunes the oldest answered one (#1), young as it is.
    assert.equal(brief(await b.ask('msam.clear', 11)), ['error BUSY']);
    assert.equal(brief(await b.ask('msam.clear', 1)), ['msam.cleared'], 'a repeat: answered from the inbox');
    assert.is(b.party.partyStore.inbox.get('server#1'), undefined, 'the oldest answered record went for the cap');
    assert.equal(brief(await b.ask('msam.clear', 12)), ['msam.cleared']);
    // Unanswered work fills it: each refused request lets a sweep take one more answered record, till none is left.
    for (let i = 13; i <= 40; i++) await b.ask('msam.fence', i);
    const records = [...b.party.partyStore.inbox.getRange()].map((e) => e.value);
    assert.is(records.length, 10);
    assert.ok(
      records.every((r) => r.replies.length === 0),
      'only work in progress is left',
    );
    const busy = await b.ask('msam.fence', 41);
    assert.equal(brief(busy), ['error BUSY']);
    assert.is(
      (busy[0] as Extract<AnyEnvelope, { type: 'error' }>).body.message,
      'test-party holds 10 requests, its limit; it answers repeats and takes new requests once older ones are answered',
    );
    // A repeat of work in progress is no new request: not refused, not applied again (its answer is to come).
    assert.equal(brief(await b.ask('msam.fence', 5)), [], 'no refusal for a repeat');
    assert.is(b.party.applied.filter((id) => id === 'server#5').length, 1);
  } finally {
    await b.close();
  }
});

test('a new store numbers what it sends from its clock, not from 0', async () => {
  const b = await testBench();
  try {
    const [reply] = await b.ask('msam.clear', 1);
    const seq = Number(reply!.id.split('#')[1]);
    assert.ok(seq > b.clock.t - 10_000 && seq <= b.clock.t + 10, `${reply!.id} counts from the clock (${b.clock.t})`);
  } finally {
    await b.close();
  }
});

test('inbox records written before they carried a time are indexed at start, in chunks, as if they had arrived then (the sweep reads only the index)', async () => {
  const b = await testBench();
  try {
    await b.party.stop();
    const legacy = INBOX_PRUNES_PER_SWEEP_MAX + 500;
    const store = PartyStore.open(b.dir);
    await store.commit(() => {
      for (let i = 1; i <= legacy; i++) {
        store.inbox.put(`server#${i}`, {
          from: 'server',
          type: 'msam.clear',
          replies: [{ v: 1, id: `test-party#${i}`, corr: `server#${i}`, from: 'test-party', to: 'server', type: 'msam.cleared', body: {} }],
        });
      }
    });
    await store.close();
    const again = new TestParty({ id: 'test-party', store: PartyStore.open(b.dir), clock: b.clock, rng: systemRng, log: silentLogger, timing: FAST_TIMING });
    await again.start();
    const s = again.partyStore;
    assert.is(s.inbox.get('server#3')!.at, b.clock.t);
    assert.is([...s.inboxByTime.getKeys()].length, legacy, 'every record indexed');
    assert.ok([...s.inbox.getRange()].every((e) => e.value.at === b.clock.t));
    await again.stop();
  } finally {
    await b.close().catch(() => {});
  }
});

test.run();
