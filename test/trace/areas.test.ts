/**
 * Issue 20, point 1: the key swap, seen. Each chip area's moves through the
 * area statechart are recorded like any actor's (state records of machine
 * 'area', actor `area:<area>`, with the key slots its state holds), and
 * `valmove trace --format json` shows, for both chips, every area's state
 * and key slots before and after S3 (lock), S10 (format), S14 (download) and
 * S16 (activate) of a real 3-item run; a cancelled run shows the source's
 * restore and the destination's wipe. Real processes, real LMDB; the trace
 * is read through the CLI as a user reads it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FAST_TIMING } from '../../src/timing.ts';
import type { AreaChange } from '../../src/trace/areas.ts';
import type { SequenceJson } from '../../src/trace/json.ts';
import { areaInspection } from '../../src/actors/chipAreas.ts';
import { AREA_KEYS, AREA_STATES } from '../../src/machines/area.machine.ts';
import { createRecorder, fileSink, loadRun, sequenceOf, stateRecord, toMermaid, toSvg, type RunRecord } from '../../src/trace/index.ts';
import { parseMermaid, parseSvg } from './drawings.ts';
import { buildWorld } from '../helpers/world.ts';

const run = promisify(execFile);
const t = suite('chip areas in a recorded run and its trace');
const BIN = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'bin/valmove.js');
const ITEMS = 3;

let dir: string;

t.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'valmove-areas-'));
});

t.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function traceJson(file: string, mig: string): Promise<SequenceJson> {
  const { stdout } = await run(process.execPath, [BIN, 'trace', file, '--format', 'json', '--mig', mig], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as SequenceJson;
}

/** "state/keys" of every area of every chip, after the first `upTo` changes (an area not moved yet: the state its first move left). */
function areasAt(changes: readonly AreaChange[], upTo: number): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [i, c] of changes.entries()) {
    const chip = (out[c.chip] ??= {});
    if (i < upTo) chip[c.area] = `${c.to.state}/${c.to.keys}`;
    else chip[c.area] ??= `${c.from.state}/${c.from.keys}`;
  }
  return out;
}

/** Every area of each chip in one state: `{ chip: { area: "state/keys" } }`. */
function all(areas: readonly string[], slots: string): Record<string, string> {
  return Object.fromEntries(areas.map((a) => [a, slots]));
}

t('a recorded 3-item run: trace --format json shows each area of both chips before and after S3, S10, S14 and S16', async () => {
  const file = join(dir, 'run.jsonl');
  const { stdout } = await run(process.execPath, [BIN, 'demo', '--items', String(ITEMS), '--data', join(dir, 'data'), '--json', '--record', file], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const demo = JSON.parse(stdout) as { outcome: string; mig: string; items: Array<{ area: string }> };
  assert.is(demo.outcome, 'completed');
  const records = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as RunRecord);
  const areaRecords = records.filter((r) => r.kind === 'state' && r.machine === 'area');
  assert.ok(areaRecords.length >= ITEMS * 7, `the run holds the areas' moves: ${areaRecords.length} area records`);

  const trace = await traceJson(file, demo.mig);
  const changes = trace.areas;
  const lock = changes.find((c) => c.step === 'S3');
  const format = changes.find((c) => c.step === 'S10');
  assert.ok(lock && format, `the trace shows the lock (S3) and the format (S10): ${JSON.stringify(changes.map((c) => `${c.chip} ${c.area} ${c.step}`))}`);
  const src = lock.chip;
  const dst = format.chip;
  assert.is.not(src, dst);
  const areas = demo.items.map((i) => i.area);

  const expected: Array<[string, string, Record<string, Record<string, string>>, Record<string, Record<string, string>>]> = [
    // step, event, both chips before, both chips after
    [
      'S3',
      'LOCK',
      { [src]: all(areas, 'mainActive/main'), [dst]: all(areas, 'absent/none') },
      { [src]: all(areas, 'locked/both'), [dst]: all(areas, 'absent/none') },
    ],
    [
      'S10',
      'FORMAT',
      { [src]: all(areas, 'locked/both'), [dst]: all(areas, 'absent/none') },
      { [src]: all(areas, 'locked/both'), [dst]: all(areas, 'provisioned/temp') },
    ],
    [
      'S14',
      'DOWNLOAD',
      { [src]: all(areas, 'locked/both'), [dst]: all(areas, 'provisioned/temp') },
      { [src]: all(areas, 'locked/both'), [dst]: all(areas, 'loaded/both') },
    ],
    [
      'S16',
      'ACTIVATE',
      { [src]: all(areas, 'locked/both'), [dst]: all(areas, 'loaded/both') },
      { [src]: all(areas, 'locked/both'), [dst]: all(areas, 'mainActive/main') },
    ],
  ];
  for (const [step, event, before, after] of expected) {
    const at = changes.flatMap((c, i) => (c.step === step ? [i] : []));
    assert.is(at.length, ITEMS, `${step} moves one area per item: ${at.length}`);
    for (const i of at) assert.is(changes[i]!.event, event, `${step} is the ${event} command`);
    assert.equal(areasAt(changes, at[0]!), before, `both chips' areas before ${step}`);
    assert.equal(areasAt(changes, at[at.length - 1]! + 1), after, `both chips' areas after ${step}`);
  }
  // The same moves are filed under their step groups, as the sequence drawings show them.
  for (const step of ['S3', 'S10', 'S14', 'S16'])
    assert.ok(
      trace.steps.filter((g) => g.step === step).some((g) => (g.areas?.length ?? 0) > 0),
      `a ${step} group of the sequence holds the areas it moved`,
    );
  // The drawings show the same moves: a note on the chip's lifeline, in Mermaid (which parses) and in SVG.
  const seq = sequenceOf(loadRun(file).segments, { mig: demo.mig });
  const mermaid = toMermaid(seq);
  await parseMermaid(mermaid);
  assert.is(mermaid.match(/Note over P\d+: \w+: mainActive \[main\] → locked \[main\+temp, temp active\] \(LOCK\)/g)?.length, ITEMS);
  const svg = parseSvg(toSvg(seq));
  const notes = [...svg.querySelectorAll('g.area')].map((g) => `${g.getAttribute('data-chip')} ${g.getAttribute('data-state')}`);
  assert.is(notes.filter((n) => n === `${src} locked`).length, ITEMS, `the SVG notes the source's areas locked: ${notes.join(', ')}`);
  assert.is(notes.filter((n) => n === `${dst} mainActive`).length, ITEMS, "the SVG notes the destination's areas activated");
  // Records hold which slot, never a key.
  for (const r of areaRecords) assert.equal(Object.keys(r).sort(), ['actor', 'event', 'keys', 'kind', 'machine', 'mig', 'party', 'states', 'step', 't']);
});

t('an area record holds its state, key slots, command, migration and step; nothing else of the command', () => {
  for (const state of AREA_STATES) {
    const e = areaInspection('chip/X', state, { op: 'lock', mig: 'm-1', step: 'S3' });
    // A command's other fields (its key, its data) never reach a record, even when the event carries them.
    (e.event as Record<string, unknown>).key = 'SECRET-KEY-BYTES';
    const r = stateRecord(1, 'chip/X', 'area:a', e);
    assert.equal(r, {
      kind: 'state',
      t: 1,
      party: 'chip/X',
      actor: 'area:a',
      machine: 'area',
      states: [`area.${state}`],
      event: 'LOCK',
      keys: AREA_KEYS[state],
      mig: 'm-1',
      step: 'S3',
    });
  }
  const init = stateRecord(1, 'chip/X', 'area:a', areaInspection('chip/X', 'locked'));
  assert.equal(init, { kind: 'state', t: 1, party: 'chip/X', actor: 'area:a', machine: 'area', states: ['area.locked'], event: 'xstate.init', keys: 'both' });
});

t('a cancelled run (rollback): the trace shows the destination wiped and the source restored to its main key', async () => {
  const file = join(dir, 'cancelled.jsonl');
  const recorder = createRecorder({ source: 'demo', party: '*', sinks: [fileSink(file)] });
  const world = await buildWorld({ items: 2, system: { timing: FAST_TIMING, inspect: recorder.inspect, envelopeTap: recorder.tap } });
  let mig = '';
  try {
    const cancels: Array<Promise<unknown>> = [];
    world.newPhone.onProgress((p) => {
      // The user cancels from the old phone while the destination downloads (S14): formatted, maybe loaded, never active.
      if (p.step === 'S14' && cancels.length === 0) cancels.push(world.oldPhone.cancel(p.mig));
    });
    const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
    mig = out.mig;
    assert.is(out.outcome, 'uploaded');
    assert.is((await world.newPhone.migrateIn({ mig })).outcome, 'rolledBack');
    assert.is((await world.oldPhone.migrateOut()).outcome, 'rolledBack', 'the source came back for its keys');
    assert.equal(await cancels[0], { mig, decision: 'aborted' });
  } finally {
    await world.cleanup();
    await recorder.close();
  }
  const changes = (await traceJson(file, mig)).areas;
  const src = world.source.id;
  const dst = world.destination.id;
  const restored = changes.filter((c) => c.event === 'RESTORE');
  const wiped = changes.filter((c) => c.event === 'WIPE');
  assert.equal(
    restored.map((c) => [c.chip, c.step, `${c.from.state}/${c.from.keys}`, `${c.to.state}/${c.to.keys}`]),
    world.providers.map(() => [src, 'rollback', 'locked/both', 'mainActive/main']),
    'the source areas went back from the temp key to the main key',
  );
  assert.is(wiped.length, world.providers.length, 'each destination area was wiped');
  for (const c of wiped) {
    assert.is(c.chip, dst);
    assert.ok(['provisioned/temp', 'loaded/both'].includes(`${c.from.state}/${c.from.keys}`), `a never-activated area was wiped: ${c.from.state}`);
    assert.equal([c.step, c.to], ['rollback', { state: 'absent', keys: 'none', active: null }]);
  }
  assert.equal(areasAt(changes, changes.length), { [src]: all(world.providers, 'mainActive/main'), [dst]: all(world.providers, 'absent/none') });
});

t.run();
