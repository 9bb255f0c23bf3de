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
   * Heap still reachable per in-flight migration: one full GC is forced once
   * mid-run, when every user has a migration in flight, and the heap left is
   * compared with the idle heap (after a GC too). The garbage-inclusive mean
   * (heapUsed between GCs) is meanHeapBytes.
   */
  heapPerInFlightBytes: number;
  /** In flight when the mid-run GC was taken. */
  probedInFlight: number;
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
  let atFull = 0;
  let probe: { heap: number; n: number } | undefined;
  const sampler = setInterval(() => {
    if (inFlight === 0) return;
    const m = process.memoryUsage();
    const other = otherRssBytes();
    samples.push({ heap: m.heapUsed, rss: m.rss + other, other, n: inFlight });
    // Two samples in a row with every user busy: take the one mid-run GC.
    atFull = inFlight === full ? atFull + 1 : 0;
    if (!probe && atFull >= 2) {
      collectGarbage();
      probe = { heap: process.memoryUsage().heapUsed, n: inFlight };
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
        const out = await p.old.migrateOut({ destination: p.destinationSerial });
        if (out.outcome !== 'uploaded') throw new Error(`source phase ended ${out.outcome}: ${out.reason ?? ''}`);
        const done = await p.neu.migrateIn({ mig: out.mig });
        if (done.outcome !== 'completed') throw new Error(`destination phase ended ${done.outcome}`);
        latencies.push(performance.now() - s);
      } catch (e) {
        failures.push(`${p.user}: ${(e as Error).message}`);
      } finally {
        inFlight--;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, pairs.length) }, user));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (stopProfile) await stopProfile();
  const counters = diff(snapshot(), before);
  clearInterval(sampler);
  const meanHeap = mean(samples.map((s) => s.heap));
  const meanRss = mean(samples.map((s) => s.rss));
  const meanInFlight = mean(samples.map((s) => s.n));
  const memory: MemoryFigures = {
    idleHeapBytes: idle.heapUsed,
    idleRssBytes: idle.rss,
    meanHeapBytes: meanHeap,
    meanRssBytes: meanRss,
    meanInFlight,
    heapPerInFlightBytes: probe ? Math.max(0, probe.heap - idle.heapUsed) / probe.n : Number.NaN,
    probedInFlight: probe?.n ?? 0,
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
