/** pairBox.ts: the main key between a provider's two SAMs, under the key their X25519 identities share. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateIdentity, openFromPair, sealForPair, seededRng, utf8 } from '../../src/crypto/index.ts';
import { diff, snapshot, totals } from '../../src/metrics/counters.ts';
import { codeOf } from './helpers.ts';

const rng = seededRng('pair-box-tests');
const normal = generateIdentity(rng);
const migration = generateIdentity(rng);
const stranger = generateIdentity(rng);
const key = rng.bytes(32);
const aad = utf8('SRC-1/emoney');
const INFO = 'valmove/v1/main-key';

test('what one side seals the other opens; each box has its own nonce', () => {
  const a = sealForPair(normal, migration.boxPublic, key, INFO, aad, rng);
  const b = sealForPair(normal, migration.boxPublic, key, INFO, aad, rng);
  assert.equal(openFromPair(migration, normal.boxPublic, a, INFO, aad), key);
  assert.is.not(a.nonce, b.nonce);
  assert.is.not(a.sealed, b.sealed, 'the same key sealed twice is not the same box');
});

test('a box opens only for its pair, its purpose and its binding, and only untouched', () => {
  const box = sealForPair(normal, migration.boxPublic, key, INFO, aad, rng);
  const refused = (f: () => unknown) => assert.is(codeOf(f), 'SEAL_INVALID');
  refused(() => openFromPair(stranger, normal.boxPublic, box, INFO, aad));
  refused(() => openFromPair(migration, stranger.boxPublic, box, INFO, aad));
  refused(() => openFromPair(migration, normal.boxPublic, box, 'valmove/v1/other', aad));
  refused(() => openFromPair(migration, normal.boxPublic, box, INFO, utf8('DST-1/emoney')));
  const flipped = box.sealed.startsWith('A') ? `B${box.sealed.slice(1)}` : `A${box.sealed.slice(1)}`;
  refused(() => openFromPair(migration, normal.boxPublic, { ...box, sealed: flipped }, INFO, aad));
  refused(() => openFromPair(migration, normal.boxPublic, { ...box, nonce: box.nonce.slice(4) }, INFO, aad));
  assert.is(
    codeOf(() => sealForPair(normal, new Uint8Array(31), key, INFO, aad, rng)),
    'BAD_KEY',
  );
});

test('no public-key operation per box: each side computes the pair key once per peer and purpose, then keeps it', () => {
  const purpose = `valmove/v1/test-${Date.now()}`;
  const before = snapshot();
  for (let i = 0; i < 5; i++) {
    const box = sealForPair(normal, migration.boxPublic, key, purpose, aad, rng);
    openFromPair(migration, normal.boxPublic, box, purpose, aad);
  }
  const ops = totals(diff(snapshot(), before).crypto);
  assert.is(ops['x25519.ecdh']?.n, 2, 'one agreement on each side of the pair, for all five boxes');
  assert.is(ops['aead.seal.box']?.n, 5);
  assert.is(ops['aead.open.box']?.n, 5);
});

test.run();
