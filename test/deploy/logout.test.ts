/**
 * Issue 21 on a live deployment (every party its own process): `valmove
 * terminal` commands exit 0 when done and 1 when refused, a refused
 * migration included; a user logs out and in again, and a login while
 * logged in replaces the session (what `--user` on every command needs).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { systemRng, toHex } from '../../src/crypto/index.ts';
import { launchDeployment, type LocalDeployment } from '../../src/deploy/up.ts';
import { testDeployment } from '../helpers/deployment.ts';

const RUN_TIMEOUT_MS = 120_000;
const t = suite('terminal commands: exit codes, logout and a new login');
const password = `pw-${toHex(systemRng.bytes(6))}`;
let dir: string;
let d: LocalDeployment | undefined;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** `valmove terminal <args> --config <phone's config>` as a process, the password in VALMOVE_PASSWORD. */
function terminal(phone: 'old' | 'new', args: string[], pw = password): Promise<Ran> {
  const config = join(dir, 'config', `terminal-${phone}.json`);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/valmove.js', 'terminal', ...args, '--config', config],
      { timeout: RUN_TIMEOUT_MS, env: { ...process.env, VALMOVE_PASSWORD: pw } },
      (e, stdout, stderr) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, stdout, stderr }),
    );
  });
}

const show = (r: Ran) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'valmove-logout-'));
  d = await launchDeployment(testDeployment(dir, 1, password));
});

t.after(async () => {
  if (d) await d.stop();
  rmSync(dir, { recursive: true, force: true });
});

t('a job with no user logged in is refused (1), naming the login', async () => {
  const r = await terminal('old', ['register']);
  assert.is(r.code, 1, show(r));
  assert.match(r.stderr, /refused: UNAUTHENTICATED: no user is logged in on this terminal; log in first \(valmove terminal login\)/);
});

t('login (0), login again while logged in (0: the new login replaces the session), a wrong password (1) logs out', async () => {
  const first = await terminal('old', ['login', '--user', 'alice']);
  assert.is(first.code, 0, show(first));
  assert.match(first.stdout, /logged in as alice/);
  const again = await terminal('old', ['login', '--user', 'alice']);
  assert.is(again.code, 0, show(again));
  const wrong = await terminal('old', ['login', '--user', 'alice'], 'not-the-password');
  assert.is(wrong.code, 1, show(wrong));
  assert.match(wrong.stderr, /refused: LOGIN_FAILED/);
  const after = await terminal('old', ['register']);
  assert.is(after.code, 1, `a failed login leaves no user: ${show(after)}`);
});

t('logout (0) names the user; a second logout (0) says no user was logged in; a job after it is refused (1)', async () => {
  assert.is((await terminal('old', ['login', '--user', 'alice'])).code, 0);
  const out = await terminal('old', ['logout']);
  assert.is(out.code, 0, show(out));
  assert.match(out.stdout, /logged out alice/);
  const twice = await terminal('old', ['logout']);
  assert.is(twice.code, 0, show(twice));
  assert.match(twice.stdout, /no user was logged in/);
  const job = await terminal('old', ['migrate-out']);
  assert.is(job.code, 1, show(job));
  assert.match(job.stderr, /log in first/);
});

t('a migration through the commands (0), then a migrate-out the server refuses exits 1 with the reason', async () => {
  for (const phone of ['old', 'new'] as const) {
    const r = await terminal(phone, ['register', '--user', 'alice']);
    assert.is(r.code, 0, `${phone}: ${show(r)}`);
  }
  const out = await terminal('old', ['migrate-out', '--user', 'alice', '--destination', 'DST']);
  assert.is(out.code, 0, show(out));
  assert.match(out.stdout, /: uploaded;/);
  const done = await terminal('new', ['migrate-in', '--user', 'alice']);
  assert.is(done.code, 0, show(done));
  assert.match(done.stdout, /: completed;/);
  const refused = await terminal('old', ['migrate-out', '--destination', 'DST']);
  assert.is(refused.code, 1, show(refused));
  assert.match(refused.stderr, /^refused: /m);
  const json = await terminal('old', ['migrate-out', '--destination', 'DST', '--json']);
  assert.is(json.code, 1, show(json));
  assert.ok(JSON.parse(json.stdout), '--json still prints one JSON document');
});

t('terminal status (0); a cancel the server decides (0) prints its decision', async () => {
  const st = await terminal('new', ['status']);
  assert.is(st.code, 0, show(st));
  // The new phone now holds the items: it migrates out with no destination, and its user cancels.
  const out = await terminal('new', ['migrate-out', '--user', 'alice']);
  assert.is(out.code, 0, show(out));
  const mig = /\b(m-[A-Za-z0-9_-]+): uploaded;/.exec(out.stdout)?.[1];
  assert.ok(mig, `the migration's id in: ${out.stdout}`);
  const cancel = await terminal('new', ['cancel', '--mig', mig!]);
  assert.is(cancel.code, 0, show(cancel));
  assert.match(cancel.stdout, /aborted/);
});

t.run();
