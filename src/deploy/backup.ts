/**
 * `valmove backup` and `valmove restore`: a party's LMDB stores, copied hot
 * and put back cold.
 *
 * A backup opens each store of the process read-only, from another process,
 * and copies it with LMDB's own copy (mdb_env_copy2, lmdb-js `backup`): the
 * copy runs inside one read transaction, so it is the store as one commit
 * left it, whatever the running party writes meanwhile (LMDB's readers never
 * block its writer, nor see half of a write). A process with two stores (a
 * provider: its migration SAM and its normal SAM; a server with the admin SAM
 * embedded) gets one copy of each, each consistent, taken one after the
 * other: docs/deploying.md says what that means.
 *
 * A restore refuses while the process answers on its address (it would
 * write under a running party), refuses a backup of another process, and
 * refuses to replace a data folder that holds anything unless forced; forced,
 * the folder is moved aside, never deleted. The restored store's message
 * sequence is moved past any number the party may have used since the backup
 * (see RESTORE_SEQ_GAP): the one write a restore makes.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { open } from 'lmdb';
import { PartyStore, DATABASES_MAX } from '../store/party.store.ts';
import type { ProcessConfig } from './config.ts';

/** The manifest a backup folder holds beside its stores. */
export const MANIFEST = 'valmove-backup.json';
/** Stores one process keeps at most (server + embedded admin SAM; a provider's two SAMs): a bound on the folder walk. */
const STORES_MAX = 4;
/**
 * A restored party numbers its requests from at least this far past the
 * clock and past the backup's own count (ms-based numbers: some eleven
 * days). A receiver keeps, per request id, the reply it sent: a restored
 * sender that numbered a new request as it numbered one after the backup
 * would be answered with that other request's reply.
 */
export const RESTORE_SEQ_GAP = 1_000_000_000;
/**
 * Roles whose older copy can create or duplicate value (docs/deploying.md, "Restoring an older copy"):
 * restored only with `acceptRisk`, after the procedure there. The server and terminals restore freely.
 */
export const RISKY_RESTORE_ROLES: ReadonlySet<string> = new Set(['admin-sam', 'provider', 'chip']);
/** How long the restore waits for a running process's /healthz before it takes the process as stopped. */
const PROBE_TIMEOUT_MS = 1_000;

export interface BackupManifest {
  role: string;
  id: string;
  takenAt: string;
  /** Each store, as a folder relative to the process's data folder ('.' for the data folder itself). */
  stores: Array<{ name: string; from: string }>;
}

export class BackupError extends Error {}

/** Every LMDB store the process keeps, by a name that is its folder under the backup. */
export function storesOf(cfg: ProcessConfig): Array<{ name: string; dir: string }> {
  const out: Array<{ name: string; dir: string }> = [];
  const walk = (root: string, prefix: string) => {
    if (existsSync(join(root, 'data.mdb'))) out.push({ name: prefix || '.', dir: root });
    else if (existsSync(root)) {
      for (const e of readdirSync(root, { withFileTypes: true })) {
        if (e.isDirectory() && existsSync(join(root, e.name, 'data.mdb'))) out.push({ name: join(prefix, e.name), dir: join(root, e.name) });
      }
    }
  };
  walk(cfg.dataDir, '');
  if (cfg.role === 'server' && 'embedded' in cfg.adminSam) walk(cfg.adminSam.dataDir, 'embedded-admin-sam');
  if (out.length > STORES_MAX) throw new BackupError(`${cfg.dataDir} holds ${out.length} stores; a process keeps at most ${STORES_MAX}`);
  return out;
}

/** Copies every store of the process into `to` (a new or empty folder), each in one read transaction. */
export async function backupParty(cfg: ProcessConfig, to: string, opts: { compact?: boolean } = {}): Promise<BackupManifest> {
  if (existsSync(to) && readdirSync(to).length > 0) throw new BackupError(`${to} is not empty; a backup goes into a new or empty folder`);
  const stores = storesOf(cfg);
  if (stores.length === 0) throw new BackupError(`${cfg.dataDir} holds no store (no data.mdb): nothing to back up`);
  for (const s of stores) {
    const target = join(to, s.name);
    mkdirSync(target, { recursive: true });
    const env = open({ path: s.dir, readOnly: true, noSubdir: false, maxDbs: DATABASES_MAX });
    try {
      await env.backup(target, opts.compact ?? false);
    } finally {
      await env.close();
    }
  }
  const manifest: BackupManifest = {
    role: cfg.role,
    id: cfg.id,
    takenAt: new Date().toISOString(),
    stores: stores.map((s) => ({ name: s.name, from: relative(cfg.dataDir, s.dir) || '.' })),
  };
  writeFileSync(join(to, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Whether something answers /healthz on the process's own address (then it runs, and its stores are not ours to replace). */
async function answers(cfg: ProcessConfig): Promise<boolean> {
  const host = cfg.listen.host === '0.0.0.0' || cfg.listen.host === '::' ? '127.0.0.1' : cfg.listen.host;
  const scheme = cfg.tls ? 'https' : 'http';
  try {
    await fetch(`${scheme}://${host.includes(':') ? `[${host}]` : host}:${cfg.listen.port}/healthz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    return true;
  } catch {
    return false;
  }
}

function readManifest(from: string): BackupManifest {
  const path = join(from, MANIFEST);
  if (!existsSync(path)) throw new BackupError(`${from} is not a valmove backup (no ${MANIFEST})`);
  return JSON.parse(readFileSync(path, 'utf8')) as BackupManifest;
}

/** The folders a restore writes: each store's, under the process's data folder (or the embedded admin SAM's). */
function targetOf(cfg: ProcessConfig, name: string, from: string): string {
  if (name.startsWith('embedded-admin-sam') && cfg.role === 'server' && 'embedded' in cfg.adminSam) return cfg.adminSam.dataDir;
  return from === '.' ? cfg.dataDir : join(cfg.dataDir, from);
}

/**
 * Puts a backup in place of the process's stores. The process must be
 * stopped; a data folder that holds anything is refused unless `force`,
 * and then moved aside to `<folder>-replaced-<time>`.
 */
export async function restoreParty(
  cfg: ProcessConfig,
  from: string,
  opts: { force?: boolean; acceptRisk?: boolean; now?: number } = {},
): Promise<{ manifest: BackupManifest; movedAside: string[] }> {
  const manifest = readManifest(from);
  if (manifest.role !== cfg.role || manifest.id !== cfg.id) {
    throw new BackupError(`${from} is a backup of ${manifest.role} ${manifest.id}, not of ${cfg.role} ${cfg.id}`);
  }
  if (RISKY_RESTORE_ROLES.has(cfg.role) && !opts.acceptRisk) {
    throw new BackupError(
      `an older copy of a ${cfg.role} can duplicate or create value (docs/deploying.md, "Restoring an older copy"); ` +
        'follow the procedure there, then restore with --accept-risk',
    );
  }
  if (await answers(cfg)) throw new BackupError(`${cfg.id} is running (it answers on port ${cfg.listen.port}); stop it before a restore`);
  const now = opts.now ?? Date.now();
  const stamp = new Date(now).toISOString().replace(/[:.]/g, '-');
  const aside = new Map<string, string>();
  const targets = [...new Set(manifest.stores.map((s) => (s.name.startsWith('embedded-admin-sam') ? targetOf(cfg, s.name, s.from) : cfg.dataDir)))];
  for (const dir of targets) {
    if (!existsSync(dir) || readdirSync(dir).length === 0) continue;
    if (!opts.force) throw new BackupError(`${dir} exists and is not empty; restore over it with --force (it is moved aside, not deleted)`);
    renameSync(dir, `${dir}-replaced-${stamp}`);
    aside.set(dir, `${dir}-replaced-${stamp}`);
  }
  for (const s of manifest.stores) {
    const target = targetOf(cfg, s.name, s.from);
    mkdirSync(target, { recursive: true });
    // The data file only: LMDB makes a new lock file at the next open.
    cpSync(join(from, s.name, 'data.mdb'), join(target, 'data.mdb'));
    // The store this one replaced, if it was moved aside: its count is the highest the party reached.
    const replaced = [...aside].find(([dir]) => target === dir || target.startsWith(`${dir}/`));
    await moveSeqPast(target, replaced ? replaced[1] + target.slice(replaced[0].length) : undefined, now);
  }
  return { manifest, movedAside: [...aside.values()] };
}

/** The restored store numbers its next request past the clock, the backup and the store it replaced (RESTORE_SEQ_GAP). */
async function moveSeqPast(dir: string, replaced: string | undefined, now: number): Promise<void> {
  const store = PartyStore.open(dir);
  try {
    const highest = Math.max(now, (store.meta.get('seq') as number | undefined) ?? 0, replaced ? await seqIn(replaced) : 0);
    await store.commit(() => store.meta.put('seq', highest + RESTORE_SEQ_GAP));
  } finally {
    await store.close();
  }
}

/** The sequence a replaced store had reached, when it can still be read (0 when not). */
async function seqIn(dir: string): Promise<number> {
  if (!existsSync(join(dir, 'data.mdb'))) return 0;
  const env = open({ path: dir, readOnly: true, noSubdir: false, maxDbs: DATABASES_MAX });
  try {
    return (env.openDB({ name: 'meta' }).get('seq') as number | undefined) ?? 0;
  } catch {
    return 0; // a store too damaged to read: the clock and the backup's count decide
  } finally {
    await env.close();
  }
}
