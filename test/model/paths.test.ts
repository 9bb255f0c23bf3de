/**
 * `valmove paths` and the path half of valmove/testing (issue 20, point 5):
 * each strategy does what its name says, for every machine; `simple` stops at
 * its limit naming the machine and the flag that raises it (and the command
 * ends); the JSON document matches its schema, each path's steps chain from
 * its start state to its end state, and the payloads have the real shape (the
 * wire schemas accept every grant and receipt; frames and orders are
 * base64url of the right lengths), not placeholders.
 */
import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromB64 } from '../../src/crypto/index.ts';
import { B64URL, grantSchema, receiptSchema } from '../../src/transport/messages.ts';
import { MODEL_NAMES, PathSearchError, paths, pathsDocumentSchema, pathsJson } from '../../src/testing/index.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);

test('transitions: every machine, every transition of its chart on a path', () => {
  for (const m of MODEL_NAMES) {
    const { coverage } = paths(m, 'transitions');
    assert.equal(coverage.missingTransitions, [], m);
    assert.is(coverage.transitions.reached, coverage.transitions.total, m);
  }
});

test('shortest: every machine, exactly one path to each state it reaches, none longer than the shortest found from any input', () => {
  for (const m of MODEL_NAMES) {
    const plan = paths(m, 'shortest');
    assert.is(plan.coverage.states.reached, plan.coverage.states.total, `${m}: a shortest path to every state`);
    const ends = plan.paths.map((p) => JSON.stringify(p.state));
    assert.is(new Set(ends).size, ends.length, `${m}: one path per state`);
    assert.match(plan.promise, /shortest path to every reachable state/);
  }
  // The migration chart: more states than events on any one shortest path to them, fewer transitions than `transitions` covers.
  const migration = paths('migration', 'shortest');
  assert.ok(migration.coverage.transitions.reached < migration.coverage.transitions.total);
});

test('simple: a machine past the limit is named, with the option that raises it; raising it lists them all', () => {
  const err = (() => {
    try {
      paths('adminSession', 'simple', { limit: 10 });
    } catch (e) {
      return e as PathSearchError;
    }
    throw new Error('adminSession has more than 10 simple paths, and no error came');
  })();
  assert.instance(err, PathSearchError);
  assert.is(err.code, 'PATH_LIMIT');
  assert.match(err.message, /machine "adminSession" has more than 10 simple paths/);
  assert.match(err.message, /--limit N/);
  const all = paths('adminSession', 'simple', { limit: 1_000 });
  assert.ok(all.paths.length > 10);
  // Every simple path, each once; each transition of the chart lies on one (the chart has no cycle it must close).
  assert.is(new Set(all.paths.map((p) => JSON.stringify(p.events))).size, all.paths.length);
  assert.is(all.coverage.transitions.reached, all.coverage.transitions.total);
});

test('`valmove paths --strategy simple --machine all` ends: every machine listed or named with --limit, exit 1', async () => {
  const r = await run(process.execPath, [join(ROOT, 'bin', 'valmove.js'), 'paths', '--strategy', 'simple', '--machine', 'all', '--format', 'json'], {
    maxBuffer: 512 * 1024 * 1024,
  }).then(
    () => ({ code: 0, stdout: '' }),
    (e: { code: number; stdout: string }) => e,
  );
  assert.is(r.code, 1);
  const doc = pathsDocumentSchema.parse(JSON.parse(r.stdout));
  // The terminal's reader region holds the backup's channel too (issue 22): its simple paths passed the limit as well.
  assert.equal(
    doc.errors.map((e) => e.machine),
    ['migration', 'terminal'],
  );
  assert.match(doc.errors[0]!.message, /machine "migration" has more than 5000 simple paths.*--limit N/);
  assert.equal(doc.machines.map((m) => m.machine).sort(), MODEL_NAMES.filter((m) => m !== 'migration' && m !== 'terminal').sort());
});

test('JSON: the schema holds; each path steps from its start to its end, state by state, through named transitions', () => {
  const doc = pathsDocumentSchema.parse(pathsJson('all', 'transitions'));
  assert.is(doc.schema, 'valmove.paths/1');
  assert.equal(doc.errors, []);
  for (const m of doc.machines) {
    for (const p of m.paths) {
      let at = p.start;
      for (const s of p.steps) {
        assert.is(s.from, at, `${p.id}: a step starts where the one before ended`);
        assert.ok(s.transitions.length > 0 && s.transitions.every((t) => t.includes(' --')), `${p.id}: ${s.text} names its transitions`);
        at = s.to;
      }
      assert.is(p.state, at, p.id);
    }
  }
});

test('JSON: payloads of the real shape: grants and receipts pass the wire schemas, frames and orders are base64url', () => {
  const doc = pathsJson('migration', 'transitions');
  const events = doc.machines[0]!.paths.flatMap((p) => p.steps.map((s) => s.event as Record<string, unknown>));
  const grants = events.flatMap((e) => (Array.isArray(e.grants) ? e.grants : []));
  const receipts = events.flatMap((e) => (e.receipt ? [e.receipt] : []));
  const frames = events.flatMap((e) => (typeof e.data === 'string' ? [e.data] : []));
  assert.ok(grants.length > 0 && receipts.length > 0 && frames.length > 0);
  for (const g of grants) grantSchema.parse(g);
  for (const r of receipts) receiptSchema.parse(r);
  for (const f of frames) assert.ok(B64URL.test(f) && fromB64(f).length >= 32, `a frame of real length: ${f}`);
  assert.ok(
    events.every((e) => !e.grants || (e.grants as unknown[]).length > 0),
    'no empty grant list',
  );
  const issuance = doc.machines[0]!.paths.find((p) => p.variant === 'issuance')!;
  for (const order of (issuance.input as { issuance: { orders: string[] } }).issuance.orders) {
    const [prefix, body, sig] = order.split('.');
    assert.is(prefix, 'io1');
    assert.equal(Object.keys(JSON.parse(Buffer.from(body!, 'base64url').toString())).sort(), [
      'area',
      'ephPub',
      'expiresAt',
      'id',
      'provider',
      'sealed',
      'serial',
    ]);
    assert.is(fromB64(sig!).length, 64);
  }
});

test.run();
