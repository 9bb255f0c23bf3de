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

/** The parties whose key rotation is built: their peers only check their signatures and channel keys. */
export const ROTATABLE_ROLES = ['server', 'admin-sam'] as const;
export type RotatableRole = (typeof ROTATABLE_ROLES)[number];

/** A party's name as keygen gives it in trust.json (`server`, `admin-sam`, `migration-sam/<provider>`, …). */
export const PARTY_NAME = /^(server|admin-sam|(migration-sam|normal-sam|terminal|chip)\/[A-Za-z0-9._-]{1,64})$/;

type Json = Record<string, unknown>;

/** Where a peer keeps the keys it trusts for a party: one key or a list (`value`), a list (`array`), a map key → rights (`record`). */
interface Slot {
  holder: Json;
  field: string;
  kind: 'value' | 'array' | 'record';
}

export interface RotationReport {
  role: RotatableRole;
  /** The key now presented, and the one rotate kept or retire removed. */
  signPublic: string;
  oldSignPublic: string;
  /** Files written, relative to the deployment folder. */
  files: string[];
  /** The peers whose configs changed (restart them first after a rotate). */
  peers: string[];
}

interface Loaded {
  dir: string;
  keyFile: string;
  keys: Extract<KeyFile, { kind: RotatableRole }>;
  configs: Array<{ file: string; id: string; raw: Json }>;
  trust: Json;
}

/** The deployment in `dir` with the party's key file, every config and trust.json, each parsed and checked; or a refusal. */
function load(dir: string, role: string): Loaded {
  if (!(ROTATABLE_ROLES as readonly string[]).includes(role)) {
    throw new Error(`rotating the key of ${role} is not built; it is for ${ROTATABLE_ROLES.join(' and ')} (docs/deploying.md)`);
  }
  const r = role as RotatableRole;
  const keyFile = join(dir, 'keys', `${r}.key.json`);
  const trustFile = join(dir, 'trust.json');
  for (const f of [keyFile, trustFile, join(dir, 'config')]) {
    if (!existsSync(f)) throw new Error(`${dir} holds no deployment with ${r}: ${f} is missing (valmove keygen writes one)`);
  }
  const keys = readKeyFile(keyFile, r) as Loaded['keys'];
  const configs = readdirSync(join(dir, 'config'))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const raw = readJson(join(dir, 'config', f));
      const parsed = configSchema.safeParse(raw);
      if (!parsed.success) throw new Error(`config/${f} is not a valid config (${parsed.error.issues[0]?.path.join('.') || '(root)'}); nothing changed`);
      return { file: join('config', f), id: parsed.data.id, raw: raw as Json };
    });
  return { dir, keyFile, keys, configs, trust: readJson(trustFile) as Json };
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

/** Where each config trusts the party: the server's and providers' admin SAM key; the admin SAM's, providers' and terminals' server keys. */
function configSlots(role: RotatableRole, cfg: Json): Slot[] {
  const adminSam = obj(cfg.adminSam);
  const server = obj(cfg.server);
  if (role === 'admin-sam') {
    if (cfg.role === 'server' && adminSam && 'signPublic' in adminSam) return [{ holder: adminSam, field: 'signPublic', kind: 'value' }];
    if (cfg.role === 'provider') return [{ holder: cfg, field: 'adminSamSignPublic', kind: 'value' }];
    return [];
  }
  if (cfg.role === 'admin-sam') return [{ holder: cfg, field: 'trustedServers', kind: 'array' }];
  if (cfg.role === 'provider') return [{ holder: cfg, field: 'servers', kind: 'record' }];
  if (cfg.role === 'terminal' && server) return [{ holder: server, field: 'signPublic', kind: 'value' }];
  return [];
}

/** trust.json's own lists of who trusts the server (the admin SAM obeys it; each provider gives it rights). */
function trustSlots(role: RotatableRole, trust: Json): Slot[] {
  if (role !== 'server') return [];
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
function eachSlot(d: Loaded, role: RotatableRole, change: (s: Slot, where: string) => boolean): Loaded['configs'] {
  // Every slot of a config is changed (map, then some): a config may hold more than one.
  const changed = d.configs.filter((c) =>
    configSlots(role, c.raw)
      .map((s) => change(s, c.file))
      .includes(true),
  );
  for (const s of trustSlots(role, d.trust)) change(s, 'trust.json');
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
function save(d: Loaded, changed: Loaded['configs'], keys: KeyFile): string[] {
  for (const c of changed) replaceJson(join(d.dir, c.file), c.raw);
  replaceJson(join(d.dir, 'trust.json'), d.trust);
  writeKeyFile(`${d.keyFile}.tmp`, keys);
  renameSync(`${d.keyFile}.tmp`, d.keyFile);
  return [...changed.map((c) => c.file), 'trust.json', join('keys', `${keys.kind}.key.json`)];
}

/** `keygen rotate`: a new identity for the party; its new public key beside the old one wherever a peer trusts it. */
export function rotateIdentity(dir: string, role: string, opts: { rng: Rng; now: Date }): RotationReport {
  const d = load(dir, role);
  const r = d.keys.kind;
  if (d.keys.previousIdentity) {
    throw new Error(`${r} is in a rotation window already (since ${d.keys.previousIdentity.replacedAt}): retire its old key first; nothing changed`);
  }
  const old = d.keys.identity.signPublic;
  const next = exportIdentity(generateIdentity(opts.rng));
  const changed = eachSlot(d, r, (s) => widen(s, old, next.signPublic));
  const entry = obj(obj(d.trust.keys)?.[r]);
  const replacedAt = opts.now.toISOString();
  if (obj(d.trust.keys)) {
    (d.trust.keys as Json)[r] = { signPublic: next.signPublic, boxPublic: next.boxPublic, previous: { ...entry, replacedAt } };
  }
  const keys = { ...d.keys, identity: next, previousIdentity: { ...d.keys.identity, replacedAt } };
  const files = save(d, changed, keys);
  return { role: r, signPublic: next.signPublic, oldSignPublic: old, files, peers: changed.map((c) => c.id) };
}

/** `keygen retire`: the old public key out of every peer's config and trust.json, the old secret out of the key file. */
export function retireIdentity(dir: string, role: string): RotationReport {
  const d = load(dir, role);
  const r = d.keys.kind;
  const previous = d.keys.previousIdentity;
  if (!previous) throw new Error(`${r} has no old key to retire: it was not rotated since its last retire (valmove keygen rotate); nothing changed`);
  const old = previous.signPublic;
  const changed = eachSlot(d, r, (s, where) => narrow(s, old, where));
  const entry = obj(obj(d.trust.keys)?.[r]);
  if (entry) delete entry.previous;
  const { previousIdentity: _retired, ...keys } = d.keys;
  const files = save(d, changed, keys);
  return { role: r, signPublic: d.keys.identity.signPublic, oldSignPublic: old, files, peers: changed.map((c) => c.id) };
}
