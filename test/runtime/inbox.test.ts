/**
 * The inbox on its own (src/runtime/inbox.ts), on a real store: a repeat is
 * answered with the replies recorded for it and never admitted again; ids
 * are checked; a sweep prunes answered, settled records past the window and
 * raises the sender's floor; new work is refused at the cap and while the
 * store can not take it; duplicated notices are dropped per sender.
 * (test/actors/inbox.test.ts checks the same promises through a party.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { silentLogger } from '../../src/log.ts';
import {
  Inbox,
  INBOX_SWEEP_EVERY_MS,
  NOTICE_IDS_REMEMBERED_MAX,
  NOTICE_STREAMS_MAX,
  NOTICE_WINDOW,
  STORE_FULL_AFTER_FAILED_COMMIT_MS,
} from '../../src/runtime/inbox.ts';
import { PartyStore } from '../../src/store/party.store.ts';
import { FAST_TIMING } from '../../src/timing.ts';
import type { AnyEnvelope } from '../../src/transport/envelope.ts';
import { ManualClock } from '../helpers/testParty.ts';

const WINDOW_MS = FAST_TIMING.inboxRetentionMs;
const NEW = { fresh: false };

interface Fixture {
  inbox: Inbox;
  store: PartyStore;
  clock: ManualClock;
  settled: Set<string>;
  close(): Promise<void>;
}

async function fixture(recordsMax = 1_000): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-inbox-part-'));
  const store = PartyStore.open(dir, { commits: 'sync' });
  const clock = new ManualClock();
  const settled = new Set<string>();
  const inbox = new Inbox({ party: 'p', store, clock, timing: FAST_TIMING, log: silentLogger, recordsMax: () => recordsMax, isSettled: (m) => settled.has(m) });
  inbox.reset();
  return {
    inbox,
    store,
    clock,
    settled,
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const request = (seq: number | string, extra: Partial<AnyEnvelope> = {}): AnyEnvelope =>
  ({ v: 1, id: `server#${seq}`, from: 'server', to: 'p', type: 'msam.clear', body: {}, ...extra }) as AnyEnvelope;
const answer = (req: AnyEnvelope, n: number): AnyEnvelope =>
  ({ v: 1, id: `p#${n}`, corr: req.id, from: 'p', to: 'server', type: 'msam.cleared', body: {} }) as AnyEnvelope;

/** Handles a request as a turn would: admitted, recorded, answered, in one transaction. */
async function handle(f: Fixture, req: AnyEnvelope, reply = true): Promise<AnyEnvelope[] | undefined> {
  const repeat = f.inbox.admit(req, NEW);
  if (repeat) return repeat;
  await f.store.commit(() => {
    f.inbox.record(req, f.clock.now());
    if (reply) f.inbox.addReply(answer(req, 1));
  });
  return undefined;
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof ProtocolError ? e.code : String(e);
  }
  return 'admitted';
}

test('a new request is admitted; its repeat gets the replies recorded for it, and is not admitted again', async () => {
  const f = await fixture();
  try {
    assert.is(await handle(f, request(1)), undefined, 'new');
    assert.equal(await handle(f, request(1)), [answer(request(1), 1)], 'the recorded reply');
    assert.is(f.inbox.senderOf('server#1'), 'server');
    assert.ok(f.inbox.holdsReply('server#1', 'p#1'));
    assert.not.ok(f.inbox.holdsReply('server#1', 'p#2'));
  } finally {
    await f.close();
  }
});

test('an id that is not its sender\'s "<sender>#<seq>" is refused BAD_ENVELOPE', async () => {
  const f = await fixture();
  try {
    await handle(f, request(1));
    assert.is(
      refusal(() => f.inbox.admit(request('x'), NEW)),
      'BAD_ENVELOPE',
    );
    assert.is(
      refusal(() => f.inbox.admit(request(2, { from: 'other' } as Partial<AnyEnvelope>), NEW)),
      'BAD_ENVELOPE',
    );
    assert.is(
      refusal(() => f.inbox.admit(request(1), NEW)),
      'admitted',
      'a repeat',
    );
    assert.is(
      refusal(() => f.inbox.admit({ ...request(1), from: 'intruder' } as AnyEnvelope, NEW)),
      'BAD_ENVELOPE',
      'a stranger repeating server#1',
    );
  } finally {
    await f.close();
  }
});

test("a sweep prunes answered records past the window, raises the sender's floor, and keeps work in progress and unsettled migrations", async () => {
  const f = await fixture();
  try {
    await handle(f, request(5));
    await handle(f, request(6), false); // unanswered: work in progress
    await handle(f, request(7, { mig: 'm-1' }));
    f.clock.t += WINDOW_MS + 1;
    assert.ok(f.inbox.sweepDue(f.clock.now()));
    const pruned = await f.store.commit(() => f.inbox.sweep(f.clock.now()));
    assert.is(pruned, 1);
    assert.is(f.store.inbox.get('server#5'), undefined);
    assert.ok(f.store.inbox.get('server#6'), 'unanswered stays');
    assert.ok(f.store.inbox.get('server#7'), 'm-1 is not settled');
    assert.is(f.store.inboxFloors.get('server'), 5);
    assert.is(
      refusal(() => f.inbox.admit(request(5), NEW)),
      'STALE_REQUEST',
      'its repeat is answered long ago',
    );
    assert.is(
      refusal(() => f.inbox.admit(request(4), NEW)),
      'STALE_REQUEST',
      'below the floor',
    );
    assert.not.ok(f.inbox.sweepDue(f.clock.now()), 'the next sweep waits its interval');
    f.settled.add('m-1');
    f.clock.t += INBOX_SWEEP_EVERY_MS;
    await f.store.commit(() => f.inbox.sweep(f.clock.now()));
    assert.is(f.store.inbox.get('server#7'), undefined, 'pruned once m-1 is settled');
    assert.is(f.store.inboxFloors.get('server'), 7);
  } finally {
    await f.close();
  }
});

test('at the cap a new request is refused BUSY (repeats still answered, frames of sessions in progress still taken), and the next sweep makes room', async () => {
  const f = await fixture(3);
  try {
    for (const seq of [1, 2, 3]) await handle(f, request(seq));
    assert.is(
      refusal(() => f.inbox.admit(request(4), NEW)),
      'BUSY',
    );
    assert.ok(f.inbox.admit(request(1), NEW), 'a repeat is answered');
    assert.ok(f.inbox.sweepDue(f.clock.now()), 'the refusal makes a sweep due');
    assert.is(await f.store.commit(() => f.inbox.sweep(f.clock.now())), 1, 'the oldest answered one, young as it is');
    assert.is(f.inbox.admit(request(4), NEW), undefined);
  } finally {
    await f.close();
  }
});

test('after a failed commit new requests are refused STORE_FULL, until a sweep frees space or the wait is over; fresh ones alike (frames are notices: they never reach the inbox)', async () => {
  const f = await fixture();
  try {
    await handle(f, request(1));
    f.inbox.commitFailed();
    assert.ok(f.inbox.recovering);
    assert.is(
      refusal(() => f.inbox.admit(request(2), NEW)),
      'STORE_FULL',
    );
    assert.is(
      refusal(() => f.inbox.admit(request(2), { fresh: true })),
      'STORE_FULL',
    );
    f.inbox.sweepCommitted(0);
    assert.ok(f.inbox.recovering, 'a sweep that freed nothing changes nothing');
    f.inbox.sweepCommitted(3);
    assert.not.ok(f.inbox.recovering);
    assert.is(
      refusal(() => f.inbox.admit(request(2), NEW)),
      'admitted',
    );
    f.inbox.commitFailed();
    f.clock.t += STORE_FULL_AFTER_FAILED_COMMIT_MS;
    f.inbox.newBatch();
    assert.is(
      refusal(() => f.inbox.admit(request(3), NEW)),
      'admitted',
      'the wait is over',
    );
  } finally {
    await f.close();
  }
});

test('a duplicated notice is dropped, per sender; the memory of notice ids is bounded', async () => {
  const f = await fixture();
  try {
    assert.not.ok(f.inbox.seenNotice('a', 'a#1'));
    assert.ok(f.inbox.seenNotice('a', 'a#1'));
    assert.not.ok(f.inbox.seenNotice('b', 'a#1'), "another sender's id is its own");
    for (let i = 2; i <= NOTICE_IDS_REMEMBERED_MAX + 1; i++) f.inbox.seenNotice('a', `a#${i}`);
    assert.not.ok(f.inbox.seenNotice('a', 'a#1'), 'the oldest was forgotten');
  } finally {
    await f.close();
  }
});

test('notice ids numbered per sender run: a window per stream drops repeats, takes a reordered one once, drops one older than the window; the streams are bounded', async () => {
  const f = await fixture();
  const id = (n: number, tag = 'ab12') => `a#n${tag}.${n}`;
  try {
    assert.not.ok(f.inbox.seenNotice('a', id(1)));
    assert.not.ok(f.inbox.seenNotice('a', id(3)));
    assert.ok(f.inbox.seenNotice('a', id(3)), 'a repeat of the highest');
    assert.ok(f.inbox.seenNotice('a', id(1)), 'a repeat below it');
    assert.not.ok(f.inbox.seenNotice('a', id(2)), 'reordered: taken once');
    assert.ok(f.inbox.seenNotice('a', id(2)), '...and then a repeat');
    assert.not.ok(f.inbox.seenNotice('b', id(3)), "another sender's stream is its own");
    assert.not.ok(f.inbox.seenNotice('a', id(3, 'cd34')), "a restarted sender's new tag is a new stream");
    assert.not.ok(f.inbox.seenNotice('a', id(3 + NOTICE_WINDOW + 40)), 'a jump ahead');
    assert.ok(f.inbox.seenNotice('a', id(3 + 40)), 'older than the window: dropped (a loss, which resends cover)');
    assert.not.ok(f.inbox.seenNotice('a', id(3 + NOTICE_WINDOW + 40 - (NOTICE_WINDOW - 1))), "the window's oldest slot is still taken");
    for (let i = 0; i < NOTICE_STREAMS_MAX; i++) f.inbox.seenNotice(`s${i}`, id(1));
    assert.not.ok(f.inbox.seenNotice('b', id(3)), 'the least recently advanced stream was forgotten');
    assert.ok(f.inbox.seenNotice(`s${NOTICE_STREAMS_MAX - 1}`, id(1)), 'a recent one is kept');
  } finally {
    await f.close();
  }
});

test('the first reply naming a migration ties the record to it (a migrate.out is answered with its new id)', async () => {
  const f = await fixture();
  try {
    const req = request(1);
    await f.store.commit(() => {
      f.inbox.record(req, f.clock.now());
      f.inbox.addReply({ ...answer(req, 1), mig: 'm-9' } as AnyEnvelope);
      f.inbox.addReply({ ...answer(req, 2), mig: 'm-other' } as AnyEnvelope);
      f.inbox.addReply({ ...answer(request(99), 3) } as AnyEnvelope); // answers nothing recorded: no record made
    });
    assert.is(f.store.inbox.get('server#1')!.mig, 'm-9');
    assert.is(f.store.inbox.get('server#1')!.replies.length, 2);
    assert.is(f.store.inbox.get('server#99'), undefined);
  } finally {
    await f.close();
  }
});

test.run();
