/** The WebSocket transport on loopback: links, reconnection with backoff, limits, TLS. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromB64, systemRng } from '../../src/crypto/index.ts';
import { loadConfig, type ChipConfig } from '../../src/deploy/config.ts';
import { identityOf, readKeyFile } from '../../src/deploy/keyfiles.ts';
import { SecureInitiatorLink } from '../../src/transport/secure.link.ts';
import { generateDeployment } from '../../src/deploy/keygen.ts';
import { startProcess } from '../../src/deploy/process.ts';
import { encodeEnvelope, decodeEnvelope } from '../../src/transport/envelope.ts';
import type { Link } from '../../src/transport/link.ts';
import { openWsLink, serveWebSockets, WS_PAYLOAD_BYTES_MAX, WsConnector } from '../../src/transport/ws.transport.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

function nextMessage(link: Link, ms = 3_000): Promise<string> {
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error('no message')), ms);
    link.onMessage((b) => {
      clearTimeout(t);
      res(dec.decode(b));
    });
  });
}

async function echoServer() {
  const http = createServer();
  const accepted: Link[] = [];
  serveWebSockets(http, {
    '/echo': (link) => {
      accepted.push(link);
      link.onMessage((b) => link.send(b));
    },
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const port = (http.address() as { port: number }).port;
  return { http, port, accepted };
}

test('a link carries bytes both ways, in order', async () => {
  const { http, port } = await echoServer();
  const link = await openWsLink(`ws://127.0.0.1:${port}/echo`);
  const got: string[] = [];
  const done = new Promise<void>((r) =>
    link.onMessage((b) => {
      got.push(dec.decode(b));
      if (got.length === 50) r();
    }),
  );
  for (let i = 0; i < 50; i++) link.send(enc.encode(`m${i}`));
  await done;
  assert.equal(
    got,
    Array.from({ length: 50 }, (_, i) => `m${i}`),
  );
  link.close();
  http.close();
});

test('an unknown path is refused (404) and the connection fails clearly', async () => {
  const { http, port } = await echoServer();
  let message = '';
  await openWsLink(`ws://127.0.0.1:${port}/nowhere`).catch((e: Error) => (message = e.message));
  assert.match(message, /can not connect/);
  http.close();
});

test('the connector reconnects with backoff after the other side drops it', async () => {
  const { http, port, accepted } = await echoServer();
  const links: Link[] = [];
  const connector = new WsConnector({ url: `ws://127.0.0.1:${port}/echo`, onConnect: (l) => links.push(l) });
  for (let i = 0; i < 100 && links.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
  assert.is(links.length, 1);
  accepted[0]!.close('server drops the connection');
  for (let i = 0; i < 200 && links.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  assert.is(links.length, 2, 'a new link after the drop');
  const reply = nextMessage(links[1]!);
  links[1]!.send(enc.encode('again'));
  assert.is(await reply, 'again');
  connector.close();
  http.close();
});

test('a frame above the socket limit closes that socket (1009), the server keeps serving', async () => {
  const { http, port } = await echoServer();
  const big = await openWsLink(`ws://127.0.0.1:${port}/echo`);
  const closed = new Promise<string>((r) => big.onClose(r));
  big.send(new Uint8Array(WS_PAYLOAD_BYTES_MAX + 1));
  assert.match(await closed, /1009/);
  const ok = await openWsLink(`ws://127.0.0.1:${port}/echo`);
  const reply = nextMessage(ok);
  ok.send(enc.encode('still here'));
  assert.is(await reply, 'still here');
  ok.close();
  http.close();
});

test('TLS: a process with certificate paths in its config serves wss://, trusted through the configured CA', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-tls-'));
  try {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const summary = await generateDeployment({ dir: join(dir, 'deploy'), providers: ['p'], chips: ['TLS1'], terminals: [{ name: 't', chip: 'TLS1' }] });
    const file = summary.processes.find((p) => p.role === 'chip')!.config;
    const raw = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...raw, tls: { cert, key } }));
    const chip = await startProcess(loadConfig(file) as ChipConfig, { logSink: { write: () => {} } });
    try {
      // The chip answers only its paired phone: a channel to the chip's key, proving the phone's device key.
      const phone = readKeyFile(join(dir, 'deploy', 'keys', 'terminal-t.key.json'), 'terminal');
      const chipKey = summary.publicKeys['chip/TLS1']!.signPublic!;
      const raw = await openWsLink(`wss://127.0.0.1:${chip.port}/chip`, readFileSync(cert));
      const link = new SecureInitiatorLink(raw, { name: 'terminal/t', identity: identityOf(phone.identity), peerSignPublic: fromB64(chipKey), rng: systemRng });
      const reply = nextMessage(link);
      link.send(encodeEnvelope({ v: 1, id: 'terminal/t#1', from: 'terminal/t', to: 'chip/TLS1', type: 'chip.select', body: {} }));
      const env = decodeEnvelope(enc.encode(await reply));
      assert.is(env.type, 'chip.info');
      link.close();
      let message = '';
      await openWsLink(`wss://127.0.0.1:${chip.port}/chip`).catch((e: Error) => (message = e.message));
      assert.match(message, /self.signed|certificate/i, 'without the CA the certificate is not trusted');
    } finally {
      await chip.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
