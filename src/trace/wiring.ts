/**
 * The `--record` and `--inspect` flags of `valmove demo`, `valmove start`
 * and `valmove up`, turned into recorders.
 *
 * `--record PATH`: a path ending in `.jsonl` is one run file; any other path
 * is a folder that gets one file per party, `<party-id-sanitized>.jsonl`.
 * `--inspect URL`: a live page's feed; each recorder (the demo's one, each
 * party's in a deployment) streams to it on its own connection, starting
 * with its run header.
 */
import { join } from 'node:path';
import type { RuntimeDeps } from '../actors/runtime.ts';
import { createRecorder, type Recorder, type RecordSink } from './recorder.ts';
import type { RunStartRecord } from './records.ts';
import { feedSink, fileSink, stderrReport, type Report } from './sinks.ts';

export interface RecordingFlags {
  /** --record: a `.jsonl` file, or a folder for per-party files. */
  record?: string;
  /** --inspect: a live page's feed URL (ws://host:port/feed). */
  inspect?: string;
  report?: Report;
}

/** A party id as a file name: `migration-sam/emoney` -> `migration-sam_emoney`. */
export function partyFileName(party: string): string {
  return `${party.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_')}.jsonl`;
}

/** True when --record names one file (it ends in .jsonl), false when it names a folder of per-party files. */
export function recordsToOneFile(path: string): boolean {
  return path.endsWith('.jsonl');
}

function sinksFor(file: string | undefined, flags: RecordingFlags, mode: 'truncate' | 'append'): RecordSink[] {
  const report = flags.report ?? stderrReport;
  const sinks: RecordSink[] = [];
  if (file) sinks.push(fileSink(file, { mode, report }));
  if (flags.inspect) sinks.push(feedSink(flags.inspect, { report }));
  return sinks;
}

/** One recorder for a whole embedded system (`valmove demo`): one file, party '*'. Undefined when neither flag is set. */
export function systemRecorder(flags: RecordingFlags): Recorder | undefined {
  if (!flags.record && !flags.inspect) return undefined;
  return createRecorder({ source: 'demo', party: '*', sinks: sinksFor(flags.record, flags, 'truncate') });
}

export interface ProcessRecording {
  /** Starts the party's recorder now (at startup, not on its first message): its file and feed open here. */
  open(party: string): void;
  tap: NonNullable<RuntimeDeps['tap']>;
  inspect: NonNullable<RuntimeDeps['inspect']>;
  close(): Promise<void>;
}

/**
 * Recording for one process of a deployment (`valmove start`, and each
 * child of `valmove up`). Each party of the process is its own run: its own
 * header and clock, its own feed connection, and with a folder its own file.
 * With one file, the parties (and the other processes given the same file)
 * append to it line by line; each record names its party, so `valmove
 * trace` pairs it with its party's header. A restarted process appends a
 * new run.
 */
export function processRecording(flags: RecordingFlags, source: RunStartRecord['source'] = 'party'): ProcessRecording | undefined {
  if (!flags.record && !flags.inspect) return undefined;
  const recorders = new Map<string, Recorder>();
  const recorderOf = (party: string): Recorder => {
    let r = recorders.get(party);
    if (!r) {
      const file = !flags.record ? undefined : recordsToOneFile(flags.record) ? flags.record : join(flags.record, partyFileName(party));
      r = createRecorder({ source, party, sinks: sinksFor(file, flags, 'append') });
      recorders.set(party, r);
    }
    return r;
  };
  return {
    open: (party) => void recorderOf(party),
    tap: (party, direction, peer, bytes) => recorderOf(party).tap(party, direction, peer, bytes),
    inspect: (party, key, e) => recorderOf(party).inspect(party, key, e),
    async close() {
      await Promise.all([...recorders.values()].map((r) => r.close()));
    },
  };
}
