/** identity.ts: Ed25519 + X25519 identities of servers and SAMs. */
import { inspect } from 'node:util';
import { x25519 } from '@noble/curves/ed25519.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  exportIdentity,
  fromHex,
  generateIdentity,
  identityFromSeeds,
  importIdentity,
  publicIdentity,
  seededRng,
  sign,
  toB64,
  toHex,
  utf8,
  verifySignature,
} from '../../src/crypto/index.ts';
import { codeOf, errorOf, flipByte, leaks } from './helpers.ts';

const rng = seededRng('identity-tests');

test('identityFromSeeds gives the RFC 8032 §7.1 test 1 public key and the RFC 7748 §6.1 X25519 key', () => {
  const id = identityFromSeeds(
    fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'),
    fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
  );
  assert.is(toHex(id.signPublic), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  assert.is(toHex(id.boxPublic), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.is(
    toHex(sign(id, new Uint8Array(0))),
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  );
});

test('generateIdentity draws both secret keys from the Rng, so a seed replays it', () => {
  const a = generateIdentity(seededRng(3));
  const b = generateIdentity(seededRng(3));
  assert.is(toHex(a.signPublic), toHex(b.signPublic));
  assert.is(toHex(a.boxPublic), toHex(b.boxPublic));
  assert.is.not(toHex(a.signPublic), toHex(generateIdentity(seededRng(4)).signPublic));
  assert.is(toHex(x25519.getPublicKey(a.boxSecret.reveal())), toHex(a.boxPublic));
});

test('export and import round trip; the public view holds no secret', () => {
  const id = generateIdentity(rng);
  const json = JSON.parse(JSON.stringify(exportIdentity(id)));
  const back = importIdentity(json);
  assert.ok(back.signSecret.equals(id.signSecret));
  assert.ok(back.boxSecret.equals(id.boxSecret));
  const pub = publicIdentity(id);
  assert.equal(Object.keys(pub).sort(), ['boxPublic', 'signPublic']);
  assert.is(pub.signPublic, toB64(id.signPublic));
  const text = JSON.stringify(pub) + inspect(id, { depth: 5 });
  assert.not.ok(leaks(text, id.signSecret.reveal()));
  assert.not.ok(leaks(text, id.boxSecret.reveal()));
  assert.throws(() => JSON.stringify(id), /cannot be serialised/, 'an Identity holds Secrets, so it can not be serialised by accident');
});

test('importIdentity refuses mismatched or malformed keys with BAD_KEY, without echoing them', () => {
  const a = exportIdentity(generateIdentity(rng));
  const b = exportIdentity(generateIdentity(rng));
  assert.is(
    codeOf(() => importIdentity({ ...a, signPublic: b.signPublic })),
    'BAD_KEY',
  );
  assert.is(
    codeOf(() => importIdentity({ ...a, boxPublic: b.boxPublic })),
    'BAD_KEY',
  );
  const e = errorOf(() => importIdentity({ ...a, signSecret: `${a.signSecret}A` }));
  assert.is(e.code, 'BAD_KEY');
  assert.not.ok(e.message.includes(a.signSecret.slice(0, 8)));
  assert.is(
    codeOf(() => importIdentity({ ...a, boxSecret: a.boxSecret.slice(0, 20) })),
    'BAD_KEY',
  );
  assert.is(
    codeOf(() => importIdentity({} as never)),
    'BAD_KEY',
  );
  assert.is(
    codeOf(() => identityFromSeeds(new Uint8Array(31), new Uint8Array(32))),
    'BAD_KEY',
  );
});

test("signatures verify with the signer's key only, over the exact message", () => {
  const id = generateIdentity(rng);
  const msg = utf8('receipt m1/0');
  const sig = sign(id, msg);
  assert.ok(verifySignature(id.signPublic, msg, sig));
  assert.not.ok(verifySignature(id.signPublic, utf8('receipt m1/1'), sig));
  assert.not.ok(verifySignature(generateIdentity(rng).signPublic, msg, sig));
  assert.not.ok(verifySignature(id.signPublic, msg, flipByte(sig, 0)));
  assert.not.ok(verifySignature(id.signPublic, msg, flipByte(sig, 63)));
});

test('verifySignature never throws on malformed input: it returns false', () => {
  const id = generateIdentity(rng);
  const msg = utf8('m');
  const sig = sign(id, msg);
  const cases: Array<[Uint8Array, Uint8Array, Uint8Array]> = [
    [id.signPublic, msg, sig.subarray(0, 63)],
    [id.signPublic, msg, new Uint8Array(0)],
    [id.signPublic.subarray(1), msg, sig],
    [new Uint8Array(32), msg, sig],
    [new Uint8Array(32).fill(0xff), msg, sig],
    [undefined as unknown as Uint8Array, msg, sig],
    [id.signPublic, 'm' as unknown as Uint8Array, sig],
  ];
  for (const [pub, m, s] of cases) assert.is(verifySignature(pub, m, s), false);
});

test('a small-order public key with a crafted signature does not verify (strict RFC 8032, not ZIP-215)', () => {
  // the identity point (encoded as y = 1) and R = identity, S = 0 satisfy the cofactored equation for every message
  const identityPoint = fromHex('0100000000000000000000000000000000000000000000000000000000000000');
  const sig = new Uint8Array(64);
  sig.set(identityPoint, 0);
  assert.is(verifySignature(identityPoint, utf8('anything'), sig), false);
});

test.run();
