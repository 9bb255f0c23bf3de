import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runValmove } from '../helpers/cli.ts';

/** `valmove up ARGS`: its exit code and stderr. */
const up = (args: string[]) => runValmove(['up', ...args]);

test('up refuses --no-migrate without --keep, and an empty or missing --password-file, before it starts anything (exit 2)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-up-usage-'));
  try {
    const deploy = join(dir, 'deploy');
    const noKeep = await up(['--dir', deploy, '--no-migrate']);
    assert.is(noKeep.code, 2, noKeep.stderr);
    assert.match(noKeep.stderr, /--no-migrate leaves the deployment for you to drive: add --keep/);

    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '\nsecond line\n');
    const blank = await up(['--dir', deploy, '--keep', '--no-migrate', '--password-file', empty]);
    assert.is(blank.code, 2, blank.stderr);
    assert.match(blank.stderr, /--password-file .*empty\.txt: its first line is empty/);

    const missing = await up(['--dir', deploy, '--keep', '--password-file', join(dir, 'nope.txt')]);
    assert.is(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /--password-file .*nope\.txt: cannot read it \(ENOENT\)/);
    assert.not.ok(existsSync(deploy), 'no deployment was written');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
