import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/deploy/config.ts';

const run = promisify(execFile);

test('valmove keygen writes key files (0600), configs that validate, and trust.json; stdout holds no secret', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-keygen-'));
  try {
    const { stdout } = await run(process.execPath, ['bin/valmove.js', 'keygen', '--dir', dir, '--providers', 'emoney,transit', '--base-port', '7600'], {
      timeout: 60_000,
    });
    assert.match(stdout, /deployment written to/);
    const keyFiles = readdirSync(join(dir, 'keys'));
    assert.ok(keyFiles.length >= 7, `key files: ${keyFiles.join(', ')}`);
    for (const f of keyFiles) {
      const path = join(dir, 'keys', f);
      assert.is(statSync(path).mode & 0o777, 0o600, `${f} is readable by its owner only`);
      const walk = (v: unknown, key = ''): void => {
        if (typeof v === 'string' && /Secret|Master|kChip|Token/.test(key)) assert.not.ok(stdout.includes(v), `${f}:${key} printed`);
        else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, k);
      };
      walk(JSON.parse(readFileSync(path, 'utf8')));
    }
    for (const f of keyFiles) {
      const k = JSON.parse(readFileSync(join(dir, 'keys', f), 'utf8')) as { operatorToken?: string };
      assert.match(k.operatorToken ?? '', /^[A-Za-z0-9_-]{32}$/, `${f} carries its own operator token`);
    }
    for (const f of readdirSync(join(dir, 'config'))) loadConfig(join(dir, 'config', f));
    const trust = JSON.parse(readFileSync(join(dir, 'trust.json'), 'utf8'));
    assert.ok(trust.trust['provider-emoney'].servers);
    assert.not.match(JSON.stringify(trust), /Secret|Master/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a config with a mistake is refused with the file and the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-cfg-'));
  try {
    const f = join(dir, 'bad.json');
    writeFileSync(f, JSON.stringify({ role: 'chip', id: 'c', dataDir: 'd', keyFile: 'k', listen: { host: 'h', port: 'eighty' }, serial: 'S' }));
    let message = '';
    try {
      loadConfig(f);
    } catch (e) {
      message = (e as Error).message;
    }
    assert.match(message, /bad\.json: listen\.port/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
