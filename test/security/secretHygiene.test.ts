/**
 * Issue 8, point 7, secret hygiene (protocol.md §4.4, §5): every log line,
 * error message, trace file and LMDB value of the server, the terminals and
 * the admin SAM's records holds no key material, password or plaintext item
 * value, in any form (raw, hex, base64, base64url at each alignment).
 *
 * One embedded world (real crypto, LMDB in a temp folder) goes through the
 * happy path and through the paths that make errors: wrong passwords and an
 * unknown user, a migration cancelled and rolled back, migrations refused,
 * bad input at the server, tampered frames at a chip, a tampered and a
 * replayed grant at a migration SAM, normal use refused. What is searched:
 *
 *  - logs: every line every party wrote (one sink for all), and the live
 *    page's server's;
 *  - errors: every `error` envelope any party sent or received, every chip
 *    `err` frame, and everything handed back to a caller (results, progress
 *    texts, thrown errors with their fields and stack);
 *  - traces: the demo wiring's run file and live feed (`systemRecorder`), a
 *    deployment's per-party run files (`processRecording`), what `valmove
 *    trace` draws from both (mermaid, svg, json), and what the live page
 *    holds and serves (`/live`, `/api/sequence.*`);
 *  - LMDB: the stores of the server, every terminal and the admin SAM, as
 *    files and decoded record by record (a party's own keys excepted: the
 *    admin SAM keeps the issuer master and temp keys, the server its channel
 *    identity and password verifiers);
 *  - envelopes the server and terminals handled (the login proof excepted in
 *    `login.proof`, which carries it by design).
 *
 * The needles: passwords (and the wrong ones), login proofs and verifiers,
 * the issuer and provider masters, every identity key, K_chip and K_main of
 * every chip, the temp keys, every chip session key and channel key used,
 * every other 32-byte random draw (ephemeral X25519 keys), every item
 * (encoded, its marker, the marker as text). Then a secret is planted in a
 * log line, a trace file, an LMDB record and an error, and the same
 * collection finds each one, naming it without printing it.
 *
 * A second test runs the real `valmove demo` (its valmove.log, run file and
 * stores) and one simulator seed with every fault (its trace lines and every
 * party's debug log) and searches them for their own secrets.
 *
 * A third test looks at a terminal's store at the moment its login proof (a
 * password-equivalent) leaves, and after: the proof never reaches the disk.
 */
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { inspect } from 'node:util';
import { Command } from 'commander';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocket } from 'ws';
import type { PartyRuntime } from '../../src/actors/runtime.ts';
import type { TerminalRuntime } from '../../src/actors/terminal.actor.ts';
import { addTraceCommand } from '../../src/cli/trace.command.ts';
import { runDemo, type DemoReport } from '../../src/cli/demo.ts';
import { fromB64, systemRng, toB64, toHex, utf8 } from '../../src/crypto/index.ts';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { InspectServer } from '../../src/inspect/server.ts';
import { createLogger, memorySink } from '../../src/log.ts';
import { FAULT_KINDS, runSeed, type SeedResult } from '../../src/sim/simulator.ts';
import { AdminSamRecords } from '../../src/store/adminSam.store.ts';
import { PartyStore } from '../../src/store/party.store.ts';
import { fileSink } from '../../src/trace/sinks.ts';
import type { Recorder } from '../../src/trace/recorder.ts';
import { processRecording, systemRecorder, type ProcessRecording } from '../../src/trace/wiring.ts';
import { decodeChipFrame } from '../../src/transport/chip.frames.ts';
import { decodeEnvelope, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { captureKeys } from '../helpers/keyCapture.ts';
import {
  describeFindings,
  filesUnder,
  findingsIn,
  logHaystacks,
  scan,
  storeHaystacks,
  systemNeedles,
  type Haystack,
  type Needle,
  type Source,
} from '../helpers/secrets.ts';
import { spySystems } from '../helpers/systemSpy.ts';
import { buildWorld, settle, type Recorded, type World } from '../helpers/world.ts';
import { asServer, hostileTerminal, refusalOf } from './relay.ts';

/** What a caller is handed: a result as it prints, an error with its code, fields and stack. */
function shown(x: unknown): string {
  return x instanceof Error ? `${x.name} ${(x as { code?: string }).code ?? ''}: ${x.message}\n${inspect(x, { depth: 8 })}` : inspect(x, { depth: 8 });
}

/** A recorded envelope, or undefined for bytes that are none (the bad input this test sent the server). */
function envelope(bytes: Uint8Array): AnyEnvelope | undefined {
  try {
    return decodeEnvelope(bytes);
  } catch {
    return undefined;
  }
}

/** A relayed chip frame, or undefined for bytes that are none (the garbage this test sent a chip). */
function chipFrame(data: string): ReturnType<typeof decodeChipFrame> | undefined {
  try {
    return decodeChipFrame(fromB64(data));
  } catch {
    return undefined;
  }
}

const storeOf = (p: PartyRuntime) => (p as unknown as { store: PartyStore }).store;

/** Runs the `valmove trace` command in this process, writing its drawing to `out`. */
async function traceCommand(args: string[], said: string[]): Promise<void> {
  const program = new Command().exitOverride().configureOutput({ writeOut: (s) => void said.push(s), writeErr: (s) => void said.push(s) });
  addTraceCommand(program, (line) => said.push(line));
  await program.parseAsync(['node', 'valmove', 'trace', ...args]);
}

test('secret hygiene: no key, password or item value in any log line, error, trace file or LMDB value of the server, the terminals and the admin SAM, on the happy path and on every failure path', async () => {
  const t0 = performance.now();
  const capture = captureKeys();
  const tmp = mkdtempSync(join(tmpdir(), 'valmove-hygiene-'));
  const inspectLog = memorySink();
  const reports: string[] = [];
  const report = (m: string) => void reports.push(m);
  const demoRun = join(tmp, 'run.jsonl');
  const partyRuns = join(tmp, 'parties');
  const recorded: Recorded[] = [];
  let page: InspectServer | undefined;
  let demoRec: Recorder | undefined;
  let partyRec: ProcessRecording | undefined;
  let world: World | undefined;
  try {
    const live = await InspectServer.start({ log: createLogger({ level: 'debug', sink: inspectLog }) });
    page = live;
    demoRec = systemRecorder({ record: demoRun, inspect: live.feedUrl, report })!;
    partyRec = processRecording({ record: partyRuns, report })!;
    const recorders = [demoRec, partyRec];
    world = await buildWorld({
      items: 3,
      system: {
        rng: capture.rng(systemRng),
        envelopeTap: (party, direction, peer, bytes) => {
          recorded.push({ party, direction, peer, bytes });
          for (const r of recorders) r.tap(party, direction, peer, bytes);
        },
        inspect: (party, key, e) => {
          for (const r of recorders) r.inspect(party, key, e);
        },
      },
    });
    const w = world;
    /** Everything handed back to a caller: results, errors, progress texts, raw answers. */
    const surfaced: Haystack[] = [];
    const codes = new Set<string>();
    const attempt = async <T>(what: string, p: Promise<T>): Promise<T | undefined> => {
      try {
        const r = await p;
        surfaced.push({ where: `result of ${what}`, bytes: utf8(shown(r)) });
        return r;
      } catch (e) {
        codes.add((e as { code?: string }).code ?? '?');
        surfaced.push({ where: `error thrown by ${what}`, bytes: utf8(shown(e)) });
        return undefined;
      }
    };
    for (const t of [w.oldPhone, w.newPhone]) t.onProgress((p) => surfaced.push({ where: `progress text on ${t.id} (${p.step})`, bytes: utf8(shown(p)) }));
    const wrong = [`pw-${toHex(systemRng.bytes(8))}`, `${w.password}x`];
    const stranger = { user: `nobody-${toHex(systemRng.bytes(4))}`, password: `pw-${toHex(systemRng.bytes(8))}` };
    const p0 = w.providers[0]!;

    // ---- logins that fail: wrong passwords, an unknown user ----------------------------------------
    const guesser = await w.system.addTerminal('guesser');
    w.system.connectToServer(guesser);
    for (const guess of wrong) await attempt('login with a wrong password', guesser.login(w.user, guess));
    await attempt('login of an unknown user', guesser.login(stranger.user, stranger.password));
    await attempt('login', guesser.login(w.user, w.password));

    // ---- a migration cancelled before the destination came: rolled back ---------------------------
    const out1 = (await attempt('migrate out (to be cancelled)', w.oldPhone.migrateOut({ destination: w.destination.serial })))!;
    assert.is(out1.outcome, 'uploaded');
    await attempt('cancel', w.oldPhone.cancel(out1.mig));
    await attempt('migrate in after the cancel', w.newPhone.migrateIn({ mig: out1.mig }));
    const back = await attempt('migrate out again (rollback)', w.oldPhone.migrateOut());
    assert.is(back?.outcome, 'rolledBack');

    // ---- migrations refused ---------------------------------------------------------------------
    await attempt('migrate out to an unregistered chip', w.oldPhone.migrateOut({ destination: 'NOPE-1' }));
    await attempt('migrate out to the source itself', w.oldPhone.migrateOut({ destination: w.source.serial }));
    await attempt('cancel an unknown migration', w.oldPhone.cancel('m-nope'));
    await attempt('migrate in with nothing to take', w.newPhone.migrateIn({ mig: 'm-nope' }));

    // ---- the happy path, then normal use refused ---------------------------------------------------
    const out2 = (await attempt('migrate out', w.oldPhone.migrateOut({ destination: w.destination.serial })))!;
    const done = await attempt('migrate in', w.newPhone.migrateIn({ mig: out2.mig }));
    assert.is(done?.outcome, 'completed');
    await attempt('pay on the destination', w.newPhone.normalUse(p0, 'pay', p0, 7));
    await attempt('pay more than the balance', w.newPhone.normalUse(p0, 'pay', p0, 999_999_999));
    await attempt('pay on the source after the move', w.oldPhone.normalUse(p0, 'pay', p0, 7));

    // ---- bad input at the server (protocol.md §4.7) ------------------------------------------------
    const raw = w.system.rawServerConnection('fuzzer');
    const rawAnswers: string[] = [];
    raw.onMessage((b) => rawAnswers.push(new TextDecoder().decode(b)));
    const base = { v: 1, from: 'terminal/fuzzer', to: 'server' };
    const bad: Array<string | object> = [
      'not json at all',
      { ...base, id: 'terminal/fuzzer#1', type: 'no.such.type', body: {} },
      { ...base, id: 'terminal/fuzzer#2', type: 'login.begin', body: { user: w.user, password: w.password } },
      { ...base, id: 'terminal/fuzzer#3', type: 'login.proof', body: { user: w.user, proof: toB64(utf8(w.password)) } },
      { ...base, id: 'terminal/fuzzer#4', type: 'login.begin', body: { user: 'x'.repeat(70_000) } },
      { ...base, id: 'terminal/fuzzer#5', type: 'migrate.out', body: { destination: w.destination.serial } },
      { ...base, id: 'terminal/fuzzer#6', type: 'frame', body: { session: `${out2.mig}:S7:1`, data: toB64(utf8('{"t":"cmd","box":"AAAA"}')) } },
    ];
    for (const m of bad) raw.send(utf8(typeof m === 'string' ? m : JSON.stringify(m)));

    // ---- tampered frames at a chip: garbage, and a recorded session's proof replayed into a new session --
    const seen = recorded.flatMap((r) => {
      const env = envelope(r.bytes);
      return env ? [{ ...r, env }] : [];
    });
    const toDst = seen.filter(
      (s) => s.party === w.destination.id && s.direction === 'in' && s.env.type === 'frame' && s.env.body.session.startsWith(`${out2.mig}:`),
    );
    const frameOf = (t: string) =>
      toDst.map((s) => (s.env.type === 'frame' ? fromB64(s.env.body.data) : new Uint8Array())).find((d) => decodeChipFrame(d).t === t)!;
    const evil = hostileTerminal(w.destination);
    const chipAnswers = [
      await evil.exchange(`${out2.mig}:S14:9`, utf8('not a frame')),
      await evil.exchange(`${out2.mig}:S16:9`, frameOf('auth1')),
      await evil.exchange(`${out2.mig}:S16:9`, frameOf('auth3')),
    ];
    evil.close();
    surfaced.push(...chipAnswers.map((a, i) => ({ where: `chip answer ${i} to a hostile terminal`, bytes: utf8(shown(a)) })));

    // ---- a migration SAM sent the real upload grant tampered, and replayed into another migration -----
    const upload = seen.find((s) => s.party === `migration-sam/${p0}` && s.direction === 'in' && s.env.type === 'msam.upload' && s.env.mig === out2.mig)?.env;
    if (upload?.type !== 'msam.upload') throw new Error(`migration-sam/${p0} received no msam.upload for ${out2.mig}`);
    const grant = upload.body.grant;
    const flipped = fromB64(grant.sig);
    flipped[0] = flipped[0]! ^ 1;
    const seat = asServer(w, `migration-sam/${p0}`);
    const samAnswers: AnyEnvelope[] = [];
    try {
      const asks = [
        seat.send('msam.upload', { session: `${out2.mig}:S7:9`, grant: { ...grant, sig: toB64(flipped) } }, { mig: out2.mig, step: 'S7', item: 0 }),
        seat.send('msam.upload', { session: 'm-replay:S7:1', grant }, { mig: 'm-replay', step: 'S7', item: 0 }),
        seat.send('msam.download', { session: 'm-replay:S14:1', grant }, { mig: 'm-replay', step: 'S14', item: 0 }),
      ];
      for (const id of asks) samAnswers.push(await seat.answerTo(id));
    } finally {
      await seat.giveBack();
    }
    for (const a of samAnswers) codes.add(refusalOf(a).code);
    surfaced.push(...samAnswers.map((a, i) => ({ where: `migration SAM answer ${i} to a tampered grant`, bytes: utf8(JSON.stringify(a)) })));
    for (let i = 0; i < 200 && rawAnswers.length < bad.length; i++) await new Promise((r) => setTimeout(r, 10));
    raw.close('done');
    surfaced.push(...rawAnswers.map((a, i) => ({ where: `server answer ${i} to bad input`, bytes: utf8(a) })));
    for (const a of rawAnswers) codes.add(refusalOf(decodeEnvelope(utf8(a))).code);
    await settle(w);

    // ---- every error the run made: error envelopes and chip err frames ------------------------------
    const errors: Haystack[] = [];
    for (const [i, r] of recorded.entries()) {
      const env = envelope(r.bytes);
      const f = env?.type === 'frame' ? chipFrame(env.body.data) : undefined;
      if (env?.type === 'error') {
        codes.add(env.body.code);
        errors.push({ where: `error envelope #${i} (${r.party} ${r.direction} ${r.peer}, ${env.body.code})`, bytes: r.bytes });
      } else if (f?.t === 'err') {
        codes.add(f.code);
        errors.push({ where: `chip err frame #${i} (${r.party} ${r.direction} ${r.peer}, ${f.code})`, bytes: utf8(`${f.code}: ${f.message}`) });
      }
    }
    const expected = ['LOGIN_FAILED', 'NO_MIGRATION', 'BAD_JSON', 'UNKNOWN_TYPE', 'BAD_BODY', 'TOO_LARGE', 'UNAUTHENTICATED', 'GRANT_REFUSED', 'AUTH_FAILED'];
    assert.equal(
      expected.filter((c) => !codes.has(c)),
      [],
      `the failure paths ran (codes seen: ${[...codes].sort().join(', ')})`,
    );

    // ---- traces: close the recorders (files and the live feed are complete), draw them, ask the page ----
    await demoRec.close();
    await partyRec.close();
    const said: string[] = [];
    const drawn = join(tmp, 'drawn');
    mkdirSync(drawn);
    for (const run of [demoRun, partyRuns]) {
      for (const format of ['mermaid', 'svg', 'json'])
        await traceCommand([run, '--format', format, '--out', join(drawn, `${run === demoRun ? 'run' : 'parties'}.${format}`)], said);
    }
    await traceCommand([demoRun, '--mig', out1.mig], said);
    const pageSays: string[] = [];
    const pageSocket = new WebSocket(`${live.feedUrl.replace(/feed$/, 'live')}`);
    pageSocket.on('message', (d) => void pageSays.push(d.toString()));
    await new Promise<void>((resolve, reject) => {
      pageSocket.once('open', () => resolve());
      pageSocket.once('error', reject);
    });
    for (let i = 0; i < 300 && pageSays.length < live.records().length; i++) await new Promise((r) => setTimeout(r, 10));
    pageSocket.close();
    for (const path of ['api/sequence.json', 'api/sequence.svg', `api/sequence.json?mig=${out2.mig}`])
      pageSays.push(await (await fetch(`${live.url}${path}`)).text());
    assert.ok(live.records().length > 1000 && pageSays.length > live.records().length, `the live page got the run (${live.records().length} records)`);

    // ---- the sources, collected afresh each time they are searched ---------------------------------
    const partyFiles = () => readdirSync(partyRuns).map((f) => join(partyRuns, f));
    const scanned = { records: 0 };
    const stores = (): Array<[string, PartyStore]> => [
      ['server', storeOf(w.system.server)],
      ['admin-sam', storeOf(w.system.adminSam)],
      ...[...w.system.terminals.values()].map((t) => [t.id, storeOf(t)] as [string, PartyStore]),
    ];
    const collect = (): Source[] => {
      scanned.records = 0;
      return [
        {
          kind: 'log',
          haystacks: [
            ...logHaystacks(w.logLines),
            ...logHaystacks(inspectLog.lines, 'live page server log'),
            ...reports.map((r, i) => ({ where: `recording report ${i}`, bytes: utf8(r) })),
          ],
        },
        { kind: 'error', haystacks: [...errors, ...surfaced] },
        {
          kind: 'trace',
          haystacks: [
            ...[demoRun, ...partyFiles()].map((f) => ({ where: `run file ${f.slice(tmp.length + 1)}`, bytes: new Uint8Array(readFileSync(f)) })),
            ...filesUnder(drawn).map((h) => ({ where: `valmove trace output ${h.where.slice(tmp.length + 1)}`, bytes: h.bytes })),
            { where: 'valmove trace standard output', bytes: utf8(said.join('\n')) },
            { where: "the live page's records", bytes: utf8(JSON.stringify(live.records())) },
            ...pageSays.map((m, i) => ({ where: `live page message ${i}`, bytes: utf8(m) })),
          ],
        },
        ...stores().map(([owner, store]): Source => ({ kind: 'lmdb', owner, haystacks: storeHaystacks(store, `${owner} store`, scanned) })),
        {
          kind: 'envelope',
          // What the test itself sent as bad input (a password where it does not belong) is left out; the answers are in.
          haystacks: recorded.flatMap((r, i) =>
            (r.party === 'server' || r.party.startsWith('terminal/')) && !(r.direction === 'in' && r.peer === 'terminal/fuzzer')
              ? [{ where: `envelope #${i} (${r.party} ${r.direction} ${r.peer})`, bytes: r.bytes }]
              : [],
          ),
        },
      ];
    };

    // ---- the needles ------------------------------------------------------------------------------
    const users = [{ user: w.user, password: w.password }, ...wrong.map((password) => ({ user: w.user, password })), stranger];
    const known = systemNeedles(w.system, { users, values: w.values });
    const needles = [...known, ...capture.needles(known)];
    const count = (prefix: string) => needles.filter((n) => n.name.startsWith(prefix)).length;
    assert.ok(count('temp key') === 6, 'one temp key per item and migration (two migrations of three items)');
    assert.ok(count('chip session key') > 50 && count('channel key') > 10 && count('random 32-byte') > 10, 'session, channel and ephemeral keys were caught');
    assert.ok(count('server fake-salt key') === 1, 'the unknown user made the server draw its fake-salt key');

    const sources = collect();
    const findings = findingsIn(sources, needles);
    assert.ok(findings.length === 0, describeFindings(findings, needles));

    // ---- it can fail: a secret planted in each kind of source is found, named, and not printed -------
    const tempKey = needles.find((n) => n.name.startsWith('temp key'))!;
    const session = needles.find((n) => n.name.startsWith('chip session key'))!;
    const terminalStore = storeOf(w.oldPhone);
    w.system.opts.log.warn('planted', { party: 'server', note: toB64(session.bytes) });
    appendFileSync(
      join(partyRuns, readdirSync(partyRuns)[0]!),
      `${JSON.stringify({ kind: 'state', t: 1, party: 'server', actor: 'x', machine: 'x', states: ['x'], event: toHex(tempKey.bytes) })}\n`,
    );
    await terminalStore.commit(() => terminalStore.db('planted').put('k', { key: tempKey.bytes }));
    const plantedSink = fileSink(join(drawn, 'planted.jsonl'), { report });
    plantedSink.write({ kind: 'run', v: 1, source: 'demo', party: '*', startedAt: toB64(session.bytes) });
    await plantedSink.close();
    errors.push({ where: 'a planted error', bytes: utf8(shown(new ProtocolError('BAD_BODY', `key ${toHex(tempKey.bytes).toUpperCase()} refused`))) });
    const planted = findingsIn(collect(), needles);
    const at = (needle: Needle, form: string, where: RegExp) => planted.some((f) => f.needle === needle.name && f.form === form && where.test(f.where));
    assert.ok(at(session, 'base64url', /^log line \d+ \(party server\)$/), 'a planted log line is found');
    assert.ok(at(tempKey, 'hex', /^run file parties\//), 'a planted line in a run file is found');
    assert.ok(at(session, 'base64url', /^valmove trace output drawn\/planted\.jsonl$/), 'a planted trace file is found');
    assert.ok(at(tempKey, 'raw', /^terminal\/old store file data\.mdb$/), 'a planted LMDB value is found in the file');
    assert.ok(at(tempKey, 'raw', /^terminal\/old store LMDB db "planted" record #0 value\.key$/), 'and decoded through the store');
    assert.ok(at(tempKey, 'HEX', /^a planted error$/), 'a planted error message is found');
    const message = describeFindings(planted, needles);
    assert.match(message, new RegExp(`${tempKey.name} \\(raw\\) in terminal/old store file data\\.mdb`));
    assert.equal(scan([{ where: 'the failure message', bytes: utf8(message) }], needles), [], 'the failure message names each secret, and holds none');

    const total = sources.reduce((n, s) => n + s.haystacks.length, 0);
    const per = (['log', 'error', 'trace', 'lmdb', 'envelope'] as const).map(
      (k) => `${k} ${sources.filter((s) => s.kind === k).reduce((n, s) => n + s.haystacks.length, 0)}`,
    );
    console.log(
      `  secret hygiene: ${needles.length} needles (${count('chip session key')} session, ${count('channel key')} channel, ${count('random 32-byte')} ephemeral, ${count('temp key')} temp keys) ` +
        `x ${total} haystacks (${per.join(', ')}; ${scanned.records} LMDB records decoded; ${w.logLines.length} log lines; ${errors.length} error envelopes/frames); 0 found; ${Math.round(performance.now() - t0)} ms`,
    );
  } finally {
    capture.restore();
    await demoRec?.close();
    await partyRec?.close();
    await page?.close();
    await world?.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  }
});

/**
 * The login proof is scrypt(password, salt) with the user's fixed salt: the
 * server logs in whoever presents it, so it is a password-equivalent. The
 * terminal keeps it off disk (terminal.actor.ts, `requestsKeptOffDisk`): not
 * in its outbox while the login is in flight, not in a freed page after.
 */
test('secret hygiene: a terminal never writes the login proof to its LMDB, not while the login is in flight, not after', async () => {
  let inFlight: { outbox: string; file: Uint8Array } | undefined;
  let terminal: TerminalRuntime | undefined;
  const world = await buildWorld({
    items: 1,
    register: false,
    system: {
      envelopeTap: (party, direction, _peer, bytes) => {
        // A request is on disk before it is sent ("persist, then speak"): look at the store as the proof leaves.
        if (party !== 'terminal/late' || direction !== 'out' || envelope(bytes)?.type !== 'login.proof' || !terminal) return;
        const store = storeOf(terminal);
        inFlight = {
          outbox: JSON.stringify([...store.outbox.getRange()].map((e) => e.value)),
          file: new Uint8Array(readFileSync(join(store.path, 'data.mdb'))),
        };
      },
    },
  });
  try {
    terminal = await world.system.addTerminal('late');
    world.system.connectToServer(terminal);
    await terminal.login(world.user, world.password);
    assert.ok(inFlight, 'the login proof was sent');
    const needles = systemNeedles(world.system, { users: [{ user: world.user, password: world.password }], values: [] }).filter((n) =>
      n.name.startsWith('login proof'),
    );
    const found = scan(
      [
        { where: 'terminal/late outbox while the login is in flight', bytes: utf8(inFlight!.outbox) },
        { where: 'terminal/late store file while the login is in flight', bytes: inFlight!.file },
        ...filesUnder(storeOf(terminal).path).map((h) => ({ where: `terminal/late store file after the login: ${basename(h.where)}`, bytes: h.bytes })),
      ],
      needles,
    );
    assert.ok(found.length === 0, describeFindings(found, needles));
  } finally {
    await world.cleanup();
  }
});

test("secret hygiene: `valmove demo` (its valmove.log, run file and stores) and a simulator seed with every fault (its trace and every party's debug log) hold none of their own secrets", async () => {
  const capture = captureKeys();
  const simLog = memorySink();
  const tmp = mkdtempSync(join(tmpdir(), 'valmove-hygiene-'));
  try {
    // The real demo: a data folder, its log file, a run file; its secrets caught while it runs.
    const demoSpy = spySystems(capture);
    const said: string[] = [];
    const data = join(tmp, 'demo');
    const run = join(tmp, 'demo.jsonl');
    let demo: DemoReport;
    try {
      demo = await runDemo({ items: 1, data, json: false, out: (l) => void said.push(l), record: run });
    } finally {
      demoSpy.restore();
    }
    assert.is(demo.outcome, 'completed');
    // The demo's stores are closed: its admin SAM's temp-key record is read from them again. The key itself was
    // deleted at S16 (its record stays for the audit trail); the spy caught it as the admin SAM stored it.
    const demoAdmin = PartyStore.open(join(data, 'admin-sam'));
    const demoTempKeys = [...new AdminSamRecords(demoAdmin).tempKeys.getRange()].map(({ value }) => value);
    await demoAdmin.close();
    // One item: one temp key for its issuance (the provider's order), one for its migration.
    assert.is(demoTempKeys.length, 2);
    assert.ok(
      demoTempKeys.every((r) => r.key === null && r.destinationMainKcv !== null),
      "the demo's temp keys were deleted once their issuance and migration completed; their key check values stay",
    );
    const demoNeedles = demoSpy.needles();
    assert.is(demoNeedles.filter((n) => n.name.startsWith('temp key')).length, 2, "the demo's temp keys are needles (caught as the admin SAM stored them)");
    assert.equal(demoSpy.tooShort(), []);
    const demoLog = readFileSync(join(data, 'valmove.log'), 'utf8').split('\n').filter(Boolean);
    const demoStores = ['server', 'admin-sam', ...readdirSync(data).filter((d) => d.startsWith('terminal-'))];
    const demoSources: Source[] = [
      { kind: 'log', haystacks: [...logHaystacks(demoLog, 'demo valmove.log'), ...said.map((l, i) => ({ where: `demo output line ${i}`, bytes: utf8(l) }))] },
      { kind: 'error', haystacks: [{ where: 'demo report', bytes: utf8(shown(demo)) }] },
      { kind: 'trace', haystacks: [{ where: 'demo run file', bytes: new Uint8Array(readFileSync(run)) }] },
      ...demoStores.map((d): Source => {
        const store = PartyStore.open(join(data, d));
        try {
          const owner = d === 'server' || d === 'admin-sam' ? d : `terminal/${d.slice('terminal-'.length)}`;
          return { kind: 'lmdb', owner, haystacks: storeHaystacks(store, `demo ${d} store`) };
        } finally {
          void store.close();
        }
      }),
    ];
    const demoFound = findingsIn(demoSources, demoNeedles);
    assert.ok(demoFound.length === 0, describeFindings(demoFound, demoNeedles));
    assert.ok(
      demoNeedles.some((n) => n.name.startsWith('password of')) && demoNeedles.some((n) => n.name.startsWith('value item')),
      "the demo's password and items are among its needles",
    );

    // One simulator seed: every fault kind, crashes included; every party logs at debug level to this test.
    const simSpy = spySystems(capture, { log: createLogger({ level: 'debug', sink: simLog }) });
    let result: SeedResult;
    try {
      result = await runSeed({ seed: 'hygiene-3', migrations: 1, items: 2, faults: FAULT_KINDS, dataDir: join(tmp, 'sim'), keepTrace: true });
    } finally {
      simSpy.restore();
    }
    assert.ok(result.ok, `the seed passed: ${result.violation?.message ?? ''}`);
    const simNeedles = simSpy.needles();
    // The simulator's users all have the password "pw": too short to tell from text; their login proofs are searched.
    assert.equal(simSpy.tooShort(), ['password of u0']);
    assert.ok(simNeedles.some((n) => n.name.startsWith('login proof')) && simNeedles.some((n) => n.name.startsWith('value item')));
    const simSources: Source[] = [
      { kind: 'trace', haystacks: result.trace.map((l, i) => ({ where: `simulator trace line ${i}`, bytes: utf8(l) })) },
      { kind: 'log', haystacks: logHaystacks(simLog.lines, 'simulator log') },
    ];
    const simFound = findingsIn(simSources, simNeedles);
    assert.ok(simFound.length === 0, describeFindings(simFound, simNeedles));
    console.log(
      `  secret hygiene: demo ${demoNeedles.length} needles x ${demoSources.reduce((n, s) => n + s.haystacks.length, 0)} haystacks; ` +
        `simulator seed (${result.stats.crashes} crashes, faults ${JSON.stringify(result.stats.faults)}) ${simNeedles.length} needles x ${result.trace.length} trace lines + ${simLog.lines.length} log lines; 0 found`,
    );
  } finally {
    capture.restore();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
