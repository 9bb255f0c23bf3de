/**
 * `valmove deploy units` (issue 21, point 3): a systemd unit per process of
 * a deployment, each naming its user, working folder, the absolute node and
 * bin paths, its config, a restart policy, a descriptor limit and the
 * hardening options, with its data folder(s) the only place it may write;
 * every unit passes `systemd-analyze verify` with no diagnostic at all (verify
 * exits 0 on an unknown or misspelt option and only prints it, so any line it
 * prints fails here, as the seeded misspelling shows).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateDeployment } from '../../src/deploy/keygen.ts';
import { writeUnits } from '../../src/deploy/units.ts';
import { systemRng, toHex } from '../../src/crypto/index.ts';

const run = promisify(execFile);
const ANALYZE = '/usr/bin/systemd-analyze';

/** systemd-analyze verify over the files: its exit code and every line it printed. */
async function verify(files: string[]): Promise<{ code: number; lines: string[] }> {
  try {
    const r = await run(ANALYZE, ['verify', ...files], { timeout: 60_000 });
    return { code: 0, lines: `${r.stdout}${r.stderr}`.split('\n').filter(Boolean) };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, lines: `${x.stdout}${x.stderr}`.split('\n').filter(Boolean) };
  }
}

/** A unit's [Service] and [Unit] settings as key -> values. */
function settings(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (line.startsWith('#') || line.startsWith('[') || at < 0) continue;
    m.set(line.slice(0, at), [...(m.get(line.slice(0, at)) ?? []), line.slice(at + 1)]);
  }
  return m;
}

/** The user the units run as: a system user made for this test when root (removed after), else the one running it. */
function testUser(): { name: string; remove(): void } {
  if (process.getuid?.() !== 0) return { name: userInfo().username, remove() {} };
  const name = `vmunits${toHex(systemRng.bytes(3))}`;
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name], { timeout: 30_000 });
  return { name, remove: () => execFileSync('userdel', [name], { timeout: 30_000 }) };
}

if (!existsSync(ANALYZE)) {
  test(`systemd units: SKIPPED, ${ANALYZE} is not installed`, () => console.warn(`\n*** test/deploy/units.test.ts SKIPPED: no ${ANALYZE} ***\n`));
} else {
  test('deploy units: one hardened unit per process, each passing systemd-analyze verify with no diagnostic', async () => {
    // Not under /tmp or /dev/shm (the units' private /tmp and /dev would hide it): a folder in the home, shown read-only.
    const dir = mkdtempSync(join(homedir(), '.valmove-units-'));
    const user = testUser();
    try {
      // The admin SAM embedded: the server writes two data folders. Base port 1020: the first four need CAP_NET_BIND_SERVICE.
      await generateDeployment({
        dir,
        providers: ['emoney'],
        chips: ['SRC', 'DST'],
        terminals: [
          { name: 'old', chip: 'SRC' },
          { name: 'new', chip: 'DST' },
        ],
        basePort: 1020,
        embeddedAdminSam: true,
      });
      const { stdout } = await run(process.execPath, ['bin/valmove.js', 'deploy', 'units', '--dir', dir, '--user', user.name], { timeout: 60_000 });
      assert.match(stdout, /6 units written/);
      const units = readdirSync(join(dir, 'units')).sort();
      assert.equal(
        units,
        ['chip-DST', 'chip-SRC', 'provider-emoney', 'server', 'terminal-new', 'terminal-old'].map((id) => `valmove-${id}.service`),
      );
      for (const f of units) {
        const s = settings(readFileSync(join(dir, 'units', f), 'utf8'));
        const id = f.replace(/^valmove-|\.service$/g, '');
        const one = (k: string) => s.get(k)?.[0];
        assert.is(one('User'), user.name, `${f}: User=`);
        assert.is(one('WorkingDirectory'), dir);
        const [node, bin, start, role, flag, config] = one('ExecStart')!.split(' ');
        assert.is(node, process.execPath, `${f}: the absolute node`);
        assert.ok(bin?.startsWith('/') && existsSync(bin) && bin.endsWith('bin/valmove.js'), `${f}: the absolute bin, ${bin}`);
        assert.equal([start, flag, config], ['start', '--config', join(dir, 'config', `${id}.json`)]);
        assert.is(role, id.split('-')[0], `${f}: the role`);
        assert.is(one('Restart'), 'on-failure');
        assert.ok(Number(one('LimitNOFILE')) > 4_096, `${f}: LimitNOFILE above the links cap`);
        const hardening: Array<[string, string]> = [
          ['NoNewPrivileges', 'yes'],
          ['ProtectSystem', 'strict'],
          ['PrivateTmp', 'yes'],
          ['ProtectHome', 'read-only'],
        ];
        for (const [k, v] of hardening) assert.is(one(k), v, `${f}: ${k}=`);
        const rw = one('ReadWritePaths')!.split(' ');
        const want = id === 'server' ? [join(dir, 'data', 'server'), join(dir, 'data', 'admin-sam')] : [join(dir, 'data', id)];
        assert.equal(rw, want, `${f}: writes its data folder(s) only`);
        for (const p of rw) assert.ok(existsSync(p), `${p} exists before the unit starts`);
        const lowPort = ['server', 'provider-emoney', 'chip-SRC', 'chip-DST'].includes(id);
        assert.is(one('CapabilityBoundingSet'), lowPort ? 'CAP_NET_BIND_SERVICE' : '', `${f}: capabilities`);
      }
      const files = units.map((f) => join(dir, 'units', f));
      const ok = await verify(files);
      assert.equal(ok, { code: 0, lines: [] }, 'systemd-analyze verify: no diagnostic');
      // The check can fail: a misspelt option is only printed by verify (exit 0), and that fails this test's rule.
      const seeded = join(dir, 'units', 'valmove-seeded.service');
      writeFileSync(seeded, readFileSync(files[0]!, 'utf8').replace('ProtectSystem=strict', 'ProtectSytem=strict'));
      const bad = await verify([seeded]);
      assert.ok(
        bad.lines.some((l) => /Unknown key 'ProtectSytem'/.test(l)),
        bad.lines.join('\n'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
      user.remove();
    }
  });
}

test('deploy units refuses a deployment under /tmp or /dev/shm (hidden from the unit) and an unsafe user name, naming why', () => {
  const cases: Array<[Parameters<typeof writeUnits>[0], RegExp]> = [
    [{ dir: '/tmp/valmove-x', user: 'valmove' }, /private \/tmp and \/dev hide it/],
    [{ dir: '/dev/shm/valmove-x', user: 'valmove' }, /private \/tmp and \/dev hide it/],
    [{ dir: '/srv/valmove', user: 'root; rm' }, /--user root; rm: a system user name/],
  ];
  for (const [plan, why] of cases) assert.throws(() => writeUnits(plan), why);
});

test.run();
