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
import { encodeValue } from '../../src/actors/value.ts';
import { deriveMainKey, fromHex, Secret, utf8 } from '../../src/crypto/index.ts';
import type { PartyStore } from '../../src/store/party.store.ts';
import { createRecorder } from '../../src/trace/recorder.ts';
import { fileSink } from '../../src/trace/sinks.ts';
import { scan, type Needle } from '../helpers/secrets.ts';
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

    const keyDb = (p: object) => (p as { store: PartyStore }).store.db<{ kind: string; value: unknown }>('keys');
    const issuer = keyDb(world.system.adminSam).get('issuer-master')!.value as Uint8Array;
    const needles: Needle[] = [{ name: 'password', bytes: utf8(world.password) }, { name: 'issuer master', bytes: issuer }];
    for (const [p, prov] of world.system.providers) {
      const master = keyDb(prov.normalSam).get('provider-master')!.value as Uint8Array;
      needles.push({ name: `${p} provider master`, bytes: master });
      for (const chip of [world.source, world.destination]) needles.push({ name: `K_main ${chip.serial}/${p}`, bytes: deriveMainKey(Secret.of(master), chip.serial, p).reveal() });
    }
    for (const { value } of world.system.adminSam.records.tempKeys.getRange()) needles.push({ name: `temp key ${value.mig}/${value.item}`, bytes: value.key });
    for (const v of world.values) {
      needles.push({ name: `value item ${v.kind}`, bytes: encodeValue(v) }, { name: `marker of ${v.kind}`, bytes: fromHex(v.ref) }, { name: `marker text of ${v.kind}`, bytes: utf8(v.ref) });
    }
    assert.is(needles.filter((n) => n.name.startsWith('temp key')).length, 2, 'one temp key per item');

    const bytes = new Uint8Array(readFileSync(file));
    assert.ok(bytes.length > 20_000, `the run file holds the whole migration (${bytes.length} bytes)`);
    assert.equal(scan([{ where: file, bytes }], needles), []);
  } finally {
    await recorder?.close();
    await world.cleanup();
  }
});

test.run();
