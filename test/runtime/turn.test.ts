/**
 * The TurnContext (src/runtime/turn.ts): what a party's handlers do in a
 * turn lands in the turn's record (messages, writes, moved actors, raised
 * events), to take effect once the turn is on disk; ids count up and carry
 * 64 random bits where they must be unguessable; an interceptor may replace
 * what is sent; a context used after its turn throws.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { systemRng } from '../../src/crypto/index.ts';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { MessageIds, Turn, type TurnParts } from '../../src/runtime/turn.ts';
import type { Interceptor, MachineEvent, OutMessage } from '../../src/runtime/types.ts';
import type { AnyEnvelope } from '../../src/transport/envelope.ts';
import { ManualClock } from '../helpers/testParty.ts';

function parts(opts: { unguessable?: boolean; intercept?: Interceptor; pending?: OutMessage[]; accepts?: boolean } = {}) {
  const dispatched: string[] = [];
  const cancelled: string[] = [];
  const abandoned: string[][] = [];
  const ids = new MessageIds('p', systemRng, () => opts.unguessable ?? false);
  const p: TurnParts = {
    party: 'p',
    clock: new ManualClock(),
    ids,
    links: { remoteOf: (peer) => (peer === 'chip' ? 'chip/X' : peer), peerOf: (id) => (id === 'chip/X' ? 'chip' : id) },
    outbox: {
      pending: (id) => opts.pending?.find((o) => o.env.id === id),
      waitingFor: (peer, type) => (opts.pending ?? []).filter((o) => o.peer === peer && o.env.type === type).map((o) => o.env.id),
      abandon: (list) => void abandoned.push([...list]),
      cancel: (id) => void cancelled.push(id),
    },
    inbox: { senderOf: (id) => (id === 'chip/X#7' ? 'chip/X' : undefined) },
    host: {
      spawn: () => undefined as never,
      dispatch: (key: string, e: MachineEvent) => void dispatched.push(`${key} ${e.type}`),
      accepts: () => opts.accepts ?? true,
    },
    intercept: opts.intercept,
  };
  return { p, dispatched, cancelled, abandoned };
}

const received = { v: 1, id: 'chip/X#7', from: 'chip/X', to: 'p', type: 'msam.clear', mig: 'm-1', step: 'S17', item: 2, body: {} } as AnyEnvelope;

test("send and reply record the message: ids count up, a link's alias is addressed by its party id, a reply keeps mig, step and item", () => {
  const { p } = parts();
  const turn = new Turn(p);
  const a = turn.send('chip', 'chip.select', {});
  const b = turn.reply(received, 'msam.cleared', {});
  assert.is(a.to, 'chip/X');
  assert.is(Number(b.id.split('#')[1]), Number(a.id.split('#')[1]) + 1);
  // A notice (a relayed frame) is numbered in RAM under a tag drawn at start, never from the stored sequence.
  const n1 = turn.send('chip', 'frame', { session: 's', data: 'AA' });
  const n2 = turn.send('chip', 'frame', { session: 's', data: 'AA' });
  assert.match(n1.id, /^p#n[0-9a-f]{8}\.1$/);
  assert.is(n2.id, n1.id.replace(/1$/, '2'));
  assert.is(Number(turn.reply(received, 'msam.cleared', {}).id.split('#')[1]), Number(b.id.split('#')[1]) + 1, 'notices use no sequence number');
  turn.record.out.splice(2);
  assert.equal([b.corr, b.mig, b.step, b.item, b.to], ['chip/X#7', 'm-1', 'S17', 2, 'chip/X']);
  assert.equal(
    turn.record.out.map((o) => o.peer),
    ['chip', 'chip'],
    'a reply goes back on the link it came in on',
  );
  turn.replyError(received, new ProtocolError('BUSY', 'busy now'));
  assert.is(turn.record.out[2]!.env.type, 'error');
});

test('where ids must be unguessable, a request id carries 16 hex digits after its counter; replies need none', () => {
  const { p } = parts({ unguessable: true });
  const turn = new Turn(p);
  assert.match(turn.send('server', 'migrate.out', {}).id, /^p#\d+\.[0-9a-f]{16}$/);
  assert.match(turn.reply(received, 'msam.cleared', {}).id, /^p#\d+$/);
});

test('an interceptor sees what a turn sends and may replace it: the replacement is what is recorded', () => {
  const intercept: Interceptor = {
    outbound: (_party, env) =>
      env.type === 'msam.cleared' ? ({ ...env, type: 'error', body: { code: 'SESSION_FAILED', message: 'lost' } } as AnyEnvelope) : undefined,
  };
  const { p } = parts({ intercept });
  const turn = new Turn(p);
  const sent = turn.reply(received, 'msam.cleared', {});
  assert.is(sent.type as string, 'error');
  assert.equal(
    turn.record.out.map((o) => o.env.type),
    ['error'],
  );
  turn.send('server', 'migrate.out', {});
  assert.equal(
    turn.record.out.map((o) => o.env.type),
    ['error', 'migrate.out'],
  );
});

test('writes, raised events and after-turn work are kept for the commit; a write makes the turn one that changed state', () => {
  const { p } = parts();
  const turn = new Turn(p);
  assert.not.ok(turn.record.dirty);
  turn.write(() => {});
  turn.raise('a', { type: 'GO' });
  turn.afterTurn(() => {});
  assert.ok(turn.record.dirty);
  assert.equal([turn.record.writes.length, turn.record.internal, turn.record.after.length], [1, [{ key: 'a', event: { type: 'GO' } }], 1]);
});

test('tryDispatch only dispatches what the actor takes; a failure an intent handler left is thrown once the step is over', () => {
  const refusing = parts({ accepts: false });
  assert.not.ok(new Turn(refusing.p).tryDispatch('a', { type: 'GO' }));
  assert.equal(refusing.dispatched, []);
  const { p, dispatched } = parts();
  const turn = new Turn(p);
  assert.ok(turn.tryDispatch('a', { type: 'GO' }));
  turn.failedIntent(new Error('a bug in a handler'));
  assert.throws(() => turn.dispatch('a', { type: 'AGAIN' }), /a bug in a handler/);
  assert.equal(dispatched, ['a GO', 'a AGAIN']);
  turn.dispatch('a', { type: 'THEN' });
  assert.equal(dispatched, ['a GO', 'a AGAIN', 'a THEN'], 'thrown once');
});

test('requests: the one an answer settles, the link of one received, and giving up those to a peer that will not answer', () => {
  const pending: OutMessage[] = [
    { peer: 'terminal/a', env: { v: 1, id: 'p#1', from: 'p', to: 'terminal/a', type: 'frame', body: { session: 's', data: 'AA' } } as AnyEnvelope },
  ];
  const { p, abandoned, cancelled } = parts({ pending });
  const turn = new Turn(p);
  assert.is(turn.requestOf('p#1')?.type, 'frame');
  assert.is(turn.requestOf(undefined), undefined);
  assert.is(turn.peerOfRequest('chip/X#7'), 'chip', 'from its inbox record');
  assert.is(turn.peerOfRequest('server#9'), 'server', 'a pruned record: the id names its sender');
  assert.throws(() => turn.peerOfRequest('nonsense'), /no received request nonsense/);
  turn.abandonRequestsTo('terminal/a', 'frame');
  for (const w of turn.record.writes) w();
  assert.equal(abandoned, [['p#1']]);
  assert.equal(cancelled, [], 'retransmission stops only once the turn is on disk');
  for (const fn of turn.record.after) fn();
  assert.equal(cancelled, ['p#1']);
});

test('a context used after its turn ended throws; the commit hook may use it again while the runtime lets it', () => {
  const { p } = parts();
  const turn = new Turn(p);
  turn.end();
  assert.throws(() => turn.send('server', 'migrate.out', {}), /needs a running turn/);
  assert.throws(() => turn.write(() => {}), /needs a running turn/);
  turn.reopen();
  turn.write(() => {});
  turn.end();
  assert.throws(() => turn.inbound, /needs a running turn/);
});

test.run();
