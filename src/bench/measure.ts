/**
 * The timed part of one configuration, the same for both modes: pairs of
 * phones (an old one holding a source chip with K items, a new one with an
 * empty chip, both logged in and registered), `concurrency` users at a time,
 * each running migrateOut then migrateIn on its own pair. Around it: the
 * crypto and commit counters, CPU, memory sampled while migrations are in
 * flight.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import type { TerminalRuntime } from '../actors/terminal.actor.ts';
import { diff, snapshot, type Counters } from '../metrics/counters.ts';
import { mean, percentile } from './stats.ts';

/** How often memory and in-flight migrations are sampled during the timed part. */
export const MEMORY_SAMPLE_MS = 25;
/**
 * When the mid-run full GCs are taken, in samples with at least half the
 * users busy (at 50 ms, 1 s and 4 s): spread over a run, few (each is a
 * pause), and the first early enough for a smoke run's few migrations.
 */
export const HEAP_PROBE_AT_SAMPLES = [2, 40, 160] as const;

export interface PhonePair {
  user: string;
  password: string;
  old: TerminalRuntime;
  neu: TerminalRuntime;
  destinationSerial: string;
}

export interface TimedRun {
  wallMs: number;
  latenciesMs: number[];
  failures: string[];
  counters: Counters;
  cpuMs: number;
  memory: MemoryFigures;
}

export interface MemoryFigures {
  idleHeapBytes: number;
  idleRssBytes: number;
  /** Mean over samples taken while at least one migration was in flight. */
  meanHeapBytes: number;
  meanRssBytes: number;
  meanInFlight: number;
  /**
   * Heap still reachable per in-flight migration. Full GCs are forced mid-run
   * (HEAP_PROBE_AT_SAMPLES, while at least half the users have a migration in flight), and
   * after the run. What a finished migration leaves behind
   * (`heapRetainedPerMigrationBytes`, from the heap after the run) is taken
   * out of each probe for the migrations finished by then; the rest, over the
   * idle heap, divided by the migrations in flight, is this figure (the
   * median over the probes). The garbage-inclusive mean is meanHeapBytes.
   */
  heapPerInFlightBytes: number;
  /** In flight at the mid-run GCs (their mean). */
  probedInFlight: number;
  /** Mid-run GCs taken. */
  heapProbes: number;
  /**
   * Heap a finished migration still holds after the run (after a full GC,
   * over the idle heap, per migration): what grows with every migration a
   * long-running process has done, not with those in flight.
   */
  heapRetainedPerMigrationBytes: number;
  /** RSS (this process, and in processes mode the party processes too) over the idle RSS, per in-flight migration. */
  rssPerInFlightBytes: number;
  /**
   * Processes mode: the party processes' RSS alone (server, admin SAM,
   * providers: what a deployment's side holds; the phones are elsewhere)
   * over their idle RSS, per in-flight migration. NaN in embedded mode.
   */
  partyRssPerInFlightBytes: number;
}

let gcFn: (() => void) | undefined;
/** A full GC, for a steady idle baseline (v8's gc exposed at run time). */
export function collectGarbage(): void {
  if (!gcFn) {
    setFlagsFromString('--expose_gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

/** Logs every phone in, one at a time (scrypt is CPU: one at a time gives each login's own cost); returns each login's ms. */
export async function loginAll(pairs: PhonePair[]): Promise<number[]> {
  const ms: number[] = [];
  for (const p of pairs) {
    for (const t of [p.old, p.neu]) {
      const t0 = performance.now();
      await t.login(p.user, p.password);
      ms.push(performance.now() - t0);
    }
  }
  return ms;
}

let profileDir: string | undefined;

/** `valmove bench --profile DIR`: each configuration's timed part is CPU-profiled (V8's sampling profiler) into DIR/<label>.cpuprofile. */
export function setProfileDir(dir: string | undefined): void {
  profileDir = dir;
}

/** Starts V8's profiler in this process; the returned function stops it and writes the profile (Chrome DevTools / speedscope format). */
async function startProfile(label: string): Promise<() => Promise<string>> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    mkdirSync(profileDir!, { recursive: true });
    const file = join(profileDir!, `${label}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    return file;
  };
}

/**
 * Untimed migrations run before a configuration's timed ones, on their own
 * phone pairs: compiled code, caches and pools are warm before the idle
 * baseline is taken, so the memory figures hold what migrations hold, not
 * what a cold process builds once.
 */
export const WARMUP_MIGRATIONS_MAX = 4;

export function warmupsAt(concurrency: number): number {
  return Math.min(WARMUP_MIGRATIONS_MAX, concurrency);
}

export async function warmUp(pairs: PhonePair[]): Promise<void> {
  await Promise.all(
    pairs.map((p) =>
      migrateOnce(p).catch((e: Error) => {
        throw new Error(`warm-up migration of ${p.user}: ${e.message}`);
      }),
    ),
  );
}

/** One user's migration, old phone to new; throws unless it completes. */
async function migrateOnce(p: PhonePair): Promise<void> {
  const out = await p.old.migrateOut({ destination: p.destinationSerial });
  if (out.outcome !== 'uploaded') throw new Error(`source phase ended ${out.outcome}: ${out.reason ?? ''}`);
  const done = await p.neu.migrateIn({ mig: out.mig });
  if (done.outcome !== 'completed') throw new Error(`destination phase ended ${done.outcome}`);
}

/**
 * `otherRssBytes`: the RSS of other processes that take part (processes
 * mode), added to this one's. `label` names the configuration (its profile
 * file, with --profile).
 */
export async function timedMigrations(pairs: PhonePair[], concurrency: number, otherRssBytes: () => number = () => 0, label = 'timed'): Promise<TimedRun> {
  collectGarbage();
  const idleMem = process.memoryUsage();
  const idleOther = otherRssBytes();
  const idle = { heapUsed: idleMem.heapUsed, rss: idleMem.rss + idleOther, other: idleOther };
  let inFlight = 0;
  const samples: Array<{ heap: number; rss: number; other: number; n: number }> = [];
  const full = Math.min(concurrency, pairs.length);
  let busy = 0;
  let finished = 0;
  const probes: Array<{ heap: number; n: number; done: number }> = [];
  const sampler = setInterval(() => {
    if (inFlight === 0) return;
    const m = process.memoryUsage();
    const other = otherRssBytes();
    samples.push({ heap: m.heapUsed, rss: m.rss + other, other, n: inFlight });
    // At least half the users busy for HEAP_PROBE_AT_SAMPLES samples: a mid-run GC each time.
    if (inFlight * 2 >= full) busy++;
    if (probes.length < HEAP_PROBE_AT_SAMPLES.length && busy >= HEAP_PROBE_AT_SAMPLES[probes.length]!) {
      collectGarbage();
      probes.push({ heap: process.memoryUsage().heapUsed, n: inFlight, done: finished });
    }
  }, MEMORY_SAMPLE_MS);
  const latencies: number[] = [];
  const failures: string[] = [];
  const stopProfile = profileDir !== undefined ? await startProfile(label) : undefined;
  const before = snapshot();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  const user = async () => {
    while (next < pairs.length) {
      const p = pairs[next++]!;
      inFlight++;
      const s = performance.now();
      try {
        await migrateOnce(p);
        latencies.push(performance.now() - s);
      } catch (e) {
        failures.push(`${p.user}: ${(e as Error).message}`);
      } finally {
        inFlight--;
        finished++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, pairs.length) }, user));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (stopProfile) await stopProfile();
  const counters = diff(snapshot(), before);
  clearInterval(sampler);
  collectGarbage();
  const retained = finished > 0 ? Math.max(0, process.memoryUsage().heapUsed - idle.heapUsed) / finished : 0;
  const perInFlight = probes.map((p) => Math.max(0, p.heap - idle.heapUsed - retained * p.done) / p.n).sort((a, b) => a - b);
  const meanHeap = mean(samples.map((s) => s.heap));
  const meanRss = mean(samples.map((s) => s.rss));
  const meanInFlight = mean(samples.map((s) => s.n));
  const memory: MemoryFigures = {
    idleHeapBytes: idle.heapUsed,
    idleRssBytes: idle.rss,
    meanHeapBytes: meanHeap,
    meanRssBytes: meanRss,
    meanInFlight,
    heapPerInFlightBytes: perInFlight.length ? perInFlight[Math.floor(perInFlight.length / 2)]! : Number.NaN,
    probedInFlight: probes.length ? mean(probes.map((p) => p.n)) : 0,
    heapProbes: probes.length,
    heapRetainedPerMigrationBytes: retained,
    rssPerInFlightBytes: samples.length ? Math.max(0, meanRss - idle.rss) / meanInFlight : Number.NaN,
    partyRssPerInFlightBytes: samples.length && idle.other > 0 ? Math.max(0, mean(samples.map((x) => x.other)) - idle.other) / meanInFlight : Number.NaN,
  };
  return { wallMs, latenciesMs: latencies, failures, counters, cpuMs: (cpu.user + cpu.system) / 1000, memory };
}

export function latencySummary(xs: number[]): { p50: number; p95: number; p99: number; mean: number; max: number } {
  return { p50: percentile(xs, 0.5), p95: percentile(xs, 0.95), p99: percentile(xs, 0.99), mean: mean(xs), max: xs.length ? Math.max(...xs) : Number.NaN };
}

/** A party id or store folder -> its role: terminal/old3 -> terminal, provider-p0/migration-sam -> migration-sam. */
export function roleOf(name: string): string {
  // Counters scraped from another process are named "<process>:<party or store>".
  const who = /^[A-Za-z0-9._-]+:/.test(name) ? name.slice(name.indexOf(':') + 1) : name;
  if (who === '-') return 'unattributed';
  for (const r of ['migration-sam', 'normal-sam', 'admin-sam']) if (who.includes(r)) return r;
  const base = who.split(/[\\/]/).filter(Boolean);
  const last = base[base.length - 1] ?? who;
  if (who.startsWith('terminal') || /(^|[\\/])terminal-[^\\/]*$/.test(who)) return 'terminal';
  if (who.startsWith('chip') || /(^|[\\/])chip-[^\\/]*$/.test(who)) return 'chip';
  if (last === 'server' || who === 'server') return 'server';
  return last;
}
