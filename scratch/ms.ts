import { getMicrosteps, createActor } from 'xstate';
import { migrationMachine } from '../src/machines/migration.machine.ts';
import { MIGRATION_INPUT } from '../src/model/models.ts';
const a = createActor(migrationMachine, { input: MIGRATION_INPUT }).start();
a.send({ type: 'CHANNEL_RESERVED', chip: 'source' });
const s = a.getSnapshot();
const steps = getMicrosteps(migrationMachine, s, { type: 'CHIP_IDENTIFIED', chip: 'source', serial: 'SRC', areas: [], owner: 'alice', now: 1 } as never);
for (const [snap] of steps) console.log(JSON.stringify(snap.value));
