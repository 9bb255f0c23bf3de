/**
 * protocol.md §4.4 for recordings: a run file is shown to people and
 * streamed to a page, so it must hold no key, password or item value in any
 * form. A recorded migration's file is searched for every secret the run
 * used (raw, hex, base64 and base64url), as the confidentiality test does
 * for the server's and terminals' data.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRecorder } from '../../src/trace/recorder.ts';
import { fileSink } from '../../src/trace/sinks.ts';
import { describeFindings, scan, systemNeedles } from '../helpers/secrets.ts';
import { buildWorld } from '../helpers/world.ts';

test('a recorded migration holds no key, password or item value, in any encoding', async () => {
  let recorder: ReturnType<typeof createRecorder> | undefined;
  const sinks: Parameters<typeof createRecorder>[0]['sinks'] = [];
  const world = await buildWorld({
    items: 2,
    system: {
      envelopeTap: (...a) => recorder?.tap(...a),
      inspect: (...a) => recorder?.inspect(...a),
    },
  });
  const file = join(world.dir, 'run.jsonl');
  try {
    sinks.push(fileSink(file));
    recorder = createRecorder({ source: 'demo', party: '*', sinks });
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    const done = await world.newPhone.migrateIn({ mig: out.mig });
    assert.is(done.outcome, 'completed');
    await recorder.close();

    const needles = systemNeedles(world.system, { users: [{ user: world.user, password: world.password }], values: world.values });
    assert.is(needles.filter((n) => n.name.startsWith('temp key')).length, 2, 'one temp key per item');

    const bytes = new Uint8Array(readFileSync(file));
    assert.ok(bytes.length > 20_000, `the run file holds the whole migration (${bytes.length} bytes)`);
    const found = scan([{ where: file, bytes }], needles);
    assert.equal(found, [], describeFindings(found, needles));
  } finally {
    await recorder?.close();
    await world.cleanup();
  }
});

test.run();
