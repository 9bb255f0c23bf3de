/**
 * Structured JSON logs (pino). Fields are primitives only: a key, a Secret
 * or a value item can not be passed by accident, and any Uint8Array or object
 * that slips through is replaced before it is written (protocol.md §4.4).
 */
import { pino, type Logger as PinoLogger } from 'pino';

export type LogValue = string | number | boolean | undefined | null;
export type LogFields = Record<string, LogValue>;
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(bindings: LogFields): Logger;
  /** Whether a line at this level would be written (to skip building costly fields). */
  enabled(level: Exclude<LogLevel, 'silent'>): boolean;
}

export interface LogSink {
  write(line: string): void;
}

/** Log strings are cut here: long enough for an error sentence, too short for a payload dump. */
export const LOG_STRING_CHARS_MAX = 300;

function clean(fields: LogFields | undefined): LogFields | undefined {
  if (!fields) return undefined;
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    if (v === null || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (typeof v === 'string') out[k] = v.length > LOG_STRING_CHARS_MAX ? `${v.slice(0, LOG_STRING_CHARS_MAX)}…` : v;
    else out[k] = '[dropped: not a primitive]';
  }
  return out;
}

class PinoAdapter implements Logger {
  constructor(private readonly p: PinoLogger) {}
  debug(msg: string, fields?: LogFields): void {
    if (this.p.isLevelEnabled('debug')) this.p.debug(clean(fields) ?? {}, msg);
  }
  info(msg: string, fields?: LogFields): void {
    if (this.p.isLevelEnabled('info')) this.p.info(clean(fields) ?? {}, msg);
  }
  warn(msg: string, fields?: LogFields): void {
    if (this.p.isLevelEnabled('warn')) this.p.warn(clean(fields) ?? {}, msg);
  }
  error(msg: string, fields?: LogFields): void {
    if (this.p.isLevelEnabled('error')) this.p.error(clean(fields) ?? {}, msg);
  }
  child(bindings: LogFields): Logger {
    return new PinoAdapter(this.p.child(clean(bindings) ?? {}));
  }
  enabled(level: Exclude<LogLevel, 'silent'>): boolean {
    return this.p.isLevelEnabled(level);
  }
}

export function createLogger(opts: { level?: LogLevel; sink?: LogSink; now?: () => number; bindings?: LogFields } = {}): Logger {
  const now = opts.now;
  const p = pino(
    {
      level: opts.level ?? 'info',
      base: clean(opts.bindings) ?? {},
      timestamp: now ? () => `,"time":${now()}` : pino.stdTimeFunctions.epochTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    (opts.sink ?? { write: () => {} }) as never,
  );
  return new PinoAdapter(p);
}

export const silentLogger: Logger = createLogger({ level: 'silent' });

/** A sink that keeps lines in memory (tests scan them for secrets). */
export function memorySink(): LogSink & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    write(line: string) {
      lines.push(line);
    },
  };
}
