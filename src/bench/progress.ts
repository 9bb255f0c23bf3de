/**
 * Progress of a bench run (issue 20): a line as each configuration starts and one as it ends, numbered out
 * of the run's total, with the wall time since the run began, so a run that takes minutes says where it is.
 */

export class BenchProgress {
  private started = 0;
  private ended = 0;
  private readonly t0 = performance.now();

  constructor(
    /** Configurations the run will measure (modes × K × concurrency). */
    private readonly total: number,
    private readonly say: (line: string) => void,
  ) {}

  /** Seconds since the run began, as printed. */
  private elapsed(): string {
    return `${((performance.now() - this.t0) / 1000).toFixed(1)} s`;
  }

  /** A line before the run's own work (the unit costs). */
  note(what: string): void {
    this.say(`${what} (${this.elapsed()})`);
  }

  /** A configuration starts: `label` is "mode K=k c=c". */
  start(label: string, migrations: number): void {
    this.started++;
    this.say(`[${this.started}/${this.total}] ${label}: starting, ${migrations} timed migrations (${this.elapsed()})`);
  }

  /** A configuration ended, with its figures in a few words. */
  end(label: string, figures: string): void {
    this.ended++;
    this.say(`[${this.ended}/${this.total}] ${label}: ${figures} (${this.elapsed()})`);
  }
}
