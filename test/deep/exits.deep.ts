/**
 * docs/cli.md's exit-code cells that need seconds of real work (issue 21):
 * `sim`, `bench`, `attack` and `inspect` exit 0 when done and 1 when they
 * fail or are refused, each as a real process of bin/valmove.js. The quick
 * rows of the table are test/cli/exits.test.ts.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type CliRun, runValmove } from '../helpers/cli.ts';

const t = suite('exit codes of the long commands (docs/cli.md)');
const show = (r: CliRun) => `exit ${r.code}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-2000)}`;
let dir: string;

t.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'valmove-exits-'));
});
t.after(() => rmSync(dir, { recursive: true, force: true }));

t('sim: 0 when every seed holds, 1 when one breaks an invariant (the reason on stderr)', async () => {
  const ok = await runValmove(['sim', '--seeds', '2', '--migrations', '1', '--jobs', '1']);
  assert.is(ok.code, 0, show(ok));
  assert.match(ok.stdout, /violations 0/);
  const broken = await runValmove(['sim', '--seeds', '1', '--migrations', '1', '--jobs', '1', '--break', 'activate-before-commit', '--no-shrink']);
  assert.is(broken.code, 1, show(broken));
  assert.match(broken.stderr, /VIOLATION commit-point/);
});

t('bench: 0 with its JSON written, 1 when --out can not take it (checked before measuring)', async () => {
  const out = join(dir, 'bench');
  const args = ['bench', '--mode', 'embedded', '--concurrency', '1', '--items', '1', '--migrations', '1'];
  const ok = await runValmove([...args, '--out', out], { timeoutMs: 120_000 });
  assert.is(ok.code, 0, show(ok));
  assert.is(readdirSync(out).filter((f) => f.endsWith('.json')).length, 1, 'one JSON result');
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  const refused = await runValmove([...args, '--out', file]);
  assert.is(refused.code, 1, show(refused));
  assert.match(refused.stderr, /--out .*a-file: the JSON result can not be written there/);
  assert.not.match(refused.stdout, /mig\/s/, 'nothing was measured');
});

t('attack: 0 when the legitimate migrations complete under a small flood, 1 on a folder that holds a deployment', async () => {
  const d = join(dir, 'attack');
  const small = ['attack', '--idle', '10', '--hellos', '10', '--requests', '10', '--migrations', '1', '--addresses', '1', '--providers', '1'];
  const ok = await runValmove([...small, '--dir', d], { timeoutMs: 180_000 });
  assert.is(ok.code, 0, show(ok));
  assert.match(ok.stdout, /legitimate migrations: .*completed/);
  const again = await runValmove([...small, '--dir', d]);
  assert.is(again.code, 1, show(again));
  assert.match(again.stderr, /already holds a deployment: trust\.json, keys\//);
});

/** `valmove inspect` as a process: resolves with its exit code once it printed its address and was sent SIGTERM. */
function inspectUntilTerm(port: number): Promise<CliRun> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['bin/valmove.js', 'inspect', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const r = { stdout: '', stderr: '' };
    let termed = false; // one SIGTERM: a second one during the shutdown is the default kill
    const stop = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.stdout.on('data', (c) => {
      r.stdout += String(c);
      if (!termed && /open http:\/\//.test(r.stdout)) {
        termed = true;
        p.kill('SIGTERM');
      }
    });
    p.stderr.on('data', (c) => {
      r.stderr += String(c);
    });
    p.on('exit', (code, signal) => {
      clearTimeout(stop);
      resolve({ code: code ?? -1, stdout: r.stdout, stderr: `${r.stderr}${signal ? `(killed by ${signal})` : ''}` });
    });
  });
}

t('inspect: 0 when stopped by SIGTERM after serving, 1 when its port is taken', async () => {
  const ok = await inspectUntilTerm(0);
  assert.is(ok.code, 0, show(ok));
  const taken: Server = createServer();
  await new Promise<void>((res) => taken.listen(0, '127.0.0.1', res));
  const port = (taken.address() as { port: number }).port;
  try {
    const refused = await inspectUntilTerm(port);
    assert.is(refused.code, 1, show(refused));
    assert.match(refused.stderr, /EADDRINUSE/);
  } finally {
    await new Promise((res) => taken.close(res));
  }
});

t.run();
