/**
 * Watches a real embedded system against the abstract safety model
 * (src/model/safety/conformance.ts): `check` projects the real stores and
 * hands the projection to the checker; a change no allowed abstract step
 * explains is a problem.
 *
 * When to read: never inside a party's turn. A party runs its turns inside
 * its LMDB write transaction, and a read of its store from there sees writes
 * that are not committed yet (a fence that a later read, outside, does not
 * see yet): `note` defers the projection until the current turn is over.
 * Even then the stores of different parties are read one after another, not
 * in one snapshot, and a commit may land between two reads. A forbidden
 * change is therefore held against the system only if it is still
 * unexplained at the next projections (the checker stays where it was, and
 * a torn read is explained by the next one) or at the end of the run.
 */
import type { EmbeddedSystem } from '../actors/system.ts';
import { ConformanceChecker, ProjectionError, projectSystem, realNames, type ConformanceStep, type ProjectionMap } from '../model/safety/conformance.ts';

/** Projections in a row that may stay unexplained before the change counts as forbidden (reads racing a commit). */
const UNEXPLAINED_MAX = 40;
/** Time given to commits in flight before the last projection of a run (ms). */
const SETTLE_MS = 50;

export class ConformanceWatch {
  private readonly checker: ConformanceChecker;
  private readonly map: ProjectionMap;
  /** The first change still unexplained, where it was seen, and how many projections since. */
  private unexplained: { at: string; step: Extract<ConformanceStep, { kind: 'forbidden' }>; since: number } | null = null;
  problem: string | undefined;
  observations = 0;
  changes = 0;

  constructor(
    private readonly system: EmbeddedSystem,
    map: Omit<ProjectionMap, 'migrations'>,
    private readonly migrations = 1,
  ) {
    this.map = { ...map, migrations: [] };
    this.checker = new ConformanceChecker({ items: map.areas.length, migrations }, projectSystem(system, this.map, migrations), realNames(this.map));
  }

  /** The most abstract actions one observed change stood for. */
  get stepsMax(): number {
    return this.checker.stepsMax;
  }

  private pending: NodeJS.Immediate | null = null;
  private stopped = false;

  /** Something happened (a message delivered, a step of the path): check once the current turn is over. */
  note(at: string): void {
    if (this.pending || this.problem || this.stopped) return;
    this.pending = setImmediate(() => {
      this.pending = null;
      this.check(at);
    });
  }

  /** Projects the real system now and checks the change since the last projection; `at` says where the run was. */
  check(at: string): void {
    // A party between crash and restart has its store closed: nothing to observe until it is back.
    if (this.problem || this.stopped || this.system.restarting.size > 0) return;
    let step: ConformanceStep;
    try {
      step = this.checker.observe(projectSystem(this.system, this.map, this.migrations));
    } catch (e) {
      // A store closed under the read: its party is stopping (the end of a run), there is nothing to observe.
      if (/closed database/.test((e as Error).message)) return;
      if (!(e instanceof ProjectionError)) throw e;
      this.problem = `conformance (${at}): ${e.message}`;
      return;
    }
    this.observations++;
    if (step.kind === 'forbidden') {
      this.unexplained ??= { at, step, since: 0 };
      if (++this.unexplained.since > UNEXPLAINED_MAX) this.fail();
      return;
    }
    this.unexplained = null;
    if (step.kind === 'steps') this.changes++;
  }

  /** The last word, once the run is over (commits in flight given time to land): a change still unexplained is a step the model forbids. */
  async finish(at: string): Promise<string | undefined> {
    if (this.pending) clearImmediate(this.pending);
    this.pending = null;
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    this.check(at);
    if (this.unexplained) this.fail();
    return this.problem;
  }

  /** No more checks (the run is over and its parties stop). */
  stop(): void {
    if (this.pending) clearImmediate(this.pending);
    this.pending = null;
    this.stopped = true;
  }

  private fail(): void {
    const u = this.unexplained!;
    const change = u.step.change.join('\n    ');
    this.problem ??= `conformance: at ${u.at} the real system took a step the abstract model forbids:\n    ${change}\n  (${u.step.message})`;
  }
}
