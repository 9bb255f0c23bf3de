/**
 * `valmove keygen rotate|retire` (src/deploy/rotate.ts; docs/deploying.md,
 * "Rotating an identity key"): what each writes into a deployment keygen
 * wrote, what it refuses (changing nothing), and, over the real process
 * wiring (`startProcess` on loopback WebSockets, LMDB in temp folders), a
 * rotated server linking to peers that accept either key, then refused with
 * its old key once that key is retired. The admin SAM's rotation with a
 * migration in flight runs over real processes in test/deep/rotation.deep.ts.
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ChannelInitiator,
  ChannelResponder,
  createIssueOrder,
  generateIdentity,
  issueGrant,
  issueVoucher,
  openFromPair,
  openGrant,
  openIssueOrder,
  ownBoxKeys,
  ownSignKeys,
  randomSecret,
  sealForPair,
  seededRng,
  utf8,
  verifyGrant,
  verifyIssueOrder,
  verifyVoucher,
  type Bytes,
  type Identity,
} from '../../src/crypto/index.ts';
import { loadConfig } from '../../src/deploy/config.ts';
import { generateDeployment } from '../../src/deploy/keygen.ts';
import { identityOf, readKeyFile } from '../../src/deploy/keyfiles.ts';
import { startProcess, type RunningProcess } from '../../src/deploy/process.ts';
import { retireIdentity, rotateIdentity } from '../../src/deploy/rotate.ts';
import { codeOf } from '../crypto/helpers.ts';

const NOW = new Date('2026-12-05T00:00:00.000Z');
const rng = seededRng('rotation-tests');

/** A file of the deployment as JSON (the tests read the fields they check). */
const read = (dir: string, file: string) => JSON.parse(readFileSync(join(dir, file), 'utf8'));

/** Every file under dir with its bytes: a refusal must leave them all as they were. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.set(relative(dir, p), readFileSync(p, 'base64'));
    }
  };
  walk(dir);
  return files;
}

async function withDeployment(fn: (dir: string) => Promise<void> | void, embeddedAdminSam = false): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-rotation-'));
  try {
    await generateDeployment({
      dir,
      providers: ['emoney', 'transit'],
      chips: ['SRC', 'DST'],
      terminals: [
        { name: 'old', chip: 'SRC' },
        { name: 'new', chip: 'DST' },
      ],
      basePort: 0,
      embeddedAdminSam,
      rights: { transit: ['upload'] },
      rng,
    });
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every config of the deployment still loads (the schema takes the one-key form and the list). */
function allLoad(dir: string): void {
  for (const f of readdirSync(join(dir, 'config'))) loadConfig(join(dir, 'config', f));
}

test('rotate admin-sam: the server and every provider trust both keys, trust.json names both, the key file keeps the old identity; retire: the new key only', () =>
  withDeployment((dir) => {
    const old = read(dir, 'keys/admin-sam.key.json').identity;
    const r = rotateIdentity(dir, 'admin-sam', { rng, now: NOW });
    const keys = read(dir, 'keys/admin-sam.key.json');
    assert.is.not(keys.identity.signPublic, old.signPublic, 'a new identity');
    assert.equal(keys.previousIdentity, { ...old, replacedAt: NOW.toISOString() });
    assert.is(keys.issuerMaster, read(dir, 'keys/admin-sam.key.json').issuerMaster, 'the issuer master stays');
    const both = [old.signPublic, keys.identity.signPublic];
    assert.equal(read(dir, 'config/server.json').adminSam.signPublic, both);
    for (const p of ['emoney', 'transit']) assert.equal(read(dir, `config/provider-${p}.json`).adminSamSignPublic, both);
    const trust = read(dir, 'trust.json');
    assert.is(trust.keys['admin-sam'].signPublic, keys.identity.signPublic);
    assert.is(trust.keys['admin-sam'].previous.signPublic, old.signPublic);
    assert.equal(r.peers, ['provider-emoney', 'provider-transit', 'server']);
    allLoad(dir);
    assert.is(statSync(join(dir, 'keys/admin-sam.key.json')).mode & 0o777, 0o600, 'the key file stays 0600');

    retireIdentity(dir, 'admin-sam');
    assert.is(read(dir, 'keys/admin-sam.key.json').previousIdentity, undefined, 'the old secret is gone');
    assert.is(read(dir, 'config/server.json').adminSam.signPublic, keys.identity.signPublic, 'one key again, in the one-key form');
    for (const p of ['emoney', 'transit']) assert.is(read(dir, `config/provider-${p}.json`).adminSamSignPublic, keys.identity.signPublic);
    assert.is(read(dir, 'trust.json').keys['admin-sam'].previous, undefined);
    assert.not.ok(JSON.stringify(snapshot(dir)).includes(old.signSecret), 'nothing keeps the old secret');
    allLoad(dir);
  }));

test("rotate server: the admin SAM's trusted servers, each provider's servers (same rights), each terminal's server key and trust.json hold both; retire: the new only", () =>
  withDeployment((dir) => {
    const old = read(dir, 'keys/server.key.json').identity.signPublic as string;
    rotateIdentity(dir, 'server', { rng, now: NOW });
    const neu = read(dir, 'keys/server.key.json').identity.signPublic as string;
    assert.equal(read(dir, 'config/admin-sam.json').trustedServers, [old, neu]);
    assert.equal(read(dir, 'config/provider-transit.json').servers, { [old]: ['upload'], [neu]: ['upload'] }, 'the rights the old key had');
    assert.equal(read(dir, 'config/provider-emoney.json').servers, { [old]: ['upload', 'download', 'clear'], [neu]: ['upload', 'download', 'clear'] });
    for (const t of ['old', 'new']) assert.equal(read(dir, `config/terminal-${t}.json`).server.signPublic, [old, neu]);
    const trust = read(dir, 'trust.json');
    assert.equal(trust.trust['admin-sam'].obeys, [old, neu]);
    assert.equal(Object.keys(trust.trust['provider-emoney'].servers), [old, neu]);
    allLoad(dir);

    retireIdentity(dir, 'server');
    assert.equal(read(dir, 'config/admin-sam.json').trustedServers, [neu]);
    assert.equal(read(dir, 'config/provider-transit.json').servers, { [neu]: ['upload'] });
    for (const t of ['old', 'new']) assert.is(read(dir, `config/terminal-${t}.json`).server.signPublic, neu);
    assert.equal(read(dir, 'trust.json').trust['admin-sam'].obeys, [neu]);
    assert.not.ok(JSON.stringify(read(dir, 'trust.json')).includes(old), 'trust.json no longer names the old key');
    allLoad(dir);
  }));

test('an embedded admin SAM: its rotation reaches the providers (the server reads its key file)', () =>
  withDeployment((dir) => {
    const old = read(dir, 'keys/admin-sam.key.json').identity.signPublic;
    const r = rotateIdentity(dir, 'admin-sam', { rng, now: NOW });
    assert.equal(r.peers, ['provider-emoney', 'provider-transit']);
    assert.equal(read(dir, 'config/provider-emoney.json').adminSamSignPublic, [old, r.signPublic]);
    allLoad(dir);
  }, true));

test('rotate migration-sam/<p>: the server dials either key, the admin SAM takes receipts from either and seals to the old box key; the key file keeps the old identity; retire: the new keys only', () =>
  withDeployment((dir) => {
    const keyFile = 'keys/provider-emoney.key.json';
    const before = read(dir, keyFile);
    const old = before.migration;
    const r = rotateIdentity(dir, 'migration-sam/emoney', { rng, now: NOW });
    assert.equal(r.peers, ['admin-sam', 'server']);
    assert.is(r.process, 'provider-emoney', "the SAM's process, restarted after its peers");
    const after = read(dir, keyFile);
    assert.equal(after.previousMigration, { ...old, replacedAt: NOW.toISOString() });
    assert.equal(after.migration.signPublic, r.signPublic);
    assert.equal(after.normal, before.normal, "the provider's other SAM keeps its key");
    assert.equal(read(dir, 'config/server.json').migrationSams.emoney.signPublic, [old.signPublic, r.signPublic]);
    assert.equal(read(dir, 'config/admin-sam.json').migrationSams['migration-sam/emoney'], {
      signPublic: [old.signPublic, r.signPublic],
      boxPublic: old.boxPublic,
    });
    assert.equal(
      read(dir, 'config/admin-sam.json').migrationSams['migration-sam/transit'].signPublic,
      read(dir, 'keys/provider-transit.key.json').migration.signPublic,
    );
    assert.equal(read(dir, 'trust.json').keys['migration-sam/emoney'].previous.signPublic, old.signPublic);
    allLoad(dir);

    retireIdentity(dir, 'migration-sam/emoney');
    assert.equal(read(dir, keyFile).previousMigration, undefined);
    assert.equal(read(dir, 'config/server.json').migrationSams.emoney.signPublic, r.signPublic);
    assert.equal(read(dir, 'config/admin-sam.json').migrationSams['migration-sam/emoney'], { signPublic: r.signPublic, boxPublic: after.migration.boxPublic });
    assert.equal(read(dir, 'trust.json').keys['migration-sam/emoney'].previous, undefined);
    allLoad(dir);
  }));

test('rotate migration-sam/<p> with an embedded admin SAM: the server config holds both places', () =>
  withDeployment((dir) => {
    const old = read(dir, 'keys/provider-emoney.key.json').migration;
    const r = rotateIdentity(dir, 'migration-sam/emoney', { rng, now: NOW });
    assert.equal(r.peers, ['server']);
    const server = read(dir, 'config/server.json');
    assert.equal(server.migrationSams.emoney.signPublic, [old.signPublic, r.signPublic]);
    assert.equal(server.adminSam.migrationSams['migration-sam/emoney'], { signPublic: [old.signPublic, r.signPublic], boxPublic: old.boxPublic });
    allLoad(dir);
  }, true));

test('rotate normal-sam/<p>: every terminal dials either key; retire: the new only', () =>
  withDeployment((dir) => {
    const old = read(dir, 'keys/provider-transit.key.json').normal;
    const r = rotateIdentity(dir, 'normal-sam/transit', { rng, now: NOW });
    assert.equal(r.peers, ['terminal-new', 'terminal-old']);
    assert.equal(read(dir, 'keys/provider-transit.key.json').previousNormal.signPublic, old.signPublic);
    for (const t of ['new', 'old']) {
      const cfg = read(dir, `config/terminal-${t}.json`);
      assert.equal(cfg.normalSams.transit.signPublic, [old.signPublic, r.signPublic]);
      assert.equal(typeof cfg.normalSams.emoney.signPublic, 'string', "another provider's normal SAM is untouched");
    }
    allLoad(dir);
    refusedIn(dir, () => rotateIdentity(dir, 'normal-sam/transit', { rng, now: NOW }), /normal-sam\/transit is in a rotation window already/);
    retireIdentity(dir, 'normal-sam/transit');
    assert.equal(read(dir, 'config/terminal-old.json').normalSams.transit.signPublic, r.signPublic);
    assert.equal(read(dir, 'keys/provider-transit.key.json').previousNormal, undefined);
    allLoad(dir);
  }));

/** A provider's SAMs as its process starts them from its key file (process.ts): each with its previous identity in a window. */
function providerSams(dir: string): { normal: Identity; migration: Identity } {
  const keys = readKeyFile(join(dir, 'keys/provider-emoney.key.json'), 'provider');
  return { normal: identityOf(keys.normal, undefined, keys.previousNormal), migration: identityOf(keys.migration, undefined, keys.previousMigration) };
}

test('a rotated SAM opens and verifies with its previous identity what was sealed or signed to the old one; once retired, refused', () =>
  withDeployment((dir) => {
    const before = providerSams(dir);
    const binding = { mig: 'm1', item: 0, area: 'emoney', serial: 'DST', purpose: 'download' as const, provider: 'emoney', recipient: 'msam', expiresAt: 10 };
    // Made before the rotation: a grant sealed to the migration SAM's box key, an issue order and a voucher signed by
    // the SAMs, a main key sealed under the pair key of both.
    const grant = issueGrant(binding, randomSecret(rng), before.migration.boxPublic, generateIdentity(rng), rng);
    const order = createIssueOrder({ provider: 'emoney', serial: 'DST', area: 'gift', expiresAt: 10, item: utf8('item') }, before.migration, rng);
    const voucher = issueVoucher({ provider: 'emoney', serial: 'DST', area: 'emoney', amount: 5, expiresAt: 10 }, before.normal, rng);
    const box = sealForPair(before.normal, before.migration.boxPublic, utf8('main key'), 'info', utf8('aad'), rng);

    rotateIdentity(dir, 'migration-sam/emoney', { rng, now: NOW });
    rotateIdentity(dir, 'normal-sam/emoney', { rng, now: NOW });
    const win = providerSams(dir);
    assert.is.not(win.migration.signPublic, before.migration.signPublic);
    assert.ok(openGrant(grant, win.migration), 'a grant sealed to the old box key');
    assert.is(openIssueOrder(verifyIssueOrder(order, ownSignKeys(win.migration)), win.migration).length, 4, 'an old-key order');
    assert.is(verifyVoucher(voucher, ownSignKeys(win.normal)).amount, 5, 'an old-key voucher');
    assert.is(openFromPair(win.migration, ownBoxKeys(win.normal), box, 'info', utf8('aad')).length, 8, 'a main key under the old pair key');
    const fresh = sealForPair(win.normal, win.migration.boxPublic, utf8('main key'), 'info', utf8('aad'), rng);
    assert.is(openFromPair(win.migration, ownBoxKeys(win.normal), fresh, 'info', utf8('aad')).length, 8, 'and under the new one');

    retireIdentity(dir, 'migration-sam/emoney');
    retireIdentity(dir, 'normal-sam/emoney');
    const after = providerSams(dir);
    assert.is(after.migration.previous, undefined);
    assert.is(
      codeOf(() => openGrant(grant, after.migration)),
      'GRANT_INVALID',
    );
    assert.is(
      codeOf(() => verifyIssueOrder(order, ownSignKeys(after.migration))),
      'AUTH_FAILED',
    );
    assert.is(
      codeOf(() => openIssueOrder(order, after.migration)),
      'SEAL_INVALID',
    );
    assert.is(
      codeOf(() => verifyVoucher(voucher, ownSignKeys(after.normal))),
      'AUTH_FAILED',
    );
    assert.is(
      codeOf(() => openFromPair(after.migration, ownBoxKeys(after.normal), box, 'info', utf8('aad'))),
      'SEAL_INVALID',
    );
  }));

/** `fn` throws `reason` and leaves every file and byte of the deployment as it was. */
function refusedIn(dir: string, fn: () => unknown, reason: RegExp): void {
  const before = snapshot(dir);
  assert.throws(fn, reason);
  assert.equal(snapshot(dir), before, `${reason}: every file and byte as it was`);
}

test('refused, nothing changed: a second rotate, nothing to retire, a party whose rotation is not built, no deployment, a bad config, a peer that lost the new key', () =>
  withDeployment((dir) => {
    const refused = (fn: () => unknown, reason: RegExp) => refusedIn(dir, fn, reason);
    refused(() => retireIdentity(dir, 'server'), /server has no old key to retire/);
    refused(() => rotateIdentity(dir, 'terminal/old', { rng, now: NOW }), /not built/);
    refused(() => retireIdentity(dir, 'migration-sam/emoney'), /migration-sam\/emoney has no old key to retire/);
    refused(() => rotateIdentity(dir, 'normal-sam/nobody', { rng, now: NOW }), /holds no deployment with normal-sam\/nobody/);
    refused(() => rotateIdentity(join(dir, 'nowhere'), 'server', { rng, now: NOW }), /holds no deployment with server/);
    const provider = read(dir, 'config/provider-emoney.json');
    writeFileSync(join(dir, 'config/provider-emoney.json'), JSON.stringify({ ...provider, adminSamSignPublic: 'short' }));
    refused(() => rotateIdentity(dir, 'admin-sam', { rng, now: NOW }), /config\/provider-emoney\.json is not a valid config \(adminSamSignPublic\)/);
    writeFileSync(join(dir, 'config/provider-emoney.json'), JSON.stringify(provider));

    const out = rotateIdentity(dir, 'admin-sam', { rng, now: NOW });
    refused(() => rotateIdentity(dir, 'admin-sam', { rng, now: NOW }), /in a rotation window already \(since 2026-12-05T00:00:00.000Z\)/);
    // A provider's config put back as it was before the rotation (the old key only): retiring would leave it no key.
    writeFileSync(join(dir, 'config/provider-emoney.json'), JSON.stringify(provider));
    refused(() => retireIdentity(dir, 'admin-sam'), /config\/provider-emoney\.json trusts only the old key at adminSamSignPublic/);
    // Nothing the commands say carries a secret.
    const secrets = [read(dir, 'keys/admin-sam.key.json').identity.signSecret, read(dir, 'keys/admin-sam.key.json').previousIdentity.signSecret];
    for (const s of secrets) assert.not.ok(JSON.stringify(out).includes(s));
  }));

/** A channel handshake against a responder holding `responder`, by an initiator configured with `keys`: its error code, or 'NO ERROR'. */
function handshake(responder: ReturnType<typeof generateIdentity>, keys: Bytes | Bytes[]): string {
  const client = generateIdentity(rng);
  const r = new ChannelResponder({ name: 'admin-sam', identity: responder, trust: () => true, requireMutual: true, rng });
  return codeOf(() => {
    const i = new ChannelInitiator({ name: 'server', identity: client, peerSignPublic: keys, rng });
    i.accept(JSON.parse(JSON.stringify(r.hello(i.hello()))));
  });
}

test('the channel initiator accepts any configured key of its peer, and only those; a grant verifies against any trusted admin SAM key', () => {
  const [old, neu] = [generateIdentity(rng), generateIdentity(rng)];
  assert.is(handshake(old, [old.signPublic, neu.signPublic]), 'NO ERROR');
  assert.is(handshake(neu, [old.signPublic, neu.signPublic]), 'NO ERROR');
  assert.is(handshake(old, [neu.signPublic]), 'UNTRUSTED_PEER', 'after retire: the old key is refused');
  assert.is(handshake(old, neu.signPublic), 'UNTRUSTED_PEER');
  assert.is(handshake(old, []), 'BAD_KEY');

  const msam = generateIdentity(rng);
  const binding = { mig: 'm1', item: 0, area: 'emoney', serial: 'DST', purpose: 'download' as const, provider: 'emoney', recipient: 'msam', expiresAt: 10 };
  const grant = issueGrant(binding, randomSecret(rng), msam.boxPublic, old, rng);
  assert.is(verifyGrant(grant, [old.signPublic, neu.signPublic], {}, 0).mig, 'm1', 'a grant signed before the rotation');
  assert.is(
    codeOf(() => verifyGrant(grant, [neu.signPublic], {}, 0)),
    'GRANT_INVALID',
    'after retire',
  );
  assert.is(
    codeOf(() => verifyGrant(grant, [old.signPublic, neu.signPublic], {}, 11)),
    'GRANT_EXPIRED',
    'valid until its expiry only',
  );
});

/** Starts a process of the deployment in this process on its config file, its log lines kept in `lines`. */
async function start(dir: string, file: string, lines: string[] = []): Promise<RunningProcess> {
  return startProcess(loadConfig(join(dir, 'config', file)), { logSink: { write: (l) => lines.push(l) } });
}

/**
 * Whether each listener (the admin SAM, the provider) has a channel with the server within `ms`: a listener attaches
 * the server's link only once the handshake passed its trust check.
 */
async function linked(listeners: RunningProcess[], ms = 5_000): Promise<boolean> {
  for (let i = 0; i < ms / 25; i++) {
    if (listeners.every((p) => p.runtimes[0]!.openLinks().includes('server'))) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

const refusals = (lines: string[]) => lines.filter((l) => l.includes('"code":"UNTRUSTED_PEER"')).length;

test('real wiring: a rotated server links to an admin SAM and a provider that trust both keys; once retired, a server with the old key is refused', () =>
  withDeployment(async (dir) => {
    const running: RunningProcess[] = [];
    const logs = { admin: [] as string[], provider: [] as string[] };
    const listeners = async () => {
      const started = [await start(dir, 'admin-sam.json', logs.admin), await start(dir, 'provider-emoney.json', logs.provider)];
      running.push(...started);
      return started;
    };
    try {
      // The old identity kept aside (retire removes it), for a server that still presents it.
      copyFileSync(join(dir, 'keys/server.key.json'), join(dir, 'keys/server-old.key.json'));
      rotateIdentity(dir, 'server', { rng, now: NOW });
      // The server of this test dials the admin SAM and the one provider it starts.
      const serverCfg = read(dir, 'config/server.json');
      const oneProvider = { ...serverCfg, migrationSams: { emoney: serverCfg.migrationSams.emoney } };
      writeFileSync(join(dir, 'config/server-new.json'), JSON.stringify(oneProvider));
      writeFileSync(join(dir, 'config/server-old.json'), JSON.stringify({ ...oneProvider, keyFile: '../keys/server-old.key.json' }));
      let peers = await listeners();
      const oldDuringWindow = await start(dir, 'server-old.json');
      running.push(oldDuringWindow);
      assert.ok(await linked(peers), 'during the window the old key is accepted');
      await oldDuringWindow.stop();
      for (const p of peers) await p.stop();
      peers = await listeners();
      const server = await start(dir, 'server-new.json');
      running.push(server);
      assert.ok(await linked(peers), 'and the new one');
      assert.is(refusals([...logs.admin, ...logs.provider]), 0);
      await server.stop();

      retireIdentity(dir, 'server');
      for (const p of peers) await p.stop();
      peers = await listeners();
      const oldServer = await start(dir, 'server-old.json');
      running.push(oldServer);
      assert.not.ok(await linked(peers, 1_500), 'once retired, the old key is refused');
      assert.ok(refusals(logs.admin) > 0, 'the admin SAM refused the old server key (UNTRUSTED_PEER)');
      assert.ok(refusals(logs.provider) > 0, 'the provider refused the old server key (UNTRUSTED_PEER)');
      await oldServer.stop();
      const again = await start(dir, 'server-new.json');
      running.push(again);
      assert.ok(await linked(peers), 'the new key is accepted');
    } finally {
      for (const p of running) await p.stop();
    }
  }));

test.run();
