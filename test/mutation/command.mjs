#!/usr/bin/env node
/**
 * The test command of `npm run mutate` (stryker.config.mjs, commandRunner;
 * docs/mutation.md). Stryker names the mutant under test in
 * __STRYKER_ACTIVE_MUTANT__; the instrumented sources in its sandbox show
 * which file holds it, and this picks the tests for that file, in groups,
 * stopping at the first group that fails (exit 1: the mutant is killed):
 *
 *   src/machines/*  machines/*.test.ts, then the chip group
 *   src/crypto/*    crypto/{grant,grant.edges,keys,kcv,vectors}.test.ts, then the chip group
 *   src/actors/*    security/{receipts,grantRequests}, the chip group, then
 *                   security/servers for the migration SAM's rights
 *                   (rightsOf, requireRight, onEnvelope), else
 *                   security/rogueServer (receipts, grants, key check value)
 *   chip group      actors/chip.actor, security/chipMisuse, security/replay
 *   no mutant (Stryker's dry run): every group
 *
 * A test left out for a file can only turn a kill into a survivor, never the
 * reverse, so the score is a lower bound of the score against all of them
 * (the rogue-server test, 25-45 s, runs only for actor mutants outside the
 * rights: it is what exercises them; unit tests first make a kill cost 1-4 s
 * instead of ~60 s for the whole set).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const GROUPS = {
  machines: '^machines/[a-z.]+\\.test\\.ts$',
  crypto: '^crypto/(grant|grant\\.edges|keys|kcv|vectors)\\.test\\.ts$',
  focus: '^security/(receipts|grantRequests)\\.test\\.ts$',
  chip: '^(actors/chip\\.actor|security/(chipMisuse|replay))\\.test\\.ts$',
  servers: '^security/servers\\.test\\.ts$',
  rogue: '^security/rogueServer\\.test\\.ts$',
};

/**
 * Seconds a group may take before it counts as hung (normal, on a loaded 2-core
 * machine: machines 1 s, crypto 3 s, chip 12 s, servers 6 s, rogue 35 s). A
 * mutant that stops a migration from ever finishing would otherwise wait for
 * Stryker's own timeout (1.5 x the whole dry run + 10 s, ~100 s); a hung group
 * exits 1 here, and Stryker reports the mutant killed (docs/mutation.md).
 */
const BASE_LIMIT_S = { machines: 30, crypto: 40, focus: 30, chip: 35, servers: 30, rogue: 120 };
/** On a machine busy with other work, VALMOVE_MUTATE_SLACK=2 (say) stretches every limit: a slow group must not count as hung. */
const SLACK = Math.max(1, Number(process.env.VALMOVE_MUTATE_SLACK ?? 1) || 1);
const LIMIT_S = Object.fromEntries(Object.entries(BASE_LIMIT_S).map(([g, s]) => [g, s * SLACK]));

/** The instrumented file holding the mutant, and the method it sits in (the nearest declaration above it). */
function whereIs(id) {
  if (id === undefined) return {};
  const needle = `stryMutAct_9fa48("${id}")`;
  for (const dir of ['src/actors', 'src/machines', 'src/crypto']) {
    for (const f of readdirSync(dir)) {
      if (!f.endsWith('.ts')) continue;
      const text = readFileSync(join(dir, f), 'utf8');
      const at = text.indexOf(needle);
      if (at < 0) continue;
      let method;
      let best = -1;
      for (const m of text.matchAll(/\n\s*(?:private|protected)(?: override)? (?:async )?(\w+)\(/g)) {
        if (m.index < at && m.index > best) [best, method] = [m.index, m[1]];
      }
      return { file: join(dir, f), method };
    }
  }
  return {};
}

const { file, method } = whereIs(process.env.__STRYKER_ACTIVE_MUTANT__);
// The migration SAM's rights (rightsOf, requireRight, the preflight in onEnvelope) are what
// security/servers tests; the receipts, grants and key check value what the rogue server attacks.
const RIGHTS = new Set(['rightsOf', 'requireRight', 'onEnvelope']);
const order =
  file === undefined
    ? ['machines', 'crypto', 'focus', 'chip', 'servers', 'rogue']
    : file.startsWith('src/actors/')
      ? RIGHTS.has(method)
        ? ['focus', 'chip', 'servers']
        : ['focus', 'chip', 'rogue']
      : file.startsWith('src/machines/')
        ? ['machines', 'chip']
        : ['crypto', 'chip'];
for (const g of order) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'node_modules/uvu/bin.js', 'test', GROUPS[g], '--bail', '--color', 'false'], {
    stdio: 'inherit',
    timeout: LIMIT_S[g] * 1000,
    killSignal: 'SIGKILL',
  });
  if (r.status !== 0) {
    const why = r.error?.code === 'ETIMEDOUT' ? `hung: over ${LIMIT_S[g]} s` : `status ${r.status ?? r.signal}`;
    console.error(`mutation command: group ${g} failed (${file ?? 'no mutant'} ${method ?? ''}; ${why})`);
    process.exit(1);
  }
}
