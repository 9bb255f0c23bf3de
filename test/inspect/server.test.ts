/**
 * The inspect server without a browser: what it serves, what its feed takes
 * and refuses, and what a page that connects late receives.
 */
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocket } from 'ws';
import { InspectServer } from '../../src/inspect/server.ts';
import { stateValueOf } from '../../src/inspect/stately.ts';
import { memorySink, createLogger } from '../../src/log.ts';
import type { RunRecord } from '../../src/trace/records.ts';

const sink = memorySink();
let server: InspectServer;
/** Bound on each wait for a socket event. */
const WAIT_MS = 5_000;

test.before(async () => {
  server = await InspectServer.start({ port: 0, log: createLogger({ level: 'info', sink }) });
});
test.after(async () => {
  await server.close();
});

function open(path: string): Promise<WebSocket> {
  const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}${path}`);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message within the bound')), WAIT_MS);
    ws.once('message', (d) => {
      clearTimeout(timer);
      resolve(d.toString());
    });
  });
}

async function until(cond: () => boolean, what: string, bound_ms = WAIT_MS): Promise<void> {
  for (let i = 0; i < bound_ms / 20; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const RUN: RunRecord = { kind: 'run', v: 1, source: 'party', party: 'server', startedAt: new Date(0).toISOString() };
const ENV: RunRecord = {
  kind: 'envelope',
  t: 5,
  direction: 'out',
  party: 'server',
  id: 'm1',
  from: 'server',
  to: 'admin-sam',
  type: 'admin.lock',
  mig: 'mig-1',
  step: 'S3',
  bytes: 321,
};
const STATE: RunRecord = {
  kind: 'state',
  t: 6,
  party: 'server',
  actor: 'mig-1',
  machine: 'migration',
  states: ['migration.sourcePhase.locking'],
  event: 'ITEMS_FOUND',
};

test('serves the page, its script, every chart as SVG with state ids, and says what is not there', async () => {
  const page = await fetch(server.url);
  assert.is(page.status, 200);
  assert.match(await page.text(), /<script src="\/app.js">/);
  assert.is((await fetch(`${server.url}app.js`)).status, 200);
  const { machines } = (await (await fetch(`${server.url}api/machines`)).json()) as { machines: string[] };
  assert.ok(machines.includes('migration') && machines.includes('area'), `machines: ${machines.join(', ')}`);
  const svg = await (await fetch(`${server.url}api/chart/migration.svg`)).text();
  assert.match(svg, /<svg/);
  assert.match(svg, /id="migration:sourcePhase"/, 'state elements carry the ids the page highlights by');
  const missing = await fetch(`${server.url}api/chart/nosuch.svg`);
  assert.is(missing.status, 404);
  assert.match(((await missing.json()) as { error: string }).error, /no machine named "nosuch"; one of .*migration/);
  assert.is((await fetch(`${server.url}api/demo`, { method: 'POST' })).status, 404, 'no demo without a demo runner');
});

test('the feed takes valid records and passes them to pages; a bad record is refused with the field named, and the feed keeps serving', async () => {
  const page = await open('live');
  const feed = await open('feed');
  const got: string[] = [];
  page.on('message', (d) => got.push(d.toString()));
  feed.send(JSON.stringify(RUN));
  feed.send(JSON.stringify(ENV));
  await until(() => got.length === 2, 'two records at the page');
  assert.equal(JSON.parse(got[1]!), ENV);

  for (const [bad, why] of [
    ['{not json', /not JSON/],
    [JSON.stringify({ ...ENV, bytes: -1 }), /at bytes/],
    [JSON.stringify({ ...ENV, body: 'secret' }), /record/],
    [JSON.stringify({ ...STATE, states: 'x' }), /at states/],
    [JSON.stringify({ kind: 'other' }), /at kind/],
  ] as Array<[string, RegExp]>) {
    const reply = nextMessage(feed);
    feed.send(bad);
    assert.match(JSON.parse(await reply).error, why);
  }
  feed.send(JSON.stringify(STATE));
  await until(() => got.length === 3, 'the good record after the bad ones');
  assert.equal(JSON.parse(got[2]!), STATE, 'refused records never reach a page');
  assert.is(server.refused, 5);
  assert.ok(
    sink.lines.some((l) => l.includes('feed record refused')),
    'refusals are logged',
  );
  assert.not.ok(
    sink.lines.some((l) => l.includes('secret')),
    'the refused body is not logged',
  );
  feed.close();
  page.close();
});

test('a page that connects late gets the history first', async () => {
  const page = new WebSocket(`${server.url.replace(/^http/, 'ws')}live`);
  const got: string[] = [];
  page.on('message', (d) => got.push(d.toString()));
  await until(() => got.length >= 3, 'the history');
  assert.equal(
    got.slice(0, 3).map((t) => JSON.parse(t).kind),
    ['run', 'envelope', 'state'],
  );
  page.close();
});

test('the sequence endpoints group the recorded envelopes by step', async () => {
  const seq = (await (await fetch(`${server.url}api/sequence.json?mig=mig-1`)).json()) as { steps: Array<{ step: string; messages: unknown[] }> };
  assert.equal(
    seq.steps.map((s) => s.step),
    ['S3'],
  );
  assert.is(seq.steps[0]!.messages.length, 1);
  assert.match(await (await fetch(`${server.url}api/sequence.svg?mig=mig-1`)).text(), /<svg[\s\S]*admin\.lock/);
});

test('Stately bridge: active leaf paths fold back into a state value', () => {
  assert.is(stateValueOf(['migration.completed']), 'completed');
  assert.equal(stateValueOf(['migration.sourcePhase.uploading.authenticating']), { sourcePhase: { uploading: 'authenticating' } });
  assert.equal(stateValueOf(['chip.a.x', 'chip.b.y']), { a: 'x', b: 'y' });
});

test('valmove inspect as a user starts it: prints the page and feed addresses, serves, and stops on SIGTERM', async () => {
  const bin = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'bin/valmove.js');
  const child = spawn(process.execPath, [bin, 'inspect', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  try {
    // A process start (tsx compiles on the fly) can take seconds on a loaded machine.
    // Both lines: the feed's is written after the page's, and a SIGTERM before the process waits for it would end it uncleanly.
    await until(() => /open (http:\/\/127\.0\.0\.1:\d+\/)/.test(output) && /\/feed/.test(output), 'the address lines', 30_000);
    const url = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)![1]!;
    assert.match(output, /valmove demo --inspect ws:\/\/127\.0\.0\.1:\d+\/feed/, 'it says how to attach a run');
    const { machines, demo } = (await (await fetch(`${url}api/machines`)).json()) as { machines: string[]; demo: string };
    assert.is(machines.length, 10); // every machine of src/model/models.ts, the backup (issue 22) included
    assert.is(demo, 'ready', 'the page can run a demo');
  } finally {
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    child.kill('SIGTERM');
    assert.is(await exited, 0, `exits cleanly on SIGTERM: ${output}`);
  }
});

test.run();
