/**
 * A provider's parties in the embedded system (system.ts): its migration SAM,
 * which trusts the server's key (or, for a provider that does not trust this
 * server, another) with the rights the provider gave it, and its normal SAM,
 * which holds the provider's master key and the readers it enrolled; linked
 * server <-> migration SAM (a mutual channel) and migration SAM <-> normal SAM.
 */
import { createIssueOrder, encodeIssueOrder, toB64, type Identity, type Rng, type Secret } from '../crypto/index.ts';
import type { ReceiptKeys } from './terminalReceipt.ts';
import type { PartyStore } from '../store/party.store.ts';
import type { SecureResponderLink } from '../transport/secure.link.ts';
import { MigrationSamRuntime, type Right } from './migrationSam.actor.ts';
import { NormalSamRuntime, type EnrolledReader } from './normalSam.actor.ts';
import type { PartyRuntime, RuntimeDeps } from './runtime.ts';
import type { Wire } from './systemWires.ts';
import { encodeValue, type ValueItem } from './value.ts';

/** What starting a provider's parties needs of the system. */
export interface ProviderHost {
  readonly serverIdentity: Identity;
  readonly adminIdentity: Identity;
  readonly identities: { normal: Identity; migration: Identity };
  readonly master: Secret;
  /** Rights the provider gives the server; all three by default. */
  readonly rights: Right[] | undefined;
  /** The provider trusts some other server key instead of ours (it refuses the server's channel). */
  readonly untrusting: boolean;
  /** The readers the provider enrolls (its normal SAM reads this table, across restarts): key -> name and rights. */
  readonly readers: Record<string, EnrolledReader>;
  /** The migration SAM's server links, by peer name (it checks a server's rights by the key its channel proved). */
  readonly serverLinks: Map<string, SecureResponderLink>;
  deps(id: string, store: PartyStore): RuntimeDeps;
  storeFor(...parts: string[]): PartyStore;
  /** How the party is (re)started, under its id. */
  define(id: string, start: () => Promise<PartyRuntime>): void;
  launch(id: string): Promise<PartyRuntime>;
  wire(w: Wire): void;
}

/** Starts provider `p`'s migration SAM and normal SAM, and links them. */
export async function startProvider(host: ProviderHost, p: string): Promise<void> {
  const ids = host.identities;
  const trustedKey = host.untrusting ? toB64(new Uint8Array(32).fill(7)) : toB64(host.serverIdentity.signPublic);
  const serverLinks = host.serverLinks;
  const msamId = `migration-sam/${p}`;
  const nsamId = `normal-sam/${p}`;
  host.define(msamId, async () => {
    const msam = new MigrationSamRuntime(host.deps(msamId, host.storeFor(`provider-${p}`, 'migration-sam')), {
      provider: p,
      identity: ids.migration,
      adminSamSignPublic: host.adminIdentity.signPublic,
      normalSamBoxPublic: ids.normal.boxPublic,
      servers: { [trustedKey]: host.rights ?? ['upload', 'download', 'clear'] },
      serverKeyOf: (peer) => serverLinks.get(peer)?.peerId,
    });
    await msam.start();
    return msam;
  });
  host.define(nsamId, async () => {
    const nsam = new NormalSamRuntime(host.deps(nsamId, host.storeFor(`provider-${p}`, 'normal-sam')), {
      provider: p,
      providerMaster: host.master,
      identity: ids.normal,
      migrationSamBoxPublic: ids.migration.boxPublic,
      readers: host.readers,
    });
    await nsam.start();
    return nsam;
  });
  await host.launch(msamId);
  await host.launch(nsamId);
  host.wire({
    a: { party: 'server', name: msamId },
    b: { party: msamId, name: 'server' },
    channel: { initiator: host.serverIdentity, responder: ids.migration, mutual: true, trust: (k) => k === trustedKey },
    onB: (link) => serverLinks.set('server', link as SecureResponderLink),
  });
  host.wire({ a: { party: msamId, name: nsamId }, b: { party: nsamId, name: msamId } });
}

export interface IssueOrderRequest {
  provider: string;
  serial: string;
  area?: string;
  value: ValueItem;
  ttlMs?: number;
}

/** An issue order signed with a provider's migration SAM identity, valid for ttlMs (a day unless said). */
export function signIssueOrderAs(identity: Identity, o: IssueOrderRequest, now: number, rng: Rng): string {
  const expiresAt = now + (o.ttlMs ?? 24 * 3_600_000);
  const body = { provider: o.provider, serial: o.serial, area: o.area ?? o.provider, expiresAt, item: encodeValue(o.value) };
  return encodeIssueOrder(createIssueOrder(body, identity, rng));
}

/** The public keys a receipt is checked against, by party: the admin SAM's and each provider's migration SAM's. */
export function receiptKeysOf(admin: Identity, providers: Record<string, { migration: Identity }>): ReceiptKeys {
  const keys: ReceiptKeys = { 'admin-sam': { signPublic: toB64(admin.signPublic) } };
  for (const [p, ids] of Object.entries(providers)) keys[`migration-sam/${p}`] = { signPublic: toB64(ids.migration.signPublic) };
  return keys;
}
