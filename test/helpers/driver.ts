/** The persistent user of src/actors/driver.ts, on a test world. */
import { driveMigration as drive, type DriveResult } from '../../src/actors/driver.ts';
import type { World } from './world.ts';

export type { DriveResult };

export function driveMigration(world: World, opts: { timeoutMs?: number; cancelAfterSource?: boolean } = {}): Promise<DriveResult> {
  return drive(world.system, {
    user: world.user,
    password: world.password,
    source: world.oldPhone.id,
    destination: world.newPhone.id,
    destinationSerial: world.destination.serial,
    ...opts,
  });
}
