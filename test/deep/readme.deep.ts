/**
 * Issue 21, point 1: the README's hand-driven flow works as written. The
 * block under "By hand" in README.md is taken out of the README as it is and
 * run, whole and unchanged, by bash (`set -euo pipefail`: a variable the
 * block does not define, or a command that fails, stops it) in a fresh
 * folder that stands for a checkout: `npx valmove` finds the command in its
 * node_modules/.bin, offline. Real processes on loopback: `up --keep
 * --no-migrate` leaves the old phone holding value, the provider's voucher
 * and issue order add value under its own key, the user logs in on the new
 * phone, migrates out and in, and the balance is on the new phone while the
 * old one is refused. The block's last line stops every process `up`
 * started; the test checks that each of them exited, and kills (and names)
 * any that did not. Without a password, `up` picks one and shows it on
 * stderr only, and it is the password that logs alice in; with
 * `--password-file`, the file's first line is.
 *
 * About 1-2 minutes on a loaded machine (a dozen CLI processes, nine
 * servers), so it is a deep suite, not `npm test`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UP_PIDS_FILE } from '../../src/deploy/up.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The README sentence just above the block this test runs. */
const MARKER = '`test/deep/readme.deep.ts` runs this very block';
/** A whole run may take this long before its process group is killed (a hang, not a slow machine, should hit it). */
const RUN_TIMEOUT_MS = 600_000;
/** Polls, 100 ms apart, for the processes `up` started to exit after the block's `kill` (or the test's own). */
const EXIT_POLLS_MAX = 300;

/** The first ```sh block after the marker sentence, as its lines. */
function handDrivenBlock(readme: string): string {
  const at = readme.indexOf(MARKER);
  assert.ok(at >= 0, `README.md has no sentence with "${MARKER}" above the hand-driven block`);
  const open = readme.indexOf('```sh\n', at);
  assert.ok(open >= 0, 'no ```sh block after the marker');
  const close = readme.indexOf('\n```', open + 6);
  assert.ok(close > open, 'the block is not closed');
  return readme.slice(open + 6, close + 1);
}

/** A folder that stands for a checkout: `npx valmove` resolves to this repository's bin without the network. */
function checkoutLike(): string {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-readme-'));
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  symlinkSync(join(ROOT, 'bin', 'valmove.js'), join(dir, 'node_modules', '.bin', 'valmove'));
  return dir;
}

/** The environment of a new user's shell: nothing of ours set, npm kept offline (no registry lookup can stand in for the checkout). */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false' };
  for (const k of Object.keys(env)) if (k.startsWith('VALMOVE_')) delete env[k];
  return env;
}

/** bash -c script in cwd, in its own process group (killed whole if it outlives RUN_TIMEOUT_MS). */
function runBash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn('bash', ['-c', script], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), RUN_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Waits for every pid `up` wrote to exit; kills the ones that do not, and returns them. */
async function survivors(deployDir: string, signal: NodeJS.Signals | null): Promise<number[]> {
  const file = join(deployDir, UP_PIDS_FILE);
  if (!existsSync(file)) return [];
  const pids = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  if (signal) for (const pid of pids) if (alive(pid)) process.kill(pid, signal);
  for (let i = 0; i < EXIT_POLLS_MAX && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
  const left = pids.filter(alive);
  for (const pid of left) process.kill(pid, 'SIGKILL');
  return left;
}

/** Every file under dir (logs, configs) that holds `secret`. */
function filesHolding(dir: string, secret: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = join(e.parentPath, e.name);
    if (e.isFile() && readFileSync(p).includes(secret)) out.push(p);
  }
  return out;
}

test("the README's hand-driven block, run verbatim: value issued and topped up by the provider, migrated by hand, every process stopped", async () => {
  const block = handDrivenBlock(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  const dir = checkoutLike();
  const deployDir = join(dir, 'deploy', 'mine');
  let left: number[] = [];
  try {
    // The block exactly; then the test learns the password the block chose (to look for it where it must not be).
    const script = `set -euo pipefail\n${block}printf 'readme-test-password:%s\\n' "$VALMOVE_PASSWORD"\n`;
    const r = await runBash(script, dir, userEnv());
    // Done: the block's own `kill` stopped them, so wait. Failed half-way: stop them now.
    left = await survivors(deployDir, r.code === 0 ? null : 'SIGTERM');
    const seen = `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
    assert.is(r.code, 0, `the block ran to its end\n${seen}`);
    assert.equal(left, [], `the block's last line stopped every process up started (still running: ${left.join(' ')})`);

    const out = r.stdout;
    assert.match(out, /topup on emoney: balance 5500 \(amount 500\)/, `the provider's voucher added 500 to 5000\n${seen}`);
    assert.match(out, /migration i-\S+: completed; items: emoney\n/, `the provider's issue order put its item on SRC\n${seen}`);
    const uploaded = /migration (m-\S+): uploaded; items: (.*)\n/.exec(out);
    assert.ok(uploaded, `migrate-out uploaded\n${seen}`);
    const [, mig, items] = uploaded!;
    assert.equal(items!.split(', ').sort(), ['emoney', 'emoney', 'transit'], 'the two items of up and the issued one left SRC');
    const completed = out.indexOf(`migration ${mig}: completed; items: `);
    assert.ok(completed > 0, `migrate-in completed ${mig}\n${seen}`);
    assert.match(out.slice(completed), /balance on emoney: balance 5500\n/, `the new phone holds the balance\n${seen}`);
    assert.match(r.stderr, /refused: AREA_LOCKED: /, `the old phone is the locked backup\n${seen}`);

    const password = /readme-test-password:(.+)\n/.exec(out)?.[1];
    assert.ok(password && password.length >= 8, 'the block defines a password');
    assert.not.ok(out.replace(`readme-test-password:${password}`, '').includes(password!), 'the password is not printed');
    assert.equal(filesHolding(deployDir, password!), [], 'the password is in no log, config, key file or store (only its scrypt verifier is)');
  } finally {
    left = [...left, ...(await survivors(deployDir, 'SIGTERM'))];
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(left, [], 'no process outlived the test');
});

/** `up --keep --no-migrate` with `upFlags`, then the new phone logs alice in with the password `passwordOf` finds; every process stopped after. */
async function upThenLogin(upFlags: string, prepare: (dir: string) => void, passwordOf: (up: { stdout: string; stderr: string }) => string | undefined) {
  const dir = checkoutLike();
  const deployDir = join(dir, 'deploy', 'pw');
  try {
    prepare(dir);
    const up = await runBash(`npx valmove up --providers 1 --dir deploy/pw --keep --no-migrate ${upFlags}`, dir, userEnv());
    assert.is(up.code, 0, up.stderr);
    assert.match(up.stdout, /terminal-new \(chip DST\) is fresh/);
    const password = passwordOf(up);
    assert.ok(password, `the password\n${up.stdout}\n${up.stderr}`);
    assert.not.ok(up.stdout.includes(password!), 'the password is not on stdout (a redirected report)');
    const reg = await runBash('npx valmove terminal register --config deploy/pw/config/terminal-new.json --user alice', dir, {
      ...userEnv(),
      VALMOVE_PASSWORD: password,
    });
    assert.is(reg.code, 0, reg.stderr);
    assert.match(reg.stdout, /chip DST registered to alice/);
    assert.equal(filesHolding(deployDir, password!), [], 'the password is in no file of the deployment');
  } finally {
    const left = await survivors(deployDir, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    assert.equal(left, [], 'every process stopped on SIGTERM');
  }
}

test('up --keep --no-migrate without a password: one is picked, shown on stderr only, and it logs alice in on the new phone', async () => {
  await upThenLogin(
    '',
    () => {},
    (up) => /alice's password \(generated; set VALMOVE_PASSWORD to choose it\): (\S+)\n/.exec(up.stderr)?.[1],
  );
});

test('up --password-file FILE: alice is created with its first line, which logs her in; it is never printed', async () => {
  const password = 'from a file, not from ps';
  await upThenLogin(
    '--password-file pw.txt',
    (dir) => writeFileSync(join(dir, 'pw.txt'), `${password}\nignored\n`),
    (up) => (up.stderr.includes(password) ? undefined : password),
  );
});

test.run();
