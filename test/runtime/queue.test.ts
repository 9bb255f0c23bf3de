/**
 * The turn queue and its group commit (src/runtime/queue.ts), on a host that
 * only records what happens: one path, whatever the CommitPolicy; a batch's
 * turns share one transaction and speak only once it is durable; a turn
 * that stops the batch ends it; a failed commit says nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GROUP_COMMIT, ONE_TURN_PER_COMMIT, TurnQueue, type BatchHost, type CommitPolicy, type RanTurn } from '../../src/runtime/queue.ts';

interface Ran extends RanTurn {
  job: string;
}

/** A host whose commits are one tick long; `log` is what happened, in order. */
function recorder(
  opts: {
    stopAt?: string;
    failWrite?: string;
    failCommit?: boolean;
    prepare?: () => boolean;
    closingDue?: boolean;
    crashAt?: string;
    onCrash?: () => void;
  } = {},
) {
  const log: string[] = [];
  const outside: string[] = [];
  let inTransaction = false;
  const host: BatchHost<string, Ran> = {
    prepare: async () => opts.prepare?.() ?? true,
    run(job) {
      // A batch's first turn runs before its transaction opens (to learn whether it writes at all); the rest inside it.
      if (!inTransaction) outside.push(job);
      log.push(`run ${job}`);
      return { job, stops: false, empty: job.startsWith('~') };
    },
    write(turn) {
      if (turn.job === opts.failWrite) throw new Error(`${turn.job} writes what the store refuses`);
      turn.stops = turn.job === opts.stopAt;
    },
    closing: () => void log.push('closing'),
    closingDue: () => opts.closingDue ?? false,
    async commit(fn) {
      inTransaction = true;
      try {
        fn();
      } finally {
        inTransaction = false;
      }
      await Promise.resolve();
      if (opts.failCommit) throw new Error('disk full');
      log.push('durable');
    },
    committed: async (turns) => {
      log.push(`speak ${turns.map((t) => t.job).join(',')}`);
      if (turns.some((t) => t.job === opts.crashAt)) opts.onCrash?.();
    },
    failed: async (turns, e) => void log.push(`failed ${turns.map((t) => t.job).join(',')}: ${(e as Error).message}`),
  };
  return { host, log, outside };
}

async function runAll(policy: CommitPolicy, jobs: string[], opts: Parameters<typeof recorder>[0] = {}) {
  const { host, log, outside } = recorder(opts);
  const q = new TurnQueue(host, policy);
  for (const j of jobs) q.push(j);
  await q.idle();
  return { q, log, outside };
}

test('group commit: jobs queued together run as turns of one transaction, and speak once it is durable', async () => {
  const { log } = await runAll(GROUP_COMMIT, ['a', 'b', 'c']);
  assert.equal(log, ['run a', 'run b', 'run c', 'closing', 'durable', 'speak a,b,c']);
});

test('a turn with nothing to write (a relayed frame) speaks without a transaction; the first that writes opens one, and later turns run inside it', async () => {
  const { log, outside } = await runAll(GROUP_COMMIT, ['~a', '~b', 'c', '~d', 'e']);
  assert.equal(log, ['run ~a', 'speak ~a', 'run ~b', 'speak ~b', 'run c', 'run ~d', 'run e', 'closing', 'durable', 'speak c,~d,e']);
  assert.equal(outside, ['~a', '~b', 'c'], 'only the turns before the transaction run outside it');
  const alone = await runAll(GROUP_COMMIT, ['~a']);
  assert.equal(alone.log, ['run ~a', 'speak ~a'], 'no commit at all for a batch of empty turns');
  const sweep = await runAll(GROUP_COMMIT, ['~a'], { closingDue: true });
  assert.equal(sweep.log, ['run ~a', 'speak ~a', 'closing', 'durable', 'speak '], 'unless closing work is due: then it commits for that alone');
});

test('a party that crashes while an empty turn speaks commits nothing more, not even closing work that was due (its store is closed)', async () => {
  let q: TurnQueue<string, Ran> | undefined;
  const { host, log } = recorder({ closingDue: true, crashAt: '~a', onCrash: () => q!.clear() });
  q = new TurnQueue(host, GROUP_COMMIT);
  q.push('~a');
  q.push('b');
  await q.idle();
  assert.equal(log, ['run ~a', 'speak ~a']);
});

test('every batch runs its first turn before its transaction, and the others inside it', async () => {
  const { outside } = await runAll({ turnsPerCommit: 2, workMsPerCommit: 1_000 }, ['a', 'b', 'c', 'd', 'e']);
  assert.equal(outside, ['a', 'c', 'e']);
});

test("one turn per commit: the same path, one job per transaction (the simulator's order)", async () => {
  const { log } = await runAll(ONE_TURN_PER_COMMIT, ['a', 'b', 'c']);
  assert.equal(log, ['run a', 'closing', 'durable', 'speak a', 'run b', 'closing', 'durable', 'speak b', 'run c', 'closing', 'durable', 'speak c']);
});

test("a batch takes turns up to its policy's count, and stops taking after its work budget (never before its first turn)", async () => {
  const { log } = await runAll({ turnsPerCommit: 2, workMsPerCommit: 1_000 }, ['a', 'b', 'c', 'd', 'e']);
  assert.equal(
    log.filter((l) => l.startsWith('speak')),
    ['speak a,b', 'speak c,d', 'speak e'],
  );
  const out = await runAll({ turnsPerCommit: 100, workMsPerCommit: -1 }, ['a', 'b', 'c']);
  assert.equal(
    out.log.filter((l) => l.startsWith('speak')),
    ['speak a', 'speak b', 'speak c'],
    'a spent budget still takes one turn',
  );
});

test('a turn that stops the batch ends it: no closing work, later jobs wait for the next batch', async () => {
  const { log } = await runAll(GROUP_COMMIT, ['a', 'b', 'c', 'd'], { stopAt: 'b' });
  assert.equal(log, ['run a', 'run b', 'durable', 'speak a,b', 'run c', 'run d', 'closing', 'durable', 'speak c,d']);
});

test("a failed commit hands the batch's turns to `failed`; none of them speaks", async () => {
  const { log } = await runAll(GROUP_COMMIT, ['a'], { failCommit: true });
  assert.equal(log, ['run a', 'closing', 'failed a: disk full']);
});

test('a turn whose writes throw fails the whole transaction, and is among the turns `failed` is told of', async () => {
  const { log } = await runAll(GROUP_COMMIT, ['a', 'b', 'c'], { failWrite: 'b' });
  assert.equal(log, ['run a', 'run b', 'failed a,b: b writes what the store refuses', 'run c', 'closing', 'durable', 'speak c']);
});

test('a batch that `prepare` ends runs no turn; the queue goes on with the next', async () => {
  let first = true;
  const { log } = await runAll(GROUP_COMMIT, ['a'], {
    prepare: () => {
      const go = !first;
      first = false;
      return go;
    },
  });
  assert.equal(log, ['run a', 'closing', 'durable', 'speak a'], 'the job ran in the batch after');
});

test('bounded: a full queue refuses, a closed one refuses, `clear` hands back what waited; busy and idle follow the work', async () => {
  const { host } = recorder();
  const q = new TurnQueue(host, GROUP_COMMIT, 2);
  assert.is(q.push('a'), 'queued');
  assert.ok(q.busy, 'a batch is under way');
  assert.is(q.push('b'), 'queued');
  assert.is(q.push('c'), 'full');
  assert.is(q.length, 2);
  assert.equal(q.clear(), ['a', 'b']);
  assert.is(q.push('d'), 'closed');
  await q.idle();
  assert.not.ok(q.busy);
  assert.ok(q.isClosed);
});

test('close keeps what is queued, but no batch takes it any more', async () => {
  const { host, log } = recorder();
  const q = new TurnQueue(host, ONE_TURN_PER_COMMIT);
  q.push('a');
  await q.idle();
  q.push('b');
  q.push('c');
  q.close();
  await q.idle();
  assert.equal(
    log.filter((l) => l.startsWith('run')),
    ['run a'],
  );
  assert.is(q.length, 2, 'still queued (a party that failed keeps them unanswered)');
  assert.is(q.push('d'), 'closed');
});

test.run();
