/**
 * What the bench reads of a party process: its CPU time and RSS from /proc/<pid>, and its crypto, LMDB and
 * message counters from its /metrics (prom-client's text format).
 */
import { readFileSync } from 'node:fs';
import type { CounterKind, CounterSnapshot } from '../metrics/counters.ts';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on Linux, whatever the kernel's HZ). */
const USER_HZ = 100;
/** How long a scrape of /metrics may take. */
const SCRAPE_TIMEOUT_MS = 10_000;

export function procCpuMs(pid: number): number {
  // Fields after the command name (which may hold spaces, so split after its closing parenthesis): utime is 14th, stime 15th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / USER_HZ;
}

export function procRssBytes(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
  } catch {
    return 0;
  }
}

export interface Scrape {
  crypto: CounterSnapshot;
  stores: CounterSnapshot;
  /** party -> direction -> { messages, bytes } */
  messages: Record<string, Record<string, { messages: number; bytes: number }>>;
}

const LINE = /^([a-z_]+)\{([^}]*)\} ([0-9.eE+-]+)$/;

function labels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of s.matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!.replace(/\\(.)/g, '$1');
  return out;
}

export async function scrape(port: number, process: string): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
  const text = await res.text();
  const out: Scrape = { crypto: {}, stores: {}, messages: {} };
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, name, l, v] = m;
    const lab = labels(l!);
    const value = Number(v);
    if (name === 'valmove_crypto_ops_total' || name === 'valmove_crypto_bytes_total') {
      const who = `${process}:${lab.party}`;
      const row = (out.crypto[who] ??= {});
      const t = (row[lab.kind as CounterKind] ??= { n: 0, bytes: 0 });
      if (name === 'valmove_crypto_ops_total') t.n = value;
      else t.bytes = value;
    } else if (name === 'valmove_lmdb_ops_total') {
      const row = (out.stores[`${process}:${lab.store}`] ??= {});
      row[lab.kind as CounterKind] = { n: value, bytes: 0 };
    } else if (name === 'valmove_messages_total' || name === 'valmove_message_bytes_total') {
      const dir = ((out.messages[lab.party!] ??= {})[lab.direction!] ??= { messages: 0, bytes: 0 });
      if (name === 'valmove_messages_total') dir.messages += value;
      else dir.bytes += value;
    }
  }
  return out;
}

export function diffSnap(after: CounterSnapshot, before: CounterSnapshot): CounterSnapshot {
  const out: CounterSnapshot = {};
  for (const [who, row] of Object.entries(after)) {
    for (const [k, t] of Object.entries(row) as Array<[CounterKind, { n: number; bytes: number }]>) {
      const p = before[who]?.[k] ?? { n: 0, bytes: 0 };
      if (t.n - p.n > 0) (out[who] ??= {})[k] = { n: t.n - p.n, bytes: t.bytes - p.bytes };
    }
  }
  return out;
}
