/**
 * protocol.md §4.1 and §4.2 (src/testing/invariants.ts, where the model-based
 * runner checks them too), and the spendable worth of a test world.
 */
import { decodeValue, worth } from '../../src/actors/value.ts';
import type { World } from './world.ts';

export { checkInvariants, locate, type Where } from '../../src/testing/invariants.ts';

/** The sum of the balances of every spendable copy of every item. */
export function spendableWorth(world: World): number {
  let sum = 0;
  for (const chip of world.system.chips.values()) {
    for (const area of chip.memory.list()) {
      if (area.state === 'mainActive' && area.data) sum += worth(decodeValue(area.data));
    }
  }
  return sum;
}
