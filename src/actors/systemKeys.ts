/**
 * The embedded system's keys (system.ts), each made on a party's first
 * start in that party's own store and read back after: the server's and the
 * admin SAM's identities, the issuer master key (K_chip of every chip derives
 * from it), each provider's master key and its SAMs' identities; and the own
 * key pair of each chip and each phone (its device key).
 */
import { join } from 'node:path';
import { toB64, type Identity, type Rng, type Secret } from '../crypto/index.ts';
import { loadOrCreateIdentity, loadOrCreateSecret } from '../store/keys.store.ts';
import { PartyStore, type CommitMode } from '../store/party.store.ts';

export interface SystemKeys {
  serverIdentity: Identity;
  adminIdentity: Identity;
  issuerMaster: Secret;
  providerIdentities: Record<string, { normal: Identity; migration: Identity }>;
  providerMasters: Record<string, Secret>;
}

/** The fixed parties' keys, in the order they are made (a seeded rng makes the same ones). */
export async function loadSystemKeys(opts: { dataDir: string; providers: string[]; rng: Rng; commits?: CommitMode }): Promise<SystemKeys> {
  // Each party's own secrets, created on first start in its own store.
  const keyStore = async <T>(parts: string[], fn: (s: PartyStore) => Promise<T>): Promise<T> => {
    const s = PartyStore.open(join(opts.dataDir, ...parts), { commits: opts.commits });
    try {
      return await fn(s);
    } finally {
      await s.close();
    }
  };
  const serverIdentity = await keyStore(['server'], (s) => loadOrCreateIdentity(s, opts.rng));
  const [adminIdentity, issuerMaster] = await keyStore(
    ['admin-sam'],
    async (s) => [await loadOrCreateIdentity(s, opts.rng), await loadOrCreateSecret(s, opts.rng, 'issuer-master')] as const,
  );
  const providerIdentities: Record<string, { normal: Identity; migration: Identity }> = {};
  const providerMasters: Record<string, Secret> = {};
  for (const p of opts.providers) {
    const normal = await keyStore([`provider-${p}`, 'normal-sam'], async (s) => {
      providerMasters[p] = await loadOrCreateSecret(s, opts.rng, 'provider-master');
      return loadOrCreateIdentity(s, opts.rng);
    });
    const migration = await keyStore([`provider-${p}`, 'migration-sam'], (s) => loadOrCreateIdentity(s, opts.rng));
    providerIdentities[p] = { normal, migration };
  }
  return { serverIdentity, adminIdentity, issuerMaster, providerIdentities, providerMasters };
}

/** Each terminal's device key and each chip's own key, kept in their own stores (made at first start). */
export class OwnKeys {
  private readonly identities = new Map<string, Identity>();

  constructor(
    private readonly storeFor: (dir: string) => PartyStore,
    private readonly rng: Rng,
  ) {}

  /** A party's own key pair, made in its own store on first start and read back after (a chip's, a phone's device key). */
  async load(id: string, dir: string): Promise<Identity> {
    const known = this.identities.get(id);
    if (known) return known;
    const store = this.storeFor(dir);
    try {
      const identity = await loadOrCreateIdentity(store, this.rng);
      this.identities.set(id, identity);
      return identity;
    } finally {
      await store.close();
    }
  }

  /** The key pair of a party, if it was loaded. */
  get(id: string): Identity | undefined {
    return this.identities.get(id);
  }

  /** The public key a terminal proves on its links (its device key) or a chip on its bus. */
  publicKeyOf(id: string): string {
    const identity = this.identities.get(id);
    if (!identity) throw new Error(`no key for ${id}`);
    return toB64(identity.signPublic);
  }
}
