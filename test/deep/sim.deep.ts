/**
 * The simulator's CI budget (`npm run test:deep`; issues 5 and 17): 200 seeds, 4 concurrent migrations of 1-2
 * items each, every fault kind, the rogue server's every attack, users paying on both phones, zero violations;
 * every fault kind struck, every attack tried and refused by its check. They follow the seeds `npm test` runs
 * (test/sim/sim.test.ts, seeds 0 to 3), so CI runs 204 different ones. VALMOVE_SIM_SEEDS sets the count.
 */
import { test } from 'uvu';
import { rogueAndPaySeeds, SMOKE_SEEDS } from '../helpers/simSeeds.ts';

const CI_SEEDS = Number(process.env.VALMOVE_SIM_SEEDS ?? 200);

test(`CI budget: ${CI_SEEDS} seeds from ${SMOKE_SEEDS}, 4 concurrent migrations of 1-2 items each, every fault kind, the rogue server and payments on: zero violations`, async () => {
  await rogueAndPaySeeds(CI_SEEDS, SMOKE_SEEDS, { everyKindStruck: true });
});

test.run();
