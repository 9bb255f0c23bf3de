/**
 * An identity key's rotation over real processes (issue 21, point 6;
 * docs/deploying.md, "Rotating an identity key"): the admin SAM's key is
 * rotated with a migration in flight whose download grants it signed under
 * the old key; its peers, then it, restart on the new configs and the
 * migration completes (the migration SAMs accept the old key's grants
 * during the window). Then the old key is retired: a server on a config
 * holding only the old key, and an admin SAM still presenting the old key,
 * are refused at the channel handshake (UNTRUSTED_PEER).
 */

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { worth } from '../../src/actors/value.ts';
import type { TerminalControl } from '../../src/deploy/control.client.ts';
import { launchDeployment, spawnParty, waitHealthy, type LocalDeployment } from '../../src/deploy/up.ts';
import { runValmove } from '../helpers/cli.ts';
import { testDeployment } from '../helpers/deployment.ts';
import { checkStoredWorld } from '../helpers/storedWorld.ts';

const TIMING = { sessionMs: 2_000, retransmitMs: 100, retransmitCapMs: 1_000, retryBaseMs: 100, retryCapMs: 1_000 };
/** One provider (one item): every process more costs its start and restarts (the suite stays under a minute). */
const PROVIDERS = ['provider-emoney'];
const WAIT_ROUNDS = 400;

/** SIGTERM to one process; resolves once it exited. */
function stop(d: LocalDeployment, id: string): Promise<void> {
  const { child } = d.process(id);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    child.once('exit', () => res());
    child.kill('SIGTERM');
  });
}

/** The process stopped and started again on its config (which it reads only at start). */
async function restart(d: LocalDeployment, id: string): Promise<void> {
  await stop(d, id);
  await d.restart(id);
}

/** GET /readyz of a process: its status code and the checks failing. */
async function readyz(port: number): Promise<{ status: number; failing: string[] }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  const body = (await res.json()) as { failing?: string[] };
  return { status: res.status, failing: body.failing ?? [] };
}

async function until(what: string, ok: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < WAIT_ROUNDS; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not seen in time`);
}

const json = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

/** Ends the migration (the destination's ask, or a second one after the server's restart); the outcome must be completed. */
async function completes(t: TerminalControl, mig: string, first: { outcome: string } | undefined): Promise<void> {
  const again = async () => {
    await t.login('alice', 'pw');
    return t.migrateIn({ mig });
  };
  const done = first?.outcome === 'completed' ? first : await again();
  assert.is(done.outcome, 'completed', `${done.outcome}: ${(done as { reason?: string }).reason}`);
}

/** A process of this deployment started on another config (the same port): healthy, or the test fails. */
async function startOn(d: LocalDeployment, id: string, role: string, config: object, name: string): Promise<ChildProcess> {
  const file = join(d.dir, 'config', `${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  const child = spawnParty(role, file, join(d.dir, 'logs', `${name}.log`));
  started.push(child);
  await waitHealthy(d.process(id).port, child, name);
  return child;
}
const started: ChildProcess[] = [];
/** Processes this test froze (SIGSTOP): let go (SIGCONT) even when it fails. */
const frozen: ChildProcess[] = [];

async function waitForStep(t: TerminalControl, step: string): Promise<void> {
  await until(`step ${step}`, async () => (await t.status()).progress.some((p) => p.step === step));
}

function stopChild(child: ChildProcess): Promise<unknown> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  return exited;
}

/** Polls a log for a line matching `re`: `seen` fails the test with that line; `stop` ends the polling. */
function watchFor(log: string, re: RegExp): { seen: Promise<never>; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  const seen = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      const m = re.exec(readFileSync(log, 'utf8'));
      if (m) reject(new Error(`refused: ${m[0]}`));
    }, 100);
  });
  seen.catch(() => {});
  return { seen, stop: () => clearInterval(timer) };
}

const untrusted = (log: string, from = 0) => /"code":"UNTRUSTED_PEER"/.test(readFileSync(log, 'utf8').slice(from));

interface World {
  d: LocalDeployment;
  dir: string;
  oldKey: string;
}

/** The migration's source phase done; then the admin SAM's key rotated while its download grants wait, unused. */
async function rotateMidMigration(w: World): Promise<{ mig: string; newKey: string }> {
  const { d, dir } = w;
  const [oldPhone, newPhone] = [d.terminal('old'), d.terminal('new')];
  const out = await oldPhone.migrateOut({ destination: 'DST' });
  assert.is(out.outcome, 'uploaded');
  // The providers stop answering (SIGSTOP) before the destination's phase: the admin SAM formats the destination and
  // signs the download grants under its old key, and the server's download requests (with those grants) wait unanswered.
  for (const p of PROVIDERS) d.process(p).child.kill('SIGSTOP');
  frozen.push(...PROVIDERS.map((p) => d.process(p).child));
  await newPhone.login('alice', 'pw');
  // The destination's ask: it waits through the restarts below and may end with the server (then it is asked again).
  const finishing = newPhone.migrateIn({ mig: out.mig }).catch(() => undefined);
  await waitForStep(newPhone, 'S12');

  const rotated = await runValmove(['keygen', 'rotate', '--dir', dir, '--role', 'admin-sam']);
  assert.is(rotated.code, 0, rotated.stderr);
  const newKey = json(join(dir, 'keys', 'admin-sam.key.json')).identity.signPublic as string;
  assert.equal(json(join(dir, 'config', 'provider-emoney.json')).adminSamSignPublic, [w.oldKey, newKey]);
  // The order the docs give: the peers first (they accept either key), then the rotated party (it presents the new
  // one). The frozen providers and the server are killed (a crash: they resume from their stores), then started.
  for (const id of [...PROVIDERS, 'server']) {
    await d.kill(id);
    await d.restart(id);
  }
  const adminLogAt = readFileSync(d.process('admin-sam').log, 'utf8').length;
  await restart(d, 'admin-sam');
  // A migration SAM that refused an old-key grant says so in the server's log (the server would retry it forever).
  const refusal = watchFor(d.process('server').log, /"code":"GRANT_REFUSED"[^\n]*/);
  try {
    await completes(newPhone, out.mig, await Promise.race([finishing, refusal.seen]));
  } finally {
    refusal.stop();
  }
  const adminSince = readFileSync(d.process('admin-sam').log, 'utf8').slice(adminLogAt);
  assert.not.match(adminSince, /:S10:/, 'no new format (nor grants) after the rotation');
  assert.not.ok(untrusted(d.process('server').log), 'no peer refused a key during the window');
  return { mig: out.mig, newKey };
}

/** After retire: a server holding only the old key refuses the admin SAM; the server on the retired config refuses the old key. */
async function oldKeyRefused(w: World, newKey: string): Promise<void> {
  const { d, dir } = w;
  const retired = await runValmove(['keygen', 'retire', '--dir', dir, '--role', 'admin-sam']);
  assert.is(retired.code, 0, retired.stderr);
  const serverCfg = json(join(dir, 'config', 'server.json'));
  assert.is(serverCfg.adminSam.signPublic, newKey);

  // A server whose config holds only the old admin SAM key: the admin SAM presents its new one and is refused.
  await stop(d, 'server');
  const oldTrustCfg = { ...serverCfg, adminSam: { ...serverCfg.adminSam, signPublic: w.oldKey } };
  const oldTrust = await startOn(d, 'server', 'server', oldTrustCfg, 'server-old-key');
  const oldTrustLog = join(dir, 'logs', 'server-old-key.log');
  await until('the server holding the old key refused the admin SAM', () => untrusted(oldTrustLog));
  assert.match(readFileSync(oldTrustLog, 'utf8'), /admin-sam answered with a key that is not the one configured for it/);
  assert.equal((await readyz(d.process('server').port)).failing, ['peers'], 'no link to the admin SAM');
  await stopChild(oldTrust);

  // The server on the retired config links to the admin SAM's new key, and refuses one still presenting the old key.
  await d.restart('server');
  await until('the server linked to the admin SAM', async () => (await readyz(d.process('server').port)).status === 200);
  const serverLog = d.process('server').log;
  const serverLogAt = readFileSync(serverLog, 'utf8').length;
  await stop(d, 'admin-sam');
  const adminCfg = { ...json(join(dir, 'config', 'admin-sam.json')), keyFile: '../keys/admin-sam-old.key.json' };
  const impostor = await startOn(d, 'admin-sam', 'admin-sam', adminCfg, 'admin-sam-old-key');
  await until('the server refused the old admin SAM key', () => untrusted(serverLog, serverLogAt));
  assert.equal((await readyz(d.process('server').port)).failing, ['peers'], 'no link to the admin SAM');
  await stopChild(impostor);
}

test('admin SAM key rotated mid-migration (old-key grants in flight): the migration completes; once retired, the old key is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-rotation-'));
  const opts = testDeployment(dir, PROVIDERS.length, 'pw', { timing: TIMING });
  let d: LocalDeployment | undefined;
  try {
    d = await launchDeployment(opts);
    for (const t of [d.terminal('old'), d.terminal('new')]) {
      await t.login('alice', 'pw');
      await t.register();
    }
    // The old identity itself, kept aside (retire removes it from the key file): an admin SAM presenting it, later.
    const oldKeyFile = json(join(dir, 'keys', 'admin-sam.key.json'));
    writeFileSync(join(dir, 'keys', 'admin-sam-old.key.json'), JSON.stringify(oldKeyFile), { mode: 0o600 });
    const w: World = { d, dir, oldKey: oldKeyFile.identity.signPublic };
    const { mig, newKey } = await rotateMidMigration(w);
    await oldKeyRefused(w, newKey);

    await d.stop();
    const refs = opts.items.map((i) => i.value.ref);
    const world = await checkStoredWorld(dir, refs);
    assert.is(world.violation, null, world.violation?.message);
    assert.is(
      world.worth,
      opts.items.map((i) => worth(i.value)).reduce((a, b) => a + b),
    );
    assert.equal(world.decisions, { [mig]: 'committed' });
  } finally {
    for (const c of frozen) c.kill('SIGCONT');
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
