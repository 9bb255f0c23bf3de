/**
 * Several hosts (issue 21, point 2): each group of parties on its own
 * network address, in a network namespace this test makes (`ip netns`, a
 * veth pair per namespace to a bridge), configured by `valmove keygen
 * --hosts FILE` and started with `ip netns exec NS node bin/valmove.js start`.
 * A migration completes across four namespaces: the carrier's server, the
 * SAMs' host (admin SAM and two providers), the old phone and the new phone.
 * The carrier and the SAMs' host serve wss:// with certificates of a
 * deployment CA made here (the file's `tls` and `ca`); a phone's chip is
 * plain ws:// to its terminal.
 * Every process, namespace and link made here is removed at the end, also
 * on failure.
 *
 * In `npm run test:deep` (it starts nine processes and a network);
 * `npm test` checks keygen's placement of each process
 * (test/cli/hosts.test.ts).
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { request } from 'node:https';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig, type TerminalConfig } from '../../src/deploy/config.ts';
import { TerminalControl } from '../../src/deploy/control.client.ts';
import { signIssueOrder } from '../../src/deploy/orders.ts';
import { demoProviders, demoValue } from '../../src/fixtures/demo.ts';
import { systemRng, toHex } from '../../src/crypto/index.ts';
import { leftOver, makeNetwork, netnsUnavailable, type TestNetwork } from '../helpers/netns.ts';

const run = promisify(execFile);
const BIN = resolve('bin/valmove.js');
/** How long a party may take to answer /healthz at its address after it is started in its namespace. */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

interface Party {
  id: string;
  role: string;
  ns: string;
  address: string;
  port: number;
  child: ChildProcess;
  log: string;
  /** The deployment CA, when the process serves TLS. */
  ca?: Buffer;
}

/** A deployment CA, and a certificate from it for each address (its subjectAltName), by openssl. */
function makeCerts(dir: string, addresses: string[]): { ca: string; certs: Record<string, { cert: string; key: string }> } {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'];
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  execFileSync('openssl', ['req', '-x509', ...ec, '-subj', '/CN=valmove test CA', '-keyout', caKey, '-out', ca], { stdio: 'ignore', timeout: 30_000 });
  const certs: Record<string, { cert: string; key: string }> = {};
  for (const a of addresses) {
    const [cert, key] = [join(dir, `${a}.pem`), join(dir, `${a}.key`)];
    execFileSync(
      'openssl',
      ['req', '-x509', ...ec, '-subj', `/CN=${a}`, '-addext', `subjectAltName=IP:${a}`, '-CA', ca, '-CAkey', caKey, '-keyout', key, '-out', cert],
      {
        stdio: 'ignore',
        timeout: 30_000,
      },
    );
    certs[a] = { cert, key };
  }
  return { ca, certs };
}

/** GET a process's path over http, or https checked against the deployment CA; the status and body. */
function get(p: Party, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  if (!p.ca) {
    return fetch(`http://${p.address}:${p.port}${path}`, { headers, signal: AbortSignal.timeout(2_000) }).then(async (r) => ({
      status: r.status,
      body: await r.text(),
    }));
  }
  return new Promise((res, rej) => {
    const req = request({ host: p.address, port: p.port, path, headers, ca: p.ca, timeout: 2_000 }, (r) => {
      let body = '';
      r.on('data', (c) => (body += c));
      r.on('end', () => res({ status: r.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

/** The deployment file: which namespace (host) each process lives in, and its port there. */
function hostsFile(net: TestNetwork, tls: ReturnType<typeof makeCerts>): { file: object; nsOf: Record<string, number> } {
  const [carrier, sams, oldPhone, newPhone] = net.hosts.map((h) => h.address);
  const at = (address: string | undefined, port: number) => ({ address: address!, port, ...(tls.certs[address!] ? { tls: tls.certs[address!] } : {}) });
  return {
    file: {
      ca: tls.ca,
      processes: {
        server: at(carrier, 7400),
        'admin-sam': at(sams, 7400),
        'provider-emoney': at(sams, 7401),
        'provider-transit': at(sams, 7402),
        'chip-SRC': at(oldPhone, 7400),
        'terminal-old': at(oldPhone, 7401),
        'chip-DST': at(newPhone, 7400),
        'terminal-new': at(newPhone, 7401),
      },
    },
    nsOf: { server: 0, 'admin-sam': 1, 'provider-emoney': 1, 'provider-transit': 1, 'chip-SRC': 2, 'terminal-old': 2, 'chip-DST': 3, 'terminal-new': 3 },
  };
}

/** `ip netns exec NS node bin/valmove.js start ROLE --config FILE`, logging to its own file. */
function startIn(ns: string, role: string, config: string, log: string): ChildProcess {
  const fd = openSync(log, 'a');
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, 'start', role, '--config', config], { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  return child;
}

async function waitHealthy(p: Party): Promise<void> {
  const until = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < until) {
    if (p.child.exitCode !== null)
      throw new Error(`${p.id} in ${p.ns} exited (${p.child.exitCode}) while starting:\n${readFileSync(p.log, 'utf8').slice(-2000)}`);
    try {
      if ((await get(p, '/healthz')).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${p.id} did not answer at ${p.address}:${p.port} within ${START_TIMEOUT_MS} ms:\n${readFileSync(p.log, 'utf8').slice(-2000)}`);
}

function stop(p: Party): Promise<void> {
  return new Promise((res) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return res();
    const timer = setTimeout(() => p.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    p.child.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    p.child.kill('SIGTERM');
  });
}

const unavailable = netnsUnavailable();
if (unavailable) {
  test(`several hosts: SKIPPED, namespaces can not be made here: ${unavailable}`, () => {
    console.warn(`\n*** test/deep/hosts.deep.ts SKIPPED: ${unavailable} ***\n`);
  });
} else {
  test('keygen --hosts: parties in four network namespaces, each binding its own address, complete a migration', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'valmove-hosts-'));
    const parties: Party[] = [];
    let net: TestNetwork | undefined;
    try {
      net = makeNetwork(4);
      const tls = makeCerts(dir, [net.hosts[0]!.address, net.hosts[1]!.address]);
      const { file, nsOf } = hostsFile(net, tls);
      writeFileSync(join(dir, 'hosts.json'), JSON.stringify(file, null, 2));
      await run(process.execPath, [BIN, 'keygen', '--dir', join(dir, 'd'), '--providers', 'emoney,transit', '--hosts', join(dir, 'hosts.json')], {
        timeout: 60_000,
      });
      const cfgDir = join(dir, 'd', 'config');
      // No config points a peer at a wildcard or at loopback: each URL is the peer's own address in its namespace.
      for (const f of readdirSync(cfgDir)) {
        const text = readFileSync(join(cfgDir, f), 'utf8');
        assert.not.match(text, /wss?:\/\/(0\.0\.0\.0|127\.|localhost)/, `${f} dials a peer at an address only its own host has`);
        assert.not.match(text, /ws:\/\/[^"]*\/(terminal|admin-sam|migration-sam|normal-sam)"/, `${f}: links to the carrier and the SAMs are wss://`);
      }
      const password = `pw-${toHex(systemRng.bytes(6))}`;
      await run(process.execPath, [BIN, 'user', 'add', '--config', join(cfgDir, 'server.json'), '--user', 'alice'], {
        timeout: 60_000,
        env: { ...process.env, VALMOVE_PASSWORD: password },
      });
      mkdirSync(join(dir, 'logs'));
      const order = ['admin-sam', 'provider-emoney', 'provider-transit', 'chip-SRC', 'chip-DST', 'server', 'terminal-old', 'terminal-new'];
      for (const id of order) {
        const cfg = loadConfig(join(cfgDir, `${id}.json`));
        const host = net.hosts[nsOf[id]!]!;
        assert.is(cfg.listen.host, host.address, `${id} binds its own host's address`);
        const log = join(dir, 'logs', `${id}.log`);
        parties.push({
          ca: cfg.tls ? readFileSync(tls.ca) : undefined,
          id,
          role: cfg.role,
          ns: host.ns,
          address: host.address,
          port: cfg.listen.port,
          child: startIn(host.ns, cfg.role, join(cfgDir, `${id}.json`), log),
          log,
        });
      }
      for (const p of parties) await waitHealthy(p);
      // Each address:port is the process the deployment file put there (its role, told with its operator token).
      for (const p of parties) {
        const token = (JSON.parse(readFileSync(join(dir, 'd', 'keys', `${p.id}.key.json`), 'utf8')) as { operatorToken: string }).operatorToken;
        const h = JSON.parse((await get(p, '/healthz', { authorization: `Bearer ${token}` })).body) as { role: string };
        assert.is(h.role, p.role, `${p.id} answers at ${p.address}:${p.port} in ${p.ns}`);
      }
      await migrateAcross(cfgDir, password);
    } finally {
      await Promise.all(parties.map(stop));
      const errors = net?.remove() ?? [];
      const left = net ? leftOver(net) : [];
      rmSync(dir, { recursive: true, force: true });
      assert.equal(errors, [], 'every namespace removed');
      assert.equal(left, [], 'no namespace of this test left');
    }
  });
}

/** Issue two items to the old phone by the providers' orders, migrate them to the new phone, and check both ends. */
async function migrateAcross(cfgDir: string, password: string): Promise<void> {
  const oldPhone = TerminalControl.fromConfig(join(cfgDir, 'terminal-old.json'));
  const newPhone = TerminalControl.fromConfig(join(cfgDir, 'terminal-new.json'));
  const oldCfg = loadConfig(join(cfgDir, 'terminal-old.json'), 'terminal') as TerminalConfig;
  assert.ok(oldPhone.baseUrl.includes(oldCfg.listen.host), 'the old phone is driven at its own address');
  for (const t of [oldPhone, newPhone]) {
    await t.login('alice', password);
    await t.register();
  }
  const plan = demoProviders(2);
  const orders = plan.map(
    (p, i) =>
      signIssueOrder(join(cfgDir, `provider-${p.provider}.json`), {
        serial: 'SRC',
        area: p.provider,
        item: demoValue(p.kind, i, toHex(systemRng.bytes(16))),
        ttlHours: 1,
      }).token,
  );
  const issued = await oldPhone.issue(orders);
  assert.is(issued.outcome, 'completed', `issuance across hosts: ${issued.reason ?? ''}`);
  const before = (await oldPhone.normal('emoney', 'balance')).balance!;
  const out = await oldPhone.migrateOut({ destination: 'DST' });
  assert.is(out.outcome, 'uploaded', `source phase across hosts: ${out.reason ?? ''}`);
  const done = await newPhone.migrateIn({ mig: out.mig });
  assert.is(done.outcome, 'completed', `destination phase across hosts: ${done.reason ?? ''}`);
  assert.is((await newPhone.normal('emoney', 'balance')).balance, before, 'the value arrived whole');
  let code = '';
  await oldPhone.normal('emoney', 'pay', 1).catch((e: { code: string }) => (code = e.code));
  assert.is(code, 'AREA_LOCKED', 'the source is the locked backup');
}

test.run();
