/**
 * The admin SAM's receipt check at commit (adminDecisions.ts, checkReceipts;
 * protocol.md §3): through the real system, the test in the server's seat.
 * A commit is refused RECEIPT_REFUSED, with the reason named, when no
 * destination was formatted, when an item has no receipt, and when a receipt
 * genuinely signed by the item's migration SAM is bound to another
 * migration, chip, area or provider, or comes from a migration SAM the admin
 * SAM no longer knows; the record stays pending, and the
 * migration still completes afterwards with its real receipts.
 * Written to kill mutants `npm run mutate` found surviving (docs/mutation.md):
 * the rogue-server test asserts the refusal code only.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { steering, type Steering } from '../../src/testing/steering.ts';
import type { MigrationResult } from '../../src/actors/terminal.actor.ts';
import { signReceipt, toB64, type Identity } from '../../src/crypto/index.ts';
import { buildWorld, type World } from '../helpers/world.ts';
import { asServer, isAttackId, refusalOf } from './relay.ts';

const WAIT_MS_MAX = 10_000;
async function until(what: string, ok: () => boolean): Promise<void> {
  for (const end = Date.now() + WAIT_MS_MAX; !ok(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const t = suite('admin SAM receipts at commit');
let world: World;
let mig = '';
let done: Promise<MigrationResult> | undefined;
const hold = new Set<string>();
let keepAlive: NodeJS.Timeout | undefined;
const steer: Steering = {
  beforeRequest: (party, env) => (party.startsWith('migration-sam/') && hold.has(env.type) && !isAttackId(env.id) ? { holdMs: 25 } : undefined),
};
const provider = () => world.providers[0]!;
const msamId = () => `migration-sam/${provider()}`;
/** The migration SAM's real signing identity: receipts below are genuinely signed, only bound elsewhere. */
const msamIdentity = (): Identity =>
  (world.system as unknown as { providerIdentities: Record<string, { migration: Identity }> }).providerIdentities[provider()]!.migration;

async function commitAnswer(receipts: unknown[]): Promise<{ code: string; message: string }> {
  const seat = asServer(world, 'admin-sam');
  try {
    return refusalOf(await seat.answerTo(seat.send('admin.commit', { receipts } as never, { mig, step: 'commit' })));
  } finally {
    await seat.giveBack();
  }
}

t.before(async () => {
  keepAlive = setInterval(() => {}, 1_000);
  world = await buildWorld({ items: 1, system: { intercept: steering(steer) } });
  const out = await world.oldPhone.migrateOut();
  assert.is(out.outcome, 'uploaded', out.reason);
  mig = out.mig;
});

t.after(async () => {
  hold.clear();
  try {
    await world.cleanup();
  } finally {
    clearInterval(keepAlive);
  }
});

/** A receipt the migration SAM really signed, for this migration's item 0 on the destination chip. */
const goodBody = () => ({ mig, item: 0, serial: world.destination.serial, area: provider(), provider: provider(), kcv: toB64(new Uint8Array(8)) });

t('receipts: a commit before any destination was formatted is refused, naming that', async () => {
  assert.equal(await commitAnswer([signReceipt(goodBody(), msamIdentity())]), {
    code: 'RECEIPT_REFUSED',
    message: 'no destination was formatted for this migration',
  });
  assert.is(world.system.adminSam.decisionOf(mig), 'pending');
});

t('receipts: (the destination is formatted; its download is held)', async () => {
  hold.add('msam.download');
  done = world.newPhone.migrateIn({ mig });
  await until('the destination to be formatted', () => world.destination.memory.get(provider())?.state === 'provisioned');
  await until('the download to be asked for', () => JSON.stringify(world.system.server.migrationState(mig)).includes('downloading'));
});

t('receipts: a commit with no receipt for an item is refused, naming the item and its area (a receipt for another item does not stand for it)', async () => {
  assert.equal(await commitAnswer([signReceipt({ ...goodBody(), item: 1 }, msamIdentity())]), {
    code: 'RECEIPT_REFUSED',
    message: `no receipt for item 0 (${provider()})`,
  });
  assert.is(world.system.adminSam.decisionOf(mig), 'pending');
});

t('receipts: a receipt signed by the right migration SAM but bound to another migration, chip, area or provider is refused', async () => {
  const good = goodBody();
  const bound = `the receipt for item 0 is bound to another migration, chip, area or provider`;
  for (const change of [{ mig: `${mig}-other` }, { serial: world.source.serial }, { area: 'another-area' }, { provider: 'another-provider' }]) {
    const receipt = signReceipt({ ...good, ...change }, msamIdentity());
    assert.equal(await commitAnswer([receipt]), { code: 'RECEIPT_REFUSED', message: bound }, JSON.stringify(change));
  }
  // the same receipt unchanged, but signed by another key (the admin SAM's own), is not the migration SAM's
  assert.equal(await commitAnswer([signReceipt(good, adminIdentity())]), {
    code: 'RECEIPT_REFUSED',
    message: `the receipt for item 0 is not signed by ${msamId()}`,
  });
  assert.is(world.system.adminSam.decisionOf(mig), 'pending');
});

t('receipts: a receipt from a migration SAM the admin SAM no longer knows (its configuration changed after the lock) is refused, never committed', async () => {
  const known = (world.system.adminSam as unknown as { opts: { migrationSams: Record<string, unknown> } }).opts.migrationSams;
  const saved = known[msamId()];
  delete known[msamId()];
  try {
    assert.equal(await commitAnswer([signReceipt(goodBody(), msamIdentity())]), {
      code: 'RECEIPT_REFUSED',
      message: `${msamId()} is not a known migration SAM`,
    });
  } finally {
    known[msamId()] = saved;
  }
  assert.is(world.system.adminSam.decisionOf(mig), 'pending');
});

t('receipts: after every refusal the migration still completes with its real receipts', async () => {
  hold.clear();
  const r = await done!;
  assert.is(r.outcome, 'completed', r.reason);
  assert.is(world.system.adminSam.decisionOf(mig), 'committed');
});

function adminIdentity(): Identity {
  return (world.system as unknown as { adminIdentity: Identity }).adminIdentity;
}

t.run();
