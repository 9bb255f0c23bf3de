/**
 * Issue 21, point 5: docs/deploying.md names every environment variable the
 * code reads and every config key a process takes. The variables are read
 * from src/ itself (`process.env.X`, and the `'VALMOVE_…'` names a module
 * keeps in a constant); the keys from the config schemas (src/deploy/config.ts),
 * the door's limits from docs/limits.md. The checks are plain functions, so
 * the last test shows each one failing on a page that misses an entry.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { z } from 'zod';
import { configSchema } from '../../src/deploy/config.ts';
import { DEFAULT_TIMING } from '../../src/timing.ts';
import { limitsSchema } from '../../src/transport/limits.ts';
import { tsFilesUnder } from '../helpers/sourceFiles.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const deploying = readFileSync(join(ROOT, 'docs', 'deploying.md'), 'utf8');
const limitsDoc = readFileSync(join(ROOT, 'docs', 'limits.md'), 'utf8');

/** Every environment variable src/ reads: `process.env.X`, `process.env['X']`, and string constants 'VALMOVE_…'. */
function envVariables(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of tsFilesUnder(join(ROOT, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/process\.env(?:\.([A-Z][A-Z0-9_]*)|\[['"]([A-Z][A-Z0-9_]*)['"]\])|['"](VALMOVE_[A-Z0-9_]+)['"]/g)) {
      found.set(m[1] ?? m[2] ?? m[3]!, file.slice(ROOT.length + 1));
    }
  }
  return found;
}

/** The first cells of the markdown table rows under the heading `heading` (up to the next heading). */
function tableKeys(md: string, heading: string): Set<string> {
  const start = md.indexOf(`\n${heading}\n`);
  if (start < 0) return new Set();
  const rest = md.slice(start + heading.length + 2);
  const end = rest.search(/\n#{1,6} /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return new Set([...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!));
}

/** Variables the code reads that the page's "Environment variables" table does not name. */
function undocumentedEnv(md: string, vars: Iterable<string>): string[] {
  const rows = tableKeys(md, '### Environment variables');
  return [...vars].filter((v) => !rows.has(v));
}

/** Top-level config keys of every role that the page's "Config keys" table does not name. */
function undocumentedKeys(md: string): string[] {
  const rows = tableKeys(md, '### Config keys');
  const keys = new Set<string>();
  for (const option of configSchema.options) for (const k of Object.keys((option as z.ZodObject).shape)) keys.add(k);
  return [...keys].filter((k) => !rows.has(k));
}

/** Timing keys the config table's `timing` row does not name, and door limits docs/limits.md does not. */
function undocumentedNested(md: string, limitsMd: string): string[] {
  const timingRow = md.split('\n').find((l) => l.startsWith('| `timing` |')) ?? '';
  const timing = Object.keys(DEFAULT_TIMING).filter((k) => !timingRow.includes(`\`${k}\``));
  const limitKeys = Object.keys(innerShape(limitsSchema));
  return [...timing.map((k) => `timing.${k}`), ...limitKeys.filter((k) => !limitsMd.includes(`\`${k}\``)).map((k) => `limits.${k}`)];
}

/** The keys of a refined object schema (zod wraps it; its definition keeps the object). */
function innerShape(schema: unknown): Record<string, unknown> {
  let s = schema as { shape?: Record<string, unknown>; def?: { in?: unknown; schema?: unknown; innerType?: unknown } };
  for (let i = 0; i < 8 && !s.shape; i++) s = (s.def?.in ?? s.def?.schema ?? s.def?.innerType) as typeof s;
  return s.shape ?? {};
}

test('every environment variable src/ reads is in the table of docs/deploying.md', () => {
  const vars = envVariables();
  assert.ok(vars.has('VALMOVE_LOG_LEVEL') && vars.has('VALMOVE_CRYPTO'), `the scan finds the variables: ${[...vars.keys()].join(', ')}`);
  const missing = undocumentedEnv(deploying, vars.keys());
  assert.equal(missing, [], `not documented: ${missing.map((v) => `${v} (${vars.get(v)})`).join(', ')}`);
});

test('every config key of every role is in the table of docs/deploying.md, timing keys in its row, limits in docs/limits.md', () => {
  assert.equal(undocumentedKeys(deploying), []);
  const nested = undocumentedNested(deploying, limitsDoc);
  assert.equal(nested, []);
  assert.ok(Object.keys(innerShape(limitsSchema)).includes('linksMax'), 'the limits are read from their schema');
});

test('the checks fail on a page that misses an entry', () => {
  const noLevel = deploying.replace(/^\| `VALMOVE_LOG_LEVEL` \|.*\n/m, '');
  assert.equal(undocumentedEnv(noLevel, envVariables().keys()), ['VALMOVE_LOG_LEVEL']);
  const noScrypt = deploying.replace(/^\| `scrypt` \|.*\n/m, '');
  assert.equal(undocumentedKeys(noScrypt), ['scrypt']);
  const noRetention = deploying.replace('`inboxRetentionMs`', 'the retention');
  assert.equal(undocumentedNested(noRetention, limitsDoc.replaceAll('`linksMax`', 'links')), ['timing.inboxRetentionMs', 'limits.linksMax']);
});

test.run();
