/**
 * Turns through a whole (bare) party (test/helpers/testParty.ts): the
 * engine and the intake, with the queue's two policies and the interceptor.
 * Persist, then speak holds for what a turn says at once too; one commit
 * path serves both policies; an interceptor can refuse, hold or replace,
 * and what it replaced is what a repeat gets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CrashSignal } from '../../src/runtime/types.ts';
import { GROUP_COMMIT, ONE_TURN_PER_COMMIT } from '../../src/runtime/queue.ts';
import { INBOX_SWEEP_EVERY_MS } from '../../src/runtime/inbox.ts';
import { FAST_TIMING } from '../../src/timing.ts';
import { steering } from '../../src/testing/steering.ts';
import type { AnyEnvelope } from '../../src/transport/envelope.ts';
import { ManualClock, testBench, type Bench } from '../helpers/testParty.ts';

const brief = (envs: AnyEnvelope[]) => envs.map((e) => (e.type === 'error' ? `error ${e.body.code}` : e.type));

/** Counts the transactions the party's store commits. */
function countCommits(b: Bench): { n: number } {
  const count = { n: 0 };
  const store = b.party.partyStore;
  const commit = store.commit.bind(store);
  store.commit = ((fn: () => unknown) => {
    count.n++;
    return commit(fn);
  }) as typeof store.commit;
  return count;
}

/** A manual clock that keeps its timers, and fires those due when told. */
class FiringClock extends ManualClock {
  private timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
  override schedule(at: number, fn: () => void): () => void {
    const timer = { at, fn, live: true };
    this.timers.push(timer);
    return () => void (timer.live = false);
  }
  advance(ms: number): void {
    this.t += ms;
    const due = this.timers.filter((x) => x.live && x.at <= this.t);
    this.timers = this.timers.filter((x) => !due.includes(x));
    for (const x of due) x.fn();
  }
}

for (const [name, commitPolicy, commits] of [
  ['one turn per commit, on a store that commits inside the call', ONE_TURN_PER_COMMIT, 'sync'],
  ['group commit, on a store that commits on its writer thread', GROUP_COMMIT, 'async'],
] as const) {
  test(`${name}: a turn that crashes before its commit says nothing, not even a repeat's stored answer`, async () => {
    let crashAt: string | undefined;
    const b = await testBench({
      commitPolicy,
      commits,
      onTurnPoint: (_party, point, info) => {
        if (point === 'before-persist' && info.type === crashAt) throw new CrashSignal('here');
      },
    });
    try {
      assert.equal(brief(await b.ask('msam.clear', 1)), ['msam.cleared']);
      crashAt = 'msam.clear';
      assert.equal(await b.ask('msam.clear', 1), [], "the repeat's answer waited for a commit that never came");
      assert.ok(b.party.crashed);
    } finally {
      await b.close().catch(() => {});
    }
  });
}

test('the same path under both policies: one turn per commit commits each request alone; group commit shares transactions (while one is on its way to disk, the next requests queue for the next)', async () => {
  const results: Record<string, { commits: number; answers: string[] }> = {};
  for (const [name, commitPolicy] of [
    ['one', ONE_TURN_PER_COMMIT],
    ['group', GROUP_COMMIT],
  ] as const) {
    const b = await testBench({ commitPolicy, commits: 'async' });
    try {
      const count = countCommits(b);
      for (let i = 1; i <= 20; i++) b.send({ id: `server#${i}`, type: 'msam.clear', body: {} });
      await b.settle();
      results[name] = { commits: count.n, answers: brief(b.got) };
    } finally {
      await b.close();
    }
  }
  assert.equal(results.one!.answers, results.group!.answers, 'the same answers');
  assert.is(results.one!.answers.length, 20);
  assert.is(results.one!.commits, 20);
  assert.ok(results.group!.commits < 20, `fewer transactions when they are shared (${results.group!.commits})`);
});

test('an interceptor refuses a request before its handler runs: the sender hears the error, nothing is applied or recorded', async () => {
  const b = await testBench({
    intercept: steering({ beforeRequest: (_p, env) => (env.id === 'server#1' ? { fail: { code: 'BUSY', message: 'steered away' } } : undefined) }),
  });
  try {
    assert.equal(brief(await b.ask('msam.clear', 1)), ['error BUSY']);
    assert.equal(b.party.applied, []);
    assert.is(b.party.partyStore.inbox.get('server#1'), undefined);
    assert.equal(brief(await b.ask('msam.clear', 2)), ['msam.cleared']);
  } finally {
    await b.close();
  }
});

test('an interceptor holds a request back: it arrives (and is handled) once its time has come', async () => {
  const clock = new FiringClock();
  let held = false;
  const b = await testBench({
    clock,
    intercept: steering({
      beforeRequest: () => {
        if (held) return undefined;
        held = true;
        return { holdMs: 500 };
      },
    }),
  });
  try {
    assert.equal(await b.ask('msam.clear', 1), [], 'held');
    assert.equal(b.party.applied, []);
    clock.advance(500);
    await b.settle();
    assert.equal(brief(b.got), ['msam.cleared']);
    assert.equal(b.party.applied, ['server#1']);
  } finally {
    await b.close();
  }
});

test('an interceptor replaces an answer after the work is done: the error is what is recorded, and what a repeat gets', async () => {
  const b = await testBench({
    intercept: steering({
      replaceReply: (_p, reply) => (reply.type === 'msam.ready' ? { code: 'SESSION_FAILED', message: 'the answer was lost' } : undefined),
    }),
  });
  try {
    assert.equal(brief(await b.ask('msam.preflight', 1)), ['error SESSION_FAILED']);
    assert.equal(b.party.live(), ['s:server#1'], 'the work stays done');
    const repeat = await b.ask('msam.preflight', 1);
    assert.equal(brief(repeat), ['error SESSION_FAILED']);
    assert.equal(b.party.applied, ['server#1']);
    assert.equal(brief(await b.ask('msam.clear', 2)), ['msam.cleared'], 'other answers pass');
  } finally {
    await b.close();
  }
});

test("an answer that only moves one actor at work is absorbed: no commit, its request settled in RAM and removed from disk with the actor's next write; one that brings it to rest is written", async () => {
  const b = await testBench({ commits: 'async' });
  const store = b.party.partyStore;
  const stored = (key: string) => (store.snapshots.get(key)?.snapshot as { value?: unknown } | undefined)?.value;
  try {
    const first = await b.party.wait('w:1');
    const second = await b.party.wait('w:1');
    await b.settle();
    const count = countCommits(b);
    b.send({ id: 'server#1', corr: first, type: 'channel.reserved', body: {} });
    await b.settle();
    assert.is(count.n, 0, 'absorbed: no transaction');
    assert.is(stored('w:1'), 'waiting', 'the disk has the actor before the answer');
    assert.ok(store.outbox.get(first), '...and its request, which a restart sends again');
    assert.is(b.party.remembers(first), false, 'settled in RAM: an answer to it again is a duplicate');
    b.send({ id: 'server#2', corr: second, type: 'channel.reserved', body: {} });
    await b.settle();
    assert.is(count.n, 1, 'brought to rest: written');
    assert.is(stored('w:1'), 'rested');
    assert.is(store.outbox.get(first), undefined, 'the settled request left the disk with it');
    assert.is(store.outbox.get(second), undefined);
  } finally {
    await b.close();
  }
});

test('a batch that wrote nothing commits for the inbox sweep only when the sweep has records to prune', async () => {
  const b = await testBench({ commits: 'async' });
  const ignored = (n: number) => b.send({ id: `server#${100 + n}`, corr: 'test-party#999', type: 'channel.reserved', body: {} });
  try {
    assert.equal(brief(await b.ask('msam.clear', 1, { mig: 'm1' })), ['msam.cleared']);
    const count = countCommits(b);
    b.clock.t += 2 * INBOX_SWEEP_EVERY_MS;
    ignored(1); // an answer nobody waits on: a turn with nothing to write
    await b.settle();
    assert.is(count.n, 0, 'a sweep is due, but nothing is old enough: no transaction');
    b.party.settled.add('m1');
    b.clock.t += FAST_TIMING.inboxRetentionMs + 2 * INBOX_SWEEP_EVERY_MS;
    ignored(2);
    await b.settle();
    assert.is(count.n, 1, 'a record to prune: the sweep commits alone');
    assert.is(b.party.partyStore.inbox.get('server#1'), undefined, 'pruned');
  } finally {
    await b.close();
  }
});

test.run();
