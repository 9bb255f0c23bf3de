/**
 * Embedded mode: every party in this process (EmbeddedSystem), real crypto,
 * real LMDB under a temporary folder, in-memory links. One system per K
 * (its K providers), reused across the concurrency levels; each
 * configuration gets fresh users and phone pairs, logged in and registered
 * before the timed part.
 */
import { join } from 'node:path';
import { EmbeddedSystem } from '../actors/system.ts';
import { demoProviders, demoValue } from '../fixtures/demo.ts';
import { systemRng, toHex } from '../crypto/index.ts';
import { createLogger } from '../log.ts';
import type { Units } from './floor.ts';
import type { BenchProgress } from './progress.ts';
import { loginAll, roleOf as roleOfParty, timedMigrations, warmUp, warmupsAt, type PhonePair } from './measure.ts';
import { briefFigures, figures, type ConfigResult } from './report.ts';
import { pool } from './stats.ts';

/** Phone pairs set up at once (setup is not timed; this bounds its open stores and sockets). */
export const SETUP_PARALLEL = 8;

export interface ModeOptions {
  items: number;
  concurrencies: number[];
  migrationsAt: (concurrency: number) => number;
  scrypt: { N: number; r: number; p: number };
  units: Units;
  dataDir: string;
  say: (line: string) => void;
  /** A line as each configuration starts and ends. */
  progress: BenchProgress;
}

/** What the parties did while counting is on: messages and bytes by hop, turn and work time by role. */
interface WorkTally {
  counting: boolean;
  hops: Record<string, { messages: number; bytes: number }>;
  turnMs: Record<string, number>;
  workMs: Record<string, number>;
}

export async function runEmbedded(o: ModeOptions): Promise<ConfigResult[]> {
  const plan = demoProviders(o.items);
  const tally: WorkTally = { counting: false, hops: {}, turnMs: {}, workMs: {} };
  const system = await startSystem(o, plan, tally);
  const results: ConfigResult[] = [];
  try {
    for (const c of o.concurrencies) {
      const label = `embedded K=${o.items} c=${c}`;
      o.progress.start(label, o.migrationsAt(c));
      const r = await runAt(o, system, plan, tally, c);
      results.push(r);
      o.progress.end(label, briefFigures(r));
    }
  } finally {
    await system.stop();
  }
  return results;
}

/** One system for this K (its K providers), counting into `tally` while counting is on. */
function startSystem(o: ModeOptions, plan: ReturnType<typeof demoProviders>, tally: WorkTally): Promise<EmbeddedSystem> {
  const { hops, turnMs, workMs } = tally;
  // A party's role, once per name: the taps run for every message and turn (a few names per phone pair).
  const roles = new Map<string, string>();
  const roleOf = (name: string): string => {
    let role = roles.get(name);
    if (role === undefined) roles.set(name, (role = roleOfParty(name)));
    return role;
  };
  return EmbeddedSystem.start({
    dataDir: join(o.dataDir, `embedded-k${o.items}`),
    providers: plan.map((p) => p.provider),
    log: createLogger({ level: 'silent' }),
    scrypt: o.scrypt,
    linkTap: ({ from, to, bytes }) => {
      if (!tally.counting) return;
      const hop = `${roleOf(from)}->${roleOf(to)}`;
      const h = (hops[hop] ??= { messages: 0, bytes: 0 });
      h.messages++;
      h.bytes += bytes.length;
    },
    observe: {
      message() {},
      turn(party, ms) {
        if (tally.counting) turnMs[roleOf(party)] = (turnMs[roleOf(party)] ?? 0) + ms;
      },
      work(party, ms) {
        if (tally.counting) workMs[roleOf(party)] = (workMs[roleOf(party)] ?? 0) + ms;
      },
    },
  });
}

/** One concurrency level: fresh phone pairs, logged in and registered, warmed up, then the timed migrations. */
async function runAt(o: ModeOptions, system: EmbeddedSystem, plan: ReturnType<typeof demoProviders>, tally: WorkTally, c: number): Promise<ConfigResult> {
  const w = warmupsAt(c);
  const n = o.migrationsAt(c) + w;
  const { pairs, parties } = await setUpPairs(system, plan, `k${o.items}c${c}`, n);
  await loginAll(pairs.slice(0, w)); // the warm-up pairs' logins are not measured
  const loginsMs = await loginAll(pairs.slice(w));
  await pool(n, SETUP_PARALLEL, async (i) => {
    await pairs[i]!.old.register();
    await pairs[i]!.neu.register();
  });
  for (const k of Object.keys(tally.hops)) delete tally.hops[k];
  for (const k of Object.keys(tally.turnMs)) delete tally.turnMs[k];
  for (const k of Object.keys(tally.workMs)) delete tally.workMs[k];
  await warmUp(pairs.slice(0, w));
  tally.counting = true;
  const run = await timedMigrations(pairs.slice(w), c, undefined, `embedded-k${o.items}-c${c}`);
  tally.counting = false;
  const r = figures({
    mode: 'embedded',
    items: o.items,
    concurrency: c,
    run,
    units: o.units,
    hops: structuredClone(tally.hops),
    cpuMsByProcess: { 'bench (all parties)': run.cpuMs },
    turnMsByRole: { ...tally.turnMs },
    workMsByRole: { ...tally.workMs },
    loginsMs,
    scryptN: o.scrypt.N,
  });
  // The pairs are done with: close their stores, so later configurations do not carry them.
  for (const id of parties) await system.party(id).stop();
  return r;
}

/** `n` users, each with a source chip (issued K items) and an empty destination, in an old and a new phone. */
async function setUpPairs(
  system: EmbeddedSystem,
  plan: ReturnType<typeof demoProviders>,
  tag: string,
  n: number,
): Promise<{ pairs: PhonePair[]; parties: string[] }> {
  const pairs: PhonePair[] = new Array(n);
  const parties: string[] = [];
  await pool(n, SETUP_PARALLEL, async (i) => {
    const user = `${tag}u${i}`;
    const password = toHex(systemRng.bytes(8));
    await system.server.createUser(user, password);
    const src = await system.addChip(`${tag}S${i}`);
    const dst = await system.addChip(`${tag}D${i}`);
    const old = await system.addTerminal(`${tag}o${i}`);
    const neu = await system.addTerminal(`${tag}n${i}`);
    system.insertChip(old, src);
    system.insertChip(neu, dst);
    await system.issue(
      src,
      plan.map((p, k) => ({ area: p.provider, provider: p.provider, value: demoValue(p.kind, k, toHex(systemRng.bytes(16))) })),
    );
    system.connectToServer(old);
    system.connectToServer(neu);
    pairs[i] = { user, password, old, neu, destinationSerial: dst.serial };
    parties.push(src.id, dst.id, old.id, neu.id);
  });
  return { pairs, parties };
}
