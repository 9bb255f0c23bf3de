/**
 * Timers as data (src/runtime/timers.ts): the deadline lives in the
 * machine's context; the runtime arms one clock timer per actor from it,
 * keeps it while the deadline stands, moves it when the deadline moves,
 * drops it when the machine stops waiting, and delivers the context's event.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assign, createActor, setup, type EventObject } from 'xstate';
import { Timers, timerOf } from '../../src/runtime/timers.ts';
import type { TimerData } from '../../src/runtime/types.ts';
import { VirtualClock } from '../../src/sim/world.ts';

const waiter = setup({
  types: {
    context: {} as { timer: TimerData | null },
    events: {} as { type: 'WAIT'; atMs: number } | { type: 'DEADLINE_PASSED' } | { type: 'CANCEL' },
  },
}).createMachine({
  id: 'waiter',
  context: { timer: null },
  initial: 'idle',
  states: {
    idle: { on: { WAIT: { target: 'waiting', actions: assign({ timer: ({ event }) => ({ atMs: event.atMs, event: 'DEADLINE_PASSED' }) }) } } },
    waiting: {
      on: {
        WAIT: { actions: assign({ timer: ({ event }) => ({ atMs: event.atMs, event: 'DEADLINE_PASSED' }) }) },
        CANCEL: { target: 'idle', actions: assign({ timer: null }) },
        DEADLINE_PASSED: { target: 'expired' },
      },
    },
    expired: { type: 'final' },
  },
});

function bench() {
  const clock = new VirtualClock();
  let scheduled = 0;
  const counting = {
    now: () => clock.now(),
    schedule: (at: number, fn: () => void) => {
      scheduled++;
      return clock.schedule(at, fn);
    },
  };
  const fired: Array<[string, EventObject]> = [];
  const timers = new Timers(counting, (key, event) => fired.push([key, event]));
  const actor = createActor(waiter).start();
  const runTo = (at: number) => {
    clock.advanceTo(at);
    while (clock.fireNext());
  };
  return { clock, timers, actor, fired, runTo, scheduled: () => scheduled };
}

test("a waiting machine's deadline is armed from its context, and delivers the event its context names", () => {
  const b = bench();
  const at = b.clock.now() + 100;
  b.actor.send({ type: 'WAIT', atMs: at });
  assert.equal(timerOf(b.actor), { atMs: at, event: 'DEADLINE_PASSED' });
  b.timers.arm('w', b.actor);
  assert.ok(b.timers.has('w'));
  b.runTo(at - 1);
  assert.equal(b.fired, []);
  b.runTo(at);
  assert.equal(b.fired, [['w', { type: 'DEADLINE_PASSED' }]]);
  assert.not.ok(b.timers.has('w'), 'a timer that fired is gone');
});

test('an unchanged deadline keeps its timer; a moved one replaces it; none cancels it', () => {
  const b = bench();
  const t = b.clock.now();
  b.actor.send({ type: 'WAIT', atMs: t + 100 });
  b.timers.arm('w', b.actor);
  b.timers.arm('w', b.actor);
  assert.is(b.scheduled(), 1, 'armed once');
  b.actor.send({ type: 'WAIT', atMs: t + 300 });
  b.timers.arm('w', b.actor);
  assert.is(b.scheduled(), 2);
  b.runTo(t + 200);
  assert.equal(b.fired, [], 'the old deadline does not fire');
  b.actor.send({ type: 'CANCEL' });
  b.timers.arm('w', b.actor);
  assert.not.ok(b.timers.has('w'));
  b.runTo(t + 1_000);
  assert.equal(b.fired, []);
});

test('a machine that is not active has no timer, whatever its context says; cancelAll drops every timer', () => {
  const b = bench();
  const t = b.clock.now();
  b.actor.send({ type: 'WAIT', atMs: t + 100 });
  b.actor.send({ type: 'DEADLINE_PASSED' });
  assert.is(b.actor.getSnapshot().status, 'done');
  assert.is(timerOf(b.actor), undefined);
  b.timers.arm('done', b.actor);
  assert.not.ok(b.timers.has('done'));
  const other = createActor(waiter).start();
  other.send({ type: 'WAIT', atMs: t + 50 });
  b.timers.arm('a', other);
  b.timers.arm('b', other);
  b.timers.cancelAll();
  b.runTo(t + 1_000);
  assert.equal(b.fired, []);
});

test.run();
