import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AREA_COMMANDS, AREA_SESSION_EVENTS, AREA_STATES, areaTransition, type AreaState } from '../../src/machines/area.machine.ts';

// protocol.md §2, the key-swap statechart, written out as a table: [from, event, to].
const ALLOWED: Array<[AreaState, string, AreaState]> = [
  ['absent', 'FORMAT', 'provisioned'],
  ['provisioned', 'DOWNLOAD', 'loaded'],
  ['loaded', 'ACTIVATE', 'mainActive'],
  ['mainActive', 'LOCK', 'locked'],
  ['locked', 'RESTORE', 'mainActive'],
  ['provisioned', 'WIPE', 'absent'],
  ['loaded', 'WIPE', 'absent'],
  ['locked', 'WIPE', 'absent'],
  ['mainActive', 'WIPE_REVOKED', 'absent'], // a found-again lost chip, under its providers' revocations
  // sessions open only where the active slot holds their key; reads and uses keep the state
  ['provisioned', 'OPEN_DOWNLOAD', 'provisioned'],
  ['loaded', 'OPEN_DOWNLOAD', 'loaded'],
  ['locked', 'OPEN_UPLOAD', 'locked'],
  ['locked', 'UPLOAD', 'locked'],
  ['mainActive', 'OPEN_NORMAL', 'mainActive'],
  ['mainActive', 'USE', 'mainActive'],
];

for (const [from, event, to] of ALLOWED) {
  test(`area lifecycle allows ${from} --${event}--> ${to}`, () => {
    assert.is(areaTransition(from, event as never), to);
  });
}

test('area lifecycle forbids every other (state, event) pair', () => {
  const allowed = new Set(ALLOWED.map(([f, e]) => `${f}/${e}`));
  const refused: string[] = [];
  for (const state of AREA_STATES) {
    for (const event of [...AREA_COMMANDS, ...AREA_SESSION_EVENTS]) {
      if (allowed.has(`${state}/${event}`)) continue;
      const next = areaTransition(state, event);
      assert.is(next, null, `${state} --${event}--> should be refused, got ${next}`);
      refused.push(`${state}/${event}`);
    }
  }
  // 5 states x 12 events = 60 pairs, 15 allowed.
  assert.is(refused.length, 60 - ALLOWED.length);
});

test('a locked area can never be used normally, a mainActive one never uploaded (no duplication by key)', () => {
  assert.is(areaTransition('locked', 'OPEN_NORMAL'), null);
  assert.is(areaTransition('locked', 'USE'), null);
  assert.is(areaTransition('mainActive', 'OPEN_UPLOAD'), null);
  assert.is(areaTransition('mainActive', 'WIPE'), null, 'a spendable area can not be wiped');
  assert.is(areaTransition('provisioned', 'ACTIVATE'), null, 'activate without download');
  assert.is(areaTransition('mainActive', 'DOWNLOAD'), null, 'download into a mainActive area');
});

test.run();
