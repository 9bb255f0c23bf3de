/**
 * What the server's observer hears of its migrations (valmove_migrations_*
 * on /metrics): each start and each end, once, after the commit that wrote
 * it (a failed commit counts nothing), with the seconds from start to end
 * when the migration index knows the start (`startedAt`, kept across
 * restarts).
 */
import type { RuntimeObserver, TurnContext } from './runtime.ts';
import type { MigrationIndexRecord } from '../store/server.store.ts';

export class MigrationMeter {
  /**
   * Migrations counted as started in this process and not ended yet: two
   * turns of one batch both find no index record (it is written with the
   * batch), and only the first counts. Bounded by the migrations in flight.
   */
  private readonly running = new Set<string>();

  constructor(
    private readonly party: string,
    private readonly observe: RuntimeObserver | undefined,
    private readonly now: () => number,
  ) {}

  /** A turn writes `rec` over `before` (undefined: the migration is new). */
  changed(turn: TurnContext, before: MigrationIndexRecord | undefined, rec: MigrationIndexRecord): void {
    const o = this.observe;
    const started = before === undefined;
    const ended = rec.outcome !== null && (before?.outcome ?? null) === null;
    if (!o || (!started && !ended)) return;
    turn.afterTurn(() => {
      if (started && !this.running.has(rec.mig)) {
        this.running.add(rec.mig);
        o.migrationStarted?.(this.party);
      }
      if (!ended) return;
      this.running.delete(rec.mig);
      o.migrationEnded?.(this.party, rec.outcome!, rec.startedAt === undefined ? undefined : Math.max(0, this.now() - rec.startedAt) / 1000);
    });
  }
}
