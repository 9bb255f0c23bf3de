/**
 * Property tests for the envelope codec (src/transport/envelope.ts), the one
 * schema boundary every hop crosses (style.md §3): every valid envelope of
 * every message type survives encode -> decode unchanged, and anything else
 * (random bytes, damaged encodings, JSON with a field of the wrong shape, an
 * unknown or missing field) is refused with a ProtocolError whose code says
 * which layer failed and whose sentence names the field, and which can be
 * sent back to the sender as an `error` envelope. Nothing else may escape.
 * A failing property prints its seed and a shrunk counterexample.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtocolError, type ErrorCode } from '../../src/protocol/errors.ts';
import { decodeEnvelope, encodeEnvelope, ENVELOPE_BYTES_MAX, PROTOCOL_VERSION, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { MESSAGES, isMessageType } from '../../src/transport/messages.ts';
import { arbitraryOf, envelopeArb, envelopeOf, MESSAGE_TYPES, nameArb } from './arbitraries.ts';

// uvu prints an error's message, not its cause: put the failed assertion into fast-check's report.
fc.configureGlobal({ includeErrorInReport: true });

const utf8 = (s: string) => new TextEncoder().encode(s);
const bytesOf = (value: unknown) => utf8(JSON.stringify(value));
const DECODE_CODES: readonly ErrorCode[] = ['BAD_JSON', 'BAD_ENVELOPE', 'UNKNOWN_TYPE', 'BAD_BODY', 'TOO_LARGE'];
const HEADER_FIELDS = ['v', 'id', 'corr', 'from', 'to', 'type', 'mig', 'step', 'item', 'body'] as const;
const REQUIRED_HEADER = ['v', 'id', 'from', 'to', 'type', 'body'] as const;

/**
 * Runs the decoder on bytes that may be anything: it returns a valid
 * envelope, or throws a ProtocolError with a decode code and a sentence that
 * fits in the `error` reply the runtime sends back (runtime.ts refuseRaw).
 */
function decodeOrRefusal(bytes: Uint8Array): { env: AnyEnvelope } | { err: ProtocolError } {
  let env: AnyEnvelope;
  try {
    env = decodeEnvelope(bytes);
  } catch (e) {
    assert.instance(e, ProtocolError, `decodeEnvelope threw something other than a ProtocolError: ${String(e)}`);
    const err = e as ProtocolError;
    assert.ok(DECODE_CODES.includes(err.code), `unexpected refusal code ${err.code}`);
    assert.ok(err.message.length >= 20, `refusal sentence too short to act on: "${err.message}"`);
    // The refusal must reach its sender: an `error` envelope carrying it is itself a valid envelope.
    const reply = { v: PROTOCOL_VERSION, id: 'party#e1', from: 'party', to: 'peer', type: 'error', body: err.toBody() } as AnyEnvelope;
    const back = MESSAGES.error[1].safeParse(err.toBody());
    assert.ok(
      back.success,
      `the refusal can not be sent back as an error body (${err.message.length} chars): ${back.success ? '' : back.error.issues[0]?.message}`,
    );
    assert.equal(decodeEnvelope(encodeEnvelope(reply)), reply);
    return { err };
  }
  // Whatever is accepted is valid all the way down, and stable under another round trip.
  assert.is(env.v, PROTOCOL_VERSION);
  assert.ok(isMessageType(env.type));
  assert.ok(MESSAGES[env.type][1].safeParse(env.body).success);
  assert.equal(decodeEnvelope(encodeEnvelope(env)), env);
  return { env };
}

test('every valid envelope of every message type decodes to itself after encoding', () => {
  const seen = new Set<string>();
  fc.assert(
    fc.property(envelopeArb, (env) => {
      // The generator is checked too: a body the schema refuses would make this property vacuous.
      const body = MESSAGES[env.type][1].safeParse(env.body);
      assert.ok(body.success, `generated an invalid ${env.type} body: ${body.success ? '' : body.error.message}`);
      const size = bytesOf(env).length;
      if (size > ENVELOPE_BYTES_MAX) {
        assert.throws(
          () => encodeEnvelope(env),
          (e: unknown) => e instanceof ProtocolError && e.code === 'TOO_LARGE',
        );
        return;
      }
      const bytes = encodeEnvelope(env);
      assert.is(bytes.length, size);
      assert.equal(decodeEnvelope(bytes), env);
      seen.add(env.type);
    }),
    { numRuns: 1_000 },
  );
  // 50 types, 1000 runs: a type never round-tripped means the generator lost it (by chance: p < 1e-6).
  assert.is(seen.size, MESSAGE_TYPES.length, `types never round-tripped: ${MESSAGE_TYPES.filter((t) => !seen.has(t)).join(', ')}`);
});

test('the size limit is the same on both sides: what encode refuses as TOO_LARGE, decode refuses too; what it accepts, decode accepts', () => {
  // admin.locked with up to 64 grants whose every field is at its limit crosses 64 KiB somewhere in the range.
  const fullGrant = arbitraryOf(MESSAGES['admin.locked'][1])
    .map((b) => b.grants[0])
    .filter((g) => g !== undefined);
  let over = 0;
  let under = 0;
  fc.assert(
    fc.property(envelopeOf('admin.locked'), fc.integer({ min: 0, max: 64 }), fullGrant, (env, n, g) => {
      const big = {
        ...g,
        ...{ mig: 'm'.repeat(128), area: 'a'.repeat(128), serial: 's'.repeat(128), provider: 'p'.repeat(128), recipient: 'r'.repeat(128) },
        ...{ ephPub: 'E'.repeat(64), sealed: 'S'.repeat(128), sig: 'G'.repeat(128) },
      };
      const e = { ...env, body: { grants: Array.from({ length: n }, () => big) } } as AnyEnvelope;
      const raw = bytesOf(e);
      if (raw.length > ENVELOPE_BYTES_MAX) {
        over++;
        assert.throws(
          () => encodeEnvelope(e),
          (x: unknown) => (x as ProtocolError).code === 'TOO_LARGE',
        );
        assert.throws(
          () => decodeEnvelope(raw),
          (x: unknown) => (x as ProtocolError).code === 'TOO_LARGE',
        );
      } else {
        under++;
        assert.equal(decodeEnvelope(encodeEnvelope(e)), e);
      }
    }),
    { numRuns: 200 },
  );
  assert.ok(over > 0 && under > 0, `both sides of the limit must be tried (over ${over}, under ${under})`);
});

test('any bytes at all decode to a valid envelope or a sendable ProtocolError, never anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (b) => void decodeOrRefusal(b)),
    { numRuns: 1_000 },
  );
  // Any JSON value at all, and any JSON object (the shape an envelope has).
  fc.assert(
    fc.property(fc.jsonValue(), (j) => void decodeOrRefusal(bytesOf(j))),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom(...HEADER_FIELDS, 'x'), fc.jsonValue()), (j) => void decodeOrRefusal(bytesOf(j))),
    {
      numRuns: 500,
    },
  );
});

test('a damaged encoding (bytes flipped, inserted, cut out, truncated) is refused or is still a valid envelope', () => {
  const edit = fc.oneof(
    fc.record({ op: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ op: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ op: fc.constant('cut' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
    fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  );
  let refused = 0;
  fc.assert(
    fc.property(envelopeArb, fc.array(edit, { minLength: 1, maxLength: 4 }), (env, edits) => {
      let b = Array.from(bytesOf(env));
      for (const e of edits) {
        const at = b.length === 0 ? 0 : e.at % b.length;
        if (e.op === 'flip' && b.length > 0) b[at]! ^= e.mask;
        else if (e.op === 'insert') b.splice(at, 0, e.byte);
        else if (e.op === 'cut') b.splice(at, e.len);
        else if (e.op === 'truncate') b = b.slice(0, at);
      }
      if ('err' in decodeOrRefusal(Uint8Array.from(b))) refused++;
    }),
    { numRuns: 1_000 },
  );
  assert.ok(refused > 500, `most damaged encodings must be refused (${refused}/1000)`);
});

/** JSON values of the wrong shape for most fields, and now and then a right one. */
const junkArb = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, true, 0, -1, 1.5, 1024, 2 ** 53, '', ' ', 'x'.repeat(129), [], {}, 'S1', 'error', 'migrate.cancel'),
  nameArb,
);
/** Keys no schema has (letters only: zod names them verbatim), long ones included. */
const keyUnit = fc.constantFrom(...'qwxzQWXZ'.split(''));
const unknownKeyArb = fc.oneof(fc.string({ unit: keyUnit, minLength: 1, maxLength: 20 }), fc.string({ unit: keyUnit, minLength: 400, maxLength: 700 }));

test('an envelope with one header field replaced, removed or added is refused naming that field, or decodes to exactly what was sent', () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), field: fc.constantFrom(...HEADER_FIELDS), value: junkArb }),
    fc.record({ kind: fc.constant('remove' as const), field: fc.constantFrom(...REQUIRED_HEADER) }),
    fc.record({ kind: fc.constant('add' as const), field: unknownKeyArb, value: junkArb }),
  );
  fc.assert(
    fc.property(envelopeArb, mutation, (env, m) => {
      const raw: Record<string, unknown> = { ...env };
      if (m.kind === 'remove') delete raw[m.field];
      else raw[m.field] = m.value;
      const out = decodeOrRefusal(bytesOf(raw));
      if ('env' in out) {
        assert.ok(m.kind === 'set', `${m.kind} ${m.field} was accepted`);
        assert.equal(out.env, JSON.parse(JSON.stringify(raw)), 'accepted, so decoded as sent');
        return;
      }
      const { code, message } = out.err;
      if (m.kind === 'set' && m.field === 'type' && typeof m.value === 'string' && m.value.length > 0 && m.value.length <= 64) {
        // A well-formed type: either not in the catalog (named in the refusal), or another type whose body does not fit.
        if (isMessageType(m.value)) assert.is(code, 'BAD_BODY');
        else assert.ok(code === 'UNKNOWN_TYPE' && message.includes(`"${m.value}"`), `${code}: ${message}`);
      } else if (m.kind === 'set' && m.field === 'body' && typeof m.value === 'object' && m.value !== null && !Array.isArray(m.value)) {
        assert.ok(code === 'BAD_BODY' && message.includes('body'), `${code}: ${message}`);
      } else if (m.kind === 'add') {
        assert.is(code, 'BAD_ENVELOPE');
        assert.ok(message.includes('nrecognized key'), message);
        assert.ok(message.includes(m.field.slice(0, 100)), `the refusal names the unknown key: ${message}`);
      } else {
        assert.is(code, 'BAD_ENVELOPE', message);
        assert.ok(message.includes(`${m.field}: `), `the refusal names ${m.field}: ${message}`);
      }
    }),
    { numRuns: 1_000 },
  );
});

test('an envelope with one body field replaced, removed or added is refused as BAD_BODY naming that field, or decodes to exactly what was sent', () => {
  fc.assert(
    fc.property(
      envelopeArb,
      fc.oneof(fc.constant('set' as const), fc.constant('remove' as const), fc.constant('add' as const)),
      fc.nat(),
      junkArb,
      unknownKeyArb,
      (env, kind, pick, value, unknown) => {
        const body: Record<string, unknown> = { ...(env.body as Record<string, unknown>) };
        const keys = Object.keys(body);
        const field = kind === 'add' || keys.length === 0 ? unknown : keys[pick % keys.length]!;
        if (kind === 'remove' && field !== unknown) delete body[field];
        else body[field] = value;
        const sent = { ...env, body };
        const out = decodeOrRefusal(bytesOf(sent));
        if ('env' in out) {
          // Replacing a field with a value its schema takes, or removing an optional one.
          assert.ok(field !== unknown, `unknown body key ${field} was accepted`);
          assert.equal(out.env, JSON.parse(JSON.stringify(sent)));
          return;
        }
        const { code, message } = out.err;
        assert.is(code, 'BAD_BODY', message);
        assert.ok(message.startsWith(`${env.type} body is invalid`), message);
        if (field === unknown) assert.ok(message.includes(field.slice(0, 100)), `the refusal names the unknown key: ${message}`);
        else assert.ok(message.includes(`body.${field}`), `the refusal names body.${field}: ${message}`);
      },
    ),
    { numRuns: 1_000 },
  );
});

test.run();
