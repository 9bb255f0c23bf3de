/**
 * Issue 16: strangers at the edges of a live deployment. Every party is its
 * own process (`valmove start`, spawned as `valmove up` does), on real
 * sockets on 127.0.0.1; the attacker holds no key of any party. Each test
 * names the attack and the refusal it expects, and reads what must not have
 * changed from the parties' own LMDB stores (opened read-side from this
 * process while the parties run), not from a log line:
 *
 *  - value minted without credentials: a top-up through the chip's port, an
 *    anonymous or unenrolled reader at a normal SAM, the phone itself without
 *    the provider's authority; a provider's voucher credits once;
 *  - names taken by claim: terminal/old at the server, at its chip, at a
 *    normal SAM, each with a key of the attacker's;
 *  - wearing a party down: a silent socket, the per-address cap, anonymous
 *    requests (the server's data.mdb and inbox unchanged);
 *  - a migration beside all of it completes, and the admin SAM holds no temp
 *    key once it settles.
 *
 * Bounded: every wait has a deadline; the deployment is stopped and its
 * folder removed after.
 *
 * In `npm run test:deep` (a deployment of real processes and four command
 * runs): `npm test` checks the same limits and refusals in one process —
 * vouchers and reader rights (test/actors/normalUse.test.ts), issue orders
 * (test/issuance.test.ts), the door's limits (test/deploy/door.test.ts,
 * test/transport/limits.test.ts), per-peer state (test/security/peers.test.ts),
 * temp keys (test/security/tempKeys.test.ts).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket from 'ws';
import { decodeValue } from '../../src/actors/value.ts';
import { demoProviders } from '../../src/fixtures/demo.ts';
import { generateIdentity, systemRng, toB64, toHex } from '../../src/crypto/index.ts';
import { loadConfig, type ChipConfig, type ServerConfig } from '../../src/deploy/config.ts';
import { identityOf, readKeyFile } from '../../src/deploy/keyfiles.ts';
import { testDeployment } from '../helpers/deployment.ts';
import { launchDeployment, type LocalDeployment } from '../../src/deploy/up.ts';
import type { RemoteError } from '../../src/protocol/errors.ts';
import { AdminSamRecords } from '../../src/store/adminSam.store.ts';
import { ChipMemory } from '../../src/store/chip.store.ts';
import { PartyStore } from '../../src/store/party.store.ts';
import { probe } from '../helpers/probe.ts';

const run = promisify(execFile);
const t = suite('edges: strangers against a live deployment (issue 16)');
const plan = demoProviders(2);
const emoney = plan[0]!.provider;
const password = `pw-${toHex(systemRng.bytes(6))}`;
/** Short enough for a test to wait for; small enough for a test to reach. */
const LIMITS = {
  handshakeMs: 1_500,
  linksPerAddressMax: 24,
  pendingPerAddressMax: 6,
  messagesPerS: 2_000,
  messageBurst: 4_000,
  anonymousPerS: 2_000,
  anonymousBurst: 4_000,
};
let dir: string;
let d: LocalDeployment | undefined;

const config = (id: string) => loadConfig(join(dir, 'config', `${id}.json`));
const port = (id: string) => d!.process(id).port;
const keyOf = (party: string) => {
  const k = d!.summary.publicKeys[party]?.signPublic;
  if (!k) throw new Error(`no public key of ${party}`);
  return k;
};

/** The e-money balance on the source chip, read from the chip process's own store. */
function balanceOnChip(): number {
  const cfg = config('chip-SRC') as ChipConfig;
  const store = PartyStore.open(cfg.dataDir);
  try {
    const area = new ChipMemory(store).get(emoney);
    if (!area?.data) throw new Error('the source chip holds no e-money area');
    const v = decodeValue(area.data);
    return v.kind === 'ticket' ? 0 : v.balance;
  } finally {
    void store.close();
  }
}

/** A channel to a live party's route under `name`, with a key of the attacker's (or none): the refusal it gets, or 'ok'. */
async function claim(url: string, name: string, peerKey: string, withKey = true): Promise<string> {
  const p = await probe(url, { name, peerSignPublic: peerKey, ...(withKey ? { identity: generateIdentity(systemRng) } : {}) });
  const outcome = await Promise.race([
    p.ready.then(
      () => 'ok',
      (e: Error) => e.message,
    ),
    new Promise<string>((r) => setTimeout(() => r('no answer within 5000 ms'), 5_000)),
  ]);
  p.close();
  return outcome;
}

async function refusalOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ACCEPTED';
  } catch (e) {
    return `${(e as RemoteError).code}: ${(e as Error).message}`;
  }
}

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'valmove-edges-'));
  d = await launchDeployment(testDeployment(dir, plan.length, password, { limits: LIMITS }));
  for (const phone of [d.terminal('old'), d.terminal('new')]) {
    await phone.login('alice', password);
    await phone.register();
  }
});

t.after(async () => {
  await d?.stop();
  rmSync(dir, { recursive: true, force: true });
});

t(
  "value minted without credentials: a stranger at the chip's port, an anonymous and an unenrolled reader at the normal SAM are refused at the handshake; the phone itself, without the provider's authority, is refused NOT_AUTHORISED; the balance in the chip's store is unchanged",
  async () => {
    const before = balanceOnChip();
    const chipUrl = `ws://127.0.0.1:${port('chip-SRC')}/chip`;
    const readerUrl = `ws://127.0.0.1:${port(`provider-${emoney}`)}/normal-sam`;
    assert.is(await claim(chipUrl, 'terminal/anyone', keyOf('chip/SRC')), 'UNTRUSTED_PEER: chip SRC answers only the phone it is paired with');
    assert.is(
      await claim(readerUrl, 'terminal/anyone', keyOf(`normal-sam/${emoney}`), false),
      'UNTRUSTED_PEER: this channel requires the initiator to identify itself',
    );
    assert.is(
      await claim(readerUrl, 'terminal/anyone', keyOf(`normal-sam/${emoney}`)),
      `UNTRUSTED_PEER: terminal/anyone is not a reader enrolled by ${emoney}`,
    );
    assert.match(
      await refusalOf(d!.terminal('old').normal(emoney, 'topup', 777)),
      new RegExp(`^NOT_AUTHORISED: a top-up creates value: it needs a charging reader enrolled by ${emoney} or a voucher ${emoney} signed$`),
    );
    assert.is(balanceOnChip(), before, 'the e-money balance on the chip is unchanged');
    // Spending keeps working for the holder.
    const paid = await d!.terminal('old').normal(emoney, 'pay', 100);
    assert.is(paid.balance, before - 100);
    assert.is(balanceOnChip(), before - 100);
  },
);

t(
  "a provider's voucher (valmove provider voucher) credits its chip once (valmove terminal topup); again, it is refused VOUCHER_REFUSED and the balance stays",
  async () => {
    const before = balanceOnChip();
    const voucher = await run(
      process.execPath,
      ['bin/valmove.js', 'provider', 'voucher', '--config', join(dir, 'config', `provider-${emoney}.json`), '--serial', 'SRC', '--amount', '250'],
      { timeout: 60_000 },
    );
    const token = voucher.stdout.trim();
    assert.match(token, /^vv1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/);
    const terminal = join(dir, 'config', 'terminal-old.json');
    const topped = await run(process.execPath, ['bin/valmove.js', 'terminal', 'topup', '--config', terminal, '--provider', emoney, '--voucher', token], {
      timeout: 60_000,
    });
    assert.match(topped.stdout, new RegExp(`topup on ${emoney}: balance ${before + 250} \\(amount 250\\)`));
    assert.is(balanceOnChip(), before + 250);
    const again = await run(process.execPath, ['bin/valmove.js', 'terminal', 'topup', '--config', terminal, '--provider', emoney, '--voucher', token], {
      timeout: 60_000,
    }).catch((e: { code: number; stderr: string }) => e);
    assert.is((again as { code: number }).code, 1);
    assert.match((again as { stderr: string }).stderr, /refused: VOUCHER_REFUSED: the voucher was already redeemed/);
    assert.is(balanceOnChip(), before + 250, 'redeemed once');
  },
);

t(
  "issuing is the provider's operation: an order from valmove provider issue puts a new item on the phone's chip (valmove terminal issue); a forged order creates nothing",
  async () => {
    const areasOnDst = () => {
      const store = PartyStore.open((config('chip-DST') as ChipConfig).dataDir);
      try {
        return new ChipMemory(store)
          .list()
          .filter((a) => a.state !== 'absent')
          .map((a) => `${a.area}:${a.state}`);
      } finally {
        void store.close();
      }
    };
    const before = areasOnDst();
    const providerCfg = join(dir, 'config', `provider-${emoney}.json`);
    const signed = await run(
      process.execPath,
      ['bin/valmove.js', 'provider', 'issue', '--config', providerCfg, '--serial', 'DST', '--area', 'gift', '--kind', 'emoney', '--balance', '1234'],
      { timeout: 60_000 },
    );
    const order = signed.stdout.trim();
    assert.match(order, /^io1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/);
    const terminal = join(dir, 'config', 'terminal-new.json');
    const done = await run(process.execPath, ['bin/valmove.js', 'terminal', 'issue', '--config', terminal, '--order', order], { timeout: 120_000 });
    assert.match(done.stdout, new RegExp(`^migration i-[A-Za-z0-9_-]+: completed; items: ${emoney}`));
    assert.equal(areasOnDst(), [...before, 'gift:mainActive']);
    const read = await d!.terminal('new').normal(emoney, 'balance', undefined, 'gift');
    assert.is(read.balance, 1234);
    // A phone owner's forgery: the same order for another area is not what the provider signed.
    const [head, , sig] = order.split('.');
    const body = JSON.parse(Buffer.from(order.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${head}.${Buffer.from(JSON.stringify({ ...body, area: 'gift2' })).toString('base64url')}.${sig}`;
    const refused = await d!.terminal('new').issue([forged]);
    assert.is(refused.outcome, 'rolledBack');
    assert.match(refused.reason ?? '', /ORDER_REFUSED: the issue order is not signed by this provider's migration SAM/);
    assert.equal(areasOnDst(), [...before, 'gift:mainActive'], 'nothing created');
  },
);

t(
  'names are claims no more: terminal/old with another key is refused at the server, at its chip and at the normal SAM; the real phone keeps its links and its login',
  async () => {
    const server = `ws://127.0.0.1:${port('server')}/terminal`;
    assert.is(await claim(server, 'terminal/old', keyOf('server')), 'UNTRUSTED_PEER: terminal/old is bound to another device key');
    assert.is(
      await claim(`ws://127.0.0.1:${port('chip-SRC')}/chip`, 'terminal/old', keyOf('chip/SRC')),
      'UNTRUSTED_PEER: chip SRC answers only the phone it is paired with',
    );
    assert.is(
      await claim(`ws://127.0.0.1:${port(`provider-${emoney}`)}/normal-sam`, 'terminal/old', keyOf(`normal-sam/${emoney}`)),
      `UNTRUSTED_PEER: terminal/old is not a reader enrolled by ${emoney}`,
    );
    const token = readKeyFile(join(dir, 'keys', 'server.key.json'), 'server').operatorToken!;
    const health = (await (await fetch(`http://127.0.0.1:${port('server')}/healthz`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      parties: Array<{ links: string[] }>;
    };
    assert.ok(health.parties[0]!.links.includes('terminal/old'), `the phone is still linked: ${JSON.stringify(health.parties[0]!.links)}`);
    const state = JSON.stringify((await d!.terminal('old').status()).state);
    assert.match(state, /loggedIn/, `and logged in: ${state}`);
  },
);

t(
  'wearing the server down: a socket that never says hello is closed by the handshake deadline (1008); beyond the per-address cap an upgrade is answered 503 while /healthz answers',
  async () => {
    const url = `ws://127.0.0.1:${port('server')}/terminal`;
    const silent = new WebSocket(url);
    const opened = Date.now();
    const closed = await new Promise<{ code: number; reason: string }>((resolve) =>
      silent.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    assert.is(closed.code, 1008);
    assert.match(closed.reason, /HANDSHAKE_TIMEOUT/);
    assert.ok(Date.now() - opened < LIMITS.handshakeMs + 3_000, `closed within the deadline (${Date.now() - opened} ms)`);
    const outcomes = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<string>((resolve) => {
            const ws = new WebSocket(url);
            ws.once('open', () => resolve('open'));
            ws.once('unexpected-response', (_req, res) => {
              resolve(`http ${res.statusCode}`);
              res.resume();
            });
            ws.once('error', () => resolve('error'));
            setTimeout(() => ws.terminate(), LIMITS.handshakeMs);
          }),
      ),
    );
    assert.ok(
      outcomes.filter((o) => o === 'open').length <= LIMITS.pendingPerAddressMax,
      `at most ${LIMITS.pendingPerAddressMax} silent sockets taken: ${JSON.stringify(outcomes)}`,
    );
    assert.ok(outcomes.filter((o) => o === 'http 503').length >= 20 - LIMITS.pendingPerAddressMax, `the rest answered 503: ${JSON.stringify(outcomes)}`);
    const health = await fetch(`http://127.0.0.1:${port('server')}/healthz`);
    assert.is(health.status, 200);
    assert.equal(await health.json(), { status: 'ok' }, '/healthz says healthy, and nothing about peers');
    // The places those sockets held are free again once they are gone (their deadline, or our terminate).
    await new Promise((r) => setTimeout(r, LIMITS.handshakeMs + 1_000));
  },
);

t(
  "nothing a stranger sends is kept: 1,000 anonymous login.begin with fresh ids, from a new device key, are answered and leave the server's data.mdb and inbox unchanged",
  async () => {
    const cfg = config('server') as ServerConfig;
    const figures = () => {
      const size = statSync(join(cfg.dataDir, 'data.mdb')).size;
      const store = PartyStore.open(cfg.dataDir);
      try {
        return { size, inbox: store.inbox.getCount(), devices: store.db('devices').getCount() };
      } finally {
        void store.close();
      }
    };
    const before = figures();
    const serverKey = identityOf(readKeyFile(cfg.keyFile, 'server').identity).signPublic;
    const p = await probe(`ws://127.0.0.1:${port('server')}/terminal`, {
      name: 'terminal/stranger',
      identity: generateIdentity(systemRng),
      peerSignPublic: toB64(serverKey),
    });
    await p.ready;
    const n = 1_000;
    for (let i = 1; i <= n; i++)
      p.send({ v: 1, id: `terminal/stranger#${i}`, from: 'terminal/stranger', to: 'server', type: 'login.begin', body: { user: `nobody-${i}` } });
    const types: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await p.next(10_000);
      types[String(r.type)] = (types[String(r.type)] ?? 0) + 1;
    }
    p.close();
    assert.equal(types, { 'login.challenge': n }, 'each was answered');
    assert.equal(figures(), before, "the server's data.mdb, inbox and device bindings are as they were");
  },
);

t('a migration beside all of it completes; once it settles the admin SAM holds no temp key (read from its store), only the key check values', async () => {
  const out = await d!.terminal('old').migrateOut({ destination: 'DST' });
  assert.is(out.outcome, 'uploaded', out.reason);
  const done = await d!.terminal('new').migrateIn({ mig: out.mig });
  assert.is(done.outcome, 'completed', done.reason);
  const store = PartyStore.open(join(dir, 'data', 'admin-sam'));
  try {
    const records = [...new AdminSamRecords(store).tempKeys.getRange()].map((e) => e.value).filter((r) => r.mig === out.mig);
    assert.is(records.length, plan.length, 'one record per item');
    for (const r of records) {
      assert.is(r.key, null, `the temp key of item ${r.item} is gone`);
      assert.ok(r.sourceMainKcv && r.destinationMainKcv, `item ${r.item} keeps its key check values`);
    }
  } finally {
    await store.close();
  }
});

t.run();
