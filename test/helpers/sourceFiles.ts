/** The TypeScript files under a folder, recursively: what the source-scanning tests read. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

export function tsFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFilesUnder(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}
