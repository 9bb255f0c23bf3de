/**
 * The actor host (src/runtime/host.ts), on a real store: actors spawn and
 * move only through it, say so before they move, and hand over what they
 * emit; an unexpected event changes nothing; a snapshot is written when it
 * changed; an actor at rest leaves RAM and comes back for an event that can
 * move it; a restart restores what is at work and refuses a snapshot of
 * another machine version.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assign, emit, setup } from 'xstate';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { silentLogger } from '../../src/log.ts';
import { ActorHost } from '../../src/runtime/host.ts';
import type { MachineKind } from '../../src/runtime/types.ts';
import { PartyStore } from '../../src/store/party.store.ts';

const counter = setup({
  types: {
    context: {} as { n: number },
    events: {} as { type: 'ADD' } | { type: 'REST' } | { type: 'WAKE' } | { type: 'CLOSE' } | { type: 'RELAY' } | { type: 'FRAME' } | { type: 'DONE' },
    emitted: {} as { type: 'opened' } | { type: 'added'; n: number },
  },
}).createMachine({
  id: 'counter',
  context: { n: 0 },
  initial: 'open',
  entry: emit({ type: 'opened' }),
  states: {
    open: {
      on: {
        ADD: { actions: [assign({ n: ({ context }) => context.n + 1 }), emit(({ context }) => ({ type: 'added' as const, n: context.n }))] },
        REST: 'resting',
        CLOSE: 'closed',
        RELAY: 'linking',
      },
    },
    // A session relayed: the state its request opened, then states reached only by its frames.
    linking: { on: { FRAME: 'relaying', DONE: 'open' } },
    relaying: { tags: ['relay'], on: { FRAME: 'relaying', DONE: 'open' } },
    resting: { tags: ['rest'], on: { WAKE: 'open' } },
    closed: { type: 'final' },
  },
});

interface Fixture {
  dir: string;
  store: PartyStore;
  host: ActorHost;
  log: string[];
  kinds: Record<string, MachineKind>;
  /** Writes what the host says changed, as a turn's commit would. */
  persist(keys: string[], relayOnly?: boolean): Promise<{ put: string[]; removed: string[] }>;
  close(): Promise<void>;
}

async function fixture(dir = mkdtempSync(join(tmpdir(), 'valmove-host-')), version = 1): Promise<Fixture> {
  const store = PartyStore.open(dir, { commits: 'sync' });
  const log: string[] = [];
  const kinds: Record<string, MachineKind> = { counter: { machine: counter, version }, once: { machine: counter, version, discardWhenDone: true } };
  const host = new ActorHost({
    party: 'p',
    store,
    log: silentLogger,
    kinds: () => kinds,
    emitted: (key, e) => log.push(`${key} emitted ${e.type}${'n' in e ? ` ${String(e.n)}` : ''}`),
    moving: (key) => log.push(`${key} moving`),
  });
  return {
    dir,
    store,
    host,
    log,
    kinds,
    async persist(keys, relayOnly) {
      const w = host.snapshotsOf(keys, relayOnly);
      await store.commit(() => {
        for (const [k, v] of w.put) store.snapshots.put(k, v);
        for (const k of w.remove) store.snapshots.remove(k);
      });
      return { put: w.put.map(([k]) => k), removed: w.remove };
    },
    async close() {
      host.stopAll(true);
      await store.close();
    },
  };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof ProtocolError ? e.code : `Error: ${(e as Error).message}`;
  }
  return 'none';
}

test('a spawned actor says it moves before it starts, and hands over what its entry emits; a key is used once', async () => {
  const f = await fixture();
  try {
    f.host.spawn('c:1', 'counter', {});
    assert.equal(f.log, ['c:1 moving', 'c:1 emitted opened']);
    assert.equal(f.host.liveKeys(), ['c:1']);
    assert.match(
      code(() => f.host.spawn('c:1', 'counter', {})),
      /actor c:1 exists/,
    );
    assert.match(
      code(() => f.host.spawn('c:2', 'nothing', {})),
      /unknown machine kind nothing/,
    );
  } finally {
    await f.close();
    rmSync(f.dir, { recursive: true, force: true });
  }
});

test('dispatch moves an actor that takes the event; one it does not take is refused UNEXPECTED before anything moves', async () => {
  const f = await fixture();
  try {
    f.host.spawn('c:1', 'counter', {});
    f.log.length = 0;
    f.host.dispatch('c:1', { type: 'ADD' });
    assert.equal(f.log, ['c:1 moving', 'c:1 emitted added 1']);
    f.log.length = 0;
    assert.is(
      code(() => f.host.dispatch('c:1', { type: 'WAKE' })),
      'UNEXPECTED',
    );
    assert.is(
      code(() => f.host.dispatch('c:9', { type: 'ADD' })),
      'NOT_FOUND',
    );
    assert.equal(f.log, [], 'nothing moved');
    assert.ok(f.host.accepts('c:1', { type: 'ADD' }));
    assert.not.ok(f.host.accepts('c:1', { type: 'WAKE' }));
    assert.not.ok(f.host.accepts('c:9', { type: 'ADD' }));
  } finally {
    await f.close();
    rmSync(f.dir, { recursive: true, force: true });
  }
});

test('a snapshot is written when it changed, not again for a turn that moved nothing; a finished actor of a discarded kind is deleted', async () => {
  const f = await fixture();
  try {
    f.host.spawn('c:1', 'counter', {});
    f.host.spawn('o:1', 'once', {});
    assert.equal(await f.persist(['c:1', 'o:1']), { put: ['c:1', 'o:1'], removed: [] });
    assert.equal(await f.persist(['c:1']), { put: [], removed: [] }, 'unchanged');
    f.host.dispatch('c:1', { type: 'ADD' });
    f.host.dispatch('o:1', { type: 'CLOSE' });
    assert.equal(await f.persist(['c:1', 'o:1']), { put: ['c:1'], removed: ['o:1'] });
    assert.is(f.store.snapshots.get('o:1'), undefined);
    assert.equal((f.store.snapshots.get('c:1')!.snapshot as { context: { n: number } }).context, { n: 1 });
  } finally {
    await f.close();
    rmSync(f.dir, { recursive: true, force: true });
  }
});

test("a turn that only relayed writes no actor in a state tagged 'relay'; any other turn writes it, and so does one that leaves it", async () => {
  const f = await fixture();
  const stored = () => (f.store.snapshots.get('c:1')!.snapshot as { value: unknown }).value;
  try {
    f.host.spawn('c:1', 'counter', {});
    await f.persist(['c:1']);
    f.host.dispatch('c:1', { type: 'RELAY' });
    assert.equal(await f.persist(['c:1'], true), { put: ['c:1'], removed: [] }, 'linking is not a relay state');
    f.host.dispatch('c:1', { type: 'FRAME' });
    assert.equal(await f.persist(['c:1'], true), { put: [], removed: [] }, 'relayed into relaying: not written');
    assert.is(stored(), 'linking', 'a restart finds the state the session was opened in');
    f.host.dispatch('c:1', { type: 'FRAME' });
    assert.equal(await f.persist(['c:1']), { put: ['c:1'], removed: [] }, 'the same move in a turn that did more is written');
    assert.is(stored(), 'relaying');
    f.host.dispatch('c:1', { type: 'DONE' });
    assert.equal(await f.persist(['c:1'], true), { put: ['c:1'], removed: [] }, 'leaving the relay state is written, even by a notice');
    assert.is(stored(), 'open');
  } finally {
    await f.close();
    rmSync(f.dir, { recursive: true, force: true });
  }
});

test('an actor at rest leaves RAM, is read back from the store when asked, and comes back for an event that can move it', async () => {
  const f = await fixture();
  try {
    f.host.spawn('c:1', 'counter', {});
    f.host.dispatch('c:1', { type: 'REST' });
    await f.persist(['c:1']);
    assert.ok(f.host.isAtRest('c:1'));
    f.host.retire('c:1');
    assert.is(f.host.live('c:1'), undefined);
    assert.is(f.host.actorOf('c:1')!.getSnapshot().value, 'resting', 'read back');
    assert.equal(f.host.keys('counter'), []);
    assert.equal(f.host.keys('counter', true), ['c:1']);
    assert.is(
      code(() => f.host.dispatch('c:1', { type: 'ADD' })),
      'UNEXPECTED',
    );
    assert.is(f.host.live('c:1'), undefined, 'an event that can not move it leaves it at rest');
    f.host.dispatch('c:1', { type: 'WAKE' });
    assert.is(f.host.live('c:1')!.getSnapshot().value, 'open', 'back in RAM, moved');
    assert.equal(f.host.states(), { 'c:1': 'open' });
  } finally {
    await f.close();
    rmSync(f.dir, { recursive: true, force: true });
  }
});

test('a restart restores the actors at work, leaves those at rest and the finished ones on disk, and refuses a snapshot of another version', async () => {
  const first = await fixture();
  first.host.spawn('work', 'counter', {});
  first.host.spawn('rest', 'counter', {});
  first.host.dispatch('rest', { type: 'REST' });
  first.host.spawn('done', 'counter', {});
  first.host.dispatch('done', { type: 'CLOSE' });
  await first.persist(['work', 'rest', 'done']);
  await first.close();
  const again = await fixture(first.dir);
  try {
    again.host.restoreAll();
    assert.equal(again.host.liveKeys(), ['work']);
    assert.equal(again.host.states(), { done: 'closed', rest: 'resting', work: 'open' });
    assert.equal(again.log, [], 'a restored actor runs no entry action again');
  } finally {
    await again.close();
  }
  const newer = await fixture(first.dir, 2);
  try {
    assert.match(
      code(() => newer.host.restoreAll()),
      /written by counter v1, this build runs v2; refusing to guess/,
    );
  } finally {
    await newer.close();
    rmSync(first.dir, { recursive: true, force: true });
  }
});

test.run();
