/**
 * A deployment folder that already holds one (issue 21): `keygen` and `up`
 * refuse to write over it unless told `--force`, because new identities and
 * master keys cut every chip already personalised off its keys, and an old
 * LMDB folder under new keys is a party that no longer answers.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** What keygen and up write into a deployment folder: replaced as a whole by --force, so nothing stale is left. */
export const DEPLOYMENT_ENTRIES = ['trust.json', 'keys', 'config', 'data', 'logs'] as const;

/** The entries of a deployment in `dir`, each named with what it holds ("keys/ (9 files)"); empty when there is none. */
export function existingDeployment(dir: string): string[] {
  const found: string[] = [];
  for (const entry of DEPLOYMENT_ENTRIES) {
    const path = join(dir, entry);
    if (!existsSync(path)) continue;
    if (!statSync(path).isDirectory()) {
      found.push(entry);
      continue;
    }
    const n = readdirSync(path).length;
    if (n > 0) found.push(`${entry}/ (${n} ${n === 1 ? 'entry' : 'entries'})`);
  }
  return found;
}

/**
 * Refuses (throws, naming what exists) unless the folder holds no deployment
 * or `force` is set; with `force`, removes the old deployment's entries and
 * returns the line that says what was replaced.
 */
export function guardDeployment(dir: string, force: boolean): string | undefined {
  const found = existingDeployment(dir);
  if (found.length === 0) return undefined;
  if (!force) {
    throw new Error(
      `${dir} already holds a deployment: ${found.join(', ')}. New keys would cut every chip off the keys it holds; ` +
        'nothing was changed. Give --force to replace it, or choose another --dir',
    );
  }
  for (const entry of DEPLOYMENT_ENTRIES) rmSync(join(dir, entry), { recursive: true, force: true });
  return `replacing the deployment in ${dir}: removed ${found.join(', ')}`;
}
