/** A migration refused before the lock changed nothing: the source's areas, the admin SAM's records, the migration SAMs' stores. */
import * as assert from 'uvu/assert';
import type { World } from './world.ts';

export function untouched(world: World): void {
  assert.ok(
    world.source.memory.list().every((a) => a.state === 'mainActive' && a.tempKey === null),
    'every source area is still mainActive',
  );
  assert.is([...world.system.adminSam.records.decisions.getRange()].length, 0, 'no decision record was created');
  for (const prov of world.system.providers.values()) assert.equal(prov.migrationSam.held(), []);
}
