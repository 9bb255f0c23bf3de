/**
 * A party's own secrets (its identity, its master keys), kept in its own
 * LMDB environment and nowhere else: created on first start, reused on every
 * restart. Stores of SAMs and chips hold secrets; the server's and
 * terminals' stores hold none but their channel identity.
 */
import { exportIdentity, generateIdentity, importIdentity, randomSecret, Secret, type Identity, type Rng } from '../crypto/index.ts';
import type { PartyStore } from './party.store.ts';

type KeyEntry = { kind: 'identity'; value: ReturnType<typeof exportIdentity> } | { kind: 'secret'; value: Uint8Array };

function keys(store: PartyStore) {
  return store.db<KeyEntry>('keys');
}

export async function loadOrCreateIdentity(store: PartyStore, rng: Rng, name = 'identity'): Promise<Identity> {
  const db = keys(store);
  const found = db.get(name);
  if (found?.kind === 'identity') return importIdentity(found.value);
  const id = generateIdentity(rng);
  await store.commit(() => db.put(name, { kind: 'identity', value: exportIdentity(id) }));
  return id;
}

export async function loadOrCreateSecret(store: PartyStore, rng: Rng, name: string): Promise<Secret> {
  const db = keys(store);
  const found = db.get(name);
  if (found?.kind === 'secret') return Secret.of(found.value);
  const s = randomSecret(rng);
  await store.commit(() => db.put(name, { kind: 'secret', value: s.reveal() }));
  return s;
}
