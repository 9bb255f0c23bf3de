/**
 * protocol.md §4.7 against a live (embedded) server: malformed, oversized or
 * unexpected messages get an error reply with a stable code and a sentence,
 * change no state, and a migration running beside them completes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildWorld } from '../helpers/world.ts';

test('the server answers every kind of bad input with an error, changes nothing, and keeps serving', async () => {
  const world = await buildWorld({ items: 2 });
  try {
    const link = world.system.rawServerConnection('fuzzer');
    const replies: Array<Record<string, unknown>> = [];
    link.onMessage((b) => replies.push(JSON.parse(new TextDecoder().decode(b))));
    const send = (raw: string | object) => link.send(new TextEncoder().encode(typeof raw === 'string' ? raw : JSON.stringify(raw)));
    const base = { v: 1, from: 'terminal/fuzzer', to: 'server' };

    const running = world.oldPhone.migrateOut({ destination: world.destination.serial });
    const usersBefore = JSON.stringify([...world.system.server.records.users.getRange()].map((e) => e.value));
    send('not json at all');
    send({ ...base, id: 'terminal/fuzzer#1', type: 'no.such.type', body: {} });
    send({ ...base, id: 'terminal/fuzzer#2', type: 'login.begin', body: { user: 12 } });
    send({ ...base, id: 'terminal/fuzzer#3', type: 'login.begin', body: {} });
    send({ ...base, id: 'terminal/fuzzer#4', type: 'login.begin', body: { user: 'x'.repeat(70_000) } });
    send({ ...base, id: 'terminal/fuzzer#5', type: 'migrate.in', body: { mig: 'm-nope' } });
    send({ ...base, id: 'terminal/fuzzer#6', type: 'migrate.cancel', body: { mig: 'm-nope' } });
    send({ ...base, id: 'terminal/fuzzer#7', from: 'terminal/someone-else', type: 'login.begin', body: { user: 'alice' } });
    send({ ...base, id: 'terminal/fuzzer#8', type: 'frame', body: { session: 'm-nope:S7:1', data: 'AAAA' } });

    const out = await running;
    assert.is(out.outcome, 'uploaded', 'the migration beside the bad input went on');
    for (let i = 0; i < 50 && replies.length < 9; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(replies.length, 9, `one error reply per bad message: ${JSON.stringify(replies)}`);
    const codes = replies.map((r) => (r.body as { code: string }).code);
    assert.equal(codes, ['BAD_JSON', 'UNKNOWN_TYPE', 'BAD_BODY', 'BAD_BODY', 'TOO_LARGE', 'UNAUTHENTICATED', 'UNAUTHENTICATED', 'BAD_SENDER', 'NOT_FOUND']);
    for (const r of replies) {
      assert.is(r.type, 'error');
      assert.ok(((r.body as { message: string }).message ?? '').length > 10, 'each error has a sentence');
    }
    assert.is(JSON.stringify([...world.system.server.records.users.getRange()].map((e) => e.value)), usersBefore, 'no stored state changed');
    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
  } finally {
    await world.cleanup();
  }
});

test.run();
