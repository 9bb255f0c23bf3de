/**
 * Property tests for session crypto (src/crypto/session.ts, channel.ts):
 * chip <-> SAM frames and server <-> SAM channel messages, under an
 * adversarial network that replays, reorders, flips bits and swaps keys or
 * directions. Each delivery is checked against a small reference model of
 * what the receiver must accept; a refusal must change nothing, so the
 * honest frames that follow still open.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ChannelCipher,
  CHALLENGE_BYTES,
  CHANNEL_REPLAY_WINDOW,
  chipProof,
  chipSessionCiphers,
  CryptoError,
  deriveSessionKeys,
  FrameOpener,
  FrameSealer,
  FRAME_BYTES_MAX,
  readU64be,
  samProof,
  samSessionCiphers,
  seededRng,
  Secret,
  toHex,
  verifyProof,
  type SessionBinding,
} from '../../src/crypto/index.ts';

// uvu prints an error's message, not its cause: put the failed assertion into fast-check's report.
fc.configureGlobal({ includeErrorInReport: true });

const HEADER_BYTES = 8; // the frame counter, in clear (and authenticated)
const TAG_BYTES = 16;

const keyArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Secret.of(b));
const challengeArb = fc.uint8Array({ minLength: CHALLENGE_BYTES, maxLength: CHALLENGE_BYTES });

/** Plaintexts from empty to the 16 KiB limit; the large ones filled from a seed (fast to make, still shrinkable by length). */
const plaintextArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, FRAME_BYTES_MAX - 1, FRAME_BYTES_MAX).map((n) => seededRng(`p${n}`).bytes(n)) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: FRAME_BYTES_MAX }), fc.nat()).map(([n, s]) => seededRng(s).bytes(n)) },
);

/** The CryptoError code fn throws, or the bytes it returns; anything else thrown fails the property. */
function outcome(fn: () => Uint8Array): { code: string } | { plain: Uint8Array } {
  try {
    return { plain: fn() };
  } catch (e) {
    assert.instance(e, CryptoError, `not a CryptoError: ${String(e)}`);
    return { code: (e as CryptoError).code };
  }
}

/** One adversarial delivery: an honest frame, a copy with one bit flipped, or the same plaintext sealed under another key or the other direction. */
type Delivery = { frame: number; forge: 'none' | 'bitflip' | 'otherKey' | 'otherDirection'; bit: number };
const deliveryArb = (frames: number): fc.Arbitrary<Delivery> =>
  fc.record({
    frame: fc.integer({ min: 0, max: frames - 1 }),
    forge: fc.constantFrom('none', 'none', 'bitflip', 'otherKey', 'otherDirection'),
    bit: fc.nat(),
  });

test('session frames: against any schedule of replays, reorders, bit flips, other keys and the other direction, the opener accepts exactly the next honest frame, and a refusal changes nothing', () => {
  const scenario = fc
    .record({ key: keyArb, otherKey: keyArb, direction: fc.constantFrom<0 | 1>(0, 1), plains: fc.array(plaintextArb, { minLength: 1, maxLength: 8 }) })
    .chain((s) => fc.record({ s: fc.constant(s), deliveries: fc.array(deliveryArb(s.plains.length), { maxLength: 30 }) }));
  const refusals = new Map<string, number>();
  fc.assert(
    fc.property(scenario, ({ s, deliveries }) => {
      fc.pre(!s.key.equals(s.otherKey));
      const other = (1 - s.direction) as 0 | 1;
      const seal = (key: Secret, dir: 0 | 1) => {
        const sealer = new FrameSealer(key, dir);
        return s.plains.map((p) => sealer.seal(p));
      };
      const honest = seal(s.key, s.direction);
      const forged = { otherKey: seal(s.otherKey, s.direction), otherDirection: seal(s.key, other) };
      for (const [i, f] of honest.entries()) assert.is(f.length, HEADER_BYTES + s.plains[i]!.length + TAG_BYTES);
      const opener = new FrameOpener(s.key, s.direction);
      let next = 0n; // the reference model: the one counter the opener may accept
      for (const d of deliveries) {
        let frame = honest[d.frame]!;
        if (d.forge === 'bitflip') {
          frame = new Uint8Array(frame);
          const b = d.bit % (frame.length * 8);
          frame[b >> 3]! ^= 1 << (b & 7);
        } else if (d.forge !== 'none') {
          frame = forged[d.forge][d.frame]!;
        }
        // The counter the frame claims (a flipped header bit claims another one).
        const claimed = readU64be(frame);
        const want = claimed < next ? 'FRAME_REPLAY' : claimed > next ? 'FRAME_REORDER' : d.forge === 'none' ? 'open' : 'FRAME_TAMPERED';
        const got = outcome(() => opener.open(frame));
        if (want === 'open') {
          assert.ok('plain' in got, `honest frame ${claimed} refused: ${JSON.stringify(got)}`);
          assert.equal((got as { plain: Uint8Array }).plain, s.plains[d.frame]);
          next++;
        } else {
          assert.equal(got, { code: want }, `${d.forge} frame ${d.frame} claiming counter ${claimed} with ${next} expected`);
          refusals.set(want, (refusals.get(want) ?? 0) + 1);
        }
      }
      // Nothing refused moved the opener: the rest of the honest frames open, in order.
      for (let i = Number(next); i < honest.length; i++) assert.equal(opener.open(honest[i]!), s.plains[i]);
    }),
    { numRuns: 400 },
  );
  for (const code of ['FRAME_REPLAY', 'FRAME_REORDER', 'FRAME_TAMPERED']) assert.ok((refusals.get(code) ?? 0) > 20, `${code} was hardly exercised`);
});

test('session frames: a plaintext over 16 KiB is not sealed; a frame too short or too long to be one is refused without being opened', () => {
  fc.assert(
    fc.property(keyArb, fc.integer({ min: 0, max: HEADER_BYTES + TAG_BYTES - 1 }), fc.integer({ min: 1, max: 64 }), (key, short, extra) => {
      assert.equal(
        outcome(() => new FrameSealer(key, 0).seal(new Uint8Array(FRAME_BYTES_MAX + extra))),
        { code: 'FRAME_TOO_LARGE' },
      );
      const opener = new FrameOpener(key, 0);
      assert.equal(
        outcome(() => opener.open(new Uint8Array(short))),
        { code: 'FRAME_TAMPERED' },
      );
      assert.equal(
        outcome(() => opener.open(new Uint8Array(HEADER_BYTES + TAG_BYTES + FRAME_BYTES_MAX + extra))),
        { code: 'FRAME_TOO_LARGE' },
      );
      // and the opener still takes frame 0
      const p = new Uint8Array(extra);
      assert.equal(opener.open(new FrameSealer(key, 0).seal(p)), p);
    }),
    { numRuns: 200 },
  );
});

const NAME = fc.string({ minLength: 1, maxLength: 12 });
const bindingArb: fc.Arbitrary<SessionBinding> = fc.record({
  serial: NAME,
  area: NAME,
  mig: NAME,
  purpose: fc.constantFrom('admin' as const, 'upload' as const, 'download' as const, 'normal' as const),
});

test("session handshake: chip and SAM with the same key derive the same session keys and accept each other's proofs; frames flow both ways", () => {
  fc.assert(
    fc.property(keyArb, bindingArb, challengeArb, challengeArb, plaintextArb, plaintextArb, (key, b, rSam, rChip, cmd, reply) => {
      const sam = samSessionCiphers(deriveSessionKeys(key, b, rSam, rChip));
      const chip = chipSessionCiphers(deriveSessionKeys(key, b, rSam, rChip));
      assert.ok(verifyProof(chipProof(key, b, rSam, rChip), chipProof(key, b, rSam, rChip)));
      assert.ok(verifyProof(samProof(key, b, rSam, rChip), samProof(key, b, rSam, rChip)));
      // the two proofs differ: one side's proof can not be reflected as the other's
      assert.not.ok(verifyProof(chipProof(key, b, rSam, rChip), samProof(key, b, rSam, rChip)));
      assert.equal(chip.opener.open(sam.sealer.seal(cmd)), cmd);
      assert.equal(sam.opener.open(chip.sealer.seal(reply)), reply);
      // a SAM's frame sent back to the SAM (reflection) does not open
      // (its counter is the one the SAM expects next, so it is the authentication that refuses it)
      assert.equal(
        outcome(() => sam.opener.open(sam.sealer.seal(cmd))),
        { code: 'FRAME_TAMPERED' },
      );
    }),
    { numRuns: 300 },
  );
});

test('session handshake: another key, another binding field or another challenge gives other session keys and a proof that does not verify', () => {
  const change = fc.constantFrom('key', 'serial', 'area', 'mig', 'purpose', 'rSam', 'rChip', 'swap');
  fc.assert(
    fc.property(keyArb, keyArb, bindingArb, bindingArb, challengeArb, challengeArb, challengeArb, change, (k1, k2, b1, b2, rS, rC, r3, what) => {
      let [key, b, rSam, rChip] = [k1, { ...b1 }, rS, rC];
      if (what === 'key') key = k2;
      else if (what === 'rSam') rSam = r3;
      else if (what === 'rChip') rChip = r3;
      else if (what === 'swap') [rSam, rChip] = [rC, rS];
      else b = { ...b, [what]: b2[what] };
      const same = key.equals(k1) && JSON.stringify(b) === JSON.stringify(b1) && toHex(rSam) === toHex(rS) && toHex(rChip) === toHex(rC);
      fc.pre(!same);
      const a = deriveSessionKeys(k1, b1, rS, rC);
      const z = deriveSessionKeys(key, b, rSam, rChip);
      assert.not.ok(a.samToChip.equals(z.samToChip), `${what}: same SAM->chip key`);
      assert.not.ok(a.chipToSam.equals(z.chipToSam), `${what}: same chip->SAM key`);
      assert.not.ok(a.samToChip.equals(a.chipToSam), 'the two directions share a key');
      assert.not.ok(verifyProof(chipProof(k1, b1, rS, rC), chipProof(key, b, rSam, rChip)), `${what}: a chip proof carries over`);
      assert.not.ok(verifyProof(samProof(k1, b1, rS, rC), samProof(key, b, rSam, rChip)), `${what}: a SAM proof carries over`);
    }),
    { numRuns: 300 },
  );
});

test('channel messages: under any delivery order, duplicates and bit flips, each message opens at most once, and exactly when the replay window says', () => {
  const W = BigInt(CHANNEL_REPLAY_WINDOW);
  // Most runs stay near the start; one in four also goes past the window, so it slides over early messages.
  const near = fc.integer({ min: 0, max: 40 });
  const far = fc.integer({ min: CHANNEL_REPLAY_WINDOW, max: CHANNEL_REPLAY_WINDOW + 40 });
  const scenario = fc
    .constantFrom(near, near, near, fc.oneof(near, far))
    .chain((index) => fc.array(fc.record({ i: index, flip: fc.option(fc.nat(), { freq: 4 }) }), { minLength: 1, maxLength: 60 }));
  const tally = { fresh: 0, duplicate: 0, outOfWindow: 0, tampered: 0 };
  fc.assert(
    fc.property(keyArb, keyArb, scenario, (k1, k2, deliveries) => {
      const sender = new ChannelCipher(k1, k2, 0);
      const receiver = new ChannelCipher(k2, k1, 1);
      const boxes: Uint8Array[] = [];
      const boxOf = (i: number) => {
        while (boxes.length <= i) boxes.push(sender.seal(Uint8Array.of(boxes.length & 0xff, boxes.length >> 8)));
        return boxes[i]!;
      };
      // The reference model of the receiver: counters opened, and the highest.
      const seen = new Set<bigint>();
      let highest = -1n;
      for (const d of deliveries) {
        let box = boxOf(d.i);
        if (d.flip !== null) {
          box = new Uint8Array(box);
          const b = d.flip % (box.length * 8);
          box[b >> 3]! ^= 1 << (b & 7);
        }
        const c = readU64be(box); // a flipped header bit claims another counter
        const got = outcome(() => receiver.open(box));
        if (seen.has(c) || c + W <= highest) {
          assert.equal(got, { code: 'CHANNEL_REPLAY' }, `message ${c} (opened before: ${seen.has(c)}, highest ${highest})`);
          tally[seen.has(c) ? 'duplicate' : 'outOfWindow']++;
        } else if (d.flip !== null) {
          assert.equal(got, { code: 'CHANNEL_TAMPERED' }, `message ${c} with a flipped bit`);
          tally.tampered++;
        } else {
          const n = Number(c);
          assert.equal(got, { plain: Uint8Array.of(n & 0xff, n >> 8) }, `message ${c}`);
          seen.add(c);
          if (c > highest) highest = c;
          tally.fresh++;
        }
      }
    }),
    { numRuns: 200 },
  );
  for (const [k, n] of Object.entries(tally)) assert.ok(n > 5, `${k} deliveries were hardly exercised (${n})`);
});

test.run();
