/**
 * fast-check arbitraries for the wire formats, derived from the zod schemas
 * themselves (through zod's public z.toJSONSchema), so every message type in
 * the catalog is generated and a schema change is followed without editing
 * the tests. A schema construct this file does not know fails loudly rather
 * than being generated wrong. Not a test file (the runner picks *.test.ts).
 */
import fc from 'fast-check';
import { z } from 'zod';
import { STEPS } from '../../src/protocol/steps.ts';
import { PROTOCOL_VERSION, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { toB64 } from '../../src/crypto/index.ts';
import { B64URL, MESSAGES, NAME_CHARS_MAX, type MessageType } from '../../src/transport/messages.ts';

/** The part of zod's JSON Schema output these tests read (test/fuzz/breakers.ts reads it too). */
export type JsonSchema = {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
};

/** Any single UTF-16 code unit, lone surrogates included (zod counts length in code units), biased to ASCII. */
const anyCodeUnit = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) },
);

const classCache = new Map<string, string[]>();
/**
 * The characters a one-class pattern (`^[...]+$` or `^[...]*$`, the only
 * shape the schemas use) accepts, found by asking the pattern about every
 * code unit: the generator can not drift from the schema's own regex.
 */
function charsOf(pattern: string): string[] {
  const cached = classCache.get(pattern);
  if (cached) return cached;
  const m = /^\^(\[[^\]]+\])[+*]\$$/.exec(pattern);
  if (!m) throw new Error(`arbitraries: pattern ${pattern} is not a single character class; teach arbitraries.ts to generate it`);
  const one = new RegExp(`^${m[1]}$`);
  const chars: string[] = [];
  for (let c = 0; c <= 0xffff; c++) if (one.test(String.fromCharCode(c))) chars.push(String.fromCharCode(c));
  classCache.set(pattern, chars);
  return chars;
}

/** Lengths anywhere in [min, max], with the two bounds themselves drawn often (limits are where codecs break). */
function stringOf(unit: fc.Arbitrary<string>, minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.string({ unit, minLength, maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit, minLength: maxLength, maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit, minLength, maxLength: minLength }) },
  );
}

/** Canonical base64url (messages.ts B64URL) of at most `maxChars` characters: the encoding of random bytes. */
function canonicalB64(minChars: number, maxChars: number): fc.Arbitrary<string> {
  const bytesFor = (chars: number) => Math.floor(chars / 4) * 3 + [0, 0, 1, 2][chars % 4]!;
  const maxBytes = bytesFor(maxChars);
  const minBytes = Math.ceil((minChars * 3) / 4);
  return fc
    .oneof(
      { weight: 6, arbitrary: fc.uint8Array({ minLength: minBytes, maxLength: maxBytes }) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: maxBytes, maxLength: maxBytes }) },
    )
    .map(toB64);
}

/** Generates values of a JSON schema as produced by z.toJSONSchema for our (closed, bounded) schemas. */
function fromJsonSchema(s: JsonSchema, where: string): fc.Arbitrary<unknown> {
  if (s.oneOf || s.anyOf) return fc.oneof(...(s.oneOf ?? s.anyOf)!.map((x, i) => fromJsonSchema(x, `${where}|${i}`)));
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  switch (s.type) {
    case 'string': {
      const min = s.minLength ?? 0;
      const max = s.maxLength;
      if (max === undefined) throw new Error(`arbitraries: ${where} is an unbounded string; every field must have a limit`);
      if (s.pattern === B64URL.source) return canonicalB64(min, max);
      const unit = s.pattern === undefined ? anyCodeUnit : fc.constantFrom(...charsOf(s.pattern));
      return stringOf(unit, min, max);
    }
    case 'integer': {
      const min = s.minimum ?? Number.MIN_SAFE_INTEGER;
      const max = s.maximum ?? Number.MAX_SAFE_INTEGER;
      return fc.oneof({ weight: 4, arbitrary: fc.integer({ min, max }) }, { weight: 1, arbitrary: fc.constantFrom(min, max) });
    }
    case 'boolean':
      return fc.boolean();
    case 'array': {
      if (!s.items || s.maxItems === undefined) throw new Error(`arbitraries: ${where} is an unbounded array`);
      const item = fromJsonSchema(s.items, `${where}[]`);
      const minLength = s.minItems ?? 0;
      return fc.oneof(
        { weight: 6, arbitrary: fc.array(item, { minLength, maxLength: s.maxItems }) },
        // Now and then a full array, so the envelope size limit is reached too.
        { weight: 1, arbitrary: fc.array(item, { minLength: s.maxItems, maxLength: s.maxItems }) },
      );
    }
    case 'object': {
      if (s.additionalProperties !== false) throw new Error(`arbitraries: ${where} is an open object; the schemas are strict`);
      const props = s.properties ?? {};
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries(props)) model[k] = fromJsonSchema(v, `${where}.${k}`);
      // Plain objects (fast-check's records have no prototype; decoded JSON has Object's).
      return fc.record(model, { requiredKeys: s.required ?? [] }).map((r) => Object.fromEntries(Object.entries(r)));
    }
    default:
      throw new Error(`arbitraries: ${where} has JSON schema type ${String(s.type)}, which arbitraries.ts does not generate`);
  }
}

/** Values the zod schema accepts (checked by the caller with safeParse: a generator bug must not pass silently). */
export function arbitraryOf<T>(schema: z.ZodType<T>, where = 'value'): fc.Arbitrary<T> {
  return fromJsonSchema(z.toJSONSchema(schema) as JsonSchema, where) as fc.Arbitrary<T>;
}

export const MESSAGE_TYPES = Object.keys(MESSAGES) as MessageType[];

/** The catalog's name pattern (the envelope header uses the same one for ids, party names and migration ids). */
const NAME_PATTERN = (z.toJSONSchema(MESSAGES['login.begin'][1]) as JsonSchema).properties!.user!.pattern!;
/** An envelope name, as the header schema in envelope.ts allows. */
export const nameArb = stringOf(fc.constantFrom(...charsOf(NAME_PATTERN)), 1, NAME_CHARS_MAX);

const bodyArbs = new Map<MessageType, fc.Arbitrary<unknown>>(MESSAGE_TYPES.map((t) => [t, arbitraryOf(MESSAGES[t][1] as z.ZodType<unknown>, `${t}.body`)]));

/** A valid envelope of `type`, with and without each optional header field. */
export function envelopeOf(type: MessageType): fc.Arbitrary<AnyEnvelope> {
  return fc
    .record(
      {
        id: nameArb,
        corr: nameArb,
        from: nameArb,
        to: nameArb,
        mig: nameArb,
        step: fc.constantFrom(...STEPS),
        item: fc.oneof(fc.integer({ min: 0, max: 1023 }), fc.constantFrom(0, 1023)),
        body: bodyArbs.get(type)!,
      },
      { requiredKeys: ['id', 'from', 'to', 'body'] },
    )
    .map((h) => ({ v: PROTOCOL_VERSION, type, ...Object.fromEntries(Object.entries(h)) }) as AnyEnvelope);
}

/** A valid envelope of any type in the catalog (every type equally likely). */
export const envelopeArb: fc.Arbitrary<AnyEnvelope> = fc.constantFrom(...MESSAGE_TYPES).chain(envelopeOf);
