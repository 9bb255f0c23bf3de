/**
 * A party's durable state, byte for byte: every record of every database in
 * its LMDB environment (its own records, its actors' snapshots, its inbox,
 * outbox and sequence number), read raw. Two images compare by content, so
 * a record rewritten with the same bytes is no change, and a difference is
 * named by database and key. Not a test file.
 */
import type { Database, RootDatabase } from 'lmdb';
import type { PartyRuntime } from '../../src/actors/runtime.ts';
import { storeOf } from './seats.ts';

/** database name -> key (latin1) -> value (latin1). */
export type Image = Map<string, Map<string, string>>;

const rawDbs = new WeakMap<RootDatabase, Map<string, Database<Buffer, Buffer> | null>>();

function rawDb(env: RootDatabase, name: string): Database<Buffer, Buffer> | null {
  let byName = rawDbs.get(env);
  if (!byName) rawDbs.set(env, (byName = new Map()));
  if (!byName.has(name)) {
    // create: false, so a root key that is not a database opens nothing (and creates nothing).
    const db = env.openDB({ name, encoding: 'binary', keyEncoding: 'binary', create: false } as never) as Database<Buffer, Buffer> | undefined;
    byName.set(name, db ?? null);
  }
  return byName.get(name)!;
}

export function imageOf(party: PartyRuntime): Image {
  const env = storeOf(party).env;
  const out: Image = new Map();
  for (const name of env.getKeys()) {
    const key = String(name);
    const db = rawDb(env, key);
    const records = new Map<string, string>();
    if (db) {
      for (const { key: k, value } of db.getRange()) records.set(Buffer.from(k).toString('latin1'), Buffer.from(value).toString('latin1'));
    } else {
      records.set('', Buffer.from(env.getBinary(name) ?? []).toString('latin1'));
    }
    out.set(key, records);
  }
  return out;
}

export interface Change {
  db: string;
  key: string;
  how: 'added' | 'removed' | 'changed';
}

export function changes(before: Image, after: Image): Change[] {
  const out: Change[] = [];
  for (const db of new Set([...before.keys(), ...after.keys()])) {
    const a = before.get(db) ?? new Map<string, string>();
    const b = after.get(db) ?? new Map<string, string>();
    for (const [k, v] of b) {
      if (!a.has(k)) out.push({ db, key: k, how: 'added' });
      else if (a.get(k) !== v) out.push({ db, key: k, how: 'changed' });
    }
    for (const k of a.keys()) if (!b.has(k)) out.push({ db, key: k, how: 'removed' });
  }
  return out;
}

export function describeChanges(cs: Change[]): string {
  if (cs.length === 0) return 'none';
  const shown = cs.slice(0, 8).map((c) => `${c.db}[${JSON.stringify(c.key).slice(0, 60)}] ${c.how}`);
  return `${shown.join(', ')}${cs.length > 8 ? `, and ${cs.length - 8} more` : ''}`;
}
