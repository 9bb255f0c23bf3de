import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RemoteError } from '../../src/protocol/errors.ts';
import { buildWorld } from '../helpers/world.ts';

test('while the chip-control channel is reserved (S1–S8) the terminal refuses reader use with CHANNEL_RESERVED', async () => {
  const world = await buildWorld({ items: 2 });
  try {
    const attempts: Array<Promise<string>> = [];
    world.oldPhone.onProgress((p) => {
      if (p.step === 'S4' && attempts.length === 0) {
        const provider = world.providers[0]!;
        // From S3 on, every source area is on its temp key: no normal SAM can open it.
        for (const a of world.source.memory.list()) assert.is(a.state, 'locked', `${a.area} at S4`);
        attempts.push(
          world.oldPhone.normalUse(provider, 'pay', provider, 1).then(
            () => 'ACCEPTED',
            (e: RemoteError) => e.code,
          ),
        );
      }
    });
    const out = await world.oldPhone.migrateOut();
    assert.is(out.outcome, 'uploaded');
    assert.is(attempts.length, 1);
    assert.is(await attempts[0], 'CHANNEL_RESERVED');
    // Released after the source phase: the reader works again (and the locked area answers for itself).
    let code = '';
    await world.oldPhone.normalUse(world.providers[0]!, 'balance', world.providers[0]!).catch((e: RemoteError) => (code = e.code));
    assert.is(code, 'AREA_LOCKED');
  } finally {
    await world.cleanup();
  }
});

test('logout is refused (BUSY) while a job is under way, and logs out once it has ended', async () => {
  const world = await buildWorld({ items: 1 });
  try {
    const during: Array<Promise<string>> = [];
    world.oldPhone.onProgress((p) => {
      if (p.step === 'S4' && during.length === 0) {
        during.push(
          world.oldPhone.logout().then(
            (r) => `LOGGED_OUT ${r.user}`,
            (e: RemoteError) => `${e.code}: ${e.message}`,
          ),
        );
      }
    });
    const out = await world.oldPhone.migrateOut();
    assert.is(out.outcome, 'uploaded', 'the job went on: the refused logout changed nothing');
    assert.is(during.length, 1);
    assert.match(await during[0]!, /^BUSY: alice is logging in or has a job under way/);
    assert.equal(await world.oldPhone.logout(), { user: 'alice' });
  } finally {
    await world.cleanup();
  }
});

test('a wrong password is refused, and repeated failures lock the user out', async () => {
  const world = await buildWorld({ items: 1, register: false });
  try {
    const t = await world.system.addTerminal('guesser');
    world.system.connectToServer(t);
    const codes: string[] = [];
    for (let i = 0; i < 4; i++) await t.login(world.user, `guess-${i}`).catch((e: RemoteError) => codes.push(e.code));
    assert.equal(codes, ['LOGIN_FAILED', 'LOGIN_FAILED', 'LOGIN_FAILED', 'LOCKED_OUT']);
    // Even the right password waits out the lockout...
    let code = '';
    await t.login(world.user, world.password).catch((e: RemoteError) => (code = e.code));
    assert.is(code, 'LOCKED_OUT');
    // ...until an operator clears it.
    await world.system.server.clearLockout(world.user);
    await t.login(world.user, world.password);
  } finally {
    await world.cleanup();
  }
});

test.run();
