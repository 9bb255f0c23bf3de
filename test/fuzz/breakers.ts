/**
 * Schema-driven damage for the fuzzer (test/fuzz/inputs.ts): takes a value
 * its zod schema accepts and breaks it at one place the schema says
 * something about, read from z.toJSONSchema as test/property/arbitraries.ts
 * reads it to generate. A field goes missing, gains a sibling, changes type,
 * outgrows its limit, takes a character its pattern refuses, leaves its
 * range or enum; base64url is also spelt the ways only a lenient decoder
 * reads (4n+1 characters, stray trailing bits, padding). Not a test file.
 */
import { B64URL } from '../../src/transport/messages.ts';
import type { JsonSchema } from '../property/arbitraries.ts';

export type { JsonSchema };
export type Path = Array<string | number>;
interface Spot {
  path: Path;
  schema: JsonSchema;
  value: unknown;
}

/** The schema of the variant a value is (discriminated by a `const` field: chip frames' `t`, replies' `ok`). */
function variantOf(s: JsonSchema, value: unknown): JsonSchema {
  const variants = s.oneOf ?? s.anyOf;
  if (!variants) return s;
  const v = value as Record<string, unknown>;
  return variants.find((x) => Object.entries(x.properties ?? {}).every(([k, p]) => p.const === undefined || v?.[k] === p.const)) ?? variants[0]!;
}

/** Every place in a valid value that its schema says something about. */
function spotsOf(schema: JsonSchema, value: unknown, path: Path = []): Spot[] {
  const s = variantOf(schema, value);
  const out: Spot[] = [{ path, schema: s, value }];
  if (s.type === 'object' && value && typeof value === 'object') {
    for (const [k, sub] of Object.entries(s.properties ?? {})) {
      if (k in (value as object)) out.push(...spotsOf(sub, (value as Record<string, unknown>)[k], [...path, k]));
    }
  }
  if (s.type === 'array' && Array.isArray(value)) for (const [i, x] of value.entries()) out.push(...spotsOf(s.items!, x, [...path, i]));
  return out;
}

export function setAt(root: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let node = copy;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = value;
  return copy;
}

export function deleteAt(root: unknown, path: Path): unknown {
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let node = copy;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  delete node[path[path.length - 1]!];
  return copy;
}

/** An own enumerable `__proto__` key survives JSON.stringify and comes back from JSON.parse as data. */
export function withKey(obj: object, key: string, value: unknown): object {
  const copy = { ...obj };
  Object.defineProperty(copy, key, { value, enumerable: true, configurable: true, writable: true });
  return copy;
}

const WRONG_TYPES: unknown[] = [null, true, 0, -1, 1.5, '', 'x', [], {}, [1, 2], { a: 1 }];
export const typeOfJson = (v: unknown) =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v;
/** Characters some pattern refuses (names allow + and /, base64url neither): control, quote, non-ASCII, a lone surrogate. */
export const BAD_CHARS = [' ', '=', '+', '/', '%', '~', '"', '\\', 'ü', '\u0000', '\n', '\ud800', '\u202e', '<'];
const B64_PATTERN = B64URL.source;
/** The characters a pattern allows, as a one-character test (B64URL is no single class: its alphabet). */
function charTest(pattern: string): RegExp {
  if (pattern === B64_PATTERN) return /^[A-Za-z0-9_-]$/;
  return new RegExp(`^${pattern.replace(/^\^|\$$/g, '').replace(/[+*]$/, '')}$`);
}

interface Break {
  what: string;
  value: unknown;
}

/**
 * Breaks a valid value at one spot: `pick` chooses the spot and the kind of
 * damage. Every result violates the schema (the caller checks it with the
 * decoder, through the claims).
 */
export function breakAt(schema: JsonSchema, valid: unknown, pick: number, extra: { n: number; s: string }): Break {
  const spots = spotsOf(schema, valid);
  const sp = spots[pick % spots.length]!;
  const where = sp.path.length === 0 ? '(body)' : sp.path.join('.');
  const s = sp.schema;
  const ways: Break[] = [];
  const wrong = WRONG_TYPES.filter((w) => {
    const t = typeOfJson(w);
    if (s.type === 'integer') return t !== 'integer';
    if (s.type === 'number') return t !== 'integer' && t !== 'number';
    if (s.type === 'object' && sp.path.length === 0) return false; // a body that is no object is the header's error
    return t !== s.type && !(s.type === 'number' && t === 'integer');
  });
  if (s.const === undefined && s.enum === undefined && wrong.length > 0) {
    ways.push({ what: `${where} of the wrong type`, value: setAt(valid, sp.path, wrong[extra.n % wrong.length]) });
  }
  if (s.const !== undefined) ways.push({ what: `${where} not ${String(s.const)}`, value: setAt(valid, sp.path, `${String(s.const)}x`) });
  if (s.enum) ways.push({ what: `${where} not in its enum`, value: setAt(valid, sp.path, [`${String(s.enum![0])}X`, 'nope', '', 7][extra.n % 4]) });
  if (s.type === 'object') {
    const required = (s.required ?? []).filter((k) => k in (sp.value as object));
    if (required.length > 0) {
      const k = required[extra.n % required.length]!;
      ways.push({ what: `${where} without ${k}`, value: deleteAt(valid, [...sp.path, k]) });
    }
    const key = ['__proto__', 'constructor', 'extra', extra.s || 'x', 'toString'][extra.n % 5]!;
    if (!Object.hasOwn(s.properties ?? {}, key)) {
      ways.push({ what: `${where} with an extra key ${key}`, value: setAt(valid, sp.path, withKey(sp.value as object, key, extra.s)) });
    }
  }
  if (s.type === 'string' && typeof sp.value === 'string') {
    const v = sp.value;
    if (s.maxLength !== undefined) {
      const over = [s.maxLength + 1, s.maxLength + 1 + (extra.n % 97), s.maxLength * 2 + 3][extra.n % 3]!;
      ways.push({
        what: `${where} ${over} chars, over ${s.maxLength}`,
        value: setAt(
          valid,
          sp.path,
          (v || 'A')
            .repeat(Math.ceil(over / Math.max(1, v.length)))
            .slice(0, over)
            .padEnd(over, 'A'),
        ),
      });
    }
    if ((s.minLength ?? 0) > 0) ways.push({ what: `${where} empty`, value: setAt(valid, sp.path, '') });
    if (s.pattern !== undefined) {
      const re = charTest(s.pattern);
      const bad = BAD_CHARS.filter((c) => !re.test(c));
      const c = bad[extra.n % bad.length]!;
      const at = v.length === 0 ? 0 : extra.n % v.length;
      ways.push({
        what: `${where} with a ${JSON.stringify(c)}`,
        value: setAt(valid, sp.path, (v.slice(0, at) + c + v.slice(at + 1)).slice(0, s.maxLength ?? Infinity)),
      });
    }
    if (s.pattern === B64_PATTERN) {
      // Strings Buffer would decode anyway: a length of 4n+1, or a last character with bits past the data.
      const base = v.length % 4 === 1 ? v.slice(0, -1) : v;
      const fourNPlusOne = `${base.slice(0, base.length - (base.length % 4))}A`;
      const trailing = base.length % 4 === 2 ? `${base.slice(0, -1)}B` : base.length % 4 === 3 ? `${base.slice(0, -1)}B` : 'AB';
      ways.push({ what: `${where} base64 of length 4n+1`, value: setAt(valid, sp.path, fourNPlusOne) });
      ways.push({ what: `${where} base64 with stray trailing bits`, value: setAt(valid, sp.path, trailing) });
      ways.push({ what: `${where} padded base64`, value: setAt(valid, sp.path, `${v.slice(0, Math.max(0, (s.maxLength ?? 4) - 2))}==`) });
    }
  }
  if ((s.type === 'integer' || s.type === 'number') && typeof sp.value === 'number') {
    const outside = [
      s.minimum !== undefined ? s.minimum - 1 : null,
      s.maximum !== undefined ? s.maximum + 1 : null,
      s.type === 'integer' ? sp.value + 0.5 : null,
      s.maximum !== undefined && s.maximum < 1e300 ? 1e300 : null,
    ].filter(
      (x): x is number =>
        x !== null && Number.isFinite(x) && x !== sp.value && !(Number.isSafeInteger(x) && x >= (s.minimum ?? -Infinity) && x <= (s.maximum ?? Infinity)),
    );
    if (outside.length > 0) ways.push({ what: `${where} out of range`, value: setAt(valid, sp.path, outside[extra.n % outside.length]) });
  }
  if (s.type === 'array' && Array.isArray(sp.value)) {
    if (s.maxItems !== undefined && sp.value.length > 0) {
      const over = Array.from({ length: s.maxItems + 1 }, (_, i) => (sp.value as unknown[])[i % (sp.value as unknown[]).length]);
      ways.push({ what: `${where} with ${over.length} items, over ${s.maxItems}`, value: setAt(valid, sp.path, over) });
    }
    if ((s.minItems ?? 0) > 0) ways.push({ what: `${where} empty`, value: setAt(valid, sp.path, []) });
  }
  if (ways.length === 0) throw new Error(`inputs.ts: no way to break ${where} of ${JSON.stringify(s).slice(0, 80)}; teach breakAt one`);
  return ways[Math.floor(pick / spots.length) % ways.length]!;
}
