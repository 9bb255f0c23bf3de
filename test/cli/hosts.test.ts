/**
 * `valmove keygen --hosts FILE` and `--advertise`: each process binds its
 * own address and its peers dial the address the deployment file gives it,
 * never a wildcard; a file with a mistake is refused, naming it, before
 * anything is written. A migration across real network namespaces:
 * test/deep/hosts.deep.ts.
 */

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig, type ServerConfig, type TerminalConfig } from '../../src/deploy/config.ts';
import { readHostsFile } from '../../src/deploy/hosts.ts';
import { generateDeployment } from '../../src/deploy/keygen.ts';
import { runValmove } from '../helpers/cli.ts';

const PLAN = {
  providers: ['emoney'],
  chips: ['SRC', 'DST'],
  terminals: [
    { name: 'old', chip: 'SRC' },
    { name: 'new', chip: 'DST' },
  ],
};

const keygen = (args: string[]) => runValmove(['keygen', '--providers', 'emoney', ...args]);

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'valmove-hosts-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const HOSTS = {
  default: { bind: '0.0.0.0', port: 7400 },
  ca: '/etc/valmove/ca.pem',
  processes: {
    server: { address: 'carrier.example', tls: { cert: '/etc/valmove/server.pem', key: '/etc/valmove/server.key' } },
    'admin-sam': { address: '10.1.0.2' },
    'provider-emoney': { address: '10.1.0.2', port: 7401 },
    'chip-SRC': { bind: '127.0.0.1', address: '127.0.0.1' },
    'terminal-old': { address: '10.1.0.3', port: 7401 },
    'chip-DST': { address: 'fd00::4' },
    'terminal-new': { address: 'fd00::4', port: 7401 },
  },
};

test(
  'keygen --hosts: each process binds its own address, its peers dial its advertised address and port (wss:// where it serves TLS)',
  withDir(async (dir) => {
    writeFileSync(join(dir, 'hosts.json'), JSON.stringify(HOSTS));
    const r = await keygen(['--dir', join(dir, 'd'), '--hosts', join(dir, 'hosts.json')]);
    assert.is(r.code, 0, r.stderr);
    const cfg = (id: string) => loadConfig(join(dir, 'd', 'config', `${id}.json`));
    assert.equal(cfg('server').listen, { host: '0.0.0.0', port: 7400 });
    assert.equal(cfg('provider-emoney').listen, { host: '0.0.0.0', port: 7401 });
    assert.equal(cfg('chip-SRC').listen, { host: '127.0.0.1', port: 7400 });
    const server = cfg('server') as ServerConfig;
    assert.is('url' in server.adminSam && server.adminSam.url, 'ws://10.1.0.2:7400/admin-sam');
    assert.is(server.migrationSams.emoney!.url, 'ws://10.1.0.2:7401/migration-sam');
    const newPhone = cfg('terminal-new') as TerminalConfig;
    assert.is(newPhone.server.url, 'wss://carrier.example:7400/terminal', 'the server serves TLS: its peers dial wss://');
    assert.equal(server.tls, { cert: '/etc/valmove/server.pem', key: '/etc/valmove/server.key' });
    assert.is(cfg('provider-emoney').tls, undefined);
    for (const id of ['server', 'admin-sam', 'provider-emoney', 'chip-SRC', 'terminal-new'])
      assert.is(cfg(id).ca, '/etc/valmove/ca.pem', `${id} trusts the deployment CA`);
    assert.is(newPhone.chip.url, 'ws://[fd00::4]:7400/chip');
    assert.is((cfg('terminal-old') as TerminalConfig).chip.url, 'ws://127.0.0.1:7400/chip', "the old phone's chip on its local bus");
    assert.match(r.stdout, /provider-emoney\s+10\.1\.0\.2:7401/);
  }),
);

test(
  'keygen --host 0.0.0.0 alone is refused (peers can not dial a wildcard); with --advertise the URLs name that address',
  withDir(async (dir) => {
    const refused = await keygen(['--dir', join(dir, 'a'), '--host', '0.0.0.0']);
    assert.is(refused.code, 1);
    assert.match(refused.stderr, /--host 0\.0\.0\.0 binds every interface.*--advertise/);
    assert.not.ok(existsSync(join(dir, 'a')), 'nothing written');
    const ok = await keygen(['--dir', join(dir, 'b'), '--host', '0.0.0.0', '--advertise', '192.0.2.7', '--base-port', '7500']);
    assert.is(ok.code, 0, ok.stderr);
    const t = readFileSync(join(dir, 'b', 'config', 'terminal-old.json'), 'utf8');
    assert.match(t, /"url": "ws:\/\/192\.0\.2\.7:7500\/terminal"/);
    assert.match(t, /"host": "0\.0\.0\.0"/);
  }),
);

test(
  'a deployment file with a mistake is refused with what is wrong, before anything is written',
  withDir(async (dir) => {
    const cases: Array<[object, RegExp]> = [
      [{ processes: { server: { address: '0.0.0.0' } } }, /processes\.server\.address: a wildcard is a bind address/],
      [{ default: { address: '10.0.0.1' }, processes: { 'provider-emony': { address: '10.0.0.2' } } }, /names provider-emony, not in this deployment/],
      [{ processes: { server: { address: '10.0.0.1' } } }, /no address for admin-sam/],
      [{ default: { address: '10.0.0.1', port: 7400 }, processes: {} }, /server and admin-sam are both at 10\.0\.0\.1:7400/],
      [{ default: { address: '10.0.0.1' }, processes: {}, tls: true }, /\(root\): Unrecognized key/i],
    ];
    // In this process (the command's own path, as `keygen --hosts` reads and places): a CLI start per case costs seconds.
    for (const [i, [file, why]] of cases.entries()) {
      writeFileSync(join(dir, `h${i}.json`), JSON.stringify(file));
      let message = '';
      await Promise.resolve()
        .then(() => generateDeployment({ ...PLAN, dir: join(dir, `d${i}`), hosts: readHostsFile(join(dir, `h${i}.json`)) }))
        .catch((e: Error) => (message = e.message));
      assert.match(message, why, `case ${i}`);
      assert.not.ok(existsSync(join(dir, `d${i}`)), `case ${i}: nothing written`);
    }
  }),
);

test.run();
