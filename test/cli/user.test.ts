/**
 * The operator's `valmove user` commands against a server's store: `add`
 * saves a scrypt verifier (never the password); `unlock` clears the failed
 * logins and the lockout that too many wrong passwords set (issue 8, point 4),
 * and says what it cleared; an unknown user is an error that names it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig, type ServerConfig } from '../../src/deploy/config.ts';
import { ServerRecords } from '../../src/store/server.store.ts';
import { PartyStore } from '../../src/store/party.store.ts';

const run = promisify(execFile);

test('valmove user add, then user unlock after a lockout: failures and lock cleared, the verifier kept; an unknown user is refused by name', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-user-'));
  try {
    await run(process.execPath, ['bin/valmove.js', 'keygen', '--dir', dir, '--providers', 'emoney', '--base-port', '7650'], { timeout: 60_000 });
    const config = join(dir, 'config', 'server.json');
    const password = 'correct horse battery staple';
    const added = await run(process.execPath, ['bin/valmove.js', 'user', 'add', '--config', config, '--user', 'alice'], {
      timeout: 60_000,
      env: { ...process.env, VALMOVE_PASSWORD: password },
    });
    assert.match(added.stdout, /user alice saved/);
    assert.not.ok(added.stdout.includes(password));
    const cfg = loadConfig(config, 'server') as ServerConfig;
    // What three wrong passwords leave behind (the server writes this record; test/security/users.test.ts).
    const lockedUntil = Date.now() + 60 * 60 * 1000;
    let store = PartyStore.open(cfg.dataDir);
    const verifier = new ServerRecords(store).users.get('alice')!.verifier;
    await store.commit(() => new ServerRecords(store).users.put('alice', { ...new ServerRecords(store).users.get('alice')!, failures: 7, lockedUntil }));
    await store.close();

    const unlocked = await run(process.execPath, ['bin/valmove.js', 'user', 'unlock', '--config', config, '--user', 'alice'], { timeout: 60_000 });
    assert.match(unlocked.stdout, new RegExp(`user alice unlocked \\(had 7 failed logins, locked until ${new Date(lockedUntil).toISOString()}\\)`));
    store = PartyStore.open(cfg.dataDir);
    const rec = new ServerRecords(store).users.get('alice')!;
    await store.close();
    assert.is(rec.failures, 0);
    assert.is(rec.lockedUntil, 0);
    assert.is(rec.verifier, verifier, 'the password is unchanged');

    const unknown = await run(process.execPath, ['bin/valmove.js', 'user', 'unlock', '--config', config, '--user', 'mallory'], { timeout: 60_000 }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    assert.ok(unknown, 'unlocking an unknown user fails');
    assert.ok(unknown!.code !== 0);
    assert.match(unknown!.stderr, /no user mallory in the server's store/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
