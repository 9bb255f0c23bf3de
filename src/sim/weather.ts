/**
 * The weather of a seed's safety phase: partitions between parties that talk (a phone and the server, a phone
 * and its chip, the server and a SAM, a migration SAM and its normal SAM), started at the seed's drawn rate,
 * each cutting one pair for 20 ms to 1.5 s.
 */
import { pick, type SeedRun } from './seedRun.ts';
import type { User } from './types.ts';

/** A partition lasts at least this many virtual ms, plus up to PARTITION_SPREAD_MS, drawn. */
const PARTITION_MIN_MS = 20;
const PARTITION_SPREAD_MS = 1_500;

export class Weather {
  private on = true;
  private readonly pairs: Array<[string, string]> = [['server', 'admin-sam']];

  constructor(
    private readonly run: SeedRun,
    users: readonly User[],
  ) {
    for (const p of run.providers) this.pairs.push(['server', `migration-sam/${p}`], [`migration-sam/${p}`, `normal-sam/${p}`]);
    for (const u of users)
      this.pairs.push([u.oldPhone, 'server'], [u.newPhone, 'server'], [u.oldPhone, `chip/${u.source}`], [u.newPhone, `chip/${u.destination}`]);
  }

  /** The first partition at a drawn time (none when the mix has no partitions), then the next after each. */
  start(): void {
    const { clock, rng, mix } = this.run;
    if (mix.partition > 0) clock.schedule(clock.now() + Math.floor((rng.nextFloat() * 1_000) / mix.partition), () => this.storm());
  }

  stop(): void {
    this.on = false;
  }

  private storm(): void {
    if (!this.on) return;
    const { run } = this;
    const { clock, rng, mix, net } = run;
    const [a, b] = pick(rng, this.pairs);
    const ms = PARTITION_MIN_MS + Math.floor(rng.nextFloat() * PARTITION_SPREAD_MS);
    if (run.strike('partition', `${a} | ${b} for ${ms} ms`)) {
      run.partitions++;
      const untilAt = clock.now() + ms;
      net.partitions.push({ a, b, until: untilAt });
      clock.schedule(untilAt, () => net.heal());
    }
    clock.schedule(clock.now() + Math.floor((rng.nextFloat() * 2_000) / mix.partition), () => this.storm());
  }
}
