/**
 * `valmove keygen rotate|retire --dir DIR --role R`: a party's identity key
 * replaced in a deployment keygen wrote (docs/deploying.md, "Rotating an
 * identity key").
 *
 *   rotate  a new identity in the party's key file (the old one kept as
 *           `previousIdentity`, with when it was replaced); its new public
 *           key written beside the old one wherever a peer trusts it (each
 *           peer's config, trust.json): a peer restarted on its config
 *           accepts either key, so the party may present its new one.
 *   retire  the old public key removed from every peer's config and from
 *           trust.json, the old secret from the key file: a peer (re)started
 *           then refuses the old key.
 *
 * Every file is read and checked before any is written, and each is
 * replaced whole (written aside, then renamed): a refusal changes nothing.
 * Errors name files and fields, never a key's secret.
 */
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportIdentity, generateIdentity, type Rng } from '../crypto/index.ts';
import { configSchema, keyList } from './config.ts';
import { readKeyFile, writeKeyFile, type KeyFile } from './keyfiles.ts';

/** The parties whose key rotation is built: their peers check their signatures and channel keys, and a SAM opens and verifies with its previous key too. */
export const ROTATABLE_ROLES = ['server', 'admin-sam', 'migration-sam/<provider>', 'normal-sam/<provider>'] as const;
/** A provider's SAM: its identity is one of the two in the provider's key file. */
const SAM_ROLE = /^(migration-sam|normal-sam)\/([A-Za-z0-9._-]{1,64})$/;

/** A party's name as keygen gives it in trust.json (`server`, `admin-sam`, `migration-sam/<provider>`, …). */
export const PARTY_NAME = /^(server|admin-sam|(migration-sam|normal-sam|terminal|chip)\/[A-Za-z0-9._-]{1,64})$/;

type Json = Record<string, unknown>;
type Exported = ReturnType<typeof exportIdentity>;
type Previous = Exported & { replacedAt: string };

/** Where each config trusts the party: in a field one key or a list (`value`), a list (`array`), a map key → rights (`record`). */
interface Slot {
  holder: Json;
  field: string;
  kind: 'value' | 'array' | 'record';
}

export interface RotationReport {
  role: string;
  /** The key now presented, and the one rotate kept or retire removed. */
  signPublic: string;
  oldSignPublic: string;
  /** Files written, relative to the deployment folder. */
  files: string[];
  /** The peers whose configs changed (restart them first after a rotate). */
  peers: string[];
  /** The process that runs the party (a SAM's: `provider-<p>`), restarted after its peers. */
  process: string;
}

/** The rotated party: its key file and the fields of its identity and of the one it replaced. */
interface Party {
  role: string;
  /** `server`, `admin-sam`, or the SAM's kind; `provider` names the SAM's provider. */
  kind: 'server' | 'admin-sam' | 'migration-sam' | 'normal-sam';
  provider: string;
  keyFile: string;
  current: 'identity' | 'normal' | 'migration';
  previous: 'previousIdentity' | 'previousNormal' | 'previousMigration';
}

function partyOf(role: string): Party {
  if (role === 'server' || role === 'admin-sam') {
    return { role, kind: role, provider: '', keyFile: `${role}.key.json`, current: 'identity', previous: 'previousIdentity' };
  }
  const m = SAM_ROLE.exec(role);
  if (!m) throw new Error(`rotating the key of ${role} is not built; it is for ${ROTATABLE_ROLES.join(', ')} (docs/deploying.md)`);
  const migration = m[1] === 'migration-sam';
  return {
    role,
    kind: migration ? 'migration-sam' : 'normal-sam',
    provider: m[2]!,
    keyFile: `provider-${m[2]}.key.json`,
    current: migration ? 'migration' : 'normal',
    previous: migration ? 'previousMigration' : 'previousNormal',
  };
}

const processOf = (p: Party): string => (p.provider ? `provider-${p.provider}` : p.role);

interface Loaded {
  dir: string;
  party: Party;
  keyFile: string;
  keys: Json & KeyFile;
  configs: Array<{ file: string; id: string; raw: Json }>;
  trust: Json;
}

/** The deployment in `dir` with the party's key file, every config and trust.json, each parsed and checked; or a refusal. */
function load(dir: string, role: string): Loaded {
  const party = partyOf(role);
  const keyFile = join(dir, 'keys', party.keyFile);
  const trustFile = join(dir, 'trust.json');
  for (const f of [keyFile, trustFile, join(dir, 'config')]) {
    if (!existsSync(f)) throw new Error(`${dir} holds no deployment with ${role}: ${f} is missing (valmove keygen writes one)`);
  }
  const keys = readKeyFile(keyFile, party.kind === 'server' || party.kind === 'admin-sam' ? party.kind : 'provider') as Loaded['keys'];
  const configs = readdirSync(join(dir, 'config'))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const raw = readJson(join(dir, 'config', f));
      const parsed = configSchema.safeParse(raw);
      if (!parsed.success) throw new Error(`config/${f} is not a valid config (${parsed.error.issues[0]?.path.join('.') || '(root)'}); nothing changed`);
      return { file: join('config', f), id: parsed.data.id, raw: raw as Json };
    });
  return { dir, party, keyFile, keys, configs, trust: readJson(trustFile) as Json };
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const cause = (e as NodeJS.ErrnoException).code; // a file system error's name (ENOENT, EACCES), not a protocol code
    throw new Error(`${file} can not be read as JSON (${cause ?? 'bad JSON'}); nothing changed`);
  }
}

const obj = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined);

/** A migration SAM as the server's embedded admin SAM or the admin SAM knows it (its signing keys and box key). */
function adminSamEntries(p: Party, cfg: Json): Json[] {
  if (p.kind !== 'migration-sam') return [];
  const adminSam = obj(cfg.adminSam);
  const lists = cfg.role === 'admin-sam' ? [obj(cfg.migrationSams)] : cfg.role === 'server' ? [obj(adminSam?.migrationSams)] : [];
  return lists.map((l) => obj(l?.[p.role])).filter((e): e is Json => e !== undefined);
}

/**
 * Where each config trusts the party: the server's and providers' admin SAM key; the admin SAM's, providers' and
 * terminals' server keys; the server's and admin SAM's migration SAM keys; the terminals' normal SAM keys.
 */
function configSlots(p: Party, cfg: Json): Slot[] {
  const adminSam = obj(cfg.adminSam);
  const server = obj(cfg.server);
  const value = (holder: Json | undefined): Slot[] => (holder ? [{ holder, field: 'signPublic', kind: 'value' }] : []);
  if (p.kind === 'migration-sam') {
    const dialed = cfg.role === 'server' ? value(obj(obj(cfg.migrationSams)?.[p.provider])) : [];
    return [...dialed, ...adminSamEntries(p, cfg).flatMap(value)];
  }
  if (p.kind === 'normal-sam') return cfg.role === 'terminal' ? value(obj(obj(cfg.normalSams)?.[p.provider])) : [];
  if (p.kind === 'admin-sam') {
    if (cfg.role === 'server' && adminSam && 'signPublic' in adminSam) return value(adminSam);
    if (cfg.role === 'provider') return [{ holder: cfg, field: 'adminSamSignPublic', kind: 'value' }];
    return [];
  }
  if (cfg.role === 'admin-sam') return [{ holder: cfg, field: 'trustedServers', kind: 'array' }];
  if (cfg.role === 'provider') return [{ holder: cfg, field: 'servers', kind: 'record' }];
  if (cfg.role === 'terminal') return value(server);
  return [];
}

/** trust.json's own lists of who trusts the server (the admin SAM obeys it; each provider gives it rights). */
function trustSlots(p: Party, trust: Json): Slot[] {
  if (p.kind !== 'server') return [];
  const slots: Slot[] = [];
  for (const [id, entry] of Object.entries(obj(trust.trust) ?? {})) {
    const e = obj(entry);
    if (id === 'admin-sam' && e && Array.isArray(e.obeys)) slots.push({ holder: e, field: 'obeys', kind: 'array' });
    if (id.startsWith('provider-') && e && obj(e.servers)) slots.push({ holder: e, field: 'servers', kind: 'record' });
  }
  return slots;
}

function slotKeys(s: Slot): string[] {
  const v = s.holder[s.field];
  if (s.kind === 'record') return Object.keys(obj(v) ?? {});
  return keyList(v as string | string[]);
}

/** Adds `neu` beside `old` (a record: with the old key's rights); a slot without `old` does not trust this party and is left. */
function widen(s: Slot, old: string, neu: string): boolean {
  const keys = slotKeys(s);
  if (!keys.includes(old) || keys.includes(neu)) return false;
  if (s.kind === 'record') (s.holder[s.field] as Json)[neu] = (s.holder[s.field] as Json)[old];
  else s.holder[s.field] = [...keys, neu];
  return true;
}

/** Removes `old`; refuses when nothing would be left (that peer never got the new key). */
function narrow(s: Slot, old: string, where: string): boolean {
  const keys = slotKeys(s);
  if (!keys.includes(old)) return false;
  if (keys.length === 1) throw new Error(`${where} trusts only the old key at ${s.field}: it never got the new one; nothing changed`);
  if (s.kind === 'record') delete (s.holder[s.field] as Json)[old];
  else {
    const left = keys.filter((k) => k !== old);
    s.holder[s.field] = s.kind === 'value' && left.length === 1 ? left[0] : left;
  }
  return true;
}

/** Applies `change` to every slot of every config and of trust.json; returns the configs changed. */
function eachSlot(d: Loaded, change: (s: Slot, where: string) => boolean, more: (cfg: Json) => boolean = () => false): Loaded['configs'] {
  // Every slot of a config is changed (map, then some): a config may hold more than one.
  const changed = d.configs.filter((c) => [...configSlots(d.party, c.raw).map((s) => change(s, c.file)), more(c.raw)].includes(true));
  for (const s of trustSlots(d.party, d.trust)) change(s, 'trust.json');
  for (const c of changed) {
    const parsed = configSchema.safeParse(c.raw);
    if (!parsed.success) throw new Error(`${c.file} would not be a valid config (${parsed.error.issues[0]?.path.join('.')}); nothing changed`);
  }
  return changed;
}

/** Writes a file whole: aside first, then renamed over the old one. */
function replaceJson(file: string, value: unknown): void {
  writeFileSync(`${file}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/** The peers' configs and trust.json first, the key file last: a stop half way leaves peers trusting the key still in use. */
function save(d: Loaded, changed: Loaded['configs'], keys: Json): string[] {
  for (const c of changed) replaceJson(join(d.dir, c.file), c.raw);
  replaceJson(join(d.dir, 'trust.json'), d.trust);
  writeKeyFile(`${d.keyFile}.tmp`, keys as KeyFile);
  renameSync(`${d.keyFile}.tmp`, d.keyFile);
  return [...changed.map((c) => c.file), 'trust.json', join('keys', d.party.keyFile)];
}

/** `keygen rotate`: a new identity for the party; its new public key beside the old one wherever a peer trusts it. */
export function rotateIdentity(dir: string, role: string, opts: { rng: Rng; now: Date }): RotationReport {
  const d = load(dir, role);
  const { current, previous } = d.party;
  const was = d.keys[previous] as Previous | undefined;
  if (was) throw new Error(`${role} is in a rotation window already (since ${was.replacedAt}): retire its old key first; nothing changed`);
  const oldId = d.keys[current] as Exported;
  const old = oldId.signPublic;
  const next = exportIdentity(generateIdentity(opts.rng));
  // A migration SAM's box key stays the old one in the admin SAM's config until retire: grants sealed to it open
  // before and after the SAM's restart on its new key (it keeps the old one as its previous identity).
  const changed = eachSlot(d, (s) => widen(s, old, next.signPublic));
  const entry = obj(obj(d.trust.keys)?.[role]);
  const replacedAt = opts.now.toISOString();
  if (obj(d.trust.keys)) {
    (d.trust.keys as Json)[role] = { signPublic: next.signPublic, boxPublic: next.boxPublic, previous: { ...entry, replacedAt } };
  }
  const keys = { ...d.keys, [current]: next, [previous]: { ...oldId, replacedAt } };
  const files = save(d, changed, keys);
  return { role, signPublic: next.signPublic, oldSignPublic: old, files, peers: changed.map((c) => c.id), process: processOf(d.party) };
}

/** `keygen retire`: the old public key out of every peer's config and trust.json, the old secret out of the key file. */
export function retireIdentity(dir: string, role: string): RotationReport {
  const d = load(dir, role);
  const { current, previous } = d.party;
  const was = d.keys[previous] as Previous | undefined;
  if (!was) throw new Error(`${role} has no old key to retire: it was not rotated since its last retire (valmove keygen rotate); nothing changed`);
  const now = d.keys[current] as Exported;
  const old = was.signPublic;
  // The admin SAM seals grants to the new box key from now on.
  const newBox = (cfg: Json): boolean =>
    adminSamEntries(d.party, cfg)
      .filter((e) => e.boxPublic === was.boxPublic)
      .map((e) => (e.boxPublic = now.boxPublic)).length > 0;
  const changed = eachSlot(d, (s, where) => narrow(s, old, where), newBox);
  const entry = obj(obj(d.trust.keys)?.[role]);
  if (entry) delete entry.previous;
  const { [previous]: _retired, ...keys } = d.keys;
  const files = save(d, changed, keys);
  return { role, signPublic: now.signPublic, oldSignPublic: old, files, peers: changed.map((c) => c.id), process: processOf(d.party) };
}
