/**
 * simulation.md, rules: nothing inside a run reads the wall clock, timers or
 * the OS random source directly; all three come in through the injected
 * clock, generator and scheduler. This test greps src/ and allows each
 * exception by file, with the reason it is outside a simulated run.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const FORBIDDEN: Array<[string, RegExp]> = [
  ['Date.now()', /\bDate\.now\(/],
  ['new Date()', /new Date\(\)/],
  ['Math.random()', /Math\.random\(/],
  ['randomBytes', /randomBytes\(/],
  ['setTimeout', /\bsetTimeout\(/],
  ['setInterval', /\bsetInterval\(/],
  ['setImmediate', /\bsetImmediate\(/],
  ['performance.now()', /performance\.now\(/],
];

/** Files allowed to touch the real world, and why (each is outside what a simulated run executes, or is the injection point). */
const ALLOWED: Record<string, { what: string[]; why: string }> = {
  'src/clock.ts': { what: ['Date.now()', 'setTimeout'], why: 'systemClock: the one real clock, replaced by the virtual one in simulation' },
  'src/crypto/random.ts': { what: ['randomBytes'], why: 'systemRng: the one OS random source, replaced by a seeded one in simulation' },
  'src/transport/link.ts': { what: ['setImmediate'], why: 'immediateScheduler: the default delivery, replaced by the simulated network' },
  'src/transport/ws.transport.ts': { what: ['setTimeout', 'setInterval'], why: 'socket reconnection and heartbeats: the simulator uses in-memory links' },
  'src/runtime/stopwatch.ts': {
    what: ['performance.now()'],
    why: "turn durations for /metrics, and group commit's batch budget, which a simulated run (one turn per commit) never reaches",
  },
  'src/actors/driver.ts': { what: ['Date.now()', 'setTimeout'], why: "the demo's persistent user; the simulator has its own, on virtual time" },
  'src/actors/chipConsole.ts': {
    what: ['setTimeout'],
    why: "the issuing desk's reply timeout, before any migration (it never fires in a run: every reply comes)",
  },
  'src/cli/demo.ts': {
    what: ['Date.now()', 'new Date()', 'performance.now()', 'setImmediate'],
    why: 'the demo reports elapsed wall time, names its data folder by date, and restarts a crashed party once its turn unwound',
  },
  'src/sim/simulator.ts': { what: ['performance.now()'], why: 'the simulator measures its own wall time' },
  'src/sim/seedRun.ts': { what: ['setImmediate'], why: "a seed's event loop waits for the parties to go idle" },
  'src/sim/runner.ts': { what: ['performance.now()'], why: 'wall time of a run of seeds, for the report' },
  'src/trace/recorder.ts': {
    what: ['performance.now()'],
    why: "a recorded run times its records by the recording process's clock; a simulated run records nothing",
  },
  'src/trace/sinks.ts': {
    what: ['Date.now()', 'setTimeout'],
    why: "the run file's start time and the live feed's bounded close wait; a simulated run records nothing",
  },
  'src/cli/sim.command.ts': { what: ['performance.now()'], why: 'elapsed wall time in the progress lines' },
  'src/testing/model.run.ts': {
    what: ['Date.now()', 'setTimeout', 'setInterval'],
    why: 'the model-based runner (valmove/testing) drives a real embedded system in real time: its path timeout, its polls, its keep-alive',
  },
  'src/testing/model.steer.ts': { what: ['Date.now()'], why: 'how long the model-based runner has held a request back (real time, as its system runs)' },
  'src/testing/conformance.watch.ts': {
    what: ['setTimeout', 'setImmediate'],
    why: "the model-based runner's conformance check waits for the party's turn to end, and for commits in flight at a run's end",
  },
  'src/model/safety/explore.ts': {
    what: ['performance.now()'],
    why: 'the abstract model reports how long its exploration took; no state or step reads it, and a simulated run never explores',
  },
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('no wall clock, timer or OS randomness in src/ outside the injection points and the parts a simulated run does not execute', () => {
  const found: string[] = [];
  for (const file of files('src')) {
    const rel = relative(process.cwd(), file).split('\\').join('/');
    if (rel.startsWith('src/deploy/')) continue; // separate processes: real sockets, HTTP servers and signals; never simulated
    if (rel.startsWith('src/bench/')) continue; // the benchmark measures real time and real randomness on purpose; never simulated
    if (rel.startsWith('src/attack/')) continue; // the attack script floods a live deployment over real sockets, in real time; never simulated
    const text = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => !/^\s*(\*|\/\/)/.test(l))
      .join('\n');
    for (const [name, re] of FORBIDDEN) {
      if (re.test(text) && !ALLOWED[rel]?.what.includes(name)) found.push(`${rel}: ${name}`);
    }
  }
  assert.equal(found, [], `found outside the allowed places:\n${found.join('\n')}`);
});

test('the guard can fail: it sees a forbidden call', () => {
  assert.ok(FORBIDDEN.some(([, re]) => re.test('const t = Date.now();')));
  assert.ok(FORBIDDEN.some(([, re]) => re.test('setTimeout(fn, 5)')));
});

test.run();
