/**
 * Run by test/security/store.test.ts in a child process under a file size
 * limit (`ulimit -f`): the party's LMDB file can not grow past it, so a
 * commit really fails (lmdb-js: "Commit failed", commitError EIO), as on a
 * full disk. Fills the inbox until the party refuses STORE_FULL, then prints
 * what it did, as one JSON line. Not a test file.
 */
import { statSync } from 'node:fs';
import { testBench } from './testParty.ts';

const problems: string[] = [];
process.on('unhandledRejection', (e) => problems.push(`unhandled rejection: ${String(e)}`));
process.on('uncaughtException', (e) => problems.push(`uncaught exception: ${String(e)}`));

const b = await testBench({ commits: 'async' });
const answer = async (seq: number) => (await b.ask('msam.clear', seq)).map((e) => (e.type === 'error' ? e.body.code : e.type));
let seq = 0;
let firstRefused = 0;
for (let round = 0; round < 400 && !firstRefused; round++) {
  const from = b.got.length;
  for (let i = 0; i < 100; i++) b.send({ id: `server#${++seq}`, type: 'msam.clear', body: {} });
  await b.settle();
  const full = b.got.slice(from).find((e) => e.type === 'error' && e.body.code === 'STORE_FULL');
  if (full) firstRefused = Number(full.corr!.split('#')[1]);
}
const out: Record<string, unknown> = { sent: seq, firstRefused, dataMdbBytes: statSync(`${b.dir}/data.mdb`).size, stopped: b.party.isStopped };
out.repeat = await answer(5);
out.newWhileFull = await answer(++seq);
b.clock.t += 60_000; // past the window: the next batches prune (a sweep alone first), and new work is taken again
for (let i = 0; i < 10; i++) await answer(++seq);
out.recordsAfterPruning = b.party.partyStore.inboxCount();
out.newAfterPruning = await answer(++seq);
out.problems = problems;
console.log(JSON.stringify(out));
await b.close().catch(() => {});
process.exit(0);
