/**
 * The protocol table (src/protocol/steps.ts) against the code it describes:
 * every state of the migration machine is in exactly one step and every
 * state the table names exists; every progress line the machine announces
 * names a step of the table; every request type is a message of the catalog;
 * every file of the step index exists and has the step's code; docs/steps.md
 * is the table as `valmove steps --format markdown` writes it today.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stepIndexMarkdown } from '../../src/cli/steps.command.ts';
import { migrationMachine } from '../../src/machines/migration.machine.ts';
import { FINAL_STATES, STEP_TABLE, STEPS, isStep, stepOfState } from '../../src/protocol/steps.ts';
import { MESSAGES } from '../../src/transport/messages.ts';

const root = join(import.meta.dirname, '..', '..');

interface Node {
  key: string;
  type: string;
  states: Record<string, Node>;
  config: { entry?: unknown; on?: Record<string, unknown>; always?: unknown; exit?: unknown };
}

/** Every leaf state of the migration machine, by path. */
function leaves(n: Node = migrationMachine.root as unknown as Node, path = ''): string[] {
  const kids = Object.values(n.states ?? {});
  if (kids.length === 0) return [path];
  return kids.flatMap((k) => leaves(k, path ? `${path}.${k.key}` : k.key));
}

/** Every `step` param of a progress action anywhere in the machine's config. */
function announcedSteps(config: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(config)) for (const c of config) announcedSteps(c, out);
  else if (config && typeof config === 'object') {
    const o = config as Record<string, unknown>;
    if (typeof o.type === 'string' && /^progress/.test(o.type) && o.params && typeof (o.params as { step?: unknown }).step === 'string') {
      out.add((o.params as { step: string }).step);
    }
    for (const v of Object.values(o)) announcedSteps(v, out);
  }
  return out;
}

test('every state of the migration machine is in exactly one step, and every state of the table exists', () => {
  const machine = leaves();
  const finals = new Set<string>(FINAL_STATES);
  const missing = machine.filter((s) => !finals.has(s) && !stepOfState(s));
  assert.equal(missing, [], `states in no step of src/protocol/steps.ts: ${missing.join(', ')}`);
  const named = STEP_TABLE.flatMap((s) => Object.keys(s.states));
  const twice = named.filter((s, i) => named.indexOf(s) !== i);
  assert.equal(twice, [], `states in more than one step: ${twice.join(', ')}`);
  const unknown = named.filter((s) => !machine.includes(s));
  assert.equal(unknown, [], `the table names states the machine does not have: ${unknown.join(', ')}`);
  for (const f of FINAL_STATES) assert.ok(machine.includes(f), `final state ${f} exists`);
});

test('a renamed state is caught: the check above fails for a state the table does not know', () => {
  assert.equal(stepOfState('sourcePhase.lockingSource')?.step.id, 'S3');
  assert.equal(stepOfState('sourcePhase.lockingTheSource'), undefined);
});

test('every progress line the machine announces names a step of the table', () => {
  const announced = [...announcedSteps(migrationMachine.config)];
  assert.ok(announced.length >= 15, `progress steps found: ${announced.join(' ')}`);
  assert.equal(
    announced.filter((s) => !isStep(s)),
    [],
  );
});

test('step ids are unique, in protocol order, and every request is a message of the catalog', () => {
  assert.equal(new Set(STEPS).size, STEPS.length);
  const numbered = STEPS.filter((s) => /^S\d+$/.test(s));
  assert.equal(
    numbered,
    Array.from({ length: 17 }, (_, i) => `S${i + 1}`),
  );
  const known = new Set([...Object.keys(MESSAGES), 'frame', 'nsam.main-key']);
  const unknown = STEP_TABLE.flatMap((s) => s.requests.filter((r) => !known.has(r)).map((r) => `${s.id}: ${r}`));
  assert.equal(unknown, []);
});

test('the step index: at most 5 files a step, each exists and holds the step (its id, a request, a state or its chip command)', () => {
  const problems: string[] = [];
  for (const s of STEP_TABLE) {
    if (s.files.length < 1 || s.files.length > 5) problems.push(`${s.id}: ${s.files.length} files`);
    const marks = [
      `'${s.id}'`,
      ...s.requests.map((r) => `'${r}'`),
      ...Object.keys(s.states).map((p) => p.split('.').at(-1)!),
      ...(s.chipCommand ? [`'${s.chipCommand.split(/[ :]/)[0]}'`] : []),
    ];
    for (const f of s.files) {
      if (!existsSync(join(root, f))) {
        problems.push(`${s.id}: ${f} does not exist`);
        continue;
      }
      const text = readFileSync(join(root, f), 'utf8');
      if (!marks.some((m) => text.includes(m)) && !new RegExp(`\\b${s.id}\\b`).test(text)) problems.push(`${s.id}: ${f} mentions none of ${marks.join(', ')}`);
    }
  }
  assert.equal(problems, []);
});

test('docs/steps.md is the table as `valmove steps --format markdown` writes it', () => {
  const page = readFileSync(join(root, 'docs', 'steps.md'), 'utf8');
  assert.ok(page === stepIndexMarkdown(), 'docs/steps.md is stale: run `node bin/valmove.js steps --format markdown --out docs/steps.md`');
});

test.run();
