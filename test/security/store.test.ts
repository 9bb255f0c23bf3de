/**
 * Issue 16, point 4: nothing a stranger sends is kept, and every store is
 * bounded. A stranger's refused or fresh-answered request changes no byte of
 * a party's LMDB file (protocol.md §4.8); a store past its byte budget
 * refuses new work and serves work in progress; a commit that fails (a full
 * disk) does not stop the party.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChipRuntime } from '../../src/actors/chip.actor.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { systemClock } from '../../src/clock.ts';
import { fromB64, randomSecret, seededRng, stretchPassword, toB64, utf8 } from '../../src/crypto/index.ts';
import { silentLogger } from '../../src/log.ts';
import { PartyStore, STORE_FULL_FRACTION } from '../../src/store/party.store.ts';
import { FAST_TIMING } from '../../src/timing.ts';
import { decodeEnvelope, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { memoryLinkPair } from '../../src/transport/memory.transport.ts';
import type { Link } from '../../src/transport/link.ts';
import type { SecureInitiatorLink } from '../../src/transport/secure.link.ts';
import { storeOf } from '../fuzz/seats.ts';
import { testBench } from '../helpers/testParty.ts';
import { buildWorld, settle } from '../helpers/world.ts';

const STRANGER_REQUESTS = 3_000;
/** The file size limit of the full-disk child, KiB. */
const FULL_DISK_KIB = 2_048;
const ANSWER_WAIT_MS_MAX = 60_000;

/** What a store holds, as the file and as records: its size, its bytes' hash, and every database's record count. */
function imageOf(store: PartyStore): { bytes: number; sha256: string; records: Record<string, number> } {
  const file = join(store.path, 'data.mdb');
  const records: Record<string, number> = {};
  for (const name of store.env.getKeys() as Iterable<string>) {
    const db = name === 'inbox-by-time' ? store.inboxByTime : store.db(name);
    records[name] = (db.getStats() as { entryCount: number }).entryCount;
  }
  return { bytes: statSync(file).size, sha256: createHash('sha256').update(readFileSync(file)).digest('hex'), records };
}

const errorOf = (e: AnyEnvelope) => (e.type === 'error' ? `${e.body.code}: ${e.body.message}` : e.type);

/** Collects what a link receives; `until(n)` waits for n messages. */
function listen(link: Link): { got: AnyEnvelope[]; until(n: number): Promise<void> } {
  const got: AnyEnvelope[] = [];
  link.onMessage((b) => got.push(decodeEnvelope(b)));
  return {
    got,
    async until(n) {
      for (const end = Date.now() + ANSWER_WAIT_MS_MAX; got.length < n; ) {
        if (Date.now() > end) throw new Error(`got ${got.length} of ${n} answers`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

test(`${STRANGER_REQUESTS.toLocaleString('en')} login.begin from a stranger leave the server's data.mdb unchanged (and so do failed proofs for unknown users and requests refused for want of a login)`, async () => {
  const world = await buildWorld({ items: 1, register: false });
  try {
    await settle(world);
    const store = storeOf(world.system.server);
    const before = imageOf(store);
    const link = world.system.rawServerConnection('stranger');
    await (link as SecureInitiatorLink).ready; // (before it, a channel queues 1,000 messages at most)
    const heard = listen(link);
    const send = (env: object) => link.send(utf8(JSON.stringify({ v: 1, from: 'terminal/stranger', to: 'server', ...env })));
    let n = 0;
    for (let i = 0; i < STRANGER_REQUESTS; i++) send({ id: `terminal/stranger#${++n}`, type: 'login.begin', body: { user: `nobody-${i}` } });
    for (let i = 0; i < 100; i++)
      send({ id: `terminal/stranger#${++n}`, type: 'login.proof', body: { user: `nobody-${i}`, proof: toB64(new Uint8Array(32)) } });
    for (let i = 0; i < 100; i++) send({ id: `terminal/stranger#${++n}`, type: 'migrate.out', body: {} });
    await heard.until(n);
    await settle(world);
    const types = new Map<string, number>();
    for (const e of heard.got) types.set(errorOf(e), (types.get(errorOf(e)) ?? 0) + 1);
    assert.equal(Object.fromEntries(types), {
      'login.challenge': STRANGER_REQUESTS,
      'LOGIN_FAILED: unknown user or wrong password': 100,
      'UNAUTHENTICATED: log in first: this connection has no authenticated user': 100,
    });
    // An unknown user's salt is the same each time (no oracle), from a key made at start, not in a stranger's turn.
    const salts = heard.got.filter((e) => e.type === 'login.challenge' && e.body.user === 'nobody-7');
    assert.is(salts.length, 1);
    assert.equal(imageOf(store), before, "not one byte of the server's store changed");
    link.close('done');
  } finally {
    await world.cleanup();
  }
});

test(`${STRANGER_REQUESTS.toLocaleString('en')} chip.select from a stranger on a chip's link leave its data.mdb unchanged`, async () => {
  const world = await buildWorld({ items: 1, register: false });
  try {
    await settle(world);
    const store = storeOf(world.source);
    const before = imageOf(store);
    const [mine, theirs] = memoryLinkPair('terminal/stranger', world.source.id);
    world.source.attach('terminal/stranger', theirs);
    const heard = listen(mine);
    for (let i = 1; i <= STRANGER_REQUESTS; i++) {
      mine.send(utf8(JSON.stringify({ v: 1, id: `terminal/stranger#${i}`, from: 'terminal/stranger', to: world.source.id, type: 'chip.select', body: {} })));
    }
    await heard.until(STRANGER_REQUESTS);
    await settle(world);
    assert.ok(heard.got.every((e) => e.type === 'chip.info' && e.body.serial === world.source.serial));
    assert.equal(imageOf(store), before, "not one byte of the chip's store changed");
    mine.close('done');
  } finally {
    await world.cleanup();
  }
});

test('a network duplicate of a failed login.proof counts one failure, not two; a new attempt counts again', async () => {
  const world = await buildWorld({ items: 1, register: false });
  try {
    const server = world.system.server;
    const failures = () => server.records.users.get(world.user)!.failures;
    const link = world.system.rawServerConnection('guess');
    const heard = listen(link);
    const proof = (id: string) =>
      link.send(
        utf8(
          JSON.stringify({ v: 1, id, from: 'terminal/guess', to: 'server', type: 'login.proof', body: { user: world.user, proof: toB64(new Uint8Array(32)) } }),
        ),
      );
    const start = failures();
    proof('terminal/guess#1');
    proof('terminal/guess#1');
    await heard.until(2);
    assert.equal(heard.got.map(errorOf), ['LOGIN_FAILED: unknown user or wrong password', 'LOGIN_FAILED: unknown user or wrong password']);
    assert.is(failures(), start + 1, 'the duplicate was answered, not counted');
    proof('terminal/guess#2');
    await heard.until(3);
    assert.is(failures(), start + 2);
    // The right proof, sent twice, logs the connection in each time and changes nothing more.
    const rec = server.records.users.get(world.user)!;
    const stretched = stretchPassword(world.password, fromB64(rec.salt), { N: rec.N, r: rec.r, p: rec.p });
    assert.equal(toB64(sha256(stretched)), rec.verifier, 'the test derives the proof as a terminal does');
    for (const _ of [1, 2])
      link.send(
        utf8(
          JSON.stringify({
            v: 1,
            id: 'terminal/guess#3',
            from: 'terminal/guess',
            to: 'server',
            type: 'login.proof',
            body: { user: world.user, proof: toB64(stretched) },
          }),
        ),
      );
    await heard.until(5);
    assert.equal(heard.got.slice(3).map(errorOf), ['login.ok', 'login.ok']);
    assert.is(failures(), 0);
    link.close('done');
  } finally {
    await world.cleanup();
  }
});

test(`past ${STORE_FULL_FRACTION * 100}% of its byte budget a party refuses new requests STORE_FULL, answers repeats, and takes new work again once pruning frees space`, async () => {
  const b = await testBench({ mapBytes: 256 * 1024 });
  try {
    let seq = 0;
    for (let round = 0; round < 50 && !b.party.partyStore.isFull; round++) {
      for (let i = 0; i < 100; i++) b.send({ id: `server#${++seq}`, type: 'msam.clear', body: {} });
      await b.settle();
    }
    assert.ok(b.party.partyStore.isFull, `the store filled up (${b.party.partyStore.usedBytes()} bytes used)`);
    const applied = b.party.applied.length;
    const refused = await b.ask('msam.clear', ++seq);
    assert.equal(refused.map(errorOf), ["STORE_FULL: test-party's store is full; it serves work in progress and refuses new work"]);
    assert.equal((await b.ask('msam.clear', seq - 1)).map(errorOf), ['msam.cleared'], 'a repeat is answered from the inbox');
    assert.is(b.party.applied.length, applied, 'the refused request was not applied');
    // The window passes: the next batches prune, the store empties, and new work is taken.
    b.clock.t += FAST_TIMING.inboxRetentionMs + 1_000;
    for (let i = 0; i < 10 && b.party.partyStore.isFull; i++) await b.ask('msam.clear', ++seq);
    assert.not.ok(b.party.partyStore.isFull, 'pruning freed the space');
    assert.equal((await b.ask('msam.clear', ++seq)).map(errorOf), ['msam.cleared']);
  } finally {
    await b.close();
  }
});

test('a chip whose store passed its budget refuses chip.select STORE_FULL, still takes session frames (work in progress), and serves again once space is freed', async () => {
  const dir = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'valmove-fullchip-'));
  const rng = seededRng('full-chip');
  const chip = new ChipRuntime({
    id: 'chip/FULL-1',
    store: PartyStore.open(dir, { mapBytes: 512 * 1024 }),
    clock: systemClock,
    rng,
    log: silentLogger,
    timing: FAST_TIMING,
  });
  await chip.start({ serial: 'FULL-1', kChip: randomSecret(rng).reveal() });
  const [mine, theirs] = memoryLinkPair('terminal/t', chip.id);
  chip.attach('terminal/t', theirs);
  const heard = listen(mine);
  const send = (env: object) => mine.send(utf8(JSON.stringify({ v: 1, from: 'terminal/t', to: chip.id, ...env })));
  try {
    const store = storeOf(chip);
    const filler = store.db<Uint8Array>('filler');
    for (let i = 0; i < 200 && !store.isFull; i++) await store.commit(() => filler.put(`blob-${i}`, new Uint8Array(8 * 1024)));
    assert.ok(store.isFull);
    send({ id: 'terminal/t#1', type: 'chip.select', body: {} });
    await heard.until(1);
    assert.equal(heard.got.map(errorOf), ["STORE_FULL: chip/FULL-1's store is full; it serves work in progress and refuses new work"]);
    send({ id: 'terminal/t#n00000000.2', type: 'frame', body: { session: 's:1', data: 'AAAA' } });
    await heard.until(2);
    assert.equal(
      heard.got.slice(1).map((e) => e.type),
      ['frame'],
      'the frame was taken and answered in its session',
    );
    await store.commit(() => {
      for (const { key } of filler.getRange()) filler.remove(key);
    });
    send({ id: 'terminal/t#3', type: 'chip.select', body: {} });
    await heard.until(3);
    assert.is(heard.got[2]!.type, 'chip.info');
  } finally {
    mine.close('done');
    await chip.stop();
    (await import('node:fs')).rmSync(dir, { recursive: true, force: true });
  }
});

for (const commits of ['async', 'sync'] as const) {
  test(`a commit that fails (a full disk) does not stop the party (${commits} commits): its batch is refused STORE_FULL and says nothing else, the actors are read back from the store, and new work is taken once a sweep freed space`, async () => {
    const b = await testBench({ commits });
    try {
      assert.equal((await b.ask('msam.preflight', 1)).map(errorOf), ['msam.ready']);
      assert.equal(b.party.live(), ['s:server#1']);
      const store = b.party.partyStore;
      const real = store.commit.bind(store);
      let failures = 0;
      // The disk is full for one commit: the batch's turns run, then LMDB refuses the transaction.
      store.commit = (async (fn: () => unknown) => {
        store.commit = real;
        failures++;
        store.env.transactionSync(() => {
          fn();
          throw new Error('Commit failed (see commitError for details)');
        });
      }) as typeof store.commit;
      const refused = await b.ask('msam.preflight', 2);
      assert.is(failures, 1);
      assert.equal(refused.map(errorOf), ["STORE_FULL: test-party's store is full; it serves work in progress and refuses new work"]);
      assert.not.ok(b.party.isStopped, 'the party goes on');
      assert.equal(b.party.live(), ['s:server#1'], 'the actor the failed batch spawned is gone from RAM, as from the store');
      assert.is(store.snapshots.get('s:server#2'), undefined);
      assert.is(store.inbox.get('server#2'), undefined);
      // New work waits for space: refused until a sweep frees some (or STORE_FULL_AFTER_FAILED_COMMIT_MS pass).
      assert.equal((await b.ask('msam.preflight', 3)).map(errorOf), [
        "STORE_FULL: test-party's store is full; it serves work in progress and refuses new work",
      ]);
      assert.equal((await b.ask('msam.preflight', 1)).map(errorOf), ['msam.ready'], 'a repeat is answered');
      b.clock.t += FAST_TIMING.inboxRetentionMs + 1_000;
      await b.ask('msam.clear', 4); // refused too; its batch's sweep prunes #1, in a transaction of its own
      assert.is(store.inbox.get('server#1'), undefined);
      assert.equal((await b.ask('msam.preflight', 5)).map(errorOf), ['msam.ready']);
      assert.equal(b.party.live().sort(), ['s:server#1', 's:server#5']);
    } finally {
      await b.close();
    }
  });
}

test('on a really full disk (a file size limit) a failed commit stops nothing: the party refuses STORE_FULL, answers repeats, and prunes its way back to taking new work', () => {
  // lmdb-js grows its map by itself; what stops a file is the disk. A child process under `ulimit -f` (KiB) is one.
  const child = spawnSync('bash', ['-c', `ulimit -f ${FULL_DISK_KIB} && exec node --import tsx test/helpers/fullDisk.ts`], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const line = child.stdout.trim().split('\n').pop() ?? '';
  let out: Record<string, unknown>;
  try {
    out = JSON.parse(line);
  } catch {
    throw new Error(`the child printed no result (status ${child.status}, signal ${child.signal}): ${child.stdout.slice(-500)} ${child.stderr.slice(-1500)}`);
  }
  assert.ok((out.firstRefused as number) > 0, 'the disk filled up and new work was refused');
  assert.is(out.dataMdbBytes, FULL_DISK_KIB * 1024, 'the file stopped at the limit');
  assert.is(out.stopped, false);
  assert.equal(out.repeat, ['msam.cleared'], 'a repeat is answered from the inbox');
  assert.equal(out.newWhileFull, ['STORE_FULL']);
  assert.equal(out.newAfterPruning, ['msam.cleared'], 'pruning made room');
  assert.ok((out.recordsAfterPruning as number) < (out.firstRefused as number));
  assert.equal(out.problems, [], 'no unhandled rejection (lmdb-js leaves one when eventTurnBatching is on)');
});

test.run();
