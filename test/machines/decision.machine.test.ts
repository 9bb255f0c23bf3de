/**
 * The admin SAM's decision record (src/machines/decision.machine.ts) on its
 * own: pending leaves exactly once, to committed (valid receipts) or aborted
 * (cancel or deadline); the answers and records it emits; and the guards
 * that gate formatting, activation, restore and wipe (the runtime asks
 * `can()` before it opens such a session). Written to kill the mutants
 * `npm run mutate` found surviving (docs/mutation.md).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor } from 'xstate';
import { decisionMachine, type DecisionEvent, type DecisionIntent } from '../../src/machines/decision.machine.ts';

const SOURCE = 'chip-src';
const DEST = 'chip-dst';
const OTHER = 'chip-other';
const ITEMS = [{ item: 0, area: 'a0', provider: 'p', recipient: 'msam/p' }] as never;

function start() {
  const actor = createActor(decisionMachine, { input: { mig: 'm1', source: SOURCE, items: ITEMS } });
  const emitted: DecisionIntent[] = [];
  actor.on('*', (e) => emitted.push(e as DecisionIntent));
  actor.start();
  const send = (e: DecisionEvent): DecisionIntent[] => {
    emitted.length = 0;
    actor.send(e);
    return [...emitted];
  };
  const can = (e: DecisionEvent): boolean => actor.getSnapshot().can(e);
  const state = (): string => actor.getSnapshot().value as string;
  return { actor, emitted, send, can, state };
}

/** pending, destination bound to DEST */
function bound() {
  const d = start();
  d.send({ type: 'FORMAT_REQUESTED', serial: DEST });
  return d;
}

test('decision: a new record is pending, records itself as pending with no destination, and is not at rest', () => {
  const d = start();
  assert.is(d.state(), 'pending');
  assert.equal(d.emitted, [{ type: 'recordDecision', mig: 'm1', decision: 'pending', destination: null }]);
  assert.equal(d.actor.getSnapshot().context, { mig: 'm1', source: SOURCE, destination: null, items: ITEMS, reason: null });
  assert.not.ok(d.actor.getSnapshot().hasTag('rest'));
});

test('decision: a lock is allowed again only for the source chip, and records nothing new (no re-entry)', () => {
  const d = start();
  assert.ok(d.can({ type: 'LOCK_REQUESTED', serial: SOURCE }));
  assert.not.ok(d.can({ type: 'LOCK_REQUESTED', serial: DEST }));
  assert.equal(d.send({ type: 'LOCK_REQUESTED', serial: SOURCE }), []);
  assert.is(d.state(), 'pending');
});

test('decision: formatting binds the first destination and records the binding', () => {
  const d = start();
  assert.equal(d.send({ type: 'FORMAT_REQUESTED', serial: DEST }), [{ type: 'recordDecision', mig: 'm1', decision: 'pending', destination: DEST }]);
  assert.is(d.actor.getSnapshot().context.destination, DEST);
  assert.is(d.state(), 'pending');
  // the same destination again (a lost answer) is allowed and records the same binding
  assert.equal(d.send({ type: 'FORMAT_REQUESTED', serial: DEST }), [{ type: 'recordDecision', mig: 'm1', decision: 'pending', destination: DEST }]);
});

test('decision: a second destination is refused WRONG_DESTINATION, naming the one bound; the binding stays', () => {
  const d = bound();
  assert.equal(d.send({ type: 'FORMAT_REQUESTED', serial: OTHER }), [
    { type: 'refuse', code: 'WRONG_DESTINATION', message: `migration m1 already has destination ${DEST}` },
  ]);
  assert.is(d.actor.getSnapshot().context.destination, DEST);
  // the source is refused once a destination is bound, too
  assert.is((d.send({ type: 'FORMAT_REQUESTED', serial: SOURCE })[0] as { code: string }).code, 'WRONG_DESTINATION');
});

test('decision: the source chip can never be formatted as the destination', () => {
  const d = start();
  assert.equal(d.send({ type: 'FORMAT_REQUESTED', serial: SOURCE }), [
    { type: 'refuse', code: 'WRONG_DESTINATION', message: 'the destination can not be the source chip' },
  ]);
  assert.is(d.actor.getSnapshot().context.destination, null);
  assert.is(d.state(), 'pending');
});

test('decision: a commit without valid receipts is refused RECEIPT_REFUSED (with its problem, or a default) and stays pending', () => {
  const d = bound();
  assert.equal(d.send({ type: 'COMMIT_REQUESTED', receiptsValid: false, problem: 'no receipt for item 0' }), [
    { type: 'refuse', code: 'RECEIPT_REFUSED', message: 'no receipt for item 0' },
  ]);
  assert.equal(d.send({ type: 'COMMIT_REQUESTED', receiptsValid: false }), [
    { type: 'refuse', code: 'RECEIPT_REFUSED', message: 'a download receipt is missing or invalid' },
  ]);
  assert.is(d.state(), 'pending');
});

test('decision: a commit with valid receipts records committed (durably, with the destination) before answering', () => {
  const d = bound();
  assert.equal(d.send({ type: 'COMMIT_REQUESTED', receiptsValid: true }), [
    { type: 'recordDecision', mig: 'm1', decision: 'committed', destination: DEST },
    { type: 'answerDecision', decision: 'committed' },
  ]);
  assert.is(d.state(), 'committed');
  assert.ok(d.actor.getSnapshot().hasTag('rest'));
});

test('decision: an abort while pending records aborted and answers with its reason', () => {
  const d = bound();
  assert.equal(d.send({ type: 'ABORT_REQUESTED', reason: 'cancelled by the user' }), [
    { type: 'recordDecision', mig: 'm1', decision: 'aborted', destination: DEST },
    { type: 'answerDecision', decision: 'aborted', reason: 'cancelled by the user' },
  ]);
  assert.is(d.state(), 'aborted');
  assert.is(d.actor.getSnapshot().context.reason, 'cancelled by the user');
  assert.ok(d.actor.getSnapshot().hasTag('rest'));
});

test('decision: pending allows no activation, restore or wipe', () => {
  const d = bound();
  for (const serial of [SOURCE, DEST]) {
    assert.not.ok(d.can({ type: 'ACTIVATE_REQUESTED', serial }), `activate ${serial}`);
    assert.not.ok(d.can({ type: 'RESTORE_REQUESTED', serial }), `restore ${serial}`);
    assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial, role: 'source' }), `wipe ${serial} as source`);
    assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial, role: 'destination' }), `wipe ${serial} as destination`);
  }
});

test('decision: committed stands: a later commit with valid receipts or an abort is answered committed and records nothing', () => {
  const d = bound();
  d.send({ type: 'COMMIT_REQUESTED', receiptsValid: true });
  assert.equal(d.send({ type: 'ABORT_REQUESTED', reason: 'deadline' }), [{ type: 'answerDecision', decision: 'committed' }]);
  assert.equal(d.send({ type: 'COMMIT_REQUESTED', receiptsValid: true }), [{ type: 'answerDecision', decision: 'committed' }]);
  assert.is(d.state(), 'committed');
  assert.is(d.actor.getSnapshot().context.reason, null);
});

test('decision: a commit whose receipts do not check is refused RECEIPT_REFUSED even after the record committed (never answered "committed"), and the record stands', () => {
  // simulation seed 1205 (--migrations 4 --items 2 --faults all --rogue all --pay): a forged commit delayed past the honest one was answered committed.
  const d = bound();
  d.send({ type: 'COMMIT_REQUESTED', receiptsValid: true });
  assert.equal(d.send({ type: 'COMMIT_REQUESTED', receiptsValid: false, problem: 'the receipt for item 0 is not signed by p0' }), [
    { type: 'refuse', code: 'RECEIPT_REFUSED', message: 'the receipt for item 0 is not signed by p0' },
  ]);
  assert.is(d.state(), 'committed');
  assert.is(d.actor.getSnapshot().context.reason, null);
});

test('decision: committed allows activating only the bound destination and wiping only the source, as source', () => {
  const d = bound();
  d.send({ type: 'COMMIT_REQUESTED', receiptsValid: true });
  assert.ok(d.can({ type: 'ACTIVATE_REQUESTED', serial: DEST }));
  assert.not.ok(d.can({ type: 'ACTIVATE_REQUESTED', serial: SOURCE }));
  assert.not.ok(d.can({ type: 'ACTIVATE_REQUESTED', serial: OTHER }));
  assert.ok(d.can({ type: 'WIPE_REQUESTED', serial: SOURCE, role: 'source' }));
  assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial: SOURCE, role: 'destination' }));
  assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial: DEST, role: 'source' }));
  assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial: DEST, role: 'destination' }));
  assert.not.ok(d.can({ type: 'RESTORE_REQUESTED', serial: SOURCE }));
  assert.not.ok(d.can({ type: 'FORMAT_REQUESTED', serial: DEST }));
  assert.not.ok(d.can({ type: 'LOCK_REQUESTED', serial: SOURCE }));
});

test('decision: aborted stands: a later commit or abort is answered aborted with the first reason', () => {
  const d = bound();
  d.send({ type: 'ABORT_REQUESTED', reason: 'deadline' });
  assert.equal(d.send({ type: 'COMMIT_REQUESTED', receiptsValid: true }), [{ type: 'answerDecision', decision: 'aborted', reason: 'deadline' }]);
  assert.equal(d.send({ type: 'ABORT_REQUESTED', reason: 'again' }), [{ type: 'answerDecision', decision: 'aborted', reason: 'deadline' }]);
  assert.is(d.state(), 'aborted');
});

test('decision: aborted allows restoring only the source and wiping only the bound destination, as destination', () => {
  const d = bound();
  d.send({ type: 'ABORT_REQUESTED', reason: 'deadline' });
  assert.ok(d.can({ type: 'RESTORE_REQUESTED', serial: SOURCE }));
  assert.not.ok(d.can({ type: 'RESTORE_REQUESTED', serial: DEST }));
  assert.ok(d.can({ type: 'WIPE_REQUESTED', serial: DEST, role: 'destination' }));
  assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial: DEST, role: 'source' }));
  assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial: SOURCE, role: 'destination' }));
  assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial: SOURCE, role: 'source' }));
  assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial: OTHER, role: 'destination' }));
  assert.not.ok(d.can({ type: 'ACTIVATE_REQUESTED', serial: DEST }));
  assert.not.ok(d.can({ type: 'FORMAT_REQUESTED', serial: DEST }));
});

test('decision: aborted before any destination was formatted wipes nothing (no destination bound)', () => {
  const d = start();
  d.send({ type: 'ABORT_REQUESTED', reason: 'cancel' });
  assert.equal(d.actor.getSnapshot().context.destination, null);
  assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial: DEST, role: 'destination' }));
  assert.not.ok(d.can({ type: 'WIPE_REQUESTED', serial: SOURCE, role: 'destination' }));
  assert.ok(d.can({ type: 'RESTORE_REQUESTED', serial: SOURCE }));
});

test('decision: the machine is named "decision" (the name charts and traces show, src/charts/graph.ts, src/trace/recorder.ts)', () => {
  assert.is(decisionMachine.id, 'decision');
  assert.is(decisionMachine.root.states.pending?.id, 'decision.pending');
});

test('decision: every state carries the description the charts show (docs/charts)', () => {
  const states = decisionMachine.root.states;
  for (const name of ['pending', 'committed', 'aborted']) {
    const description = states[name]?.description;
    assert.type(description, 'string', name);
    assert.ok(description!.length > 20, `${name} has a description`);
  }
});

test.run();
