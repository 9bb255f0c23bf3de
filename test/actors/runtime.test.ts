/** The party runtime's promises: a repeated notice is dropped; replies are not answered. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { memoryLinkPair } from '../../src/transport/memory.transport.ts';
import { buildWorld } from '../helpers/world.ts';

test('a repeated frame (a notice) is dropped, not handled again; a stray reply is dropped without an answer (repeated requests: inbox.test.ts)', async () => {
  const world = await buildWorld({ items: 1, register: false });
  try {
    const [mine, theirs] = memoryLinkPair('terminal/dup', world.source.id);
    world.source.attach('terminal/dup', theirs);
    const got: Array<Record<string, unknown>> = [];
    const raw: string[] = [];
    mine.onMessage((b) => {
      raw.push(new TextDecoder().decode(b));
      got.push(JSON.parse(raw[raw.length - 1]!));
    });
    const wait = async (n: number) => {
      for (let i = 0; i < 100 && got.length < n; i++) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 30));
    };
    // chip.select is answered fresh (it only reads); under a used id it gets what that id got, never a new handling.
    const select = JSON.stringify({ v: 1, id: 'terminal/dup#1', from: 'terminal/dup', to: world.source.id, type: 'chip.select', body: {} });
    mine.send(new TextEncoder().encode(select));
    await wait(1);
    assert.equal(
      got.map((r) => r.type),
      ['chip.info'],
    );
    // A frame the chip can not read: it answers once with an err frame (a notice: no acknowledgement either way).
    const frame = JSON.stringify({
      v: 1,
      id: 'terminal/dup#n00000000.1',
      from: 'terminal/dup',
      to: world.source.id,
      type: 'frame',
      body: { session: 's:normal:1', data: 'AAAA' },
    });
    mine.send(new TextEncoder().encode(frame));
    await wait(2);
    const errFrames = () => got.filter((r) => r.type === 'frame').length;
    assert.is(errFrames(), 1);
    mine.send(new TextEncoder().encode(frame));
    await wait(3);
    assert.is(errFrames(), 1, 'the repeat was dropped, not handled again');
    assert.is(got.length, 2);
    // A stray reply (to nothing we asked) is dropped without an answer: no error ping-pong.
    const before = got.length;
    mine.send(
      new TextEncoder().encode(
        JSON.stringify({
          v: 1,
          id: 'terminal/dup#2',
          corr: 'chip/SRC-1#999',
          from: 'terminal/dup',
          to: world.source.id,
          type: 'chip.info',
          body: { serial: 'X', areas: [] },
        }),
      ),
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.is(got.filter((r) => r.type === 'error').length, 0, `no answer to a stray reply: ${JSON.stringify(got.slice(before))}`);
  } finally {
    await world.cleanup();
  }
});

test('a repeated login.begin is answered anew, with the same challenge', async () => {
  const world = await buildWorld({ items: 1, register: false });
  try {
    const link = world.system.rawServerConnection('dup');
    const replies: Array<Record<string, unknown>> = [];
    link.onMessage((b) => replies.push(JSON.parse(new TextDecoder().decode(b))));
    const req = JSON.stringify({ v: 1, id: 'terminal/dup#1', from: 'terminal/dup', to: 'server', type: 'login.begin', body: { user: 'alice' } });
    link.send(new TextEncoder().encode(req));
    link.send(new TextEncoder().encode(req));
    for (let i = 0; i < 100 && replies.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    assert.is(replies.length, 2);
    assert.equal(
      replies.map((r) => [r.type, r.corr]),
      [
        ['login.challenge', 'terminal/dup#1'],
        ['login.challenge', 'terminal/dup#1'],
      ],
    );
    assert.equal(replies[1]!.body, replies[0]!.body);
  } finally {
    await world.cleanup();
  }
});

test("a new connection under a logged-in terminal's name, without its device key, is refused at the handshake; the phone keeps its link and its login", async () => {
  const world = await buildWorld({ items: 1 });
  try {
    // "new" is logged in (its first login bound the name to its device key). An impostor connects claiming terminal/new.
    const impostor = world.system.rawServerConnection('new');
    const closed = new Promise<string>((res) => impostor.onClose(res));
    const messages: string[] = [];
    impostor.onMessage((b) => messages.push(new TextDecoder().decode(b)));
    impostor.send(new TextEncoder().encode(JSON.stringify({ v: 1, id: 'terminal/new#1', from: 'terminal/new', to: 'server', type: 'migrate.in', body: {} })));
    await closed;
    assert.equal((impostor as { refusal?: unknown }).refusal, { code: 'UNTRUSTED_PEER', message: 'terminal/new is bound to another device key' });
    assert.equal(messages, [], "the impostor's envelope never reached the server");
    // The real phone still holds the name and its login: a request that needs a login is served.
    const info = await world.newPhone.register();
    assert.is(info.serial, world.destination.serial);
  } finally {
    await world.cleanup();
  }
});

test("an intent handler that throws fails its turn: nothing of it is committed, the party stops, and the failure surfaces once, as the runtime's (not again from an XState timer)", async () => {
  const world = await buildWorld({ items: 1 });
  const thrown: unknown[] = [];
  const rejected: unknown[] = [];
  const onThrown = (e: unknown) => thrown.push(e);
  const onRejected = (e: unknown) => rejected.push(e);
  process.on('uncaughtException', onThrown);
  process.on('unhandledRejection', onRejected);
  try {
    const server = world.system.server as unknown as {
      onIntent: (key: string, intent: { type: string }, turn: unknown) => void;
      isStopped: boolean;
      store: { snapshots: { getRange(): Iterable<{ key: string }> } };
    };
    const real = server.onIntent;
    server.onIntent = function (this: unknown, key, intent, turn) {
      if (intent.type === 'reserveChannel') throw new Error('a planted bug in an intent handler');
      return real.call(this, key, intent, turn);
    };
    const migrations = () => [...server.store.snapshots.getRange()].filter((e) => e.key.startsWith('migration:')).length;
    void world.oldPhone.migrateOut({ destination: world.destination.serial }).catch(() => {});
    for (let i = 0; i < 200 && !server.isStopped; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50)); // XState used to throw it again on a timer, after the turn had committed
    assert.ok(server.isStopped, 'the server stopped at the failed turn (a restart rehydrates it)');
    assert.is(migrations(), 0, 'the turn that spawned the migration was not committed');
    assert.equal(thrown.map(String), [], 'nothing thrown outside the turn');
    assert.equal(rejected.map(String), ['Error: a planted bug in an intent handler'], 'the runtime fails loudly, once');
  } finally {
    process.off('uncaughtException', onThrown);
    process.off('unhandledRejection', onRejected);
    await world.cleanup();
  }
});

test.run();
