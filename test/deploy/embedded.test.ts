/**
 * Two deployment shapes beside the standard one: the admin SAM inside the
 * server's process (a demo convenience), and a terminal that asks before
 * the server is up (its request waits in the outbox and goes out when the
 * connection comes).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { systemRng } from '../../src/crypto/index.ts';
import { loadConfig } from '../../src/deploy/config.ts';
import { TerminalControl } from '../../src/deploy/control.client.ts';
import { generateDeployment } from '../../src/deploy/keygen.ts';
import { startProcess, type RunningProcess } from '../../src/deploy/process.ts';
import { testDeployment } from '../helpers/deployment.ts';
import { launchDeployment } from '../../src/deploy/up.ts';
import { PartyStore } from '../../src/store/party.store.ts';
import { newUserRecord, ServerRecords } from '../../src/store/server.store.ts';

const quiet = { logSink: { write: (l: string) => (process.env.DEBUG_EMB ? process.stderr.write(l) : true) } };

test('the admin SAM inside the server process: a migration completes across the remaining processes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-emb-'));
  const d = await launchDeployment(testDeployment(dir, 1, 'pw', { embeddedAdminSam: true }));
  try {
    assert.not.ok(
      d.processes.some((p) => p.role === 'admin-sam'),
      'no admin SAM process',
    );
    const [oldPhone, newPhone] = [d.terminal('old'), d.terminal('new')];
    for (const t of [oldPhone, newPhone]) {
      await t.login('alice', 'pw');
      await t.register();
    }
    const out = await oldPhone.migrateOut({ destination: 'DST' });
    const done = await newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a request made while the server is down waits in the outbox and is answered once the connection comes up', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-outbox-'));
  const running: RunningProcess[] = [];
  try {
    await generateDeployment({ dir, providers: ['emoney'], chips: ['SRC'], terminals: [{ name: 'old', chip: 'SRC' }], scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    const serverCfg = loadConfig(join(dir, 'config', 'server.json'));
    const store = PartyStore.open(serverCfg.dataDir);
    await store.commit(() => new ServerRecords(store).users.put('alice', newUserRecord('alice', 'pw', systemRng, { N: 2 ** 10, r: 8, p: 1 })));
    await store.close();
    running.push(await startProcess(loadConfig(join(dir, 'config', 'terminal-old.json')), quiet));
    const phone = TerminalControl.fromConfig(join(dir, 'config', 'terminal-old.json'));
    const login = phone.login('alice', 'pw');
    let settled = false;
    void login.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.not.ok(settled, 'the login waits: no server yet');
    running.push(await startProcess(serverCfg, quiet));
    assert.equal(await login, { user: 'alice' });
  } finally {
    for (const p of running.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
