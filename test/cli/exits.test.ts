import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Command } from 'commander';
import { buildCli, main } from '../../src/cli/main.ts';
import { type CliRun, runValmove } from '../helpers/cli.ts';
import { generateIdentity, systemRng } from '../../src/crypto/index.ts';
import { signOutcome, signStatement, statementDigest } from '../../src/crypto/statement.ts';
import { identityOf, readKeyFile } from '../../src/deploy/keyfiles.ts';
import { RECEIPT_FORMAT, type ReceiptFile } from '../../src/transport/receipt.schemas.ts';

/** Commands run at once (the suite shares two cores with the rest of `npm test`). */
const PROCESSES_AT_ONCE = 2;
type Ran = CliRun;

const valmove = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> => runValmove(args, { env });

/** Runs every case, PROCESSES_AT_ONCE at a time; resolves with the results in order. */
async function valmoveAll(cases: string[][]): Promise<Ran[]> {
  const results: Ran[] = new Array(cases.length);
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      results[i] = await valmove(cases[i]!);
    }
  };
  await Promise.all(Array.from({ length: PROCESSES_AT_ONCE }, worker));
  return results;
}

/**
 * main() in this process, as bin/valmove.js runs it, its output captured: for the rows that
 * walk every command (a process each would take minutes on a shared machine). The rows that
 * write or refuse to write a folder run as real processes.
 */
async function valmoveHere(args: string[]): Promise<Ran> {
  const taken = { stdout: '', stderr: '' };
  const write = { stdout: process.stdout.write, stderr: process.stderr.write };
  const capture = (into: 'stdout' | 'stderr') =>
    ((chunk: string | Uint8Array) => {
      taken[into] += String(chunk);
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture('stdout');
  process.stderr.write = capture('stderr');
  try {
    const code = await main(['node', 'valmove', ...args]);
    return { code, ...taken };
  } finally {
    process.stdout.write = write.stdout;
    process.stderr.write = write.stderr;
    process.exitCode = undefined;
  }
}

/** A loopback port nothing listens on: one a server bound and closed. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const { port } = srv.address() as { port: number };
  await new Promise((res) => srv.close(res));
  return port;
}

/**
 * Every command a user can run, as its words (`terminal migrate-out`), from the command tree itself: the leaves, and
 * a command with subcommands that also runs on its own (it has options: `keygen`, beside `keygen rotate`).
 */
function leafCommands(c: Command, path: string[] = []): string[][] {
  if (c.commands.length === 0) return [path];
  const own = path.length > 0 && c.options.length > 0 ? [path] : [];
  return [...own, ...c.commands.flatMap((sub) => leafCommands(sub, [...path, sub.name()]))];
}

/** Every file under dir with its bytes, to compare a folder before and after. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) {
        files.set(`${relative(dir, p)}/`, '');
        walk(p);
      } else files.set(relative(dir, p), readFileSync(p).toString('base64'));
    }
  };
  walk(dir);
  return files;
}

const show = (r: Ran) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

test('valmove --version and -V print the version in package.json, exit 0', async () => {
  const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
  for (const r of await valmoveAll([['--version'], ['-V']])) {
    assert.is(r.code, 0, show(r));
    assert.is(r.stdout.trim(), version);
  }
});

test('usage (2): every command, given an option it does not have, exits 2 and says what was wrong', async () => {
  const commands = leafCommands(buildCli(() => {}));
  assert.ok(commands.length >= 25, `commands: ${commands.map((c) => c.join(' ')).join(', ')}`);
  for (const c of commands) {
    const r = await valmoveHere([...c, '--no-such-option']);
    assert.is(r.code, 2, `valmove ${c.join(' ')} --no-such-option: ${show(r)}`);
    assert.match(r.stderr, /^error: /m, `valmove ${c.join(' ')}: the reason on stderr`);
  }
  const real = await valmove(['terminal', 'migrate-out', '--no-such-option']);
  assert.is(real.code, 2, `as a process too: ${show(real)}`);
});

test('usage (2): no command, an unknown command, a bad value, a missing option or argument, a bad VALMOVE_CRYPTO', async () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /Usage: valmove/],
    [['no-such-command'], /unknown command 'no-such-command'/],
    [['terminal'], /Usage: valmove terminal/],
    [['demo', '--items', '99'], /--items must be from 1 to/],
    [['up', '--providers', '0'], /--providers must be from 1 to 20/],
    [['keygen', '--dir', 'x', '--base-port', 'eighty'], /not a whole number/],
    [['keygen', '--dir', join(tmpdir(), 'valmove-never'), '--terminals', 'nochip'], /--terminals wants name:chip pairs/],
    [['keygen'], /required option '--dir <dir>'/],
    [['keygen', 'rotate', '--dir', 'x'], /required option '--role <party>'/],
    [['keygen', 'retire', '--role', 'server'], /required option '--dir <dir>'/],
    [['keygen', 'rotate', '--dir', 'x', '--role', 'nobody'], /a party as keygen names it/],
    [['start', 'nobody', '--config', 'x.json'], /unknown role "nobody"/],
    [['status'], /give --data DIR, --config server.json or --url URL/],
    // trace takes its run file as the command's argument: one it cannot read is a usage error (docs/cli.md).
    [['trace', join(tmpdir(), 'valmove-no-run.jsonl')], /no such file or folder/],
  ];
  for (const [args, reason] of cases) {
    const r = await valmoveHere(args);
    assert.is(r.code, 2, `valmove ${args.join(' ')}: ${show(r)}`);
    assert.match(r.stderr, reason);
  }
  for (const r of await valmoveAll([[], ['no-such-command']])) assert.is(r.code, 2, `as a process too: ${show(r)}`);
  assert.ok(!existsSync(join(tmpdir(), 'valmove-never')), 'a usage error writes nothing');
  const crypto = await valmove(['steps'], { VALMOVE_CRYPTO: 'rot13' });
  assert.is(crypto.code, 2, show(crypto));
});

test('refused (1): keygen twice into one folder; the second names what exists and changes no file or byte', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-exits-keygen-'));
  try {
    const first = await valmove(['keygen', '--dir', dir, '--base-port', '0']);
    assert.is(first.code, 0, show(first));
    const before = snapshot(dir);
    const second = await valmove(['keygen', '--dir', dir, '--base-port', '0']);
    assert.is(second.code, 1, show(second));
    assert.match(second.stderr, /already holds a deployment: trust\.json, keys\/ \(9 entries\), config\/ \(9 entries\)/);
    assert.match(second.stderr, /--force/);
    assert.is(second.stdout, '', 'nothing printed as written');
    assert.equal(snapshot(dir), before, 'every file and byte as the first keygen left them');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keygen rotate and retire: 0 done; 1 with no deployment, a party whose rotation is not built, a second rotate, nothing to retire', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-exits-rotate-'));
  const empty = mkdtempSync(join(tmpdir(), 'valmove-exits-empty-'));
  try {
    const refused: Array<[string[], RegExp]> = [
      [['keygen', 'rotate', '--dir', empty, '--role', 'admin-sam'], /holds no deployment with admin-sam: .*admin-sam\.key\.json is missing/],
      [['keygen', 'retire', '--dir', empty, '--role', 'server'], /holds no deployment with server/],
    ];
    for (const [args, reason] of refused) {
      const r = await valmoveHere(args);
      assert.is(r.code, 1, `valmove ${args.join(' ')}: ${show(r)}`);
      assert.match(r.stderr, reason);
    }
    assert.equal(readdirSync(empty), [], 'nothing written where there is no deployment');
    assert.is((await valmove(['keygen', '--dir', dir, '--base-port', '0'])).code, 0);
    const before = snapshot(dir);
    const cases: Array<[string[], RegExp]> = [
      [['keygen', 'retire', '--dir', dir, '--role', 'admin-sam'], /admin-sam has no old key to retire/],
      [['keygen', 'rotate', '--dir', dir, '--role', 'terminal/old'], /rotating the key of terminal\/old is not built/],
    ];
    for (const [args, reason] of cases) {
      const r = await valmoveHere(args);
      assert.is(r.code, 1, `valmove ${args.join(' ')}: ${show(r)}`);
      assert.match(r.stderr, reason);
    }
    assert.equal(snapshot(dir), before, 'a refusal changes no file or byte');
    const rotate = await valmove(['keygen', 'rotate', '--dir', dir, '--role', 'admin-sam']);
    assert.is(rotate.code, 0, show(rotate));
    assert.match(rotate.stdout, /restart its peers first \(provider-emoney, provider-tickets, provider-transit, server\), then admin-sam/);
    const rotated = snapshot(dir);
    const again = await valmove(['keygen', 'rotate', '--dir', dir, '--role', 'admin-sam']);
    assert.is(again.code, 1, show(again));
    assert.match(again.stderr, /^valmove: admin-sam is in a rotation window already \(since .*\): retire its old key first; nothing changed\n$/);
    assert.equal(snapshot(dir), rotated, 'a second rotate changes no file or byte');
    const retire = await valmoveHere(['keygen', 'retire', '--dir', dir, '--role', 'admin-sam']);
    assert.is(retire.code, 0, show(retire));
    const twice = await valmoveHere(['keygen', 'retire', '--dir', dir, '--role', 'admin-sam']);
    assert.is(twice.code, 1, show(twice));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  }
});

test('keygen --force (0) says what it replaces and leaves no stale file of the old deployment', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-exits-force-'));
  try {
    assert.is((await valmove(['keygen', '--dir', dir, '--providers', 'a,b', '--base-port', '0'])).code, 0);
    const oldKey = readFileSync(join(dir, 'keys', 'server.key.json'), 'utf8');
    mkdirSync(join(dir, 'data', 'server'), { recursive: true });
    writeFileSync(join(dir, 'data', 'server', 'data.mdb'), 'old store');
    const r = await valmove(['keygen', '--dir', dir, '--providers', 'a', '--base-port', '0', '--force']);
    assert.is(r.code, 0, show(r));
    assert.match(r.stderr, /replacing the deployment in .*: removed trust\.json, keys\/ \(8 entries\), config\/ \(8 entries\), data\/ \(1 entry\)/);
    assert.not.ok(existsSync(join(dir, 'config', 'provider-b.json')), "the removed provider's config is gone");
    assert.not.ok(existsSync(join(dir, 'keys', 'provider-b.key.json')), "the removed provider's key file is gone");
    assert.not.ok(existsSync(join(dir, 'data', 'server')), "the old server's store is gone");
    assert.is.not(readFileSync(join(dir, 'keys', 'server.key.json'), 'utf8'), oldKey, 'new identities');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('refused (1): up on a folder that holds a deployment starts nothing and changes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-exits-up-'));
  try {
    assert.is((await valmove(['keygen', '--dir', dir, '--base-port', '0'])).code, 0);
    const before = snapshot(dir);
    const r = await valmove(['up', '--dir', dir, '--providers', '1']);
    assert.is(r.code, 1, show(r));
    assert.match(r.stderr, /already holds a deployment: trust\.json, keys\/ .*--force/);
    assert.equal(snapshot(dir), before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('refused or failed (1): each with its reason on stderr', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-exits-refused-'));
  try {
    assert.is((await valmove(['keygen', '--dir', dir, '--base-port', '0'])).code, 0);
    const cfg = (p: string) => join(dir, 'config', `${p}.json`);
    const terminalCommands = leafCommands(buildCli(() => {}))
      .filter((c) => c[0] === 'terminal')
      .map((c) => c[1]!);
    const codeFile = join(dir, 'recovery-code.txt');
    writeFileSync(codeFile, 'c0de\n', { mode: 0o600 });
    const terminalArgs: Record<string, string[]> = {
      issue: ['--order', 'x'],
      cancel: ['--mig', 'm'],
      'end-backup': ['--mig', 'm'],
      recover: ['--lost', 'SRC', '--code-file', codeFile],
      balance: ['--provider', 'emoney'],
      pay: ['--provider', 'emoney', '--amount', '1'],
      topup: ['--provider', 'emoney'],
      login: ['--user', 'alice'],
    };
    const freePort = await closedPort();
    const cases: Array<[string[], RegExp]> = [
      [['start', 'server', '--config', join(dir, 'missing.json')], /missing\.json: can not read a JSON config/],
      [['user', 'add', '--config', cfg('server'), '--user', 'alice'], /no password/],
      [['user', 'unlock', '--config', cfg('server'), '--user', 'nobody'], /no user nobody/],
      [['user', 'recovery-code', '--config', cfg('server'), '--user', 'nobody'], /no user nobody/],
      [['status', '--data', dir], /holds no server store/],
      // Nothing listens on a port a closed server just gave back.
      [['status', '--url', `http://127.0.0.1:${freePort}`], /the server at http:\/\/127\.0\.0\.1:\d+ does not answer \(ECONNREFUSED\)/],
      [['provider', 'issue', '--config', cfg('server'), '--serial', 'S', '--kind', 'emoney'], /provider/],
      // The terminal is not running: every terminal command says so.
      ...terminalCommands.map((c): [string[], RegExp] => [
        ['terminal', c, '--config', cfg('terminal-old'), ...(terminalArgs[c] ?? [])],
        c === 'login' ? /no password/ : /UNREACHABLE/,
      ]),
    ];
    for (const [args, reason] of cases) {
      const r = await valmoveHere(args);
      assert.is(r.code, 1, `valmove ${args.join(' ')}: ${show(r)}`);
      assert.match(r.stderr, reason, `valmove ${args.join(' ')}: ${show(r)}`);
    }
    const real = await valmove(['user', 'unlock', '--config', cfg('server'), '--user', 'nobody']);
    assert.is(real.code, 1, `as a process too: ${show(real)}`);
    // The recovery code never on the command line: from VALMOVE_RECOVERY_CODE or --code-file; neither, or a file not read, is usage (2).
    const recover = ['terminal', 'recover', '--config', cfg('terminal-old'), '--lost', 'SRC'];
    const usage: Array<[string[], RegExp]> = [
      [recover, /the recovery code is required: VALMOVE_RECOVERY_CODE, or --code-file FILE/],
      [[...recover, '--code-file', join(dir, 'none.txt')], /--code-file .*none\.txt: cannot read it \(ENOENT\)/],
      [[...recover, '--code', 'c0de'], /unknown option '--code'/],
    ];
    for (const [args, reason] of usage) {
      const r = await valmove(args, { VALMOVE_RECOVERY_CODE: '' });
      assert.is(r.code, 2, `valmove ${args.join(' ')}: ${show(r)}`);
      assert.match(r.stderr, reason);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('done (0): user add and unlock, status, provider voucher, issue and enroll, steps, paths, charts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-exits-done-'));
  try {
    assert.is((await valmove(['keygen', '--dir', dir, '--base-port', '0'])).code, 0);
    const cfg = (p: string) => join(dir, 'config', `${p}.json`);
    // Any Ed25519 public key will do as a shop reader's: the server's, from trust.json.
    const reader = (JSON.parse(readFileSync(join(dir, 'trust.json'), 'utf8')) as { keys: { server: { signPublic: string } } }).keys.server.signPublic;
    const add = await valmove(['user', 'add', '--config', cfg('server'), '--user', 'alice'], { VALMOVE_PASSWORD: 'pw' });
    assert.is(add.code, 0, show(add));
    const cases: Array<[string[], RegExp]> = [
      [['user', 'unlock', '--config', cfg('server'), '--user', 'alice'], /user alice unlocked/],
      [['user', 'recovery-code', '--config', cfg('server'), '--user', 'alice'], /recovery code for alice .*: [0-9a-f]{20}$/m],
      [['status', '--config', cfg('server')], /no migrations/],
      [['provider', 'voucher', '--config', cfg('provider-emoney'), '--serial', 'SRC', '--amount', '5'], /./],
      [['provider', 'issue', '--config', cfg('provider-emoney'), '--serial', 'SRC', '--kind', 'emoney', '--balance', '5'], /./],
      [['steps'], /S17/],
      [['paths', '--machine', 'terminal'], /./],
      [['charts', '--machine', 'terminal'], /stateDiagram/],
      [['provider', 'enroll', '--config', cfg('provider-emoney'), '--reader', reader, '--name', 'terminal/shop'], /./],
    ];
    for (const [args, said] of cases) {
      const r = await valmoveHere(args);
      assert.is(r.code, 0, `valmove ${args.join(' ')}: ${show(r)}`);
      assert.match(r.stdout, said, `valmove ${args.join(' ')}: ${show(r)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A receipt signed with a deployment's own keys (keygen's key files), as a migration there would end: one item moved in. */
function deploymentReceipt(dir: string): ReceiptFile {
  const admin = identityOf(readKeyFile(join(dir, 'keys', 'admin-sam.key.json'), 'admin-sam').identity);
  const msam = identityOf(readKeyFile(join(dir, 'keys', 'provider-emoney.key.json'), 'provider').migration);
  const body = {
    mig: 'm-1',
    item: 0,
    provider: 'emoney',
    area: 'emoney',
    serial: 'DST',
    direction: 'in' as const,
    value: { kind: 'emoney', balance: 4500 },
    at: 1,
  };
  const statement = signStatement(body, msam);
  const items = [{ item: 0, area: 'emoney', provider: 'emoney' }];
  const digests = [{ item: 0, direction: 'in' as const, digest: statementDigest(statement) }];
  const outcome = signOutcome({ mig: 'm-1', decision: 'committed', source: 'SRC', destination: 'DST', items, statements: digests, at: 2 }, admin);
  return { format: RECEIPT_FORMAT, outcome, statements: [statement] };
}

test('receipt verify: 0 when every signature checks against trust.json; 1 a changed amount, a foreign key, not a receipt; 2 without trust keys or a file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-exits-receipt-'));
  try {
    assert.is((await valmove(['keygen', '--dir', dir, '--base-port', '0'])).code, 0);
    const trust = join(dir, 'trust.json');
    const write = (name: string, r: unknown) => {
      writeFileSync(join(dir, name), typeof r === 'string' ? r : JSON.stringify(r));
      return join(dir, name);
    };
    const good = deploymentReceipt(dir);
    const changed = structuredClone(good);
    changed.statements[0]!.value.balance = 9500;
    const foreign = structuredClone(good);
    foreign.outcome = signOutcome({ ...foreign.outcome }, generateIdentity(systemRng));
    const cases: Array<[string[], number, RegExp]> = [
      [['receipt', 'verify', write('good.json', good), '--trust', trust], 0, /receipt verified: migration m-1 completed/],
      [['receipt', 'verify', write('changed.json', changed), '--trust', trust], 1, /statement 0 .*signature of migration-sam\/emoney does not check/],
      [['receipt', 'verify', write('foreign.json', foreign), '--trust', trust], 1, /outcome: the signature of admin-sam does not check/],
      [['receipt', 'verify', write('junk.json', '{"format":1}'), '--trust', trust], 1, /the receipt is malformed at format/],
      [['receipt', 'verify', join(dir, 'good.json'), '--trust', join(dir, 'none.json')], 1, /the trust file .*none\.json could not be read: ENOENT/],
      [['receipt', 'verify', join(dir, 'good.json')], 2, /no trust file beside the receipt/],
      [['receipt', 'verify'], 2, /missing required argument/],
      [['provider', 'audit', '--config', join(dir, 'config', 'provider-emoney.json')], 1, /no migration SAM store/],
      [['provider', 'audit'], 2, /give --config/],
    ];
    for (const [args, code, said] of cases) {
      const r = await valmoveHere(args);
      assert.is(r.code, code, `valmove ${args.join(' ')}: ${show(r)}`);
      assert.match(code === 0 ? r.stdout : r.stderr, said, `valmove ${args.join(' ')}: ${show(r)}`);
    }
    const real = await valmove(['receipt', 'verify', join(dir, 'changed.json'), '--trust', trust]);
    assert.is(real.code, 1, `as a process too: ${show(real)}`);
    // Keys rotated: a receipt made before still verifies in the window (trust.json keeps the key replaced), not after retire.
    const verify = () => valmoveHere(['receipt', 'verify', join(dir, 'good.json'), '--trust', trust]);
    for (const role of ['admin-sam', 'migration-sam/emoney']) assert.is((await valmoveHere(['keygen', 'rotate', '--dir', dir, '--role', role])).code, 0);
    const inWindow = await verify();
    assert.is(inWindow.code, 0, `in the rotation window: ${show(inWindow)}`);
    for (const role of ['admin-sam', 'migration-sam/emoney']) assert.is((await valmoveHere(['keygen', 'retire', '--dir', dir, '--role', role])).code, 0);
    const retired = await verify();
    assert.is(retired.code, 1, `retired: ${show(retired)}`);
    assert.match(retired.stderr, /outcome: the signature of admin-sam does not check/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
