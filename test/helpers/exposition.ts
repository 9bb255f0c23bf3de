/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for
 * /metrics where `promtool check metrics` is not installed. It refuses what
 * promtool refuses and what Prometheus's naming rules ask:
 *
 * - a metric name matches [a-zA-Z_:][a-zA-Z0-9_:]*, a label name
 *   [a-zA-Z_][a-zA-Z0-9_]* (not starting "__"), a label value is a quoted
 *   string with only \\, \" and \n escaped; a value is a float, +Inf, -Inf
 *   or NaN;
 * - every family has one HELP and one TYPE line, before its samples, and
 *   its samples are together;
 * - a counter's name ends in _total, and nothing else's does; a histogram
 *   has _bucket samples with an `le` label, ascending, cumulative, ending
 *   at le="+Inf" whose count equals _count, and a _sum, per label set;
 * - a unit in a name comes last (before _total, or the histogram's
 *   suffixes): `_seconds`, `_bytes`, never `_ms` or `_milliseconds`.
 *
 * `parseExposition` returns the families, or throws naming the line.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]Inf|NaN)$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
/** Units Prometheus names by their base: a time is in seconds, a size in bytes. */
const NON_BASE_UNITS = /_(ms|milliseconds|millis|us|microseconds|kb|kilobytes|mb|megabytes|minutes|hours)(_|$)/;

class ExpositionError extends Error {}

function fail(lineNo: number, line: string, why: string): never {
  throw new ExpositionError(`line ${lineNo}: ${why}: ${line.slice(0, 160)}`);
}

/** `{a="x",b="y"}` → labels; refuses bad names, bad escapes and repeats. */
function parseLabels(text: string, lineNo: number, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) fail(lineNo, line, 'a label without "="');
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name) || name.startsWith('__')) fail(lineNo, line, `bad label name "${name}"`);
    if (text[eq + 1] !== '"') fail(lineNo, line, `label ${name}: its value is not quoted`);
    let j = eq + 2;
    let value = '';
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const next = text[++j];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else fail(lineNo, line, `label ${name}: bad escape \\${next}`);
      } else if (text[j] === '\n') fail(lineNo, line, `label ${name}: a raw newline`);
      else value += text[j];
    }
    if (j >= text.length) fail(lineNo, line, `label ${name}: unterminated value`);
    if (name in labels) fail(lineNo, line, `label ${name} twice`);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (i < text.length) fail(lineNo, line, 'labels not separated by ","');
  }
  return labels;
}

function parseSample(line: string, lineNo: number): Sample {
  const m = /^([^\s{]+)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$/.exec(line);
  if (!m) fail(lineNo, line, 'not a sample line');
  const [, name, labelText, value] = m;
  if (!METRIC_NAME.test(name!)) fail(lineNo, line, `bad metric name "${name}"`);
  if (!VALUE.test(value!)) fail(lineNo, line, `bad value "${value}"`);
  const v = value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value);
  return { name: name!, labels: labelText ? parseLabels(labelText, lineNo, line) : {}, value: v };
}

/** The family a sample belongs to: its own name, or a histogram's or summary's with its suffix taken off. */
function familyOf(sample: string, families: Map<string, Family>): Family | undefined {
  const own = families.get(sample);
  if (own) return own;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suffix)) continue;
    const f = families.get(sample.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

/** Reads the text; throws at the first line that breaks the format, then checks every family's rules. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  let current: Family | undefined;
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new ExpositionError('the text does not end with a newline');
  for (const [k, line] of lines.slice(0, -1).entries()) {
    const n = k + 1;
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta;
      if (!METRIC_NAME.test(name!)) fail(n, line, `bad metric name "${name}"`);
      let f = families.get(name!);
      if (f && f !== current) fail(n, line, `${name}: its lines are not together`);
      if (!f) {
        if (current) closed.add(current.name);
        f = { name: name!, type: 'untyped', help: '', samples: [] };
        families.set(name!, f);
        current = f;
      }
      if (f.samples.length > 0) fail(n, line, `${name}: ${kind} after its samples`);
      if (kind === 'HELP') {
        if (f.help) fail(n, line, `${name}: a second HELP`);
        f.help = rest!;
      } else {
        if (!TYPES.has(rest!)) fail(n, line, `${name}: unknown type "${rest}"`);
        f.type = rest as Family['type'];
      }
      continue;
    }
    if (line.startsWith('#')) continue;
    const s = parseSample(line, n);
    const f = familyOf(s.name, families);
    if (!f) fail(n, line, `${s.name}: a sample without HELP and TYPE`);
    if (f !== current || closed.has(f.name)) fail(n, line, `${s.name}: its family's samples are not together`);
    f.samples.push(s);
  }
  for (const f of families.values()) checkFamily(f);
  return families;
}

function checkFamily(f: Family): void {
  const say = (why: string): never => {
    throw new ExpositionError(`${f.name}: ${why}`);
  };
  if (!f.help) say('no HELP line');
  if (f.type === 'untyped') say('no TYPE line');
  if (f.type === 'counter' && !f.name.endsWith('_total')) say('a counter whose name does not end in _total');
  if (f.type !== 'counter' && f.name.endsWith('_total')) say(`a ${f.type} whose name ends in _total (only counters do)`);
  if (NON_BASE_UNITS.test(f.name)) say('a unit other than the base unit (seconds, bytes) in its name');
  const unit = /_(seconds|bytes)(_|$)/.exec(f.name);
  if (unit && !new RegExp(`_${unit[1]}(_total)?$`).test(f.name)) say(`the unit _${unit[1]} is not last in its name`);
  for (const s of f.samples) {
    if (f.type === 'counter' && !(s.value >= 0)) say(`a counter sample below 0 or NaN: ${s.value}`);
  }
  if (f.type === 'histogram') checkHistogram(f, say);
}

/** Per label set (without `le`): buckets ascending and cumulative, a +Inf bucket equal to _count, a _sum. */
function checkHistogram(f: Family, say: (why: string) => never): void {
  const series = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const row = series.get(key) ?? { buckets: [] };
    series.set(key, row);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) say('a _bucket sample without an le label');
      if (!VALUE.test(le!)) say(`a bucket bound le="${le}" that is not a float`);
      row.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    } else if (s.name === `${f.name}_sum`) row.sum = s.value;
    else if (s.name === `${f.name}_count`) row.count = s.value;
    else say(`a sample ${s.name} that is not _bucket, _sum or _count`);
  }
  for (const [key, row] of series) {
    if (row.buckets.length === 0) say(`no buckets for ${key}`);
    for (let i = 1; i < row.buckets.length; i++) {
      if (!(row.buckets[i]![0] > row.buckets[i - 1]![0])) say(`bucket bounds not ascending for ${key}`);
      if (row.buckets[i]![1] < row.buckets[i - 1]![1]) say(`buckets not cumulative for ${key}`);
    }
    const last = row.buckets.at(-1)!;
    if (last[0] !== Infinity) say(`no le="+Inf" bucket for ${key}`);
    if (row.count === undefined) say(`no _count for ${key}`);
    if (row.sum === undefined) say(`no _sum for ${key}`);
    if (last[1] !== row.count) say(`the +Inf bucket (${last[1]}) is not _count (${row.count}) for ${key}`);
  }
}

/** The value of the sample `name` whose labels include `labels` (undefined: no such sample). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}
