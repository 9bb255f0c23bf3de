/**
 * The migration SAM's grant check (migrationSam.actor.ts, checkGrant):
 * through the real system, the test in the server's seat after one migration
 * completed. A grant request must name its item in its header (the item is
 * part of the binding the grant is checked against: without it the grant of
 * any item would do), and a refused grant names the check that refused it. Written to kill mutants `npm run mutate` found surviving
 * (docs/mutation.md).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildWorld, type World } from '../helpers/world.ts';
import { asServer, recording, refusalOf, requestTo, state } from './relay.ts';

const t = suite('migration SAM grant requests');
let world: World;
let mig = '';
const msam = () => `migration-sam/${world.providers[0]!}`;

t.before(async () => {
  world = await buildWorld({ items: 1, record: true });
  const out = await world.oldPhone.migrateOut();
  assert.is(out.outcome, 'uploaded', out.reason);
  const done = await world.newPhone.migrateIn({ mig: out.mig });
  assert.is(done.outcome, 'completed', done.reason);
  mig = out.mig;
});

t.after(async () => {
  await world.cleanup();
});

t(
  'grant requests: an upload or download with no item in its header is refused BAD_ENVELOPE, before its grant is looked at; a forged grant is refused naming the check',
  async () => {
    const seen = recording(world);
    const upload = requestTo(seen, msam(), 'msam.upload', mig, 0);
    const download = requestTo(seen, msam(), 'msam.download', mig, 0);
    const seat = asServer(world, msam());
    try {
      const before = state(world);
      const up = seat.send('msam.upload', { session: `${mig}:S7:80`, grant: upload.body.grant }, { mig, step: 'S7' });
      assert.equal(refusalOf(await seat.answerTo(up)), { code: 'BAD_ENVELOPE', message: 'msam.upload needs an item (header "item")' });
      const down = seat.send('msam.download', { session: `${mig}:S14:81`, grant: download.body.grant }, { mig, step: 'S14' });
      assert.equal(refusalOf(await seat.answerTo(down)), { code: 'BAD_ENVELOPE', message: 'msam.download needs an item (header "item")' });
      // with its item, a forged grant is refused naming the check (GRANT_REFUSED: <verifyGrant's code>: <message>)
      const forged = { ...download.body.grant, sig: download.body.grant.sig.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) };
      const bad = seat.send('msam.download', { session: `${mig}:S14:82`, grant: forged }, { mig, step: 'S14', item: 0 });
      assert.equal(refusalOf(await seat.answerTo(bad)), { code: 'GRANT_REFUSED', message: 'GRANT_INVALID: the grant is not signed by the admin SAM' });
      assert.equal(seat.framesOfOurSessions(), [], 'no session was opened toward any chip');
      assert.is(state(world), before);
    } finally {
      await seat.giveBack();
    }
  },
);

t.run();
