/** session.ts: chip <-> SAM mutual authentication and session frames (protocol.md §2). */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CHALLENGE_BYTES,
  chipProof,
  chipSessionCiphers,
  concatBytes,
  deriveSessionKeys,
  encodeFields,
  FRAME_BYTES_MAX,
  FrameOpener,
  FrameSealer,
  PROOF_BYTES,
  randomSecret,
  readU64be,
  samProof,
  samSessionCiphers,
  Secret,
  seededRng,
  toHex,
  utf8,
  verifyProof,
  type SessionBinding,
} from '../../src/crypto/index.ts';
import { codeOf, errorOf, flipByte } from './helpers.ts';

const rng = seededRng('session-tests');
const binding: SessionBinding = { serial: 'SRC-1', area: 'emoney', mig: 'm1', purpose: 'upload' };

function challenges() {
  return { rSam: rng.bytes(CHALLENGE_BYTES), rChip: rng.bytes(CHALLENGE_BYTES) };
}

/** Both ends of one authenticated session under `key`. */
function openSession(key = randomSecret(rng)) {
  const { rSam, rChip } = challenges();
  const keys = deriveSessionKeys(key, binding, rSam, rChip);
  return { key, rSam, rChip, keys, sam: samSessionCiphers(keys), chip: chipSessionCiphers(keys) };
}

test('proofs are HMAC-SHA256 over the documented fields, 32 bytes', () => {
  const key = randomSecret(rng);
  const { rSam, rChip } = challenges();
  const b = binding;
  const chip = hmac(sha256, key.reveal(), encodeFields('valmove/v1/auth/chip', rSam, rChip, b.serial, b.area, b.mig, b.purpose));
  const sam = hmac(sha256, key.reveal(), encodeFields('valmove/v1/auth/sam', rChip, rSam, b.serial, b.area, b.mig, b.purpose));
  assert.is(toHex(chipProof(key, b, rSam, rChip)), toHex(chip));
  assert.is(toHex(samProof(key, b, rSam, rChip)), toHex(sam));
  assert.is(chip.length, PROOF_BYTES);
});

test("mutual authentication: chip and SAM holding the same key accept each other's proofs", () => {
  const key = randomSecret(rng);
  const chipKey = Secret.of(key.reveal());
  const { rSam, rChip } = challenges();
  // the chip answers, the SAM recomputes; then the SAM proves back and the chip recomputes
  assert.ok(verifyProof(chipProof(key, binding, rSam, rChip), chipProof(chipKey, binding, rSam, rChip)));
  assert.ok(verifyProof(samProof(chipKey, binding, rSam, rChip), samProof(key, binding, rSam, rChip)));
});

test("a SAM holding the wrong slot's key (another 32-byte key) fails to authenticate, both ways", () => {
  const mainKey = randomSecret(rng);
  const tempKey = randomSecret(rng);
  const { rSam, rChip } = challenges();
  assert.not.ok(verifyProof(chipProof(tempKey, binding, rSam, rChip), chipProof(mainKey, binding, rSam, rChip)));
  assert.not.ok(verifyProof(samProof(tempKey, binding, rSam, rChip), samProof(mainKey, binding, rSam, rChip)));
});

test('a proof can not be reflected or moved: the two directions differ, and so does every binding field', () => {
  const key = randomSecret(rng);
  const { rSam, rChip } = challenges();
  const proof = chipProof(key, binding, rSam, rChip);
  assert.not.ok(verifyProof(samProof(key, binding, rSam, rChip), proof), 'the SAM proof is not the chip proof');
  assert.not.ok(verifyProof(chipProof(key, binding, rChip, rSam), proof), 'swapped challenges');
  for (const change of [{ serial: 'DST-1' }, { area: 'transit' }, { mig: 'm2' }, { purpose: 'download' as const }]) {
    assert.not.ok(verifyProof(chipProof(key, { ...binding, ...change }, rSam, rChip), proof), JSON.stringify(change));
  }
});

test('verifyProof: a truncated or empty proof is simply false', () => {
  const key = randomSecret(rng);
  const { rSam, rChip } = challenges();
  const proof = chipProof(key, binding, rSam, rChip);
  assert.not.ok(verifyProof(proof, proof.subarray(0, 16)));
  assert.not.ok(verifyProof(proof, new Uint8Array(0)));
  assert.not.ok(verifyProof(new Uint8Array(0), new Uint8Array(0)), 'an empty expected proof never matches');
});

test('challenges must be 16 bytes (AUTH_FAILED) and keys 32 bytes (BAD_KEY)', () => {
  const key = randomSecret(rng);
  const { rSam, rChip } = challenges();
  assert.is(
    codeOf(() => chipProof(key, binding, rSam.subarray(1), rChip)),
    'AUTH_FAILED',
  );
  assert.is(
    codeOf(() => samProof(key, binding, rSam, new Uint8Array(0))),
    'AUTH_FAILED',
  );
  assert.is(
    codeOf(() => deriveSessionKeys(key, binding, rSam, new Uint8Array(17))),
    'AUTH_FAILED',
  );
  assert.is(
    codeOf(() => chipProof(randomSecret(rng, 16), binding, rSam, rChip)),
    'BAD_KEY',
  );
  assert.is(
    codeOf(() => new FrameSealer(randomSecret(rng, 31), 0)),
    'BAD_KEY',
  );
});

test('session keys are HKDF-SHA256(key, salt rSam||rChip, info fields(label, binding)) split 32/32', () => {
  const key = randomSecret(rng);
  const { rSam, rChip } = challenges();
  const b = binding;
  const okm = hkdf(sha256, key.reveal(), concatBytes(rSam, rChip), encodeFields('valmove/v1/session', b.serial, b.area, b.mig, b.purpose), 64);
  const keys = deriveSessionKeys(key, b, rSam, rChip);
  assert.is(toHex(keys.samToChip.reveal()), toHex(okm.subarray(0, 32)));
  assert.is(toHex(keys.chipToSam.reveal()), toHex(okm.subarray(32)));
  assert.not.ok(keys.samToChip.equals(keys.chipToSam));
});

test('another chip, area, migration, purpose or challenge gives other session keys', () => {
  const key = randomSecret(rng);
  const { rSam, rChip } = challenges();
  const base = deriveSessionKeys(key, binding, rSam, rChip);
  const changes: Array<Partial<SessionBinding>> = [{ serial: 'DST-1' }, { area: '*' }, { mig: '-' }, { purpose: 'admin' }, { purpose: 'normal' }];
  for (const change of changes) {
    const other = deriveSessionKeys(key, { ...binding, ...change }, rSam, rChip);
    assert.not.ok(base.samToChip.equals(other.samToChip), JSON.stringify(change));
    assert.not.ok(base.chipToSam.equals(other.chipToSam), JSON.stringify(change));
  }
  assert.not.ok(base.samToChip.equals(deriveSessionKeys(key, binding, rChip, rSam).samToChip), 'swapped challenges');
  assert.not.ok(base.samToChip.equals(deriveSessionKeys(randomSecret(rng), binding, rSam, rChip).samToChip), 'another key');
});

test('session frames round trip in both directions, each frame = u64be(counter) || ciphertext || tag', () => {
  const s = openSession();
  for (let i = 0; i < 3; i++) {
    const frame = s.sam.sealer.seal(utf8(`cmd ${i}`));
    assert.is(readU64be(frame), BigInt(i));
    assert.is(frame.length, 8 + utf8(`cmd ${i}`).length + 16);
    assert.equal(s.chip.opener.open(frame), utf8(`cmd ${i}`));
    assert.equal(s.sam.opener.open(s.chip.sealer.seal(utf8(`resp ${i}`))), utf8(`resp ${i}`));
  }
  assert.equal(s.chip.opener.open(s.sam.sealer.seal(new Uint8Array(0))), new Uint8Array(0), 'an empty frame is fine');
});

test('a replayed frame is FRAME_REPLAY, naming the counter used and the one expected', () => {
  const s = openSession();
  const f0 = s.sam.sealer.seal(utf8('debit 100'));
  s.chip.opener.open(f0);
  const e = errorOf(() => s.chip.opener.open(f0));
  assert.is(e.code, 'FRAME_REPLAY');
  assert.is(e.message, 'frame counter 0 was already used; expected 1');
  assert.not.match(e.message, /debit/);
});

test('a reordered frame (one skipped) is FRAME_REORDER, and the skipped one still opens next', () => {
  const s = openSession();
  const f0 = s.sam.sealer.seal(utf8('a'));
  const f1 = s.sam.sealer.seal(utf8('b'));
  assert.is(
    codeOf(() => s.chip.opener.open(f1)),
    'FRAME_REORDER',
  );
  assert.equal(s.chip.opener.open(f0), utf8('a'));
  assert.equal(s.chip.opener.open(f1), utf8('b'));
});

test('a tampered byte anywhere in the ciphertext or tag is FRAME_TAMPERED', () => {
  const s = openSession();
  const f0 = s.sam.sealer.seal(utf8('balance 5000'));
  for (const at of [8, 12, -17, -1]) {
    const e = errorOf(() => s.chip.opener.open(flipByte(f0, at)));
    assert.is(e.code, 'FRAME_TAMPERED', `byte ${at}`);
    assert.not.match(e.message, /balance/);
  }
  assert.is(
    codeOf(() => s.chip.opener.open(f0.subarray(0, 23))),
    'FRAME_TAMPERED',
    'too short to hold counter and tag',
  );
});

test('a failed open does not advance the expected counter', () => {
  const s = openSession();
  const f = [0, 1, 2].map((i) => s.sam.sealer.seal(utf8(`f${i}`)));
  assert.is(
    codeOf(() => s.chip.opener.open(flipByte(f[0]!, -1))),
    'FRAME_TAMPERED',
  );
  assert.is(
    codeOf(() => s.chip.opener.open(f[2]!)),
    'FRAME_REORDER',
  );
  assert.is(
    codeOf(() => s.chip.opener.open(f[0]!.subarray(0, 10))),
    'FRAME_TAMPERED',
  );
  // a forged frame carrying the right counter but garbage must not burn that counter either
  assert.is(
    codeOf(() => s.chip.opener.open(concatBytes(f[0]!.subarray(0, 8), new Uint8Array(20)))),
    'FRAME_TAMPERED',
  );
  assert.equal(s.chip.opener.open(f[0]!), utf8('f0'));
  assert.is(
    codeOf(() => s.chip.opener.open(flipByte(f[1]!, 9))),
    'FRAME_TAMPERED',
  );
  assert.equal(s.chip.opener.open(f[1]!), utf8('f1'));
  assert.equal(s.chip.opener.open(f[2]!), utf8('f2'));
});

test('frames do not cross directions or sessions', () => {
  const s = openSession();
  assert.is(
    codeOf(() => s.chip.opener.open(s.chip.sealer.seal(utf8('x')))),
    'FRAME_TAMPERED',
    'reflected back to the chip',
  );
  // same keys, wrong direction constant: the direction is in the nonce
  const mirrored = new FrameOpener(s.keys.samToChip, 1);
  assert.is(
    codeOf(() => mirrored.open(new FrameSealer(s.keys.samToChip, 0).seal(utf8('x')))),
    'FRAME_TAMPERED',
  );
  const t = openSession(s.key);
  assert.is(
    codeOf(() => t.chip.opener.open(s.sam.sealer.seal(utf8('y')))),
    'FRAME_TAMPERED',
    'another session under the same area key',
  );
});

test('the plaintext limit is FRAME_BYTES_MAX: one byte more is FRAME_TOO_LARGE on both ends', () => {
  const s = openSession();
  const max = new Uint8Array(FRAME_BYTES_MAX);
  assert.is(s.chip.opener.open(s.sam.sealer.seal(max)).length, FRAME_BYTES_MAX);
  assert.is(
    codeOf(() => s.sam.sealer.seal(new Uint8Array(FRAME_BYTES_MAX + 1))),
    'FRAME_TOO_LARGE',
  );
  const oversized = concatBytes(s.sam.sealer.seal(max), new Uint8Array(1));
  assert.is(
    codeOf(() => s.chip.opener.open(oversized)),
    'FRAME_TOO_LARGE',
  );
});

test.run();
