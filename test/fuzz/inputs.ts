/**
 * What the fuzzer sends (issue 8, point 6): fast-check arbitraries of bad
 * input for one seat on a party's link. Each case is a Spec that becomes
 * the bytes a peer would put on the link:
 *
 *   bytes     not JSON, not UTF-8, JSON that is not an object, cut-off text
 *   header    one envelope field missing, of the wrong type, out of range; an extra field
 *   version   `v` anything but 1
 *   type      a type the catalog does not have (near misses, prototype names)
 *   body      every message type, its body broken at one place the schema names
 *             (missing, extra, wrong type, too long, bad characters, bad base64, out of range)
 *   oversize  envelopes around and past the 64 KiB limit
 *   frame     `frame` envelopes whose data is bad base64, not a chip frame, or a broken chip frame
 *   valid     well-formed envelopes of every type, with ids, migrations and sessions of the real run
 *   mutation  envelopes recorded in a real migration, re-addressed to this seat, fields
 *             flipped, swapped or dropped, the encoding cut or a byte changed
 *
 * Generators know what they break; `claims` lists the decode codes a case
 * must get (the harness checks the party's answer against the decoder and
 * the decoder against the claim, so a generator that stops breaking what it
 * says fails loudly). Not a test file.
 */
import fc from 'fast-check';
import { z } from 'zod';
import { toB64 } from '../../src/crypto/index.ts';
import type { ErrorCode } from '../../src/protocol/errors.ts';
import { chipFrameSchema } from '../../src/transport/chip.frames.ts';
import { STEPS } from '../../src/protocol/steps.ts';
import { ENVELOPE_BYTES_MAX, PROTOCOL_VERSION, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { FRAME_DATA_CHARS_MAX, isMessageType, MESSAGES, type MessageType } from '../../src/transport/messages.ts';
import { arbitraryOf, MESSAGE_TYPES, nameArb } from '../property/arbitraries.ts';
import { BAD_CHARS, breakAt, deleteAt, setAt, typeOfJson, withKey, type JsonSchema, type Path } from './breakers.ts';

export type Category = 'bytes' | 'header' | 'version' | 'type' | 'body' | 'oversize' | 'frame' | 'valid' | 'mutation';
export const CATEGORIES: readonly Category[] = ['bytes', 'header', 'version', 'type', 'body', 'oversize', 'frame', 'valid', 'mutation'];

/** One case before it has an id: a JSON value (or raw bytes), then optional damage to its encoding. */
export interface Spec {
  cat: Category;
  /** For reports: what was done, in a few words. */
  what: string;
  value?: unknown;
  raw?: Uint8Array;
  /** Keep only this many bytes of the encoding. */
  cut?: number;
  /** XOR one byte of the encoding. */
  flip?: { at: number; xor: number };
  /** Decode codes this case must be refused with (checked against decodeEnvelope). */
  claims?: readonly ErrorCode[];
  /** For a broken body: the message type whose schema it breaks (the report counts the types covered). */
  broke?: MessageType;
}

/** Where a seat's input goes, and what of the real run it may borrow. */
export interface Target {
  /** The party id this seat speaks as (the `from` the party expects on this link). */
  self: string;
  /** The party under test. */
  party: string;
  /** Sessions open toward this seat: their frames reach the party's chip-frame decoder. */
  openSessions: readonly string[];
  migs: readonly string[];
  ids: readonly string[];
  sessions: readonly string[];
  corpus: readonly AnyEnvelope[];
}

/** Stands for the case's fresh message id until the runner gives it one. */
export const FRESH_ID = 'fz#FRESH';
const FRESH_JSON = JSON.stringify(FRESH_ID);

const utf8 = new TextEncoder();

/** The bytes of a spec, with `id` as its fresh message id. */
export function materialize(spec: Spec, id: string): Uint8Array {
  let bytes = spec.raw ?? utf8.encode(JSON.stringify(spec.value).split(FRESH_JSON).join(JSON.stringify(id)));
  if (spec.cut !== undefined) bytes = bytes.subarray(0, Math.min(spec.cut, Math.max(0, bytes.length - 1)));
  if (spec.flip && bytes.length > 0) {
    bytes = new Uint8Array(bytes);
    bytes[spec.flip.at % bytes.length]! ^= spec.flip.xor || 1;
  }
  return bytes;
}

const jsonSchemaOf = (schema: z.ZodType<unknown>) => z.toJSONSchema(schema) as JsonSchema;
const BODY_SCHEMAS = new Map(MESSAGE_TYPES.map((t) => [t, jsonSchemaOf(MESSAGES[t][1] as z.ZodType<unknown>)]));
const BODY_ARBS = new Map(MESSAGE_TYPES.map((t) => [t, arbitraryOf(MESSAGES[t][1] as z.ZodType<unknown>, `${t}.body`)]));
const CHIP_FRAME_SCHEMA = jsonSchemaOf(chipFrameSchema as z.ZodType<unknown>);
const CHIP_FRAME_ARB = arbitraryOf(chipFrameSchema as z.ZodType<unknown>, 'chip frame');

const breakExtra = fc.record({ n: fc.nat(), s: fc.string({ maxLength: 12 }) });

// ---- the categories ---------------------------------------------------------------------------

const envelope = (t: Target, type: string, body: unknown, header: Record<string, unknown> = {}) => ({
  v: PROTOCOL_VERSION,
  id: FRESH_ID,
  from: t.self,
  to: t.party,
  type,
  ...header,
  body,
});

/** Optional header fields, with values from the real run as often as random ones (they reach lookups). */
function headerOf(t: Target): fc.Arbitrary<Record<string, unknown>> {
  const pick = <T>(pool: readonly T[], other: fc.Arbitrary<T>) => (pool.length > 0 ? fc.oneof(fc.constantFrom(...pool), other) : other);
  return fc
    .record(
      {
        corr: pick(t.ids, nameArb),
        mig: pick(t.migs, nameArb),
        step: fc.constantFrom(...STEPS),
        item: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 1023 })),
      },
      { requiredKeys: [] },
    )
    .map((h) => Object.fromEntries(Object.entries(h)));
}

const idOf = (t: Target) =>
  t.ids.length > 0 ? fc.oneof({ weight: 9, arbitrary: fc.constant(FRESH_ID) }, { weight: 1, arbitrary: fc.constantFrom(...t.ids) }) : fc.constant(FRESH_ID);

/** A valid body of `type`; a frame's session is one of the run's now and then. */
function bodyOf(t: Target, type: MessageType): fc.Arbitrary<unknown> {
  const arb = BODY_ARBS.get(type)!;
  const sessions = [...t.sessions, ...t.openSessions];
  if (type !== 'frame' || sessions.length === 0) return arb;
  return fc.tuple(arb, fc.option(fc.constantFrom(...sessions))).map(([b, s]) => (s === null ? b : { ...(b as object), session: s }));
}

function bytesCat(t: Target): fc.Arbitrary<Spec> {
  const sample = envelope(t, 'login.begin', { user: 'alice' });
  return fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((raw) => ({ cat: 'bytes' as const, what: `${raw.length} random bytes`, raw })),
    fc.string({ maxLength: 200 }).map((s) => ({ cat: 'bytes' as const, what: 'text', raw: utf8.encode(s) })),
    fc.constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf], [0xe2, 0x82]).chain((bad) =>
      fc.nat({ max: 40 }).map((at) => {
        const good = utf8.encode(JSON.stringify(sample));
        const raw = new Uint8Array([...good.subarray(0, at), ...bad, ...good.subarray(at)]);
        return { cat: 'bytes' as const, what: `invalid UTF-8 ${bad.map((b) => b.toString(16)).join(' ')} at ${at}`, raw, claims: ['BAD_JSON'] as const };
      }),
    ),
    fc
      .jsonValue({ maxDepth: 3 })
      .filter((v) => v === null || typeof v !== 'object' || Array.isArray(v))
      .map((value) => ({ cat: 'bytes' as const, what: `JSON ${typeOfJson(value)}`, value, claims: ['BAD_ENVELOPE'] as const })),
    fc.nat({ max: 200 }).map((cut) => ({ cat: 'bytes' as const, what: `an envelope cut at ${cut}`, value: sample, cut })),
    fc.integer({ min: 1, max: 30_000 }).map((depth) => ({
      cat: 'bytes' as const,
      what: `JSON nested ${depth} deep`,
      raw: utf8.encode(`${'['.repeat(depth)}${']'.repeat(depth)}`),
      claims: ['BAD_JSON', 'BAD_ENVELOPE', 'TOO_LARGE'] as const,
    })),
  );
}

const BAD_NAMES: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('', 'x'.repeat(129), 'a b', 'ü', 'server\u0000', '<script>', 'a=b', 7, null, true, [], {}, ['server']),
  fc.tuple(nameArb, fc.constantFrom(...BAD_CHARS.filter((c) => !/^[A-Za-z0-9._:/@+#-]$/.test(c)))).map(([n, c]) => `${n.slice(0, 100)}${c}`),
);

function headerCat(t: Target): fc.Arbitrary<Spec> {
  const REQUIRED = ['v', 'id', 'from', 'to', 'type', 'body'] as const;
  const base = fc.constantFrom(...MESSAGE_TYPES).chain((type) => bodyOf(t, type).map((body) => envelope(t, type, body) as Record<string, unknown>));
  const breaks: Array<fc.Arbitrary<(e: Record<string, unknown>) => [string, unknown]>> = [
    fc.constantFrom(...REQUIRED).map((k) => (e) => [`without ${k}`, deleteAt(e, [k])]),
    fc.tuple(fc.constantFrom('id', 'corr', 'from', 'to', 'mig'), BAD_NAMES).map(([k, bad]) => (e) => [
      `${k} ${JSON.stringify(bad)?.slice(0, 40)}`,
      { ...e, [k]: bad },
    ]),
    fc.constantFrom<unknown>('S18', 's1', '', 'commit ', 5, null).map((bad) => (e) => [`step ${JSON.stringify(bad)}`, { ...e, step: bad }]),
    fc.constantFrom<unknown>(-1, 1024, 1.5, 1e21, '1', null, [0]).map((bad) => (e) => [`item ${JSON.stringify(bad)}`, { ...e, item: bad }]),
    fc.constantFrom<unknown>('', 'x'.repeat(65), 12, null, ['frame']).map((bad) => (e) => [`type ${JSON.stringify(bad).slice(0, 20)}`, { ...e, type: bad }]),
    fc.constantFrom<unknown>([], 'body', null, 3, [{}]).map((bad) => (e) => [`body ${JSON.stringify(bad)}`, { ...e, body: bad }]),
    fc
      .tuple(
        fc.oneof(
          fc.constantFrom('__proto__', 'constructor', 'V', 'ID', 'sig'),
          nameArb.map((n) => `x-${n.slice(0, 20)}`),
        ),
        fc.jsonValue({ maxDepth: 2 }),
      )
      .map(([k, v]) => (e) => [`extra header ${k}`, withKey(e, k, v)]),
  ];
  return fc.tuple(base, fc.oneof(...breaks)).map(([e, f]) => {
    const [what, value] = f(e);
    return { cat: 'header' as const, what, value, claims: ['BAD_ENVELOPE'] as const };
  });
}

function versionCat(t: Target): fc.Arbitrary<Spec> {
  return fc
    .tuple(fc.constantFrom<unknown>(0, 2, -1, 1.5, '1', null, true, [1], { v: 1 }, 2 ** 53, 255, PROTOCOL_VERSION + 1), fc.constantFrom(...MESSAGE_TYPES))
    .chain(([v, type]) =>
      bodyOf(t, type).map((body) => ({
        cat: 'version' as const,
        what: `v ${JSON.stringify(v)}`,
        value: { ...envelope(t, type, body), v },
        claims: ['BAD_ENVELOPE'] as const,
      })),
    );
}

function typeCat(t: Target): fc.Arbitrary<Spec> {
  const nearMiss = fc
    .tuple(fc.constantFrom(...MESSAGE_TYPES), fc.nat(5))
    .map(([m, k]) => [m.toUpperCase(), `${m}.x`, m.slice(0, -1), `${m} `, ` ${m}`, m.replace('.', '/')][k]!);
  const unknown = fc.oneof(
    nearMiss,
    fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype'),
    fc.string({ minLength: 1, maxLength: 64 }),
  );
  return fc
    .tuple(
      unknown.filter((x) => !isMessageType(x) && x.length <= 64),
      fc.oneof(
        fc.constant({}),
        fc.constantFrom(...MESSAGE_TYPES).chain((m) => bodyOf(t, m)),
      ),
    )
    .map(([type, body]) => ({
      cat: 'type' as const,
      what: `type ${JSON.stringify(type).slice(0, 40)}`,
      value: envelope(t, type, body),
      claims: ['UNKNOWN_TYPE'] as const,
    }));
}

function bodyCat(t: Target): fc.Arbitrary<Spec> {
  return fc.constantFrom(...MESSAGE_TYPES).chain((type) =>
    fc.tuple(bodyOf(t, type), fc.nat(), breakExtra, headerOf(t)).map(([body, pick, extra, header]) => {
      const b = breakAt(BODY_SCHEMAS.get(type)!, body, pick, extra);
      return {
        cat: 'body' as const,
        what: `${type}: ${b.what}`,
        value: envelope(t, type, b.value, header),
        claims: ['BAD_BODY', 'TOO_LARGE'] as const,
        broke: type,
      };
    }),
  );
}

function oversizeCat(t: Target): fc.Arbitrary<Spec> {
  const near = fc.integer({ min: -16, max: 16 }).map((d) => ENVELOPE_BYTES_MAX + d);
  const far = fc.integer({ min: ENVELOPE_BYTES_MAX + 1, max: 3 * ENVELOPE_BYTES_MAX });
  return fc.tuple(fc.oneof(near, far), fc.constantFrom('body', 'extra', 'header')).map(([size, where]) => {
    const fill = (env: Record<string, unknown>, key: string, inBody: boolean) => {
      const probe = utf8.encode(JSON.stringify(inBody ? { ...env, body: { [key]: '' } } : { ...env, [key]: '' })).length;
      const pad = 'A'.repeat(Math.max(0, size - probe));
      return inBody ? { ...env, body: { [key]: pad } } : { ...env, [key]: pad };
    };
    // A fixed id: the runner's ids would change the size by a few bytes.
    const base = { ...envelope(t, where === 'body' ? 'login.begin' : 'chip.select', {}), id: 'fz-oversize' };
    const value = where === 'body' ? fill(base, 'user', true) : where === 'header' ? fill(base, 'id', false) : fill(base, 'padding', false);
    // Past the limit the size is refused first; at or under it, what the padding broke.
    return {
      cat: 'oversize' as const,
      what: `${size} bytes (${where})`,
      value,
      claims: size > ENVELOPE_BYTES_MAX ? (['TOO_LARGE'] as const) : (['BAD_ENVELOPE', 'BAD_BODY'] as const),
    };
  });
}

/** Chip frames recorded in the run (their data), to replay and damage. */
function recordedFrames(t: Target): string[] {
  return t.corpus.filter((e) => e.type === 'frame').map((e) => (e.body as { data: string }).data);
}

function frameCat(t: Target): fc.Arbitrary<Spec> {
  const sessions = fc.oneof(
    ...(t.openSessions.length > 0 ? [{ weight: 4, arbitrary: fc.constantFrom(...t.openSessions).map((s) => ({ s, open: true })) }] : []),
    ...(t.sessions.length > 0 ? [{ weight: 2, arbitrary: fc.constantFrom(...t.sessions).map((s) => ({ s, open: false })) }] : []),
    { weight: 1, arbitrary: nameArb.map((s) => ({ s, open: false })) },
  );
  const broken = fc.tuple(CHIP_FRAME_ARB, fc.nat(), breakExtra).map(([f, pick, extra]) => {
    const b = breakAt(CHIP_FRAME_SCHEMA, f, pick, extra);
    return { what: `chip frame ${(f as { t: string }).t}: ${b.what}`, data: toB64(utf8.encode(JSON.stringify(b.value))) };
  });
  const notAFrame = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((b) => ({ what: 'random bytes', data: toB64(b) })),
    fc.jsonValue({ maxDepth: 3 }).map((v) => ({ what: `JSON ${typeOfJson(v)}`, data: toB64(utf8.encode(JSON.stringify(v) ?? 'null')) })),
    fc.constantFrom('', 'AA', 'e30').map((data) => ({ what: `data ${JSON.stringify(data)}`, data })),
  );
  const badBase64 = fc.oneof(
    fc
      .tuple(fc.base64String({ maxLength: 60 }), fc.constantFrom('=', '+', '/', ' ', '.'))
      .map(([s, c]) => ({ what: `data with ${JSON.stringify(c)}`, data: `${s}${c}` })),
    fc.uint8Array({ maxLength: 60 }).map((b) => ({ what: 'data of length 4n+1', data: `${toB64(b).slice(0, toB64(b).length - (toB64(b).length % 4))}A` })),
    fc
      .uint8Array({ minLength: 1, maxLength: 60 })
      .filter((b) => b.length % 3 !== 0)
      .map((b) => {
        const s = toB64(b);
        return { what: 'data with stray trailing bits', data: `${s.slice(0, -1)}${s.endsWith('B') ? 'C' : 'B'}` };
      }),
    fc.integer({ min: 1, max: 64 }).map((d) => ({ what: 'data over its limit', data: 'A'.repeat(FRAME_DATA_CHARS_MAX + d * 4) })),
  );
  const frames = recordedFrames(t);
  const valid = fc.oneof(
    CHIP_FRAME_ARB.map((f) => ({ what: `a well-formed chip frame ${(f as { t: string }).t}`, data: toB64(utf8.encode(JSON.stringify(f))) })),
    ...(frames.length > 0 ? [fc.constantFrom(...frames).map((data) => ({ what: 'a recorded chip frame', data }))] : []),
  );
  // A well-formed chip frame in a session open toward the seat would drive that session on: those get only bad ones.
  const bad = fc.oneof(broken, notAFrame, badBase64);
  const any = fc.oneof(broken, notAFrame, badBase64, valid);
  return sessions
    .chain(({ s, open }) => fc.tuple(fc.constant({ s, open }), open ? bad : any, headerOf(t)))
    .map(([{ s, open }, d, header]) => ({
      cat: 'frame' as const,
      what: `${open ? 'open session' : 'session'}: ${d.what}`,
      value: envelope(t, 'frame', { session: s, data: d.data }, header),
    }));
}

function validCat(t: Target): fc.Arbitrary<Spec> {
  return fc.constantFrom(...MESSAGE_TYPES).chain((type) =>
    fc.tuple(bodyOf(t, type), headerOf(t), idOf(t)).map(([body, header, id]) => ({
      cat: 'valid' as const,
      what: `${type}${id === FRESH_ID ? '' : ' (a used id)'}`,
      value: { ...envelope(t, type, body, header), id },
    })),
  );
}

/** Every leaf path of a JSON value (to flip one). */
function leaves(v: unknown, path: Path = []): Path[] {
  if (v && typeof v === 'object') {
    const out: Path[] = Array.isArray(v) ? [] : [path];
    for (const [k, x] of Object.entries(v)) out.push(...leaves(x, [...path, Array.isArray(v) ? Number(k) : k]));
    return out.length > 0 ? out : [path];
  }
  return [path];
}

function mutationCat(t: Target): fc.Arbitrary<Spec> {
  if (t.corpus.length === 0) return validCat(t);
  const mutate = fc.tuple(fc.nat(), fc.nat(), fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom<unknown>(undefined)), fc.nat(5));
  return fc
    .tuple(
      fc.constantFrom(...t.corpus),
      fc.boolean(),
      fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 2, arbitrary: fc.constant(false) }),
      fc.array(mutate, { minLength: 0, maxLength: 3 }),
      fc.constantFrom(...t.corpus),
      fc.oneof(
        { weight: 6, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.nat() },
        { weight: 1, arbitrary: fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }) },
      ),
    )
    .map(([rec, readdress, fresh, muts, donor, damage]) => {
      let env: Record<string, unknown> = { ...(rec as unknown as Record<string, unknown>) };
      const did: string[] = [`recorded ${rec.type}`];
      if (readdress) env = { ...env, from: t.self, to: t.party };
      if (fresh) env.id = FRESH_ID;
      for (const [pick, pick2, randomValue, how] of muts) {
        const paths = leaves(env).filter((p) => p.length > 0);
        const p = paths[pick % paths.length]!;
        const donorPaths = leaves(donor).filter((q) => q.length > 0 && q[q.length - 1] === p[p.length - 1]);
        switch (how) {
          case 0:
            env = randomValue === undefined ? (deleteAt(env, p) as Record<string, unknown>) : (setAt(env, p, randomValue) as Record<string, unknown>);
            did.push(`${p.join('.')} ${randomValue === undefined ? 'dropped' : 'replaced'}`);
            break;
          case 1:
            if (donorPaths.length > 0) {
              const q = donorPaths[pick2 % donorPaths.length]!;
              env = setAt(
                env,
                p,
                q.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], donor),
              ) as Record<string, unknown>;
              did.push(`${p.join('.')} from a recorded ${donor.type}`);
            }
            break;
          case 2:
            env = { ...env, type: MESSAGE_TYPES[pick2 % MESSAGE_TYPES.length] };
            did.push(`type ${String(env.type)}`);
            break;
          case 3:
            env = { ...env, body: donor.body };
            did.push(`body of a recorded ${donor.type}`);
            break;
          default: {
            const cur = p.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)?.[k], env);
            if (typeof cur === 'string' && cur.length > 0) {
              const i = pick2 % cur.length;
              const c = cur.charCodeAt(i);
              const flipped = `${cur.slice(0, i)}${String.fromCharCode(c === 65 ? 66 : 65)}${cur.slice(i + 1)}`;
              env = setAt(env, p, how === 4 ? flipped : cur.slice(0, i)) as Record<string, unknown>;
              did.push(`${p.join('.')} ${how === 4 ? 'one character changed' : 'cut'}`);
            }
          }
        }
      }
      const spec: Spec = { cat: 'mutation', what: did.join(', '), value: env };
      if (typeof damage === 'number') {
        spec.cut = damage;
        spec.what += `, cut at byte ${damage}`;
      } else if (damage) {
        spec.flip = damage;
        spec.what += `, byte ${damage.at} changed`;
      }
      return spec;
    });
}

/** Every category, weighted: most cases are bad bodies, frames and mutations, where parsing goes deepest. */
export function inputsFor(t: Target): fc.Arbitrary<Spec> {
  return fc.oneof(
    { weight: 2, arbitrary: bytesCat(t) },
    { weight: 2, arbitrary: headerCat(t) },
    { weight: 1, arbitrary: versionCat(t) },
    { weight: 1, arbitrary: typeCat(t) },
    { weight: 5, arbitrary: bodyCat(t) },
    { weight: 1, arbitrary: oversizeCat(t) },
    { weight: 4, arbitrary: frameCat(t) },
    { weight: 3, arbitrary: validCat(t) },
    { weight: 4, arbitrary: mutationCat(t) },
  );
}
