/**
 * The abstract safety model (issue 17, point 4; src/model/safety/): a second
 * model of the migration, written from protocol.md, explored exhaustively.
 * Every reachable state keeps the invariants of protocol.md §4 under
 * crashes, lost answers, late duplicates, cancels, expiring grants and a
 * rogue server; each deliberately weakened guard is caught by the invariant
 * that guards it, with a counterexample path; and the conformance checker
 * accepts the model's own runs and names a change the rules forbid.
 * K=2 and the larger two-migration worlds run in `npm run test:deep`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConformanceChecker, modelNames, observe } from '../../src/model/safety/conformance.ts';
import { explore, formatViolation } from '../../src/model/safety/explore.ts';
import { SafetyModel } from '../../src/model/safety/model.ts';
import type { SafetyState } from '../../src/model/safety/state.ts';
import { INVARIANTS, MISTAKES, type InvariantName, type Mistake, type SafetyOptions } from '../../src/model/safety/types.ts';

/** Every fault and the rogue server on. */
const EVERYTHING: SafetyOptions = { crashes: true, duplicates: true, losses: true, cancels: true, rogue: true, expiry: true };

const show = (name: string, opts: SafetyOptions, r: ReturnType<typeof explore>) =>
  console.log(
    `  safety model, ${name}: ${r.states} states, ${r.transitions} transitions, ${r.ms} ms, ${r.violations.length} violations${r.complete ? '' : ' (INCOMPLETE)'}  ${JSON.stringify(opts)}`,
  );

test('K=1, one migration: every reachable state keeps §4 (crashes, lost answers, duplicates, cancels, expiry, rogue server)', () => {
  const opts: SafetyOptions = { items: 1, migrations: 1, ...EVERYTHING };
  const r = explore(opts);
  show('K=1, one migration', opts, r);
  assert.ok(r.complete, 'the whole state space was explored');
  assert.equal(r.violations.map(formatViolation), []);
  // 13,904 when this was written: far fewer means the model lost behaviours (a guard too strict, a fault not generated).
  assert.ok(r.states > 10_000, `states explored: ${r.states}`);
  assert.ok(r.transitions > 5 * r.states);
});

test('K=1, two migrations sharing the providers: every reachable state keeps §4 (crashes, cancels)', () => {
  const opts: SafetyOptions = { items: 1, migrations: 2, crashes: true, cancels: true };
  const r = explore(opts);
  show('K=1, two migrations', opts, r);
  assert.ok(r.complete);
  assert.equal(r.violations.map(formatViolation), []);
  assert.ok(r.states > 100_000, `states explored: ${r.states}`);
});

/** Where each mistake shows: most in the K=1 world; some need a second item or a stray chip to be expressible at all. */
const WORLD_OF: Partial<Record<Mistake, SafetyOptions>> = {
  // A foreign grant with one item of one migration is only the same item's other purpose, which no chip accepts.
  acceptForeignGrant: { items: 2, honestServer: false, rogue: true },
  // A second destination needs a chip that is neither the source nor the destination.
  formatSecondDestination: { items: 1, spareChips: 1, honestServer: false, rogue: true },
};

test('every seeded mistake is caught by the invariant that guards it, with a counterexample path; every invariant can fail', () => {
  const caught = new Set<InvariantName>();
  const lines: string[] = [];
  for (const [name, mistake] of Object.entries(MISTAKES) as Array<[Mistake, (typeof MISTAKES)[Mistake]]>) {
    const opts: SafetyOptions = { ...(WORLD_OF[name] ?? { items: 1, migrations: 1, ...EVERYTHING }), mistakes: { [name]: true } };
    const r = explore(opts);
    const v = r.violations.find((x) => x.invariant === mistake.caughtBy);
    assert.ok(
      v,
      `mistake ${name} (rule ${mistake.breaks} off) is caught by ${mistake.caughtBy}; found: ${r.violations.map((x) => x.invariant).join(', ') || 'nothing'}`,
    );
    assert.ok(v.path.length > 0, 'with a path from the initial state');
    for (const x of r.violations) caught.add(x.invariant);
    lines.push(
      `  ${name.padEnd(31)} -> ${mistake.caughtBy} (${v.path.length} steps); also ${
        r.violations
          .filter((x) => x !== v)
          .map((x) => x.invariant)
          .join(', ') || '-'
      }`,
    );
    if (name === 'commitWithoutAllReceipts' || name === 'activateWhilePending') lines.push(formatViolation(v).replace(/^/gm, '      '));
  }
  console.log(`  seeded mistakes (${Object.keys(MISTAKES).length}):\n${lines.join('\n')}`);
  assert.equal([...caught].sort(), Object.keys(INVARIANTS).sort(), 'every invariant is shown to fail on some mistake');
});

test('a mistake that is not a rule is refused by name', () => {
  assert.throws(() => new SafetyModel({ mistakes: { trustEveryone: true } as never }), /unknown mistake "trustEveryone"/);
  assert.throws(() => new SafetyModel({ items: 9 }), /items must be 1\.\.3/);
});

/** The honest run to the end, without faults: the first successor each time (lock, upload, format, download, commit, ...). */
function honestRun(model: SafetyModel): SafetyState[] {
  const states = [model.initial()];
  for (let k = 0; k < 100; k++) {
    const next = model.successors(states[states.length - 1]!)[0];
    if (!next) break;
    states.push(next.next);
  }
  return states;
}

test("conformance: the model's own honest run is a run the checker accepts, one step at a time or several at once", () => {
  const model = new SafetyModel({ items: 2 });
  const run = honestRun(model);
  assert.is(model.outcome(run[run.length - 1]!, 0), 'completed', 'the honest run completes');
  const names = modelNames(model.t);
  const one = new ConformanceChecker({ items: 2, migrations: 1 }, observe(run[0]!), names);
  let changes = 0;
  for (const s of run.slice(1)) {
    const step = one.observe(observe(s));
    assert.not.equal(step.kind, 'forbidden', step.kind === 'forbidden' ? step.message : '');
    if (step.kind === 'steps') changes++;
  }
  assert.ok(changes > 10, `observable changes: ${changes}`);
  // Seen only every fourth state: each change is several abstract steps, still explained.
  const sparse = new ConformanceChecker({ items: 2, migrations: 1 }, observe(run[0]!), names);
  for (let k = 4; k < run.length; k += 4) assert.not.equal(sparse.observe(observe(run[k]!)).kind, 'forbidden');
  assert.ok(sparse.stepsMax > 1, 'a change stood for several abstract steps');
});

test('conformance: a destination activated while the record is pending is a change the checker forbids, by name', () => {
  const model = new SafetyModel({ items: 1 });
  const run = honestRun(model);
  // The last state before the commit: the destination is loaded, the record pending.
  const k = run.findIndex((s) => s.dec(0) === 'committed') - 1;
  assert.ok(k > 0);
  const before = observe(run[k]!);
  assert.is(before.areas[1]![0]!.st, 'loaded');
  const checker = new ConformanceChecker({ items: 1, migrations: 1 }, observe(run[0]!), modelNames(model.t));
  assert.is(checker.observe(before).kind, 'steps');
  const activated = structuredClone(before);
  activated.areas[1]![0] = { ...activated.areas[1]![0]!, st: 'mainActive', holder: -1 };
  const step = checker.observe(activated);
  assert.is(step.kind, 'forbidden');
  if (step.kind !== 'forbidden') return;
  assert.equal(step.change, ['DST area 0: loaded held by m0 with v0 -> mainActive with v0']);
  // The checker stayed where it was: the honest next state is still explained from there.
  assert.is(checker.observe(observe(run[k + 1]!)).kind, 'steps', 'the commit, from where the checker stayed');
});

test.run();
