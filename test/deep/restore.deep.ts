/**
 * Operations over real processes (issue 21, point 6): `valmove backup` of
 * the running server mid-migration, the server stopped, `valmove restore`
 * of that older copy, the server started again: the migration completes,
 * and protocol.md §4 holds over every store read from disk (nothing
 * created, lost or spendable twice). And drain on SIGTERM: a draining
 * server refuses a new migration (DRAINING), lets the one in flight reach
 * a safe point, and exits 0.
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { worth } from '../../src/actors/value.ts';
import type { TerminalControl } from '../../src/deploy/control.client.ts';
import { launchDeployment, type LocalDeployment } from '../../src/deploy/up.ts';
import { testDeployment } from '../helpers/deployment.ts';
import { checkStoredWorld } from '../helpers/storedWorld.ts';
import { runValmove } from '../helpers/cli.ts';

const TIMING = { sessionMs: 2_000, retransmitMs: 100, retransmitCapMs: 1_000, retryBaseMs: 100, retryCapMs: 1_000 };
const STEP_WAIT_ROUNDS = 1_200;

const valmove = (...args: string[]) => runValmove(args);

async function waitForStep(t: TerminalControl, step: string): Promise<void> {
  for (let i = 0; i < STEP_WAIT_ROUNDS; i++) {
    if ((await t.status()).progress.some((p) => p.step === step)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`step ${step} not seen`);
}

/** SIGTERM to one process: its exit code once it is gone. */
function terminate(d: LocalDeployment, id: string): Promise<number | null> {
  const { child } = d.process(id);
  return new Promise((res) => {
    child.once('exit', (code) => res(code));
    child.kill('SIGTERM');
  });
}

/** The destination's first migrate-in; a failure (its server went away) is told and left to the second ask. */
function firstAsk(t: TerminalControl, mig: string): Promise<{ outcome: string } | undefined> {
  return t.migrateIn({ mig }).catch((e: Error) => {
    process.stderr.write(`first migrate-in: ${e.message}\n`);
    return undefined;
  });
}

async function launch(dir: string) {
  const opts = testDeployment(dir, 2, 'pw', { timing: TIMING });
  const d = await launchDeployment(opts);
  const refs = opts.items.map((i) => i.value.ref);
  const total = opts.items.reduce((n, i) => n + worth(i.value), 0);
  try {
    for (const t of [d.terminal('old'), d.terminal('new')]) {
      await t.login('alice', 'pw');
      await t.register();
    }
  } catch (e) {
    await d.stop();
    throw e;
  }
  return { d, refs, total, oldPhone: d.terminal('old'), newPhone: d.terminal('new') };
}

/**
 * The destination's migrate.in ends completed (asked again if the first ask ended with its server), then, every
 * process stopped, §4 holds over every store read from disk, the balances sum to what was issued, the SAMs hold
 * nothing and the one decision is committed.
 */
async function completesAndHolds(
  d: LocalDeployment,
  w: Awaited<ReturnType<typeof launch>>,
  mig: string,
  finishing: Promise<{ outcome: string } | undefined>,
): Promise<void> {
  const first = await finishing;
  const ask = () => w.newPhone.migrateIn({ mig });
  // A restarted server keeps no login: the ask that finds it so (or the terminal that saw it) logs in, asks again.
  const again = () =>
    ask().catch(async () => {
      await w.newPhone.login('alice', 'pw');
      return ask();
    });
  const done = first?.outcome === 'completed' ? first : await again();
  assert.is(done.outcome, 'completed', `${done.outcome}: ${(done as { reason?: string }).reason}`);
  await d.stop();
  const world = await checkStoredWorld(d.dir, w.refs);
  assert.is(world.violation, null, world.violation?.message);
  assert.is(world.worth, w.total, 'the spendable balances sum to what was issued');
  assert.is(world.held, 0, 'the migration SAMs hold nothing after the migration completed');
  assert.equal(world.decisions, { [mig]: 'committed' });
}

type World = Awaited<ReturnType<typeof launch>>;

/** A fresh deployment in a temp folder for `fn`; every process stopped and the folder removed after, even on failure. */
async function withDeployment(prefix: string, fn: (w: World, d: LocalDeployment) => Promise<void>, after?: (d: LocalDeployment) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let d: LocalDeployment | undefined;
  try {
    const w = await launch(dir);
    d = w.d;
    await fn(w, d);
  } finally {
    if (d) after?.(d);
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The server killed, the older copy refused without --force, restored with it, its status read from disk, restarted. */
async function restoreServer(d: LocalDeployment, copy: string, mig: string): Promise<void> {
  const serverConfig = join(d.dir, 'config', 'server.json');
  await d.kill('server');
  const unforced = await valmove('restore', '--config', serverConfig, '--from', copy);
  assert.is(unforced.code, 1, 'an existing data folder is not replaced without --force');
  assert.match(unforced.stderr, /--force/);
  const r = await valmove('restore', '--config', serverConfig, '--from', copy, '--force');
  assert.is(r.code, 0, r.stderr);
  const st = await valmove('status', '--config', serverConfig, '--json');
  const [m] = JSON.parse(st.stdout || '[]') as Array<{ mig: string; state: string }>;
  assert.is(m?.mig, mig, st.stderr);
  assert.not.match(m!.state, /completed|destinationPhase|releasingDestination/, `the restored server holds the migration as the copy had it: ${m!.state}`);
  await d.restart('server');
}

/** The hot copy, taken while the server runs (and is linked to every peer); a restore under it is refused. */
async function backupServer(d: LocalDeployment, copy: string): Promise<void> {
  const serverConfig = join(d.dir, 'config', 'server.json');
  const b = await valmove('backup', '--config', serverConfig, '--to', copy);
  assert.is(b.code, 0, b.stderr);
  assert.ok(existsSync(join(copy, 'data.mdb')), 'the copy holds the store');
  const running = await valmove('restore', '--config', serverConfig, '--from', copy, '--force');
  assert.is(running.code, 1, 'a restore under a running server is refused');
  assert.match(running.stderr, /is running/);
}

test('backup mid-upload, the source phase ends, server stopped, restored from the older copy, restarted: the migration completes, §4 holds', () =>
  withDeployment('valmove-restore-', async (w, d) => {
    const copy = join(d.dir, 'backup-server');
    const chipConfig = join(d.dir, 'config', 'chip-SRC.json');
    assert.is((await valmove('backup', '--config', chipConfig, '--to', join(d.dir, 'backup-src'))).code, 0);
    const uploading = w.oldPhone.migrateOut({ destination: 'DST' });
    await waitForStep(w.oldPhone, 'S5');
    await backupServer(d, copy);
    const out = await uploading;
    assert.is(out.outcome, 'uploaded');
    // The server's copy is older than what the chips and SAMs did since (the rest of the uploads).
    await restoreServer(d, copy, out.mig);
    await completesAndHolds(d, w, out.mig, Promise.resolve(undefined));
    // Why a chip is restored only with --accept-risk: its copy from before the migration makes every item
    // spendable on the source again, beside the destination, and the same store check says so.
    const chip = await valmove('restore', '--config', chipConfig, '--from', join(d.dir, 'backup-src'), '--force', '--accept-risk');
    assert.is(chip.code, 0, chip.stderr);
    const world = await checkStoredWorld(d.dir, w.refs);
    assert.is(world.violation?.invariant, 'no-duplication', world.violation?.message);
  }));

test('a server restored from before the destination phase, once the destination was formatted: refused WRONG_DESTINATION (a known gap), §4 holds', () =>
  withDeployment('valmove-restore-', async (w, d) => {
    const copy = join(d.dir, 'backup-server');
    const out = await w.oldPhone.migrateOut({ destination: 'DST' });
    await backupServer(d, copy);
    const finishing = firstAsk(w.newPhone, out.mig);
    await waitForStep(w.newPhone, 'S13');
    await restoreServer(d, copy, out.mig);
    await finishing;
    await w.newPhone.login('alice', 'pw');
    // The restored server checks the destination afresh and finds the areas this very migration formatted there
    // (the chip's area report names no holder): docs/deploying.md, "Restoring an older copy".
    const done = await w.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'refused');
    assert.match(String((done as { reason?: string }).reason), /WRONG_DESTINATION/);
    await d.stop();
    const world = await checkStoredWorld(d.dir, w.refs);
    assert.is(world.violation, null, world.violation?.message);
  }));

const providers = ['provider-emoney', 'provider-transit'];

test('SIGTERM drains: a new migration is refused DRAINING, the drain ends at its timeout while a request is unanswered, exit 0', () =>
  withDeployment(
    'valmove-drain-',
    async (w, d) => {
      const out = await w.oldPhone.migrateOut({ destination: 'DST' });
      const finishing = firstAsk(w.newPhone, out.mig);
      await waitForStep(w.newPhone, 'S11');
      // The providers stop answering (SIGSTOP): the server's download requests stay unanswered, so its drain can
      // reach no safe point and lasts until its timeout; a request sent meanwhile meets a draining server.
      for (const p of providers) d.process(p).child.kill('SIGSTOP');
      const exited = terminate(d, 'server');
      let code = '';
      await w.oldPhone.migrateIn({}).catch((e: { code?: string }) => (code = e.code ?? ''));
      assert.is(code, 'DRAINING', 'a draining server starts no migration phase');
      assert.is(await exited, 0, 'the server exits 0 after its drain');
      for (const p of providers) d.process(p).child.kill('SIGCONT');
      const log = readFileSync(d.process('server').log, 'utf8');
      assert.match(log, /draining: new migrations are refused/);
      assert.match(log, /drain timed out/);
      assert.match(log, /"stopped"/);
      await d.restart('server');
      await completesAndHolds(d, w, out.mig, finishing);
    },
    // Never leave a provider frozen, even when the test fails.
    (d) => {
      for (const p of providers) d.process(p).child.kill('SIGCONT');
    },
  ));

test.run();
