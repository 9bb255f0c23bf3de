/**
 * Deployers' acceptance: every party its own OS process on loopback, its own
 * LMDB folder and keys, talking WebSocket; a 3-item migration across nine
 * processes; bad input against the live server and a live provider while a
 * migration runs beside it; untrusted and under-privileged servers refused
 * and told why. Every process started here is stopped, even on failure.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { demoProviders } from '../../src/fixtures/demo.ts';
import { backendForRole, generateIdentity, systemRng, toB64, toHex, type Identity } from '../../src/crypto/index.ts';
import { testDeployment } from '../helpers/deployment.ts';
import { launchDeployment, type LocalDeployment } from '../../src/deploy/up.ts';
import { readKeyFile, identityOf } from '../../src/deploy/keyfiles.ts';
import { probe } from '../helpers/probe.ts';

const t = suite('separate processes over WebSocket');
const plan = demoProviders(3);
const password = `pw-${toHex(systemRng.bytes(6))}`;
let dir: string;
let d: LocalDeployment | undefined;
const probeIdentity: Identity = generateIdentity(systemRng);

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'valmove-procs-'));
  d = await launchDeployment(
    // An operator's probe key that providers trust with the upload right only.
    testDeployment(dir, plan.length, password, { extraTrustedServers: { [toB64(probeIdentity.signPublic)]: ['upload'] } }),
  );
});

t.after(async () => {
  // Stop everything, even when a test failed; then make sure no process survived.
  if (d) {
    await d.stop();
    for (const p of d.processes)
      assert.is(p.child.exitCode, 0, `${p.id} shut down cleanly on SIGTERM (exit ${p.child.exitCode}, signal ${p.child.signalCode})`);
    for (const p of d.processes) {
      let alive = true;
      try {
        process.kill(p.pid, 0);
      } catch {
        alive = false;
      }
      if (alive) process.kill(p.pid, 'SIGKILL');
      assert.not.ok(alive, `${p.id} (pid ${p.pid}) was still running`);
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

t('nine processes, each with its own pid, port and LMDB folder', () => {
  const ps = d!.processes;
  assert.is(ps.length, 9);
  assert.is(new Set(ps.map((p) => p.pid)).size, 9);
  assert.is(new Set(ps.map((p) => p.port)).size, 9);
  for (const p of ps) {
    const data = join(dir, 'data', p.id);
    const mdb = p.role === 'provider' ? [join(data, 'migration-sam', 'data.mdb'), join(data, 'normal-sam', 'data.mdb')] : [join(data, 'data.mdb')];
    for (const f of mdb) assert.ok(existsSync(f), `${p.id} has its own LMDB at ${f}`);
  }
});

t('every process answers /healthz (detail only with its operator token) and serves Prometheus /metrics', async () => {
  for (const p of d!.processes) {
    const open = (await (await fetch(`http://127.0.0.1:${p.port}/healthz`)).json()) as Record<string, unknown>;
    assert.equal(open, { status: 'ok' }, `${p.id} tells a stranger only that it is up`);
    const token = (JSON.parse(readFileSync(join(dir, 'keys', `${p.id}.key.json`), 'utf8')) as { operatorToken: string }).operatorToken;
    const h = (await (await fetch(`http://127.0.0.1:${p.port}/healthz`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      status: string;
      role: string;
    };
    assert.is(h.status, 'ok');
    assert.is(h.role, p.role);
  }
  const m = await (await fetch(`http://127.0.0.1:${d!.process('server').port}/metrics`)).text();
  assert.match(m, /valmove_messages_total/);
  assert.match(m, /valmove_process_cpu_user_seconds_total/);
});

t('bad input to the live server and a live provider, while a 3-item migration runs beside it', async () => {
  const oldPhone = d!.terminal('old');
  const newPhone = d!.terminal('new');
  for (const ph of [oldPhone, newPhone]) {
    await ph.login('alice', password);
    await ph.register();
  }
  const running = oldPhone.migrateOut({ destination: 'DST' });

  const serverKey = readKeyFile(join(dir, 'keys', 'server.key.json'), 'server');
  const serverPort = d!.process('server').port;
  const base = { v: 1, from: 'terminal/probe', to: 'server' };
  const codes: string[] = [];
  const expectError = async (p: Awaited<ReturnType<typeof probe>>, what: string) => {
    const r = await p.next();
    assert.is(r.type, 'error', `${what}: ${JSON.stringify(r)}`);
    const body = r.body as { code: string; message: string };
    assert.ok(body.message.length > 10, `${what}: the error has a sentence`);
    codes.push(body.code);
  };

  // Without a channel at all: told to do the handshake.
  const bare = await probe(`ws://127.0.0.1:${serverPort}/terminal`);
  bare.send({ ...base, id: 'terminal/probe#0', type: 'login.begin', body: { user: 'alice' } });
  await expectError(bare, 'no handshake');
  bare.close();

  const s = await probe(`ws://127.0.0.1:${serverPort}/terminal`, {
    name: 'terminal/probe',
    identity: generateIdentity(systemRng),
    peerSignPublic: toB64(identityOf(serverKey.identity).signPublic),
  });
  await s.ready;
  s.send('this is not json');
  await expectError(s, 'non-JSON');
  s.send({ ...base, id: 'terminal/probe#1', type: 'give.me.money', body: {} });
  await expectError(s, 'unknown type');
  s.send({ ...base, id: 'terminal/probe#2', type: 'login.begin', body: { user: 42 } });
  await expectError(s, 'wrong field type');
  s.send({ ...base, id: 'terminal/probe#3', type: 'login.begin', body: {} });
  await expectError(s, 'missing field');
  s.send({ ...base, id: 'terminal/probe#4', type: 'login.begin', body: { user: 'x'.repeat(100_000) } });
  await expectError(s, 'oversized');
  s.send({ ...base, id: 'terminal/probe#5', type: 'migrate.out', body: {} });
  await expectError(s, 'not logged in');
  // log in for real, then ask about a migration that does not exist
  s.send({ ...base, id: 'terminal/probe#6', type: 'login.begin', body: { user: 'alice' } });
  const challenge = await s.next();
  const { scrypt } = await import('@noble/hashes/scrypt.js');
  const { fromB64 } = await import('../../src/crypto/index.ts');
  const cb = challenge.body as { salt: string; N: number; r: number; p: number };
  const proof = scrypt(new TextEncoder().encode(password), fromB64(cb.salt), { N: cb.N, r: cb.r, p: cb.p, dkLen: 32 });
  s.send({ ...base, id: 'terminal/probe#7', type: 'login.proof', body: { user: 'alice', proof: toB64(proof) } });
  assert.is((await s.next()).type, 'login.ok');
  s.send({ ...base, id: 'terminal/probe#8', type: 'migrate.cancel', body: { mig: 'm-does-not-exist' } });
  await expectError(s, 'no such migration');
  s.close();
  assert.equal(codes, ['UNAUTHENTICATED', 'BAD_JSON', 'UNKNOWN_TYPE', 'BAD_BODY', 'BAD_BODY', 'TOO_LARGE', 'UNAUTHENTICATED', 'NO_MIGRATION']);

  // The provider: as a trusted probe server with the upload right only.
  codes.length = 0;
  const provider = plan[0]!.provider;
  const providerPort = d!.process(`provider-${provider}`).port;
  const msamKey = identityOf(readKeyFile(join(dir, 'keys', `provider-${provider}.key.json`), 'provider').migration);
  const pbase = { v: 1, from: 'server/probe', to: `migration-sam/${provider}` };
  const m = await probe(`ws://127.0.0.1:${providerPort}/migration-sam`, {
    name: 'server/probe',
    identity: probeIdentity,
    peerSignPublic: toB64(msamKey.signPublic),
  });
  await m.ready;
  m.send(new Uint8Array([0xff, 0x00, 0x12]));
  await expectError(m, 'non-JSON');
  m.send({ ...pbase, id: 'server/probe#1', type: 'msam.teleport', body: {} });
  await expectError(m, 'unknown type');
  m.send({ ...pbase, id: 'server/probe#2', type: 'msam.preflight', body: { rights: 'all' } });
  await expectError(m, 'wrong field type');
  m.send({ ...pbase, id: 'server/probe#3', type: 'msam.upload', body: {} });
  await expectError(m, 'missing field');
  m.send({ ...pbase, id: 'server/probe#4', type: 'msam.preflight', body: { rights: ['upload'], pad: 'x'.repeat(100_000) } });
  await expectError(m, 'oversized');
  m.send({ ...pbase, id: 'server/probe#5', type: 'msam.preflight', body: { rights: ['upload', 'download', 'clear'] } });
  const denied = await m.next();
  assert.is((denied.body as { code: string }).code, 'RIGHT_DENIED', 'a trusted server without the right is refused');
  assert.match((denied.body as { message: string }).message, /download, clear/);
  m.send({ ...pbase, id: 'server/probe#6', type: 'msam.clear', mig: 'm-does-not-exist', item: 0, body: {} });
  await expectError(m, 'clear without the right');
  m.send({ ...pbase, id: 'server/probe#7', type: 'msam.fence', mig: 'm-does-not-exist', body: {} });
  await expectError(m, 'fence without the right');
  m.close();
  assert.equal(codes, ['BAD_JSON', 'UNKNOWN_TYPE', 'BAD_BODY', 'BAD_BODY', 'TOO_LARGE', 'RIGHT_DENIED', 'RIGHT_DENIED']);

  // An untrusted server key is refused at the handshake, and told why.
  const rogue = await probe(`ws://127.0.0.1:${providerPort}/migration-sam`, {
    name: 'server/rogue',
    identity: generateIdentity(systemRng),
    peerSignPublic: toB64(msamKey.signPublic),
  });
  let refusal = '';
  await rogue.ready.catch((e: Error) => (refusal = e.message));
  assert.match(refusal, /UNTRUSTED_PEER: .*not trusted/);
  // An anonymous one too.
  const anon = await probe(`ws://127.0.0.1:${providerPort}/migration-sam`, { name: 'server/anon', peerSignPublic: toB64(msamKey.signPublic) });
  refusal = '';
  await anon.ready.catch((e: Error) => (refusal = e.message));
  assert.match(refusal, /UNTRUSTED_PEER/);

  // The migration beside all this went on, and completes.
  const out = await running;
  assert.is(out.outcome, 'uploaded');
  const done = await newPhone.migrateIn({ mig: out.mig });
  assert.is(done.outcome, 'completed');
  for (const p of plan) {
    const r = await newPhone.normal(p.provider, 'balance');
    assert.ok(r.balance !== undefined || r.state !== undefined);
  }
  let code = '';
  await oldPhone.normal(plan[0]!.provider, 'pay', 1).catch((e: { code: string }) => (code = e.code));
  assert.is(code, 'AREA_LOCKED');
});

t('valmove terminal commands against the live deployment, as a user runs them', async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const run = promisify(execFile);
  const cfg = (name: string) => join(dir, 'config', `terminal-${name}.json`);
  const provider = plan[0]!.provider;
  const bal = await run(process.execPath, ['bin/valmove.js', 'terminal', 'balance', '--config', cfg('new'), '--provider', provider, '--json'], {
    timeout: 60_000,
  });
  const receipt = JSON.parse(bal.stdout) as { op: string; balance: number };
  assert.is(receipt.op, 'balance');
  assert.ok(receipt.balance > 0);
  const paid = await run(process.execPath, ['bin/valmove.js', 'terminal', 'pay', '--config', cfg('new'), '--provider', provider, '--amount', '5'], {
    timeout: 60_000,
  });
  assert.match(paid.stdout, new RegExp(`pay on ${provider}: balance ${receipt.balance - 5}`));
  const refused = await run(process.execPath, ['bin/valmove.js', 'terminal', 'pay', '--config', cfg('old'), '--provider', provider, '--amount', '5'], {
    timeout: 60_000,
  }).catch((e: { code: number; stderr: string }) => e);
  assert.is((refused as { code: number }).code, 1);
  assert.match((refused as { stderr: string }).stderr, /refused: AREA_LOCKED/);
  const status = await run(process.execPath, ['bin/valmove.js', 'terminal', 'status', '--config', cfg('new'), '--json'], { timeout: 60_000 });
  const st = JSON.parse(status.stdout) as { progress: Array<{ step: string }> };
  assert.ok(
    ['S9', 'S10', 'S14', 'S16', 'S17'].every((s) => st.progress.some((p) => p.step === s)),
    'the destination terminal saw S9-S17',
  );
});

t('issue 19: each process runs the crypto backend of its party (chips noble, the rest node), as /healthz says and /metrics counts', async () => {
  for (const p of d!.processes) {
    const token = (JSON.parse(readFileSync(join(dir, 'keys', `${p.id}.key.json`), 'utf8')) as { operatorToken: string }).operatorToken;
    const headers = { authorization: `Bearer ${token}` };
    const want = backendForRole(p.role).name;
    const h = (await (await fetch(`http://127.0.0.1:${p.port}/healthz`, { headers })).json()) as { crypto: string };
    assert.is(h.crypto, want, `${p.id} (${p.role}) says ${want}`);
    const m = await (await fetch(`http://127.0.0.1:${p.port}/metrics`, { headers })).text();
    const rows = [...m.matchAll(/^valmove_crypto_backend_ops_total\{party="([^"]+)",backend="([^"]+)"[^}]*\} (\d+)$/gm)];
    assert.ok(rows.length > 0, `${p.id} counted calls into its backend`);
    for (const [, party, backend, n] of rows) if (Number(n) > 0) assert.is(backend, want, `${p.id}: ${party} called ${backend}`);
  }
  assert.is(backendForRole('chip').name, process.env.VALMOVE_CRYPTO || 'noble');
});

t('no process logged a secret: logs hold no key file content and no password', () => {
  const secrets: string[] = [password];
  for (const f of ['server', 'admin-sam', ...plan.map((p) => `provider-${p.provider}`), 'chip-SRC', 'chip-DST']) {
    const k = JSON.parse(readFileSync(join(dir, 'keys', `${f}.key.json`), 'utf8')) as Record<string, unknown>;
    const walk = (v: unknown) => {
      if (typeof v === 'string' && v.length >= 32) secrets.push(v);
      else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
    };
    walk(k);
  }
  for (const p of d!.processes) {
    const log = readFileSync(p.log, 'utf8');
    assert.ok(log.length > 0, `${p.id} logged`);
    for (const s of secrets) {
      if (s.length < 32 && s !== password) continue;
      // public keys may appear; secrets (signSecret, boxSecret, masters, kChip, tokens) must not
      assert.not.ok(log.includes(s) && !isPublic(s), `${p.id}'s log holds a secret`);
    }
  }
  function isPublic(s: string): boolean {
    return readFileSync(join(dir, 'trust.json'), 'utf8').includes(s);
  }
});

t.run();
