/**
 * protocol.md §5, confidentiality honestly: search bytes for every secret in
 * every form it could leak as (raw, hex, base64 and base64url at each of the
 * three byte alignments).
 *
 *  - `systemNeedles`: every secret of an embedded system (passwords, login
 *    proofs, masters, identities, K_chip, K_main, temp keys, value items),
 *    each with the parties whose own store may hold it;
 *  - `scan`: where each needle occurs, in which form;
 *  - `storeHaystacks`, `logHaystacks`, `filesUnder`: the bytes of an LMDB
 *    environment (its files, and every record decoded through the store
 *    API), of log lines, of a folder;
 *  - `findingsIn`: sources of each kind (logs, errors, traces, a party's
 *    own store, envelopes) searched for the needles each may not hold;
 *  - `describeFindings`: a failure message that names the needle, its form
 *    and the source, and never holds the secret itself;
 *  - `watchTempKeys`: catches every temp key as the admin SAM stores it,
 *    since the admin SAM deletes each once its item is settled.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { AdminSamRuntime } from '../../src/actors/adminSam.actor.ts';
import type { PartyRuntime } from '../../src/actors/runtime.ts';
import type { EmbeddedSystem } from '../../src/actors/system.ts';
import { encodeValue, type ValueItem } from '../../src/actors/value.ts';
import { deriveChipKey, deriveMainKey, fromB64, fromHex, importIdentity, Secret, stretchPassword, utf8 } from '../../src/crypto/index.ts';
import type { TempKeyRecord } from '../../src/store/adminSam.store.ts';
import type { PartyStore } from '../../src/store/party.store.ts';
import { decodeEnvelope } from '../../src/transport/envelope.ts';

export interface Needle {
  name: string;
  bytes: Uint8Array;
  /** Parties whose own store holds this by design (a SAM its master, a chip its keys); anywhere else it is a leak. */
  owners?: readonly string[];
  /** Envelope types that carry it by design (the login proof travels to the server in `login.proof`). */
  carriedBy?: readonly string[];
}

export interface Haystack {
  where: string;
  bytes: Uint8Array;
}

export interface Finding {
  needle: string;
  form: string;
  where: string;
}

/** A needle shorter than this can not be told from ordinary text (a 2-letter password matches half the log). */
export const NEEDLE_BYTES_MIN = 8;

const enc = new TextEncoder();

/** base64 text that depends only on the needle's bytes, whatever bytes surround it. */
function base64Cores(bytes: Uint8Array, url: boolean): string[] {
  const out: string[] = [];
  for (let shift = 0; shift < 3; shift++) {
    const padded = Buffer.concat([Buffer.alloc(shift), Buffer.from(bytes)]);
    let s = padded.toString(url ? 'base64url' : 'base64').replace(/=+$/, '');
    // drop the group that mixes in the prefix, and the last (partial) group
    if (shift > 0) s = s.slice(4);
    s = s.slice(0, Math.max(0, s.length - 4));
    if (s.length >= 8) out.push(s);
  }
  return out;
}

export function forms(n: Needle): Array<{ form: string; bytes: Uint8Array }> {
  const hex = Buffer.from(n.bytes).toString('hex');
  const out = [
    { form: 'raw', bytes: n.bytes },
    { form: 'hex', bytes: enc.encode(hex) },
    { form: 'HEX', bytes: enc.encode(hex.toUpperCase()) },
  ];
  for (const s of base64Cores(n.bytes, false)) out.push({ form: 'base64', bytes: enc.encode(s) });
  for (const s of base64Cores(n.bytes, true)) out.push({ form: 'base64url', bytes: enc.encode(s) });
  return out;
}

/** Bytes of a form's prefix that index it (every form is at least this long: NEEDLE_BYTES_MIN). */
const PREFIX_BYTES = 8;

function prefixKey(view: DataView, at: number): number {
  return (view.getUint32(at, true) ^ Math.imul(view.getUint32(at + 4, true), 0x9e3779b1)) >>> 0;
}

/**
 * Every (needle, form, haystack) where the form occurs inside one haystack.
 * The haystacks are searched as one buffer, in one pass: each position's
 * next 8 bytes are looked up among the forms' first 8 bytes, and a match is
 * then compared in full (hundreds of needles times ten forms over megabytes
 * of LMDB files stay fast). A hit that straddles two haystacks is not a hit.
 */
export function scan(haystacks: Haystack[], needles: Needle[]): Finding[] {
  const starts: number[] = [];
  let total = 0;
  for (const h of haystacks) {
    starts.push(total);
    total += h.bytes.length;
  }
  const all = Buffer.alloc(total);
  for (const [i, h] of haystacks.entries()) all.set(h.bytes, starts[i]);
  const haystackAt = (pos: number): number => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo; // the last haystack starting at or before pos: never an empty one, which shares its start with the next
  };
  const found: Finding[] = [];
  const reported = new Set<string>();
  const hit = (n: number, f: { form: string; bytes: Uint8Array }, pos: number, needle: Needle): void => {
    const h = haystackAt(pos);
    if (pos + f.bytes.length > starts[h]! + haystacks[h]!.bytes.length) return;
    const key = `${n}\u0000${f.form}\u0000${h}`;
    if (reported.has(key)) return;
    reported.add(key);
    found.push({ needle: needle.name, form: f.form, where: haystacks[h]!.where });
  };
  const index = new Map<number, Array<{ n: number; f: { form: string; bytes: Uint8Array } }>>();
  needles.forEach((needle, n) => {
    for (const f of forms(needle)) {
      if (f.bytes.length < PREFIX_BYTES) {
        // too short to index: searched on its own (NEEDLE_BYTES_MIN keeps real needles out of here)
        for (let pos = all.indexOf(f.bytes); pos >= 0; pos = all.indexOf(f.bytes, pos + 1)) hit(n, f, pos, needle);
        continue;
      }
      const k = prefixKey(new DataView(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength), 0);
      (index.get(k) ?? index.set(k, []).get(k)!).push({ n, f });
    }
  });
  const view = new DataView(all.buffer, all.byteOffset, all.byteLength);
  for (let pos = 0; pos + PREFIX_BYTES <= total; pos++) {
    const candidates = index.get(prefixKey(view, pos));
    if (!candidates) continue;
    for (const { n, f } of candidates) {
      if (pos + f.bytes.length <= total && all.compare(f.bytes, 0, f.bytes.length, pos, pos + f.bytes.length) === 0) hit(n, f, pos, needles[n]!);
    }
  }
  // In needle order, as the needles were given.
  const order = new Map(needles.map((n, i) => [n.name, i]));
  return found.sort((a, b) => order.get(a.needle)! - order.get(b.needle)!);
}

/** The needles a party's own store may not hold (its own keys are its own). */
export function notOwnedBy(needles: Needle[], party: string): Needle[] {
  return needles.filter((n) => !n.owners?.includes(party));
}

/**
 * A failure message: needle name, form and source of each finding (at most
 * `max`), and nothing else. Source descriptions are built from names and
 * indices; should one still hold a secret, it is replaced by the needle's name.
 */
export function describeFindings(findings: Finding[], needles: Needle[], max = 12): string {
  const lines = findings.slice(0, max).map((f) => `  - ${f.needle} (${f.form}) in ${f.where}`);
  if (findings.length > max) lines.push(`  … and ${findings.length - max} more`);
  let text = `${findings.length} secret(s) found:\n${lines.join('\n')}`;
  for (const n of needles) {
    for (const f of forms(n)) {
      const s = Buffer.from(f.bytes).toString('latin1');
      if (s.length >= NEEDLE_BYTES_MIN && text.includes(s)) text = text.split(s).join(`<${n.name}>`);
    }
  }
  return text;
}

/** Every file under a folder, as haystacks (LMDB data files included). */
export function filesUnder(dir: string): Haystack[] {
  const out: Haystack[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push({ where: p, bytes: new Uint8Array(readFileSync(p)) });
  }
  return out;
}

/** Log lines (JSON, one per line), each located by its index and the party that wrote it, never by its text. */
export function logHaystacks(lines: readonly string[], source = 'log'): Haystack[] {
  return lines.map((l, i) => {
    let party = '?';
    try {
      const p = (JSON.parse(l) as { party?: unknown }).party;
      if (typeof p === 'string' && /^[A-Za-z0-9/._-]{1,80}$/.test(p)) party = p;
    } catch {
      party = 'not JSON';
    }
    return { where: `${source} line ${i} (party ${party})`, bytes: utf8(l) };
  });
}

/** The leaves of a decoded value: bytes as they are, strings as UTF-8, object keys too; each with its path. */
function leaves(value: unknown, path: string, out: Array<{ path: string; bytes: Uint8Array }>, depth = 0): void {
  if (depth > 64) throw new Error(`${path}: nested deeper than 64 levels`);
  if (value instanceof Uint8Array) out.push({ path, bytes: value });
  else if (typeof value === 'string') out.push({ path, bytes: utf8(value) });
  else if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') out.push({ path, bytes: utf8(String(value)) });
  else if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) leaves(v, `${path}[${i}]`, out, depth + 1);
  } else if (value instanceof Map) {
    for (const [i, [k, v]] of [...value.entries()].entries()) {
      leaves(k, `${path}<key ${i}>`, out, depth + 1);
      leaves(v, `${path}<${i}>`, out, depth + 1);
    }
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.push({ path: `${path}<key>`, bytes: utf8(k) });
      leaves(v, `${path}.${/^[A-Za-z0-9_$-]{1,40}$/.test(k) ? k : '?'}`, out, depth + 1);
    }
  }
}

/**
 * An LMDB environment as haystacks: its files as they are on disk, and every
 * record of every named database decoded through the store API, key and
 * value leaf by leaf (a secret kept as a Uint8Array field, a base64 string
 * or a record key is found either way). `counts` gets the records read.
 */
export function storeHaystacks(store: PartyStore, label: string, counts?: { records: number }): Haystack[] {
  const out = filesUnder(store.path).map((h) => ({ where: `${label} file ${h.where.slice(store.path.length + 1)}`, bytes: h.bytes }));
  for (const name of store.env.getKeys() as Iterable<string>) {
    let i = 0;
    for (const { key, value } of store.db<unknown>(name).getRange()) {
      const at = `${label} LMDB db "${name}" record #${i++}`;
      out.push({ where: `${at} key`, bytes: utf8(String(key)) });
      const ls: Array<{ path: string; bytes: Uint8Array }> = [];
      leaves(value, 'value', ls);
      for (const l of ls) out.push({ where: `${at} ${l.path}`, bytes: l.bytes });
      if (counts) counts.records++;
    }
  }
  return out;
}

// ---- the secrets of an embedded system ------------------------------------------------------------

const storeOf = (p: object) => (p as unknown as { store: PartyStore }).store;
const keyDb = (p: object) => storeOf(p).db<{ kind: string; value: unknown }>('keys');

export interface SystemSecrets {
  /** Each user's password; the login proof and verifier are added when the server knows the user. */
  users: Array<{ user: string; password: string }>;
  values: ValueItem[];
  /** Chip serials (default: the chips the system holds now). */
  serials?: string[];
}

/** The issuer master (admin SAM) and each provider's master (its normal SAM), read from their own stores. */
export function systemMasters(system: EmbeddedSystem): { issuer: Uint8Array; providers: Map<string, Uint8Array> } {
  const issuer = keyDb(system.adminSam).get('issuer-master')!.value as Uint8Array;
  const providers = new Map([...system.providers].map(([p, prov]) => [p, keyDb(prov.normalSam).get('provider-master')!.value as Uint8Array]));
  return { issuer, providers };
}

/** K_chip and every K_main of each chip. */
export function chipKeyNeedles(issuerMaster: Uint8Array, providerMasters: Map<string, Uint8Array>, serials: Iterable<string>): Needle[] {
  const out: Needle[] = [];
  for (const serial of serials) {
    out.push({ name: `K_chip ${serial}`, bytes: deriveChipKey(Secret.of(issuerMaster), serial).reveal(), owners: ['admin-sam', `chip/${serial}`] });
    for (const [p, master] of providerMasters) {
      out.push({ name: `K_main ${serial}/${p}`, bytes: deriveMainKey(Secret.of(master), serial, p).reveal(), owners: [`normal-sam/${p}`, `chip/${serial}`] });
    }
  }
  return out;
}

/** The owners of a value item's plaintext: chips and the owning provider's SAMs. */
function valueOwners(system: EmbeddedSystem): string[] {
  const out = [...system.chips.keys()].map((s) => `chip/${s}`);
  for (const p of system.opts.providers) out.push(`normal-sam/${p}`, `migration-sam/${p}`);
  return out;
}

export function valueNeedles(values: ValueItem[], owners: string[]): Needle[] {
  return values.flatMap((v) => [
    { name: `value item ${v.ref.slice(0, 6)}…`, bytes: encodeValue(v), owners },
    { name: `marker ${v.ref.slice(0, 6)}…`, bytes: fromHex(v.ref), owners },
    { name: `marker text ${v.ref.slice(0, 6)}…`, bytes: utf8(v.ref), owners },
  ]);
}

/**
 * Every secret of a running embedded system, each with the parties whose own
 * store holds it by design: the users' passwords (first), their login proofs
 * (scrypt of the password: it logs in, so only `login.proof` carries it) and
 * the server's verifiers of them, the server's fake-salt key, the issuer and
 * provider masters, every party's identity keys (phones' device keys and chips' own keys too), K_chip and K_main of every
 * chip, every temp key the admin SAM made, and every value item (encoded,
 * its marker, and the marker as text).
 */
export function systemNeedles(system: EmbeddedSystem, opts: SystemSecrets): Needle[] {
  // Two passwords tried for one user (a wrong guess, then the right one) are told apart by their number.
  const label = (u: { user: string }, i: number) => (opts.users.filter((x) => x.user === u.user).length > 1 ? `${u.user} #${i + 1}` : u.user);
  const needles: Needle[] = opts.users.map((u, i) => ({ name: `password of ${label(u, i)}`, bytes: utf8(u.password) }));
  opts.users.forEach((u, i) => {
    const rec = system.server.records.users.get(u.user);
    if (!rec) return;
    const proof = stretchPassword(u.password, fromB64(rec.salt), rec);
    needles.push(
      { name: `login proof of ${label(u, i)}`, bytes: proof, carriedBy: ['login.proof'] },
      { name: `verifier of ${label(u, i)}`, bytes: sha256(proof), owners: ['server'] },
    );
  });
  const saltKey = system.server.records.secrets.get('salt-key');
  if (saltKey) needles.push({ name: 'server fake-salt key', bytes: saltKey, owners: ['server'] });
  const identity = (p: { id: string }) => {
    const ident = importIdentity(keyDb(p).get('identity')!.value as never);
    needles.push(
      { name: `${p.id} signing key`, bytes: ident.signSecret.reveal(), owners: [p.id] },
      { name: `${p.id} box key`, bytes: ident.boxSecret.reveal(), owners: [p.id] },
    );
  };
  const { issuer, providers } = systemMasters(system);
  needles.push({ name: 'issuer master', bytes: issuer, owners: ['admin-sam'] });
  identity(system.server);
  identity(system.adminSam);
  for (const [p, prov] of system.providers) {
    needles.push({ name: `${p} provider master`, bytes: providers.get(p)!, owners: [prov.normalSam.id] });
    identity(prov.normalSam);
    identity(prov.migrationSam);
  }
  // A phone's device key (its terminal's identity) and a chip's own key live in their own stores, and nowhere else.
  for (const t of system.terminals.values()) identity(t);
  for (const c of system.chips.values()) identity(c);
  needles.push(...chipKeyNeedles(issuer, providers, opts.serials ?? system.chips.keys()));
  needles.push(...tempKeyNeedles(tempKeysOf(system), system.chips.keys()));
  needles.push(...valueNeedles(opts.values, valueOwners(system)));
  return needles;
}

/**
 * The admin SAM deletes a temp key's bytes once its item is settled (S16, or
 * the source's restore; adminTempKeys.ts, TempKeys.endTempKeys): after a migration
 * its store holds the records with `key: null`. A scan still has to search
 * for every temp key the run made, so each is caught as the admin SAM stores
 * it: `watchTempKeys(dataDir)` is an `onPartyStarted` hook (buildWorld and
 * spySystems install it, and a restarted admin SAM is watched again), by the
 * system's data folder.
 */
const caught = new Map<string, Map<string, TempKeyRecord>>();

export function watchTempKeys(dataDir: string): (party: PartyRuntime) => void {
  const seen = caught.get(dataDir) ?? caught.set(dataDir, new Map()).get(dataDir)!;
  return (party) => {
    if (!(party instanceof AdminSamRuntime)) return;
    const db = party.records.tempKeys as unknown as { put: (k: string, rec: TempKeyRecord, ...rest: unknown[]) => unknown };
    const put = db.put;
    db.put = function (this: unknown, k: string, rec: TempKeyRecord, ...rest: unknown[]) {
      if (rec.key !== null) seen.set(`${rec.mig}/${rec.item}`, { ...rec, key: new Uint8Array(rec.key) });
      return put.call(this, k, rec, ...rest);
    };
  };
}

/** The temp keys caught for the system started in `dataDir` (see watchTempKeys). */
export function caughtTempKeys(dataDir: string): TempKeyRecord[] {
  return [...(caught.get(dataDir)?.values() ?? [])];
}

/** Drops what was caught for `dataDir` (its world is cleaned up). */
export function forgetTempKeys(dataDir: string): void {
  caught.delete(dataDir);
}

/**
 * Every temp key a running system made: the ones caught as they were stored,
 * and any its admin SAM still holds. A deleted key that was not caught fails
 * loudly: a scan that silently left it out would pass for the wrong reason.
 */
export function tempKeysOf(system: EmbeddedSystem): TempKeyRecord[] {
  const out = new Map(caughtTempKeys(system.opts.dataDir).map((r) => [`${r.mig}/${r.item}`, r]));
  for (const { value } of system.adminSam.records.tempKeys.getRange()) {
    const name = `${value.mig}/${value.item}`;
    if (value.key !== null) out.set(name, value);
    else if (!out.has(name))
      throw new Error(
        `temp key ${name} was deleted by the admin SAM before this scan and never caught: start the system with watchTempKeys (buildWorld and spySystems do)`,
      );
  }
  return [...out.values()];
}

/** One needle per temp key; its owners are the admin SAM, the migration SAM it was granted to, and the chips. */
export function tempKeyNeedles(records: Iterable<TempKeyRecord>, serials: Iterable<string>): Needle[] {
  const chips = [...serials].map((s) => `chip/${s}`);
  return [...records].flatMap((r) =>
    r.key === null ? [] : [{ name: `temp key ${r.mig}/${r.item}`, bytes: r.key, owners: ['admin-sam', r.recipient, ...chips] }],
  );
}

/** The needles a recorded envelope of this type may not carry. */
export function needlesForEnvelope(needles: Needle[], type: string): Needle[] {
  return needles.filter((n) => !n.carriedBy?.includes(type));
}

/**
 * Recorded envelopes (encoded bytes, before channel encryption) searched for
 * every needle except those their type carries by design.
 */
export function envelopeFindings(recorded: Array<{ where: string; bytes: Uint8Array }>, needles: Needle[]): Finding[] {
  const byType = new Map<string, Haystack[]>();
  for (const r of recorded) {
    let type = '(not an envelope)';
    try {
      type = decodeEnvelope(r.bytes).type;
    } catch {
      // bytes a party was sent and refused (bad input): searched for every needle
    }
    (byType.get(type) ?? byType.set(type, []).get(type)!).push(r);
  }
  return [...byType].flatMap(([type, hs]) => scan(hs, needlesForEnvelope(needles, type)));
}

/** Haystacks of one kind; `owner`: a party's own store, searched for every needle but that party's own keys. */
export interface Source {
  kind: 'log' | 'error' | 'trace' | 'lmdb' | 'envelope';
  owner?: string;
  haystacks: Haystack[];
}

export function findingsIn(sources: Source[], needles: Needle[]): Finding[] {
  return sources.flatMap((s) =>
    s.kind === 'envelope' ? envelopeFindings(s.haystacks, needles) : scan(s.haystacks, s.owner ? notOwnedBy(needles, s.owner) : needles),
  );
}
