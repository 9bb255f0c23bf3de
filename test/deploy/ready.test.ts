/**
 * Deployers' acceptance (issue 21, point 5): `/readyz` beside `/healthz`, on
 * real processes over loopback. The server is ready only while its admin SAM
 * and migration SAMs are linked: it turns not-ready once the admin SAM
 * process is killed (naming it to the operator) and ready again once it is
 * restarted, while /healthz says "ok" throughout. Polls are bounded; no
 * assertion is on time beyond the generous bound.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { systemRng, toHex } from '../../src/crypto/index.ts';
import { launchDeployment, type LocalDeployment } from '../../src/deploy/up.ts';
import { testDeployment } from '../helpers/deployment.ts';

const t = suite('/readyz on real processes');
const password = `pw-${toHex(systemRng.bytes(6))}`;
/** How long a readiness change may take to show: generous, for a loaded machine (the admin SAM's reconnect backoff is the most of it). */
const TURN_BOUND_MS = 60_000;
const POLL_MS = 200;
let dir: string;
let d: LocalDeployment | undefined;

interface Answer {
  status: number;
  body: { status: string; failing?: string[]; detail?: Array<{ check: string; party: string; problem: string }> };
}

async function readyz(port: number, token?: string): Promise<Answer> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

/** Polls /readyz until `want` holds (bounded); fails with the last answer seen. */
async function until(port: number, what: string, want: (a: Answer) => boolean, token?: string): Promise<Answer> {
  const deadline = Date.now() + TURN_BOUND_MS;
  let last: Answer | undefined;
  while (Date.now() < deadline) {
    last = await readyz(port, token);
    if (want(last)) return last;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`${what}: not within ${TURN_BOUND_MS} ms; last /readyz answer ${JSON.stringify(last)}`);
}

const tokenOf = (id: string) => (JSON.parse(readFileSync(join(dir, 'keys', `${id}.key.json`), 'utf8')) as { operatorToken: string }).operatorToken;

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'valmove-ready-'));
  d = await launchDeployment(testDeployment(dir, 1, password));
});

t.after(async () => {
  await d?.stop();
  rmSync(dir, { recursive: true, force: true });
});

t('every process turns ready once the peers it dials are linked', async () => {
  for (const p of d!.processes) await until(p.port, `${p.id} ready`, (a) => a.status === 200 && a.body.status === 'ready');
});

t('the server is not ready without its admin SAM, says so, and is ready again after the admin SAM restarts', async () => {
  const port = d!.process('server').port;
  const token = tokenOf('server');
  await until(port, 'server ready at first', (a) => a.status === 200);
  await d!.kill('admin-sam');
  const down = await until(port, 'server not ready after the admin SAM died', (a) => a.status === 503, token);
  assert.equal(down.body.status, 'not ready');
  assert.equal(down.body.failing, ['peers'], `only the peers check fails: ${JSON.stringify(down.body)}`);
  assert.ok(
    down.body.detail?.some((p) => p.party === 'server' && p.problem === 'no link to admin-sam'),
    `the operator is told which link is missing: ${JSON.stringify(down.body.detail)}`,
  );
  const stranger = await readyz(port);
  assert.is(stranger.status, 503);
  assert.is(stranger.body.detail, undefined, 'a stranger learns which check fails, not which peer');
  // The dropped link is a warning in the server's log (between the deployment's own parties; docs/deploying.md#logs).
  const lines = readFileSync(join(dir, 'logs', 'server.log'), 'utf8')
    .split('\n')
    .filter(Boolean);
  const closed = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'link closed' && l.peer === 'admin-sam');
  assert.ok(closed.length > 0, 'the server logged the lost link');
  assert.ok(
    closed.every((l) => l.level === 'warn'),
    `at warn: ${JSON.stringify(closed)}`,
  );
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.is(health.status, 200, '/healthz: the server is alive all the same');
  await d!.restart('admin-sam');
  const up = await until(port, 'server ready after the admin SAM restarted', (a) => a.status === 200);
  assert.equal(up.body, { status: 'ready' });
});

t.run();
