/**
 * src/runtime/resends.ts: a SAM's last frame of each session is sent again,
 * end to end, under a new id, on the outbox's backoff, until a frame of the
 * session comes back, the session sends its next frame, or RESENDS_MAX.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RESENDS_MAX, Resends } from '../../src/runtime/resends.ts';
import type { OutMessage } from '../../src/runtime/types.ts';
import { VirtualClock } from '../../src/sim/world.ts';
import { FAST_TIMING } from '../../src/timing.ts';
import type { AnyEnvelope } from '../../src/transport/envelope.ts';

function fixture() {
  const clock = new VirtualClock();
  const sent: Array<{ at: number; id: string; session: string; data: string }> = [];
  let n = 0;
  let stopped = false;
  const r = new Resends({
    clock,
    timing: FAST_TIMING,
    newId: () => `sam#copy${++n}`,
    transmit: (o) => {
      const body = (o.env as Extract<AnyEnvelope, { type: 'frame' }>).body;
      sent.push({ at: clock.now(), id: o.env.id, session: body.session, data: body.data });
    },
    stopped: () => stopped,
  });
  const frame = (session: string, data: string, id = `sam#${data}`): OutMessage => ({
    peer: 'server',
    env: { v: 1, id, from: 'sam', to: 'server', type: 'frame', body: { session, data } } as AnyEnvelope,
  });
  const runFor = (ms: number) => {
    const end = clock.now() + ms;
    for (;;) {
      const at = clock.nextAt();
      if (at === undefined || at > end) break;
      clock.advanceTo(at);
      clock.fireNext();
    }
    clock.advanceTo(end);
  };
  return { clock, sent, r, frame, runFor, stop: () => (stopped = true) };
}

test('an unanswered frame goes again under new ids, on a doubling delay up to the cap, at most RESENDS_MAX times', () => {
  const f = fixture();
  const t0 = f.clock.now();
  f.r.sent(f.frame('s1', 'AAAA'));
  f.runFor(10_000);
  assert.is(f.sent.length, RESENDS_MAX);
  assert.ok(
    f.sent.every((s) => s.session === 's1' && s.data === 'AAAA'),
    'the same frame each time',
  );
  assert.is(new Set(f.sent.map((s) => s.id)).size, RESENDS_MAX, 'each copy under a new id (a hop drops a repeated id)');
  const delays = f.sent.map((s, i) => s.at - (i === 0 ? t0 : f.sent[i - 1]!.at));
  const first = Math.max(FAST_TIMING.retransmitMs, FAST_TIMING.sessionMs / 10);
  assert.is(delays[0], first, "the first after a tenth of the session's time");
  assert.ok(
    delays.every((d, i) => d === Math.min(Math.max(FAST_TIMING.retransmitCapMs, first), first * 2 ** i)),
    `doubling up to the cap: ${delays.join(', ')}`,
  );
  assert.is(f.r.size, 0, 'given up: the session deadline takes over');
});

test("a frame of the session coming back stops it; the session's next frame replaces it; other sessions are not touched", () => {
  const f = fixture();
  f.r.sent(f.frame('s1', 'AAAA'));
  f.r.sent(f.frame('s2', 'BBBB'));
  f.r.received({ v: 1, id: 'server#n1.1', from: 'server', to: 'sam', type: 'frame', body: { session: 's1', data: 'CCCC' } } as AnyEnvelope);
  f.r.received({ v: 1, id: 'server#7', from: 'server', to: 'sam', type: 'progress', body: { mig: 'm', step: 'S1', text: 'x' } } as AnyEnvelope);
  f.r.sent(f.frame('s2', 'DDDD'));
  f.runFor(Math.max(FAST_TIMING.retransmitMs, FAST_TIMING.sessionMs / 10));
  assert.equal(
    f.sent.map((s) => `${s.session}:${s.data}`),
    ['s2:DDDD'],
  );
});

test('a stopped party sends nothing again; cancelAll forgets every session', () => {
  const f = fixture();
  f.r.sent(f.frame('s1', 'AAAA'));
  f.stop();
  f.runFor(10_000);
  assert.equal(f.sent, []);
  const g = fixture();
  g.r.sent(g.frame('s1', 'AAAA'));
  g.r.sent(g.frame('s2', 'BBBB'));
  g.r.cancelAll();
  g.runFor(10_000);
  assert.equal(g.sent, []);
  assert.is(g.r.size, 0);
});

test.run();
