/**
 * /metrics as Prometheus reads it (issue 21, point 5; `promtool` is not
 * installed here): the exposition format and the naming rules, checked by a
 * strict parser (test/helpers/exposition.ts) that is first shown to refuse
 * each rule broken; then every process's /metrics on a real deployment, and
 * the server's migration metrics after a migration completed and a user was
 * locked out.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { generateIdentity, systemRng, toB64, toHex } from '../../src/crypto/index.ts';
import { identityOf, readKeyFile } from '../../src/deploy/keyfiles.ts';
import { launchDeployment, type LocalDeployment } from '../../src/deploy/up.ts';
import { testDeployment } from '../helpers/deployment.ts';
import { parseExposition, sampleValue } from '../helpers/exposition.ts';
import { probe } from '../helpers/probe.ts';

const t = suite('/metrics: Prometheus format and names');
const password = `pw-${toHex(systemRng.bytes(6))}`;
let dir: string;
let d: LocalDeployment | undefined;

const GOOD = `# HELP a_total Things.
# TYPE a_total counter
a_total{kind="x",why="say \\"hi\\"\\n"} 3
# HELP b_seconds Time.
# TYPE b_seconds histogram
b_seconds_bucket{le="0.1"} 1
b_seconds_bucket{le="1"} 2
b_seconds_bucket{le="+Inf"} 2
b_seconds_sum 0.6
b_seconds_count 2
# HELP c_bytes Size.
# TYPE c_bytes gauge
c_bytes 1e3
`;

t('the parser reads a well-formed exposition', () => {
  const f = parseExposition(GOOD);
  assert.equal([...f.keys()], ['a_total', 'b_seconds', 'c_bytes']);
  assert.is(sampleValue(f, 'a_total', { why: 'say "hi"\n' }), 3);
  assert.is(sampleValue(f, 'b_seconds_count'), 2);
  assert.is(sampleValue(f, 'c_bytes'), 1000);
});

t('the parser refuses each rule broken (a check that can fail)', () => {
  const broken: Array<[string, string, RegExp]> = [
    ['a counter without _total', GOOD.replaceAll('a_total', 'a_count_of'), /does not end in _total/],
    ['a gauge named _total', GOOD.replaceAll('c_bytes', 'c_total'), /gauge whose name ends in _total/],
    ['no HELP', GOOD.replace('# HELP c_bytes Size.\n', ''), /c_bytes: no HELP/],
    ['no TYPE', GOOD.replace('# TYPE a_total counter\n', ''), /a_total: no TYPE/],
    ['a bad metric name', GOOD.replace('c_bytes 1e3', 'c-bytes 1e3'), /not a sample line|bad metric name|without HELP/],
    ['a bad label name', GOOD.replace('kind="x"', '1kind="x"'), /bad label name/],
    ['an unquoted label value', GOOD.replace('kind="x"', 'kind=x'), /not quoted/],
    ['a bad escape', GOOD.replace('\\"hi\\"', '\\thi'), /bad escape/],
    ['a bad value', GOOD.replace('c_bytes 1e3', 'c_bytes lots'), /bad value/],
    ['no +Inf bucket', GOOD.replace('b_seconds_bucket{le="+Inf"} 2\n', ''), /no le="\+Inf" bucket/],
    ['+Inf bucket not _count', GOOD.replace('b_seconds_count 2', 'b_seconds_count 5'), /is not _count/],
    ['buckets not cumulative', GOOD.replace('b_seconds_bucket{le="1"} 2', 'b_seconds_bucket{le="1"} 0'), /not cumulative/],
    ['no _sum', GOOD.replace('b_seconds_sum 0.6\n', ''), /no _sum/],
    ['a unit not last', GOOD.replaceAll('c_bytes', 'c_bytes_used'), /unit _bytes is not last/],
    ['milliseconds', GOOD.replaceAll('c_bytes', 'c_ms'), /base unit/],
    ['samples apart', `${GOOD}a_total{kind="y"} 1\n`, /not together/],
    ['no final newline', GOOD.trimEnd(), /newline/],
  ];
  for (const [what, text, why] of broken) {
    assert.throws(() => parseExposition(text), why, what);
  }
});

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'valmove-metrics-'));
  d = await launchDeployment(testDeployment(dir, 1, password));
});

t.after(async () => {
  await d?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const scrape = async (port: number) => parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());

t('every process serves /metrics that parse, with the work counters as _total counters and the party gauges', async () => {
  for (const p of d!.processes) {
    const f = await scrape(p.port);
    for (const name of [
      'valmove_crypto_ops_total',
      'valmove_lmdb_ops_total',
      'valmove_messages_total',
      'valmove_step_retries_total',
      'valmove_requests_resent_total',
    ]) {
      assert.is(f.get(name)?.type, 'counter', `${p.id}: ${name} is a counter`);
    }
    for (const name of ['valmove_outbox_requests', 'valmove_inbox_records', 'valmove_queue_jobs', 'valmove_links_open', 'valmove_connections']) {
      assert.is(f.get(name)?.type, 'gauge', `${p.id}: ${name} is a gauge`);
    }
    assert.ok((sampleValue(f, 'valmove_store_used_bytes') ?? 0) > 0, `${p.id}: its store's bytes are measured`);
  }
});

t('the server counts a migration started and completed, its duration, in flight by phase, and a lockout', async () => {
  const oldPhone = d!.terminal('old');
  const newPhone = d!.terminal('new');
  for (const ph of [oldPhone, newPhone]) {
    await ph.login('alice', password);
    await ph.register();
  }
  const out = await oldPhone.migrateOut({ destination: 'DST' });
  assert.is(out.outcome, 'uploaded');
  const port = d!.process('server').port;
  const mid = await scrape(port);
  assert.is(sampleValue(mid, 'valmove_migrations_started_total', { party: 'server' }), 1);
  assert.is(sampleValue(mid, 'valmove_migrations_in_flight', { phase: 'awaitingDestination' }), 1, 'one migration waits for its destination');
  assert.is(sampleValue(mid, 'valmove_migrations_ended_total'), undefined, 'none ended yet');
  const done = await newPhone.migrateIn({ mig: out.mig });
  assert.is(done.outcome, 'completed');
  // Three wrong proofs from a stranger's phone lock alice out (LOGIN_FAILURES_FREE).
  const serverKey = identityOf(readKeyFile(join(dir, 'keys', 'server.key.json'), 'server').identity);
  const s = await probe(`ws://127.0.0.1:${port}/terminal`, {
    name: 'terminal/stranger',
    identity: generateIdentity(systemRng),
    peerSignPublic: toB64(serverKey.signPublic),
  });
  await s.ready;
  const base = { v: 1, from: 'terminal/stranger', to: 'server' };
  for (let i = 0; i < 3; i++) {
    s.send({ ...base, id: `terminal/stranger#${i}`, type: 'login.proof', body: { user: 'alice', proof: toB64(systemRng.bytes(32)) } });
    const r = await s.next();
    assert.is((r.body as { code: string }).code, 'LOGIN_FAILED', JSON.stringify(r));
  }
  s.close();
  const f = await scrape(port);
  assert.is(sampleValue(f, 'valmove_migrations_started_total', { party: 'server' }), 1, 'started once, however many turns it took');
  assert.is(sampleValue(f, 'valmove_migrations_ended_total', { party: 'server', outcome: 'completed' }), 1);
  assert.is(sampleValue(f, 'valmove_migration_duration_seconds_count', { outcome: 'completed' }), 1);
  assert.ok((sampleValue(f, 'valmove_migration_duration_seconds_sum', { outcome: 'completed' }) ?? 0) > 0, 'it took some time');
  assert.is(sampleValue(f, 'valmove_migrations_in_flight'), undefined, 'nothing in flight');
  assert.is(sampleValue(f, 'valmove_login_lockouts_total', { party: 'server' }), 1);
  assert.is(sampleValue(f, 'valmove_links_open', { party: 'server' }), 4, 'admin SAM, migration SAM, two phones');
});

t('every log line is JSON whose fields are values, not JSON inside a string; state changes name their states', () => {
  let changes = 0;
  for (const p of d!.processes) {
    const lines = readFileSync(join(dir, 'logs', `${p.id}.log`), 'utf8')
      .split('\n')
      .filter(Boolean);
    for (const line of lines) {
      const rec = JSON.parse(line) as Record<string, unknown>;
      assert.ok(['debug', 'info', 'warn', 'error'].includes(rec.level as string), `${p.id}: a level by name: ${line}`);
      for (const [k, v] of Object.entries(rec)) {
        if (typeof v === 'string' && /^["{[]/.test(v)) assert.unreachable(`${p.id}: field ${k} holds JSON in a string: ${line}`);
      }
      if (rec.msg === 'state changed') {
        changes++;
        assert.match(rec.from as string, /^[A-Za-z]/, line);
      }
    }
  }
  assert.ok(changes > 0, 'the migration logged its state changes');
});

t.run();
