/**
 * Preloaded by `npm test` (`node --import ./test/helpers/guard.mjs`): a test
 * must fail by a failed assertion that names what broke, never by the runner
 * dying. uvu runs every file in one process; an exception that escapes a test
 * (thrown from a timer, a rejected promise nobody awaited) would end that
 * process with a stack and no test named, and a test that awaits something
 * that never comes ends it with uvu's "Exiting early before testing is
 * finished". Here each is reported with the file whose tests were running,
 * and the run fails (exit code 1).
 *
 * Plain JavaScript, not TypeScript: worker threads inherit the preload
 * (`--import`) before any TypeScript loader is registered in them.
 *
 * How the file is known: uvu keeps its suites in `globalThis.UVU_QUEUE`, one
 * array per file (its name first, then one runner per suite), filled while
 * the files load; this module wraps each runner before uvu sees it, so the
 * name of the file whose tests run is at hand.
 */
const g = globalThis;

let current = '(the test files were loading)';
let running = false;
let stopped = false;

function wrapRunner(fn, file) {
  return async (...a) => {
    current = file;
    running = true;
    try {
      return await fn(...a);
    } finally {
      running = false;
    }
  };
}

function wrapGroup(group) {
  const file = String(group[0] ?? '(a test file)');
  return new Proxy(group, {
    get(target, key, receiver) {
      if (key === 'push') return (...xs) => target.push(...xs.map((x) => (typeof x === 'function' ? wrapRunner(x, file) : x)));
      return Reflect.get(target, key, receiver);
    },
  });
}

if (!g.UVU_QUEUE) {
  const queue = [];
  g.UVU_QUEUE = new Proxy(queue, {
    get(target, key, receiver) {
      if (key === 'push') return (...xs) => target.push(...xs.map((x) => (Array.isArray(x) ? wrapGroup(x) : x)));
      return Reflect.get(target, key, receiver);
    },
  });
}

function escaped(kind) {
  return (e) => {
    // Someone else handles it (the simulator turns it into a named violation of its seed): theirs to report.
    if (process.listenerCount(kind) > 1) return;
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
    process.stderr.write(
      `\n✘ ${current}: the process ran out of work while a test was still waiting (a promise that never settles: a hang, not an assertion)\n`,
    );
  }
});
