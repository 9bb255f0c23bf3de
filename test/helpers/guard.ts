/**
 * Preloaded by `npm test` (`node --import ./test/helpers/guard.ts`): a test
 * must fail by a failed assertion that names what broke, never by the runner
 * dying. uvu runs every file in one process; an exception that escapes a test
 * (thrown from a timer, a rejected promise nobody awaited) would end that
 * process with a stack and no test named, and a test that awaits something
 * that never comes ends it with uvu's "Exiting early before testing is
 * finished". Here each is reported with the file whose tests were running,
 * and the run fails (exit code 1).
 *
 * How the file is known: uvu keeps its suites in `globalThis.UVU_QUEUE`, one
 * array per file (its name first, then one runner per suite), filled while
 * the files load; this module wraps each runner before uvu sees it, so the
 * name of the file whose tests run is at hand.
 */
type Group = unknown[];
const g = globalThis as { UVU_QUEUE?: Group[] };

let current = '(the test files were loading)';
let running = false;
let stopped = false;

function wrapRunner(fn: (...a: unknown[]) => unknown, file: string): (...a: unknown[]) => Promise<unknown> {
  return async (...a: unknown[]) => {
    current = file;
    running = true;
    try {
      return await fn(...a);
    } finally {
      running = false;
    }
  };
}

function wrapGroup(group: Group): Group {
  const file = String(group[0] ?? '(a test file)');
  return new Proxy(group, {
    get(target, key, receiver) {
      if (key === 'push') return (...xs: unknown[]) => target.push(...xs.map((x) => (typeof x === 'function' ? wrapRunner(x as (...a: unknown[]) => unknown, file) : x)));
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
}

if (!g.UVU_QUEUE) {
  const queue: Group[] = [];
  g.UVU_QUEUE = new Proxy(queue, {
    get(target, key, receiver) {
      if (key === 'push') return (...xs: unknown[]) => target.push(...xs.map((x) => (Array.isArray(x) ? wrapGroup(x) : (x as Group))));
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
}

function escaped(kind: string) {
  return (e: unknown) => {
    // Someone else handles it (the simulator turns it into a named violation of its seed): theirs to report.
    if (process.listenerCount(kind as 'uncaughtException') > 1) return;
    const what = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
    process.stderr.write(`\n✘ ${current}: an exception escaped its test (${kind}), so the run stops here:\n${what}\n`);
    stopped = true;
    process.exit(1);
  };
}
process.on('uncaughtException', escaped('uncaughtException'));
process.on('unhandledRejection', escaped('unhandledRejection'));
process.on('exit', (code) => {
  if (running && !stopped) {
    process.exitCode = code || 1;
    process.stderr.write(`\n✘ ${current}: the process ran out of work while a test was still waiting (a promise that never settles: a hang, not an assertion)\n`);
  }
});
