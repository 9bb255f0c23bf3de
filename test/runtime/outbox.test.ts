/**
 * The outbox on its own (src/runtime/outbox.ts), on a real store and a
 * virtual clock: a request waits until answered, is sent again on a backoff
 * that doubles up to its cap, and at once when its peer's link is back; a
 * request kept off disk lives in RAM only; a stopped party sends nothing
 * again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../src/log.ts';
import { Outbox } from '../../src/runtime/outbox.ts';
import type { OutMessage } from '../../src/runtime/types.ts';
import { VirtualClock } from '../../src/sim/world.ts';
import { PartyStore } from '../../src/store/party.store.ts';
import { FAST_TIMING } from '../../src/timing.ts';
import type { AnyEnvelope } from '../../src/transport/envelope.ts';

const { retransmitMs, retransmitCapMs } = FAST_TIMING;

interface Fixture {
  outbox: Outbox;
  store: PartyStore;
  clock: VirtualClock;
  /** What was sent, as "<id> at +<ms>". */
  sent: string[];
  stopped: { now: boolean };
  /** Fires every timer due up to `ms` after the start. */
  runTo(ms: number): void;
  close(): Promise<void>;
}

async function fixture(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-outbox-'));
  const store = PartyStore.open(dir, { commits: 'sync' });
  const clock = new VirtualClock();
  const t0 = clock.now();
  const sent: string[] = [];
  const stopped = { now: false };
  const outbox = new Outbox({
    store,
    clock,
    timing: FAST_TIMING,
    log: silentLogger,
    transmit: (o) => sent.push(`${o.env.id} at +${clock.now() - t0}`),
    keptOffDisk: (type) => type === 'login.proof',
    stopped: () => stopped.now,
  });
  return {
    outbox,
    store,
    clock,
    sent,
    stopped,
    runTo(ms) {
      for (;;) {
        const at = clock.nextAt();
        if (at === undefined || at > t0 + ms) break;
        clock.advanceTo(at);
        clock.fireNext();
      }
      clock.advanceTo(t0 + ms);
    },
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const req = (n: number, peer = 'server', type = 'msam.clear'): OutMessage => ({
  peer,
  env: { v: 1, id: `p#${n}`, from: 'p', to: peer, type, body: {} } as AnyEnvelope,
});

test('a recorded request is pending until forgotten; a type kept off disk never reaches the store', async () => {
  const f = await fixture();
  try {
    await f.store.commit(() => {
      f.outbox.record(req(1));
      f.outbox.record(req(2, 'server', 'login.proof'));
    });
    assert.is(f.outbox.pending('p#1')?.env.id, 'p#1');
    assert.ok(f.store.outbox.get('p#1'), 'on disk');
    assert.is(f.outbox.pending('p#2')?.env.type, 'login.proof');
    assert.is(f.store.outbox.get('p#2'), undefined, 'in RAM only');
    await f.store.commit(() => {
      f.outbox.forget('p#1');
      f.outbox.forget('p#2');
    });
    assert.is(f.outbox.pending('p#1'), undefined);
    assert.is(f.outbox.pending('p#2'), undefined);
  } finally {
    await f.close();
  }
});

test('an unanswered request is sent again at retransmitMs, doubling up to retransmitCapMs; once answered, never again', async () => {
  const f = await fixture();
  try {
    await f.store.commit(() => f.outbox.record(req(1)));
    f.outbox.schedule('p#1');
    f.runTo(retransmitMs + 2 * retransmitMs + 4 * retransmitMs);
    assert.equal(f.sent, [`p#1 at +${retransmitMs}`, `p#1 at +${3 * retransmitMs}`, `p#1 at +${7 * retransmitMs}`]);
    f.sent.length = 0;
    f.runTo(7 * retransmitMs + 3 * retransmitCapMs);
    const gaps = f.sent.map((s) => Number(s.split('+')[1]));
    assert.ok(gaps.length >= 2 && gaps.every((t, i) => i === 0 || t - gaps[i - 1]! <= retransmitCapMs), `capped: ${f.sent.join(', ')}`);
    await f.store.commit(() => f.outbox.forget('p#1'));
    f.sent.length = 0;
    f.runTo(20 * retransmitCapMs);
    assert.equal(f.sent, [], 'answered: nothing more');
  } finally {
    await f.close();
  }
});

test('cancel stops the schedule; a stopped party sends nothing again and schedules nothing', async () => {
  const f = await fixture();
  try {
    await f.store.commit(() => {
      f.outbox.record(req(1));
      f.outbox.record(req(2));
    });
    f.outbox.schedule('p#1');
    f.outbox.schedule('p#2');
    f.outbox.cancel('p#1');
    f.runTo(retransmitMs);
    assert.equal(f.sent, [`p#2 at +${retransmitMs}`]);
    f.stopped.now = true;
    f.runTo(10 * retransmitCapMs);
    f.outbox.schedule('p#1');
    f.runTo(20 * retransmitCapMs);
    assert.equal(f.sent, [`p#2 at +${retransmitMs}`]);
  } finally {
    await f.close();
  }
});

test('a link that comes back gets what waits for its peer, from disk and from RAM, and nothing of other peers', async () => {
  const f = await fixture();
  try {
    await f.store.commit(() => {
      f.outbox.record(req(1, 'server'));
      f.outbox.record(req(2, 'admin-sam'));
      f.outbox.record(req(3, 'server', 'login.proof'));
    });
    f.outbox.resendTo('server');
    assert.equal(f.sent, ['p#1 at +0', 'p#3 at +0']);
  } finally {
    await f.close();
  }
});

test('a restart schedules every stored request; a failed commit puts the RAM requests back as they were', async () => {
  const f = await fixture();
  try {
    await f.store.commit(() => {
      f.outbox.record(req(1));
      f.outbox.record(req(2, 'server', 'login.proof'));
    });
    const saved = f.outbox.saveRam();
    assert.is(saved?.size, 1);
    f.outbox.record(req(3, 'server', 'login.proof')); // a batch's turn, whose commit then failed
    f.outbox.restoreRam(saved);
    assert.is(f.outbox.pending('p#3'), undefined);
    f.outbox.scheduleStored();
    f.outbox.scheduleInRam();
    f.runTo(retransmitMs);
    assert.equal(f.sent.sort(), [`p#1 at +${retransmitMs}`, `p#2 at +${retransmitMs}`]);
    f.outbox.cancelAll();
    f.sent.length = 0;
    f.runTo(10 * retransmitCapMs);
    assert.equal(f.sent, []);
  } finally {
    await f.close();
  }
});

test('an answer taken in RAM settles its request: never sent again nor pending, still on disk until its actor is written; RAM lost, it is pending again', async () => {
  const f = await fixture();
  try {
    await f.store.commit(() => {
      f.outbox.record(req(1));
      f.outbox.record(req(2));
      f.outbox.record(req(3, 'server', 'login.proof'));
    });
    f.outbox.schedule('p#1');
    assert.not.ok(f.outbox.isKeptInRam('p#1'));
    assert.ok(f.outbox.isKeptInRam('p#3'), 'a request kept off disk is in RAM');
    f.outbox.settleLater('p#1', 'migration:m1');
    assert.is(f.outbox.pending('p#1'), undefined, 'settled: an answer to it again is a duplicate');
    assert.equal(f.outbox.waitingFor('server', 'msam.clear'), ['p#2']);
    f.runTo(10 * retransmitCapMs);
    f.outbox.resendTo('server');
    assert.ok(
      f.sent.every((s) => !s.startsWith('p#1 ')),
      `never sent again: ${f.sent.join(', ')}`,
    );
    assert.ok(f.store.outbox.get('p#1'), 'still on disk');
    f.outbox.forgetSettledOf('migration:other');
    assert.ok(f.store.outbox.get('p#1'), "another actor's write does not take it");
    await f.store.commit(() => f.outbox.forgetSettledOf('migration:m1'));
    assert.is(f.store.outbox.get('p#1'), undefined, "gone with its actor's next write");
    f.outbox.settleLater('p#2', 'migration:m2');
    f.outbox.cancelAll();
    assert.is(f.outbox.pending('p#2')?.env.id, 'p#2', 'RAM lost (a crash, a reload): pending again, and sent again once scheduled');
  } finally {
    await f.close();
  }
});

test('requests to a peer that will never answer can be given up', async () => {
  const f = await fixture();
  try {
    await f.store.commit(() => {
      f.outbox.record(req(1, 'terminal/a', 'frame'));
      f.outbox.record(req(2, 'terminal/a', 'msam.clear'));
      f.outbox.record(req(3, 'terminal/b', 'frame'));
    });
    const ids = f.outbox.waitingFor('terminal/a', 'frame');
    assert.equal(ids, ['p#1']);
    await f.store.commit(() => f.outbox.abandon(ids));
    assert.equal([...f.store.outbox.getKeys()].sort(), ['p#2', 'p#3']);
  } finally {
    await f.close();
  }
});

test.run();
