/**
 * The tables exported beside the area lifecycle (src/machines/area.machine.ts)
 * say the same as the chart: the states and events it has, and which key slot
 * is active in each state (the chip opens a session only with that slot's key,
 * src/actors/chip.actor.ts). Written to kill mutants `npm run mutate` found
 * surviving (docs/mutation.md): the lifecycle tests iterate these lists, so an
 * emptied list made them pass vacuously.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ACTIVE_SLOT, AREA_COMMANDS, AREA_SESSION_EVENTS, AREA_STATES, areaMachine } from '../../src/machines/area.machine.ts';

test('area tables: AREA_STATES are exactly the states of the chart, absent first (the initial state)', () => {
  assert.equal([...AREA_STATES], ['absent', 'provisioned', 'loaded', 'mainActive', 'locked']);
  assert.equal(Object.keys(areaMachine.root.states).sort(), [...AREA_STATES].sort());
  assert.is(areaMachine.getInitialSnapshot(null as never).value, 'absent');
});

test('area tables: the commands and session events are exactly the events of the chart', () => {
  assert.equal([...AREA_COMMANDS], ['FORMAT', 'DOWNLOAD', 'ACTIVATE', 'LOCK', 'RESTORE', 'WIPE', 'WIPE_REVOKED']);
  assert.equal([...AREA_SESSION_EVENTS], ['OPEN_UPLOAD', 'OPEN_DOWNLOAD', 'OPEN_NORMAL', 'UPLOAD', 'USE']);
  assert.equal([...areaMachine.events].sort(), [...AREA_COMMANDS, ...AREA_SESSION_EVENTS].sort());
});

test('area tables: the active key slot is none when absent, main only when mainActive, temp otherwise', () => {
  assert.equal(ACTIVE_SLOT, { absent: null, provisioned: 'temp', loaded: 'temp', mainActive: 'main', locked: 'temp' });
});

test('area tables: the machine is named "area" (the name charts and traces show)', () => {
  assert.is(areaMachine.id, 'area');
});

test('area tables: every state carries the description the charts show', () => {
  for (const s of AREA_STATES) {
    const description = areaMachine.root.states[s]?.description;
    assert.type(description, 'string', s);
    assert.ok(description!.length > 10, `${s} has a description`);
  }
});

test.run();
