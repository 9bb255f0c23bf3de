/**
 * Property tests (fast-check): the envelope codec, session frames and the
 * area lifecycle, each against many generated inputs instead of a few
 * examples. A failing property prints its seed and a shrunk counterexample.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CryptoError, FrameOpener, FrameSealer, randomSecret, seededRng, deriveChipKey, deriveMainKey, toHex, FRAME_BYTES_MAX } from '../../src/crypto/index.ts';
import { ProtocolError } from '../../src/errors.ts';
import { AREA_COMMANDS, AREA_SESSION_EVENTS, AREA_STATES, areaMachine, areaTransition, type AreaState } from '../../src/machines/area.machine.ts';
import { decodeEnvelope, encodeEnvelope, STEPS, type AnyEnvelope } from '../../src/transport/envelope.ts';
import { createActor } from 'xstate';

const NAME_CHARS = 'ABCXYZabcxyz0189._:/@+#-';
const nameArb = fc.string({ unit: fc.constantFrom(...NAME_CHARS.split('')), minLength: 1, maxLength: 40 });
const textArb = fc.string({ maxLength: 200 });
const b64Arb = fc.string({ unit: fc.constantFrom(...'ABCabc019_-'.split('')), maxLength: 300 });

/** Valid envelopes of several kinds: requests, replies, notices, with and without the optional header fields. */
const envelopeArb: fc.Arbitrary<AnyEnvelope> = fc
  .record(
    {
      id: nameArb,
      corr: nameArb,
      from: nameArb,
      to: nameArb,
      mig: nameArb,
      step: fc.constantFrom(...STEPS),
      item: fc.integer({ min: 0, max: 1023 }),
      kind: fc.oneof(
        fc.record({ type: fc.constant('migrate.cancel' as const), body: fc.record({ mig: nameArb }) }),
        fc.record({ type: fc.constant('migrate.cancelled' as const), body: fc.record({ mig: nameArb, decision: fc.constantFrom('committed' as const, 'aborted' as const) }) }),
        fc.record({ type: fc.constant('error' as const), body: fc.record({ code: nameArb, message: textArb }) }),
        fc.record({ type: fc.constant('frame' as const), body: fc.record({ session: nameArb, data: b64Arb }) }),
        fc.record({ type: fc.constant('progress' as const), body: fc.record({ mig: nameArb, step: nameArb, text: textArb }) }),
        fc.record({ type: fc.constant('admin.abort' as const), body: fc.record({ reason: textArb, source: nameArb }, { requiredKeys: ['reason'] }) }),
        fc.record({ type: fc.constant('migrate.out' as const), body: fc.record({ destination: nameArb, deadlineMs: fc.nat() }, { requiredKeys: [] }) }),
      ),
    },
    { requiredKeys: ['id', 'from', 'to', 'kind'] },
  )
  .map(({ kind, ...h }) => ({ v: 1, ...h, type: kind.type, body: kind.body }) as unknown as AnyEnvelope);

test('envelope codec: every valid envelope decodes to itself after encoding', () => {
  fc.assert(
    fc.property(envelopeArb, (env) => {
      // (fast-check builds records without a prototype; compare as plain data)
      assert.equal(decodeEnvelope(encodeEnvelope(env)), JSON.parse(JSON.stringify(env)));
    }),
    { numRuns: 1_000 },
  );
});

test('envelope codec: any bytes at all decode to a valid envelope or a ProtocolError with a code and a sentence, never anything else', () => {
  const check = (bytes: Uint8Array) => {
    try {
      const env = decodeEnvelope(bytes);
      assert.is(env.v, 1);
    } catch (e) {
      assert.instance(e, ProtocolError, `not a ProtocolError: ${String(e)}`);
      const pe = e as ProtocolError;
      assert.ok(['BAD_JSON', 'BAD_ENVELOPE', 'UNKNOWN_TYPE', 'BAD_BODY', 'TOO_LARGE'].includes(pe.code), pe.code);
      assert.ok(pe.message.length > 10, 'a clear sentence');
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), check), { numRuns: 1_000 });
  // JSON that looks like an envelope, with any field of any shape.
  fc.assert(
    fc.property(fc.jsonValue(), envelopeArb, fc.constantFrom('id', 'from', 'type', 'body', 'step', 'item', 'v', 'mig'), (junk, env, field) => {
      check(new TextEncoder().encode(JSON.stringify({ ...env, [field]: junk })));
    }),
    { numRuns: 1_000 },
  );
  // Valid envelopes with one body field replaced by anything.
  fc.assert(
    fc.property(envelopeArb, fc.jsonValue(), (env, junk) => {
      const key = Object.keys(env.body)[0] ?? 'x';
      check(new TextEncoder().encode(JSON.stringify({ ...env, body: { ...env.body, [key]: junk } })));
    }),
    { numRuns: 1_000 },
  );
});

test('session frames: what one end seals the other opens, in order; a flipped bit, a replay, a skipped frame or another key is refused and the opener does not move', () => {
  const rng = seededRng('frame-properties');
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { minLength: 1, maxLength: 8 }), fc.nat(), fc.nat(), (plains, pick, bit) => {
      const key = randomSecret(rng);
      const sealer = new FrameSealer(key, 0);
      const opener = new FrameOpener(key, 0);
      const frames = plains.map((p) => sealer.seal(p));
      const i = pick % frames.length;
      for (let k = 0; k < i; k++) assert.equal(opener.open(frames[k]!), plains[k]);
      const code = (fn: () => unknown) => {
        try {
          fn();
          return 'accepted';
        } catch (e) {
          assert.instance(e, CryptoError);
          return (e as CryptoError).code;
        }
      };
      // one flipped bit anywhere: refused
      const bad = new Uint8Array(frames[i]!);
      const b = bit % (bad.length * 8);
      bad[b >> 3]! ^= 1 << (b & 7);
      assert.ok(['FRAME_TAMPERED', 'FRAME_REPLAY', 'FRAME_REORDER'].includes(code(() => opener.open(bad))));
      // another key: refused
      assert.is(code(() => new FrameOpener(randomSecret(rng), 0).open(frames[0]!)), 'FRAME_TAMPERED');
      // a frame from the future: refused
      if (i + 1 < frames.length) assert.is(code(() => opener.open(frames[i + 1]!)), 'FRAME_REORDER');
      // the opener did not move: the right frame still opens
      assert.equal(opener.open(frames[i]!), plains[i]);
      // and a replay of it is refused
      assert.is(code(() => opener.open(frames[i]!)), 'FRAME_REPLAY');
    }),
    { numRuns: 300 },
  );
  const key = randomSecret(rng);
  assert.throws(() => new FrameSealer(key, 0).seal(new Uint8Array(FRAME_BYTES_MAX + 1)), (e: unknown) => (e as CryptoError).code === 'FRAME_TOO_LARGE');
});

test('key diversification: deterministic, and distinct for distinct chips and areas', () => {
  const rng = seededRng('kdf-properties');
  const master = randomSecret(rng);
  const other = randomSecret(rng);
  fc.assert(
    fc.property(nameArb, nameArb, nameArb, (s1, s2, area) => {
      const k = (x: string) => toHex(deriveChipKey(master, x).reveal());
      assert.is(k(s1), k(s1));
      if (s1 !== s2) assert.is.not(k(s1), k(s2));
      assert.is.not(k(s1), toHex(deriveChipKey(other, s1).reveal()));
      const m = (x: string, a: string) => toHex(deriveMainKey(master, x, a).reveal());
      assert.is(m(s1, area), m(s1, area));
      if (s1 !== s2) assert.is.not(m(s1, area), m(s2, area));
      assert.is.not(m(s1, area), k(s1));
    }),
    { numRuns: 300 },
  );
});

const EVENTS = [...AREA_COMMANDS, ...AREA_SESSION_EVENTS];

test('area lifecycle: any sequence of commands leaves a legal state; a refused command changes nothing; an allowed one goes where the table says', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...EVENTS), { maxLength: 40 }), (events) => {
      const actor = createActor(areaMachine).start();
      let state: AreaState = 'absent';
      for (const ev of events) {
        const next = areaTransition(state, ev);
        const can = actor.getSnapshot().can({ type: ev });
        assert.is(can, next !== null);
        actor.send({ type: ev });
        const now = actor.getSnapshot().value as AreaState;
        assert.ok((AREA_STATES as readonly string[]).includes(now));
        assert.is(now, next ?? state, `${state} --${ev}-->`);
        state = now;
      }
      actor.stop();
    }),
    { numRuns: 1_000 },
  );
});

test('area lifecycle: a spendable area (mainActive) is reached only through a download and an activation, and a locked one is never usable normally', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...EVENTS), { maxLength: 40 }), (events) => {
      let state: AreaState = 'absent';
      let downloaded = false;
      for (const ev of events) {
        const next = areaTransition(state, ev);
        if (state === 'locked') assert.is(areaTransition(state, 'USE'), null);
        if (next === null) continue;
        if (ev === 'DOWNLOAD') downloaded = true;
        if (next === 'absent') downloaded = false;
        if (next === 'mainActive' && state !== 'mainActive' && state !== 'locked') assert.ok(downloaded && ev === 'ACTIVATE', `${state} --${ev}--> mainActive`);
        state = next;
      }
    }),
    { numRuns: 1_000 },
  );
});

test.run();
