/**
 * Property tests for the chip session codec (src/transport/chip.frames.ts):
 * the frames a SAM and a chip exchange, the commands inside the sealed boxes
 * and the chip's replies. Every valid value survives encode -> decode; any
 * other input is refused with a ProtocolError, and the chip's `err` frame
 * that carries the refusal back is itself a frame the SAM can decode.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { z } from 'zod';
import { ProtocolError } from '../../src/protocol/errors.ts';
import {
  chipCommandSchema,
  chipFrameSchema,
  chipReplySchema,
  CHIP_FRAME_BYTES_MAX,
  decodeChipCommand,
  decodeChipFrame,
  decodeChipReply,
  encodeJson,
} from '../../src/transport/chip.frames.ts';
import { arbitraryOf } from './arbitraries.ts';

// uvu prints an error's message, not its cause: put the failed assertion into fast-check's report.
fc.configureGlobal({ includeErrorInReport: true });

const CODECS: Array<{ what: string; schema: z.ZodType<unknown>; decode: (b: Uint8Array) => unknown }> = [
  { what: 'session frame', schema: chipFrameSchema, decode: decodeChipFrame },
  { what: 'session command', schema: chipCommandSchema, decode: decodeChipCommand },
  { what: 'session reply', schema: chipReplySchema, decode: decodeChipReply },
];

/** Every top-level key any variant of the schema has. */
function keysOf(schema: z.ZodType<unknown>): Set<string> {
  type J = { properties?: Record<string, unknown>; oneOf?: J[]; anyOf?: J[] };
  const j = z.toJSONSchema(schema) as J;
  return new Set([j, ...(j.oneOf ?? []), ...(j.anyOf ?? [])].flatMap((x) => Object.keys(x.properties ?? {})));
}

/** A decoder's answer to anything: a value its schema accepts, or a refusal the chip can send back in an `err` frame. */
function decodeOrRefusal(decode: (b: Uint8Array) => unknown, schema: z.ZodType<unknown>, bytes: Uint8Array): 'value' | 'refused' {
  let value: unknown;
  try {
    value = decode(bytes);
  } catch (e) {
    assert.instance(e, ProtocolError, `a chip codec threw something other than a ProtocolError: ${String(e)}`);
    const err = e as ProtocolError;
    assert.ok(err.code === 'FRAME_REJECTED' || err.code === 'TOO_LARGE', err.code);
    assert.ok(err.message.length >= 20, err.message);
    // chip.actor.ts answers a frame it can not parse with { t: 'err', code, message }: the SAM must be able to read it.
    const errFrame = { t: 'err', code: err.code, message: err.message };
    assert.equal(decodeChipFrame(encodeJson(errFrame)), errFrame, `the chip's err frame for this refusal is refused by the SAM (${err.message.length} chars)`);
    return 'refused';
  }
  assert.ok(schema.safeParse(value).success);
  return 'value';
}

for (const { what, schema, decode } of CODECS) {
  test(`every valid ${what} decodes to itself after encoding`, () => {
    fc.assert(
      fc.property(arbitraryOf(schema, what), (v) => {
        assert.ok(schema.safeParse(v).success, 'the generator made an invalid value');
        const bytes = encodeJson(v);
        if (bytes.length > CHIP_FRAME_BYTES_MAX) {
          assert.throws(
            () => decode(bytes),
            (e: unknown) => (e as ProtocolError).code === 'TOO_LARGE',
          );
          return;
        }
        assert.equal(decode(bytes), v);
      }),
      { numRuns: 500 },
    );
  });

  test(`any bytes, any JSON, or a valid ${what} with a field replaced or added, decode to a valid value or a refusal the SAM can read`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (b) => void decodeOrRefusal(decode, schema, b)),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.jsonValue(), (j) => void decodeOrRefusal(decode, schema, encodeJson(j))),
      { numRuns: 300 },
    );
    const key = fc.oneof(fc.string({ minLength: 1, maxLength: 10 }), fc.string({ unit: fc.constantFrom('q', 'z'), minLength: 400, maxLength: 600 }));
    fc.assert(
      fc.property(arbitraryOf(schema, what), key, fc.jsonValue({ maxDepth: 2 }), (v, k, junk) => {
        const outcome = decodeOrRefusal(decode, schema, encodeJson({ ...(v as object), [k]: junk }));
        // The schemas are strict: a key no variant has is refused, whatever its value.
        // (JSON.parse makes "__proto__" an own key, which zod drops rather than names; it never reaches a handler.)
        if (!keysOf(schema).has(k) && k !== '__proto__') assert.is(outcome, 'refused', `unknown key ${k} was accepted`);
      }),
      { numRuns: 300 },
    );
  });
}

test.run();
