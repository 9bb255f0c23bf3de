/**
 * Issue 8, point 3: rogue and over-reaching servers (seed ¶0053, ¶0057: a
 * provider obeys only the servers it was configured to trust, each with the
 * rights it gave it). Against real migration SAMs:
 *
 *  - embedded: a provider whose trust configuration names another server key
 *    refuses the real server's channel; a provider that gave the server the
 *    upload right only refuses the preflight, and every download, clear and
 *    fence the server sends anyway; a link no trusted handshake vouched for
 *    is refused every request, frames included;
 *  - the provider process's own code path (`startProcess`, in this process,
 *    on a loopback WebSocket): a server key outside `servers`, an anonymous
 *    server and an upload-only server are refused at the handshake or per
 *    request, with the reason.
 *
 * Each refusal is checked for its exact code and sentence, for changing no
 * chip area, migration SAM record or admin SAM record, and for the log line
 * the migration SAM wrote about it, which must name the refusal and carry no
 * key, password or item (test/helpers/secrets.ts forms: raw, hex, base64).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { MigrationSamRuntime } from '../../src/actors/migrationSam.actor.ts';
import { fromB64, generateIdentity, systemRng, toB64, utf8, type Identity } from '../../src/crypto/index.ts';
import { loadConfig, type ProviderConfig } from '../../src/deploy/config.ts';
import { generateDeployment } from '../../src/deploy/keygen.ts';
import { readKeyFile } from '../../src/deploy/keyfiles.ts';
import { startProcess, type RunningProcess } from '../../src/deploy/process.ts';
import { memorySink } from '../../src/log.ts';
import type { Grant } from '../../src/transport/messages.ts';
import { probe } from '../helpers/probe.ts';
import { scan, type Needle } from '../helpers/secrets.ts';
import { buildWorld, type World } from '../helpers/world.ts';
import { asServer, refusalOf, secretNeedles, state } from './relay.ts';

const UNTRUSTED = 'p1-transit';

/** The log lines a party wrote (parsed), optionally only those with this message. */
function linesOf(lines: string[], where: (l: Record<string, unknown>) => boolean): Array<Record<string, unknown>> {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter(where);
}

function noSecrets(lines: string[], needles: Needle[], what: string): void {
  // The scan must be able to fail: a line carrying a secret (here, hex) is caught.
  const planted = `{"msg":"planted","x":"${Buffer.from(needles[0]!.bytes).toString('hex')}"}`;
  assert.ok(scan([{ where: 'planted', bytes: utf8(planted) }], needles).length > 0, 'the scan finds a planted secret');
  const found = scan(
    lines.map((l, i) => ({ where: `${what} log line ${i}: ${l.slice(0, 160)}`, bytes: utf8(l) })),
    needles,
  );
  assert.equal(found, [], `secrets in the log: ${JSON.stringify(found.slice(0, 3))}`);
}

/** A grant that passes the envelope schema (the right is checked before the grant is even looked at). */
function fakeGrant(mig: string, item: number, provider: string, purpose: 'upload' | 'download'): Grant {
  return {
    mig,
    item,
    area: provider,
    serial: 'SRC-1',
    purpose,
    provider,
    recipient: `migration-sam/${provider}`,
    expiresAt: Date.now() + 60_000,
    ephPub: toB64(new Uint8Array(32).fill(1)),
    sealed: toB64(new Uint8Array(48).fill(2)),
    set: [toB64(new Uint8Array(32).fill(4))],
    sig: toB64(new Uint8Array(64).fill(3)),
  };
}

// ---- a provider that does not trust this server's key -------------------------------------------------

const rogue = suite('rogue servers: a key the provider does not trust (issue 8, point 3)');
let u: World;

rogue.before(async () => {
  u = await buildWorld({ items: 2, untrustingProviders: [UNTRUSTED] });
});
rogue.after(async () => {
  await u.cleanup();
});

rogue(
  "rogue server: a server key outside the provider's trust configuration is refused at the channel handshake (UNTRUSTED_PEER), the migration is refused at preflight naming the provider, nothing changes, and the refusal is logged without secrets",
  async () => {
    // The channel was refused when the system linked the server to that SAM: the SAM logged why.
    const refusedAt = linesOf(u.logLines, (l) => l.msg === 'channel message rejected' && l.party === `migration-sam/${UNTRUSTED}`);
    assert.equal(
      refusedAt.map((l) => [l.level, l.code, l.reason]),
      [['warn', 'UNTRUSTED_PEER', 'server is not trusted here: its key is not in the trust configuration']],
      'the migration SAM logged one refusal, with its code and reason',
    );
    const before = state(u);
    const out = await u.oldPhone.migrateOut({ destination: u.destination.serial });
    assert.is(out.outcome, 'refused');
    assert.is(
      out.reason,
      `UNTRUSTED_PEER: provider ${UNTRUSTED} refused the preflight: its migration SAM refused our channel: server is not trusted here: its key is not in the trust configuration`,
    );
    assert.is(state(u), before, 'no area locked, no temp key, no decision record, nothing held by any migration SAM');
    assert.ok(
      u.source.memory.list().every((a) => a.state === 'mainActive'),
      'the source is spendable as before',
    );
    // The trusting provider saw a preflight at most; the untrusting one never saw a request.
    assert.is(linesOf(u.logLines, (l) => l.party === `migration-sam/${UNTRUSTED}` && l.msg === 'message').length, 0, 'no envelope reached the untrusting SAM');
    noSecrets(u.logLines, secretNeedles(u), 'world');
  },
);

rogue(
  'rogue server: a link no trusted handshake vouched for is refused every request by the migration SAM itself (NOT_TRUSTED), frames too, and nothing changes',
  async () => {
    // Defence in depth behind the channel: the SAM asks, per request, which trusted key the link proved.
    const sam = `migration-sam/${u.providers[0]!}`;
    const seat = asServer(u, sam, 'server/rogue');
    try {
      const before = state(u);
      const mig = 'm-rogue';
      const p = u.providers[0]!;
      const asks = [
        seat.send('msam.preflight', { rights: ['upload'] }, { mig, step: 'preflight' }),
        seat.send('msam.upload', { session: `${mig}:S7:1`, grant: fakeGrant(mig, 0, p, 'upload') }, { mig, step: 'S7', item: 0 }),
        seat.send('msam.download', { session: `${mig}:S14:1`, grant: fakeGrant(mig, 0, p, 'download') }, { mig, step: 'S14', item: 0 }),
        seat.send('msam.clear', {}, { mig, step: 'S17', item: 0 }),
        seat.send('msam.fence', {}, { mig, step: 'rollback' }),
        seat.send('frame', { session: `${mig}:S7:1`, data: toB64(utf8('{"t":"auth2"}')) }),
      ];
      for (const id of asks) {
        assert.equal(refusalOf(await seat.answerTo(id)), { code: 'NOT_TRUSTED', message: 'server/rogue is not a server this migration SAM trusts' });
      }
      assert.equal(seat.framesOfOurSessions(), [], 'no session was opened toward any chip');
      assert.is(state(u), before);
      const logged = linesOf(u.logLines, (l) => l.party === sam && l.msg === 'message refused' && l.peer === 'server/rogue');
      assert.equal(
        logged.map((l) => l.code),
        ['NOT_TRUSTED', 'NOT_TRUSTED', 'NOT_TRUSTED', 'NOT_TRUSTED', 'NOT_TRUSTED', 'NOT_TRUSTED'],
      );
      noSecrets(u.logLines, secretNeedles(u), 'world');
    } finally {
      await seat.giveBack();
    }
  },
);

// ---- a trusted server asking for more than it was given -------------------------------------------------

const over = suite('over-reaching servers: rights not given (issue 8, point 3)');
let r: World;
const LIMITED = 'p1-transit';

over.before(async () => {
  // Seed ¶0053, ¶0057: this provider lets the server upload, but not download or clear.
  r = await buildWorld({ items: 2, rights: { [LIMITED]: ['upload'] } });
});
over.after(async () => {
  await r.cleanup();
});

over(
  'over-reaching server: a migration needing download and clear from an upload-only provider is refused at preflight (RIGHT_DENIED, naming the rights), before anything is locked',
  async () => {
    const before = state(r);
    const out = await r.oldPhone.migrateOut({ destination: r.destination.serial });
    assert.is(out.outcome, 'refused');
    assert.is(
      out.reason,
      `RIGHT_DENIED: provider ${LIMITED} refused the preflight: provider ${LIMITED} did not give this server the right(s): download, clear`,
    );
    assert.is(state(r), before, 'no area locked, no temp key, no decision record, nothing held');
    const logged = linesOf(r.logLines, (l) => l.party === `migration-sam/${LIMITED}` && l.msg === 'message refused');
    assert.equal(
      logged.map((l) => [l.level, l.type, l.code, l.reason]),
      [['warn', 'msam.preflight', 'RIGHT_DENIED', `provider ${LIMITED} did not give this server the right(s): download, clear`]],
    );
    noSecrets(r.logLines, secretNeedles(r), 'world');
  },
);

over(
  'over-reaching server: the trusted server sending download, clear and fence anyway is refused each (RIGHT_DENIED, naming the right); the upload it was given is still obeyed',
  async () => {
    const sam = `migration-sam/${LIMITED}`;
    const seat = asServer(r, sam);
    try {
      const mig = 'm-overreach';
      const before = state(r);
      const lines = r.logLines.length;
      // The seat is the trusted server (the test shows it can fail: the right it has is granted).
      const ready = await seat.answerTo(seat.send('msam.preflight', { rights: ['upload'] }, { mig, step: 'preflight' }));
      assert.equal([ready.type, ready.body], ['msam.ready', { provider: LIMITED }]);
      const denied = (right: string) => ({ code: 'RIGHT_DENIED', message: `this server was not given the "${right}" right by provider ${LIMITED}` });
      const down = seat.send('msam.download', { session: `${mig}:S14:1`, grant: fakeGrant(mig, 0, LIMITED, 'download') }, { mig, step: 'S14', item: 0 });
      assert.equal(refusalOf(await seat.answerTo(down)), denied('download'));
      const clear = seat.send('msam.clear', {}, { mig, step: 'S17', item: 0 });
      assert.equal(refusalOf(await seat.answerTo(clear)), denied('clear'));
      // A fence clears a migration's items in a rollback: it needs the clear right.
      const fence = seat.send('msam.fence', {}, { mig, step: 'rollback' });
      assert.equal(refusalOf(await seat.answerTo(fence)), denied('clear'));
      const all = seat.send('msam.preflight', { rights: ['upload', 'download', 'clear'] }, { mig, step: 'preflight' });
      assert.equal(refusalOf(await seat.answerTo(all)), {
        code: 'RIGHT_DENIED',
        message: `provider ${LIMITED} did not give this server the right(s): download, clear`,
      });
      assert.equal(seat.framesOfOurSessions(), [], 'no session was opened toward any chip');
      assert.is(state(r), before, 'no fence written, nothing held, nothing cleared');
      assert.equal([...r.system.providers.get(LIMITED)!.migrationSam.records.fenced.getRange()], [], 'the refused fence left no fence record');
      const logged = linesOf(r.logLines.slice(lines), (l) => l.party === sam && l.msg === 'message refused');
      assert.equal(
        logged.map((l) => [l.type, l.code]),
        [
          ['msam.download', 'RIGHT_DENIED'],
          ['msam.clear', 'RIGHT_DENIED'],
          ['msam.fence', 'RIGHT_DENIED'],
          ['msam.preflight', 'RIGHT_DENIED'],
        ],
      );
      noSecrets(r.logLines, secretNeedles(r), 'world');
    } finally {
      await seat.giveBack();
    }
  },
);

// ---- the provider process's own trust path -----------------------------------------------------------

const proc = suite('rogue and over-reaching servers at a provider process (issue 8, point 3)');
let dir: string;
let running: RunningProcess | undefined;
const sink = memorySink();
const probeIdentity: Identity = generateIdentity(systemRng);
let msamSignPublic = '';
let needles: Needle[] = [];

proc.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'valmove-rogue-'));
  await generateDeployment({
    dir,
    providers: ['emoney'],
    chips: ['SRC'],
    terminals: [{ name: 'old', chip: 'SRC' }],
    basePort: 0,
    // An operator's second key, trusted with the upload right only.
    extraTrustedServers: { [toB64(probeIdentity.signPublic)]: ['upload'] },
    rng: systemRng,
  });
  const cfg = loadConfig(join(dir, 'config', 'provider-emoney.json'), 'provider') as ProviderConfig;
  running = await startProcess({ ...cfg, listen: { ...cfg.listen, port: 0 } }, { logSink: sink });
  const keys = readKeyFile(cfg.keyFile, 'provider');
  msamSignPublic = keys.migration.signPublic;
  needles = [
    { name: 'provider master', bytes: fromB64(keys.providerMaster) },
    { name: 'migration SAM signing key', bytes: fromB64(keys.migration.signSecret) },
    { name: 'migration SAM box key', bytes: fromB64(keys.migration.boxSecret) },
    { name: 'normal SAM signing key', bytes: fromB64(keys.normal.signSecret) },
    { name: 'normal SAM box key', bytes: fromB64(keys.normal.boxSecret) },
  ];
  assert.ok(readFileSync(cfg.keyFile, 'utf8').includes(keys.providerMaster), "the needles are the key file's secrets");
});
proc.after(async () => {
  await running?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const msamOf = () => running!.runtimes.find((x) => x.id === 'migration-sam/emoney') as MigrationSamRuntime;
const msamState = () => JSON.stringify([msamOf().held(), [...msamOf().records.fenced.getRange()].map((e) => e.value)]);

proc(
  'rogue server: at a provider process, an untrusted key and an anonymous server are refused at the handshake (UNTRUSTED_PEER, told why); an upload-only key is refused download and clear (RIGHT_DENIED); logged without secrets',
  async () => {
    const url = `ws://127.0.0.1:${running!.port}/migration-sam`;
    const before = msamState();
    const lines = sink.lines.length;

    const evil = await probe(url, { name: 'server/rogue', identity: generateIdentity(systemRng), peerSignPublic: msamSignPublic });
    let refusal = '';
    await evil.ready.catch((e: Error) => (refusal = e.message));
    assert.is(refusal, 'UNTRUSTED_PEER: server/rogue is not trusted here: its key is not in the trust configuration');
    const anon = await probe(url, { name: 'server/anon', peerSignPublic: msamSignPublic });
    refusal = '';
    await anon.ready.catch((e: Error) => (refusal = e.message));
    assert.is(refusal, 'UNTRUSTED_PEER: this channel requires the initiator to identify itself');

    const limited = await probe(url, { name: 'server/probe', identity: probeIdentity, peerSignPublic: msamSignPublic });
    await limited.ready;
    const base = { v: 1, from: 'server/probe', to: 'migration-sam/emoney' };
    limited.send({ ...base, id: 'server/probe#1', type: 'msam.preflight', mig: 'm-probe', body: { rights: ['upload'] } });
    const ready = await limited.next();
    assert.equal([ready.type, ready.body], ['msam.ready', { provider: 'emoney' }], 'the trusted key is obeyed for the right it has');
    limited.send({
      ...base,
      id: 'server/probe#2',
      type: 'msam.download',
      mig: 'm-probe',
      item: 0,
      body: { session: 'm-probe:S14:1', grant: fakeGrant('m-probe', 0, 'emoney', 'download') },
    });
    assert.equal((await limited.next()).body, { code: 'RIGHT_DENIED', message: 'this server was not given the "download" right by provider emoney' });
    limited.send({ ...base, id: 'server/probe#3', type: 'msam.clear', mig: 'm-probe', item: 0, body: {} });
    assert.equal((await limited.next()).body, { code: 'RIGHT_DENIED', message: 'this server was not given the "clear" right by provider emoney' });
    limited.close();
    assert.is(msamState(), before, 'the migration SAM holds and fences nothing new');

    const mine = sink.lines.slice(lines);
    const channel = linesOf(mine, (l) => l.msg === 'channel refused a message');
    assert.equal(
      channel.map((l) => [l.level, l.code, l.reason]),
      [
        ['warn', 'UNTRUSTED_PEER', 'server/rogue is not trusted here: its key is not in the trust configuration'],
        ['warn', 'UNTRUSTED_PEER', 'this channel requires the initiator to identify itself'],
      ],
    );
    const refused = linesOf(mine, (l) => l.msg === 'message refused');
    assert.equal(
      refused.map((l) => [l.party, l.peer, l.type, l.code]),
      [
        ['migration-sam/emoney', 'server/probe', 'msam.download', 'RIGHT_DENIED'],
        ['migration-sam/emoney', 'server/probe', 'msam.clear', 'RIGHT_DENIED'],
      ],
    );
    noSecrets(sink.lines, needles, 'provider process');
  },
);

rogue.run();
over.run();
proc.run();
