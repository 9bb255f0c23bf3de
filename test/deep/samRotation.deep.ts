/**
 * A provider's migration SAM key rotated over real processes (issue 21,
 * point 6; docs/deploying.md, "Rotating an identity key"): two issue orders
 * are signed under the old key, with their items sealed to the old box key.
 * After `keygen rotate --role migration-sam/<p>` and the restarts (peers
 * first, then the provider), the SAM presents its new key and the first
 * order is still honoured: the SAM verifies and opens it with its previous
 * identity, opens the admin SAM's grant sealed to its old box key, and the
 * admin SAM takes its receipt under the new key. After `keygen retire` the
 * second order (signed under the old key) is refused: ORDER_REFUSED.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { systemRng, toHex } from '../../src/crypto/index.ts';
import { demoValue } from '../../src/fixtures/demo.ts';
import { signIssueOrder } from '../../src/deploy/orders.ts';
import { launchDeployment, type LocalDeployment } from '../../src/deploy/up.ts';
import { runValmove } from '../helpers/cli.ts';
import { testDeployment } from '../helpers/deployment.ts';

const TIMING = { sessionMs: 2_000, retransmitMs: 100, retransmitCapMs: 1_000, retryBaseMs: 100, retryCapMs: 1_000 };
const WAIT_ROUNDS = 400;
const ROLE = 'migration-sam/emoney';

const json = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

async function until(what: string, ok: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < WAIT_ROUNDS; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not seen in time`);
}

/** Every process whose config names `ids` stopped and started again (a restart reads the config and key file anew). */
async function restart(d: LocalDeployment, ids: string[]): Promise<void> {
  for (const id of ids) {
    await d.kill(id);
    await d.restart(id);
  }
  await until('the server linked to every peer', async () => (await fetch(`http://127.0.0.1:${d.process('server').port}/readyz`)).status === 200);
}

test('migration SAM key rotated with issue orders signed under the old key: honoured in the window, refused once retired', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-sam-rotation-'));
  let d: LocalDeployment | undefined;
  try {
    d = await launchDeployment(testDeployment(dir, 1, 'pw', { timing: TIMING }));
    const phone = d.terminal('new');
    await phone.login('alice', 'pw');
    await phone.register();
    const provider = join(dir, 'config', 'provider-emoney.json');
    const order = (area: string) =>
      signIssueOrder(provider, { serial: 'DST', area, item: demoValue('emoney', 0, toHex(systemRng.bytes(16))), ttlHours: 1 }).token;
    const [inWindow, afterRetire] = [order('emoney'), order('gift')];
    const oldKey = json(join(dir, 'keys', 'provider-emoney.key.json')).migration.signPublic as string;

    const rotated = await runValmove(['keygen', 'rotate', '--dir', dir, '--role', ROLE]);
    assert.is(rotated.code, 0, rotated.stderr);
    const newKey = json(join(dir, 'keys', 'provider-emoney.key.json')).migration.signPublic as string;
    assert.equal(json(join(dir, 'config', 'server.json')).migrationSams.emoney.signPublic, [oldKey, newKey]);
    // The peers first (they accept either key), then the provider (its SAM presents the new one, keeps the old).
    await restart(d, ['server', 'admin-sam', 'provider-emoney']);
    await phone.login('alice', 'pw');
    const issued = await phone.issue([inWindow]);
    assert.is(issued.outcome, 'completed', `an old-key order in the window: ${issued.reason ?? ''}`);
    assert.not.match(readFileSync(d.process('server').log, 'utf8'), /"code":"UNTRUSTED_PEER"/, 'the server took the new key');

    const retired = await runValmove(['keygen', 'retire', '--dir', dir, '--role', ROLE]);
    assert.is(retired.code, 0, retired.stderr);
    await restart(d, ['server', 'admin-sam', 'provider-emoney']);
    await phone.login('alice', 'pw');
    const refused = await phone.issue([afterRetire]);
    assert.is.not(refused.outcome, 'completed');
    assert.match(readFileSync(d.process('provider-emoney').log, 'utf8') + (refused.reason ?? ''), /ORDER_REFUSED/);
  } finally {
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
