/**
 * `valmove backup` and `valmove restore` on real LMDB folders (issue 21,
 * point 6): the hot copy is one commit's state while another process writes;
 * a restore refuses another process's backup and an occupied folder, moves
 * the replaced folder aside, and numbers the restored party's requests past
 * any the party used since the copy. The restore of a running server, and a
 * migration through a restored server: test/deep/restore.deep.ts.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { systemRng } from '../../src/crypto/index.ts';
import { BackupError, RESTORE_SEQ_GAP, restoreParty } from '../../src/deploy/backup.ts';
import { loadConfig } from '../../src/deploy/config.ts';
import { generateDeployment } from '../../src/deploy/keygen.ts';
import { DATABASES_MAX, PartyStore } from '../../src/store/party.store.ts';
import { runValmove } from '../helpers/cli.ts';

/** Pairs the writer commits at most (it is stopped once the copy is taken): a bound, not a duration. */
const WRITES_MAX = 1_000_000;

const valmove = (...args: string[]) => runValmove(args);

async function deployment(dir: string) {
  await generateDeployment({
    dir,
    providers: ['emoney'],
    chips: ['SRC'],
    terminals: [{ name: 'old', chip: 'SRC' }],
    host: '127.0.0.1',
    basePort: 0,
    rng: systemRng,
  });
  return { admin: join(dir, 'config', 'admin-sam.json'), server: join(dir, 'config', 'server.json') };
}

test('backup: a hot copy while another process commits is the state of one commit (both keys of a pair agree)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-backup-'));
  const cfg = await deployment(dir);
  const dataDir = loadConfig(cfg.admin).dataDir;
  // Another process writes pairs (a, b) = (i, i), each pair in one transaction, as fast as it can.
  const writer = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { open } from 'lmdb';
       const env = open({ path: ${JSON.stringify(dataDir)}, maxDbs: ${DATABASES_MAX} });
       const db = env.openDB({ name: 'pairs' });
       for (let i = 0; i < ${WRITES_MAX}; i++) {
         env.transactionSync(() => { db.put('a', i); db.put('b', i); });
         if (i === 100) process.stdout.write('writing\\n');
       }`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((res, rej) => {
      writer.stdout!.once('data', () => res());
      writer.once('exit', (code) => rej(new Error(`the writer exited (${code}) before it wrote`)));
    });
    const b = await valmove('backup', '--config', cfg.admin, '--to', join(dir, 'copy'));
    assert.is(b.code, 0, b.stderr);
    assert.ok(writer.exitCode === null, 'the writer still ran when the copy ended');
    const copy = open({ path: join(dir, 'copy'), maxDbs: DATABASES_MAX });
    const pairs = copy.openDB({ name: 'pairs' });
    const [a, bb] = [pairs.get('a') as number, pairs.get('b') as number];
    await copy.close();
    assert.ok(a >= 100, `the copy holds what was committed before it (${a})`);
    assert.is(a, bb, 'the copy is one commit, never half of one');
    const again = await valmove('backup', '--config', cfg.admin, '--to', join(dir, 'copy'));
    assert.is(again.code, 1, 'a backup into a folder that holds anything is refused');
  } finally {
    writer.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test("restore: refuses another process's backup and an occupied folder; forced, moves it aside and numbers requests past it", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-restore-'));
  try {
    const cfg = await deployment(dir);
    const admin = loadConfig(cfg.admin);
    const store = PartyStore.open(admin.dataDir);
    await store.commit(() => store.meta.put('seq', 1_000));
    await store.close();
    assert.is((await valmove('backup', '--config', cfg.admin, '--to', join(dir, 'copy'))).code, 0);
    // Since the copy, the party sent many requests: its live store counts far past the copy and the clock.
    const live = PartyStore.open(admin.dataDir);
    const reached = Date.now() + 5 * RESTORE_SEQ_GAP;
    await live.commit(() => live.meta.put('seq', reached));
    await live.close();

    let other: unknown;
    await restoreParty(loadConfig(cfg.server), join(dir, 'copy')).catch((e) => (other = e));
    assert.match(String(other), /backup of admin-sam admin-sam, not of server server/);
    const risky = await valmove('restore', '--config', cfg.admin, '--from', join(dir, 'copy'), '--force');
    assert.is(risky.code, 1, 'an older admin SAM is restored only with --accept-risk');
    assert.match(risky.stderr, /can duplicate or create value/);
    let occupied: unknown;
    await restoreParty(admin, join(dir, 'copy'), { acceptRisk: true }).catch((e) => (occupied = e));
    assert.match(String(occupied), /exists and is not empty; restore over it with --force/);
    await restoreParty(admin, join(dir, 'copy'), { force: true, acceptRisk: true }).then((r) => {
      assert.is(r.movedAside.length, 1);
      assert.ok(existsSync(join(r.movedAside[0]!, 'data.mdb')), 'the replaced store is kept, not deleted');
    });
    const restored = PartyStore.open(admin.dataDir);
    const seq = restored.meta.get('seq') as number;
    await restored.close();
    assert.ok(seq > reached, `the restored party numbers its requests past any it used (${seq} > ${reached})`);
    assert.ok(readdirSync(join(dir, 'data')).some((n) => n.startsWith('admin-sam-replaced-')));
    let refused: unknown;
    await restoreParty(admin, join(dir, 'nowhere')).catch((e) => (refused = e));
    assert.instance(refused, BackupError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
