/**
 * Preflight (protocol.md §3): before anything changes, the user must own the
 * chip, every provider must answer and trust the server with the rights the
 * migration needs, and a named destination must be the user's. A failed
 * preflight ends the migration `refused`, with the reason, source untouched.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { untouched } from './helpers/untouched.ts';
import { buildWorld } from './helpers/world.ts';

const t = suite('preflight refusals leave the source untouched');

t('a chip registered to someone else is refused (NOT_OWNER)', async () => {
  const world = await buildWorld({ items: 2, register: false });
  try {
    await world.system.server.createUser('bob', 'bobs-password');
    const bobs = await world.system.addTerminal('bob');
    world.system.insertChip(bobs, world.source);
    world.system.connectToServer(bobs);
    await bobs.login('bob', 'bobs-password');
    assert.is((await bobs.register()).user, 'bob');
    const out = await world.oldPhone.migrateOut();
    assert.is(out.outcome, 'refused');
    assert.match(out.reason ?? '', /NOT_OWNER/);
    untouched(world);
    // The refused migration released the channel: normal use works on the source.
    assert.ok((await world.oldPhone.normalUse(world.providers[0]!, 'balance', world.providers[0]!)).balance !== undefined);
  } finally {
    await world.cleanup();
  }
});

t('an unregistered chip is refused (NOT_REGISTERED)', async () => {
  const world = await buildWorld({ items: 1, register: false });
  try {
    const out = await world.oldPhone.migrateOut();
    assert.is(out.outcome, 'refused');
    assert.match(out.reason ?? '', /NOT_REGISTERED/);
    untouched(world);
  } finally {
    await world.cleanup();
  }
});

t('a provider that does not trust this server is refused, and says why', async () => {
  const world = await buildWorld({ items: 3, untrustingProviders: ['p1-transit'] });
  try {
    const out = await world.oldPhone.migrateOut();
    assert.is(out.outcome, 'refused');
    assert.match(out.reason ?? '', /p1-transit/);
    assert.match(out.reason ?? '', /UNTRUSTED_PEER|NOT_TRUSTED/);
    untouched(world);
  } finally {
    await world.cleanup();
  }
});

t('a provider that trusts the server without the download right is refused (RIGHT_DENIED)', async () => {
  const world = await buildWorld({ items: 2, rights: { 'p1-transit': ['upload', 'clear'] } });
  try {
    const out = await world.oldPhone.migrateOut();
    assert.is(out.outcome, 'refused');
    assert.match(out.reason ?? '', /RIGHT_DENIED/);
    assert.match(out.reason ?? '', /download/);
    untouched(world);
  } finally {
    await world.cleanup();
  }
});

t("a named destination that is not the user's is refused", async () => {
  const world = await buildWorld({ items: 1 });
  try {
    const out = await world.oldPhone.migrateOut({ destination: 'NO-SUCH-CHIP' });
    assert.is(out.outcome, 'refused');
    assert.match(out.reason ?? '', /not registered/);
    untouched(world);
  } finally {
    await world.cleanup();
  }
});

t('a terminal that is not logged in can do nothing', async () => {
  const world = await buildWorld({ items: 1 });
  try {
    // The terminal itself will not ask before login...
    const stranger = await world.system.addTerminal('stranger');
    world.system.insertChip(stranger, world.source);
    world.system.connectToServer(stranger);
    let refused = '';
    await stranger.migrateOut().catch((e: Error) => (refused = e.message));
    assert.match(refused, /not expected/);
    // ...and a connection that sends the request anyway is refused by the server.
    const link = world.system.rawServerConnection('raw');
    const reply = new Promise<Record<string, unknown>>((res) => link.onMessage((b) => res(JSON.parse(new TextDecoder().decode(b)))));
    const env = { v: 1, id: 'terminal/raw#1', from: 'terminal/raw', to: 'server', type: 'migrate.out', body: {} };
    link.send(new TextEncoder().encode(JSON.stringify(env)));
    const got = await reply;
    assert.is(got.type, 'error');
    assert.is((got.body as { code: string }).code, 'UNAUTHENTICATED');
    assert.is(got.corr, 'terminal/raw#1');
    untouched(world);
  } finally {
    await world.cleanup();
  }
});

t.run();
