/**
 * The run recorder and its sinks: what a record may hold (header fields,
 * sizes, step labels, state names; never a body, a frame or a context),
 * that a tap never throws into the runtime, and that the file and the live
 * feed (a real `ws` server on 127.0.0.1) receive the same records.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocketServer, type WebSocket } from 'ws';
import { assign, createActor, setup } from 'xstate';
import { encodeEnvelope, type Envelope } from '../../src/transport/envelope.ts';
import { createRecorder, type RecordSink } from '../../src/trace/recorder.ts';
import type { RunRecord } from '../../src/trace/records.ts';
import { feedSink, fileSink } from '../../src/trace/sinks.ts';

function memory(): RecordSink & { records: RunRecord[] } {
  const records: RunRecord[] = [];
  return { records, write: (r) => void records.push(r), close: async () => {} };
}

const env = (e: Partial<Envelope> & Pick<Envelope, 'type' | 'body'>): Uint8Array =>
  encodeEnvelope({ v: 1, id: 'server#1', from: 'server', to: 'terminal/old', ...e } as Envelope);

test('a tap that cannot decode records nothing and never throws into the runtime', () => {
  const sink = memory();
  const rec = createRecorder({ source: 'demo', party: '*', sinks: [sink] });
  rec.tap('server', 'in', 'x', new TextEncoder().encode('{"v":1,"id":"a"'));
  rec.tap('server', 'in', 'x', new Uint8Array([0xff, 0xfe, 0x00]));
  rec.tap('server', 'in', 'x', new TextEncoder().encode(JSON.stringify({ v: 1, id: 'a', from: 'b', to: 'c', type: 'nope', body: {} })));
  assert.is(rec.counts.undecodable, 3);
  assert.equal(
    sink.records.map((r) => r.kind),
    ['run'],
  );
});

test('a progress notice records the step it reports and its migration, never its text', () => {
  const sink = memory();
  const rec = createRecorder({ source: 'demo', party: '*', sinks: [sink] });
  const bytes = env({ type: 'progress', body: { mig: 'm-abc', step: 'S6', text: 'chip and migration SAM authenticate TOPSECRET' } });
  rec.tap('server', 'out', 'terminal/old', bytes);
  const r = sink.records[1]!;
  assert.equal(r, {
    kind: 'envelope',
    t: (r as { t: number }).t,
    direction: 'out',
    party: 'server',
    id: 'server#1',
    from: 'server',
    to: 'terminal/old',
    type: 'progress',
    mig: 'm-abc',
    step: 'S6',
    bytes: bytes.length,
  });
  assert.not.ok(JSON.stringify(sink.records).includes('TOPSECRET'));
});

test("a relayed frame records its size and its session's step, never its data", () => {
  const sink = memory();
  const rec = createRecorder({ source: 'demo', party: '*', sinks: [sink] });
  const data = Buffer.alloc(96, 0x5a).toString('base64url');
  const bytes = env({ type: 'frame', body: { session: 'm-abc:S7:3', data } });
  rec.tap('terminal/old', 'in', 'server', bytes);
  const r = sink.records[1] as Extract<RunRecord, { kind: 'envelope' }>;
  assert.is(r.frameBytes, 96);
  assert.is(r.bytes, bytes.length);
  assert.is(r.step, 'S7');
  assert.is(r.mig, 'm-abc');
  assert.not.ok(JSON.stringify(sink.records).includes(data.slice(0, 16)), 'frame data is not recorded');
});

test('state records: active leaf paths dot-joined from the root, moves only, no context or event payload', () => {
  const machine = setup({
    types: { context: {} as { secret: string }, events: {} as { type: 'GO'; password: string } | { type: 'NOOP' } },
  }).createMachine({
    id: 'door',
    context: { secret: 'K3Y-MATERIAL' },
    type: 'parallel',
    states: {
      lock: { initial: 'locked', states: { locked: { on: { GO: 'open' } }, open: {} } },
      light: { initial: 'off', states: { off: {} } },
    },
    on: { NOOP: { actions: assign({ secret: 'K3Y-MATERIAL-2' }) } },
  });
  const sink = memory();
  const rec = createRecorder({ source: 'party', party: 'p', sinks: [sink] });
  const actor = createActor(machine, { inspect: (e) => rec.inspect('p', 'door-1', e) });
  actor.start();
  actor.send({ type: 'NOOP' });
  actor.send({ type: 'GO', password: 'hunter2' });
  actor.stop();
  const states = sink.records.filter((r) => r.kind === 'state');
  assert.equal(
    states.map((r) => ({ ...r, t: 0 })),
    [
      { kind: 'state', t: 0, party: 'p', actor: 'door-1', machine: 'door', states: ['door.lock.locked', 'door.light.off'], event: 'xstate.init' },
      { kind: 'state', t: 0, party: 'p', actor: 'door-1', machine: 'door', states: ['door.lock.open', 'door.light.off'], event: 'GO' },
    ],
    'the NOOP snapshot (same states) is not a move',
  );
  const text = JSON.stringify(sink.records);
  assert.not.ok(text.includes('K3Y') || text.includes('hunter2'));
});

async function feedServer(): Promise<{ url: string; messages: string[]; connections: number; closed: Promise<void>; stop(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/feed' });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const port = (wss.address() as { port: number }).port;
  const state = { messages: [] as string[], connections: 0 };
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  wss.on('connection', (ws: WebSocket) => {
    state.connections++;
    ws.on('message', (m) => state.messages.push(String(m)));
    ws.on('close', () => resolveClosed());
  });
  return {
    url: `ws://127.0.0.1:${port}/feed`,
    get messages() {
      return state.messages;
    },
    get connections() {
      return state.connections;
    },
    closed,
    stop: () => new Promise<void>((r) => wss.close(() => r())),
  };
}

test('the WebSocket sink delivers the same records as the file, the run header first, to a local ws server', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-rec-'));
  const server = await feedServer();
  try {
    const file = join(dir, 'sub', 'run.jsonl');
    const feed = feedSink(server.url);
    const rec = createRecorder({ source: 'demo', party: '*', sinks: [fileSink(file), feed] });
    // Written at once: the feed is still connecting and buffers them.
    for (let i = 0; i < 50; i++)
      rec.tap('server', 'out', 'terminal/old', env({ id: `server#${i}`, type: 'progress', body: { mig: 'm-1', step: `S${(i % 17) + 1}`, text: '' } }));
    await new Promise((r) => setTimeout(r, 100));
    // ...and once it is open, as they come.
    for (let i = 50; i < 60; i++) rec.tap('server', 'out', 'terminal/old', env({ id: `server#${i}`, type: 'channel.reserved', corr: 'x', body: {} }));
    await rec.close();
    await server.closed;
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.is(lines.length, 61);
    assert.equal(server.messages, lines, 'same records, same order');
    assert.is(JSON.parse(server.messages[0]!).kind, 'run');
    assert.is(feed.dropped, 0);
    assert.is(feed.sent, 61);
    assert.is(server.connections, 1);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('while connecting the feed keeps the header and the newest records up to its limit, and counts what it dropped', async () => {
  const server = await feedServer();
  try {
    const feed = feedSink(server.url, { bufferRecordsMax: 5 });
    const rec = createRecorder({ source: 'party', party: 'server', sinks: [feed] });
    for (let i = 0; i < 20; i++) rec.tap('server', 'out', 'terminal/old', env({ id: `server#${i}`, type: 'channel.reserved', corr: 'x', body: {} }));
    await rec.close();
    await server.closed;
    const got = server.messages.map((m) => JSON.parse(m) as RunRecord);
    assert.is(got[0]!.kind, 'run');
    assert.equal(
      got.slice(1).map((r) => (r as { id: string }).id),
      ['server#15', 'server#16', 'server#17', 'server#18', 'server#19'],
    );
    assert.is(feed.dropped, 15);
  } finally {
    await server.stop();
  }
});

test('a feed that cannot connect is reported once, and the run neither waits nor fails', async () => {
  const server = await feedServer();
  const url = server.url;
  await server.stop();
  const reports: string[] = [];
  const feed = feedSink(url, { report: (m) => reports.push(m), closeTimeoutMs: 1_000 });
  const rec = createRecorder({ source: 'demo', party: '*', sinks: [feed] });
  const started = performance.now();
  for (let i = 0; i < 1000; i++) rec.tap('server', 'out', 'terminal/old', env({ id: `server#${i}`, type: 'channel.reserved', corr: 'x', body: {} }));
  assert.ok(performance.now() - started < 1_000, 'taps do not wait for the network');
  await new Promise((r) => setTimeout(r, 200));
  for (let i = 0; i < 10; i++) rec.tap('server', 'out', 'terminal/old', env({ id: `late#${i}`, type: 'channel.reserved', corr: 'x', body: {} }));
  const closing = performance.now();
  await rec.close();
  assert.ok(performance.now() - closing < 1_500, 'close is bounded');
  assert.is(reports.length, 1, reports.join(' | '));
  assert.match(reports[0]!, new RegExp(`live feed ${url.replace(/[/.]/g, '\\$&')}: could not connect`));
  assert.is(feed.dropped, 1010);
});

test('a file sink that cannot be opened fails at once, before the run starts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-rec-'));
  try {
    writeFileSync(join(dir, 'a-file'), '');
    assert.throws(() => fileSink(join(dir, 'a-file', 'run.jsonl')), /ENOTDIR|EEXIST/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
