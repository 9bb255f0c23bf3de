/**
 * Selective migration in the simulator (simulation.md; protocol.md §3, "Only some providers"). Drawn from
 * the seed's own `selection` stream, so the other draws of a seed stay what they were:
 *
 *  - some users with two items or more move only a drawn subset of their providers (`only`): the others
 *    must stay spendable on the source, always;
 *  - some choose `leaveBehind: unavailable`, and one of their providers' migration SAM is cut off from the
 *    server for longer than the preflight waits, from their first migrate-out on: that provider is left
 *    behind (its item stays spendable on the source), the rest move; once it is back the user starts a
 *    second migration for what was left behind, from the same source (which holds the first one's locked
 *    backups) to the same destination (which holds its activated areas). Both must complete.
 *
 * The invariant added here (checked after every message that reaches a chip, with the others): a migration
 * touches only the areas it moves. Every chip area's last admin or download command comes from a migration
 * whose items include that area, and an area holding an item that is not spendable (locked, loaded) is held
 * by such a migration: an item not chosen, or left behind, is spendable on its source until a migration
 * that moves it locks it. The end checks (checks.ts) read where each item must end from `movedAreas`.
 */
import type { EmbeddedSystem } from '../actors/system.ts';
import { seededRng, type SeededRng } from '../crypto/index.ts';
import type { MigrateOutOptions } from '../machines/terminal.machine.ts';
import type { Violation } from './invariants.ts';
import type { SeedRun } from './seedRun.ts';
import type { User } from './types.ts';

/** Share of users (with two items or more) who move only some providers, and who leave a cut-off provider behind. */
const ONLY_RATE = 0.2;
const LEAVE_BEHIND_RATE = 0.2;
/** How much longer than the preflight waits the chosen provider stays cut off (virtual ms). */
const OUTAGE_PAST_PREFLIGHT_MS = 300;

interface Choice {
  only?: string[];
  /** The provider cut off at the first migrate-out, and whether that happened yet. */
  cut?: { provider: string; done: boolean };
}

/** What a finished migration moved and left behind, read once from the server (it never changes again). */
interface Settled {
  completed: boolean;
  items: string[];
  leftBehind: string[];
}

export class SimSelection {
  private readonly rng: SeededRng;
  private readonly choices = new Map<string, Choice>();
  private readonly settled = new Map<string, Settled>();
  /** Each migration's areas, from the server's record, once it touched a chip (fixed by then); null: not the server's (an issuing desk's). */
  private readonly areasOf = new Map<string, Set<string> | null>();

  constructor(private readonly run: SeedRun) {
    this.rng = seededRng(`${run.o.seed}/selection`);
  }

  /** Draws the user's choice; a user who leaves a provider behind neither cancels nor sets a deadline (both migrations must complete). */
  draw(u: User): void {
    const providers = u.items.map((_, k) => this.run.providers[k]!);
    const r = this.rng.nextFloat();
    if (providers.length < 2) return;
    if (r < ONLY_RATE) {
      const kept = providers.filter(() => this.rng.nextFloat() < 0.5);
      const only = kept.length === 0 || kept.length === providers.length ? [providers[Math.floor(this.rng.nextFloat() * providers.length)]!] : kept;
      this.choices.set(u.name, { only });
      this.run.line(`SELECT ${u.name} only ${only.join(',')}`);
    } else if (r < ONLY_RATE + LEAVE_BEHIND_RATE) {
      const provider = providers[Math.floor(this.rng.nextFloat() * providers.length)]!;
      this.choices.set(u.name, { cut: { provider, done: false } });
      u.cancelAt = undefined;
      u.deadlineMs = undefined;
      u.arriveAfter = 0;
      this.run.line(`SELECT ${u.name} leave-behind unavailable; ${provider} cut off at the first migrate-out`);
    }
  }

  /** The migrate-out the user asks for now: the first as drawn, then one for what a completed migration left behind. */
  options(u: User): Pick<MigrateOutOptions, 'only' | 'leaveBehind'> {
    const choice = this.choices.get(u.name);
    if (!choice) return {};
    const left = this.leftBehind(u);
    if (left.length > 0) return { only: left };
    if (choice.only) return { only: choice.only };
    this.cutOff(choice);
    return { leaveBehind: 'unavailable' };
  }

  /** The user's latest migration completed but left items behind: a second one is due. */
  secondDue(u: User): boolean {
    return this.choices.get(u.name)?.cut !== undefined && this.leftBehind(u).length > 0;
  }

  /** Areas (= providers here) a completed migration of the user moved: where each item must end (checks.ts). */
  movedAreas(u: User): Set<string> {
    const moved = new Set<string>();
    for (const m of u.migs) {
      const s = this.settle(m);
      if (s?.completed) for (const a of s.items) moved.add(a);
    }
    return moved;
  }

  /**
   * The seed's tally, with its outcomes: completed migrations that moved only the chosen providers
   * (`selective`), that left a provider behind (`leftBehind`), and second migrations that then moved it (`movedLater`).
   */
  tally(users: readonly User[], outcomes: Record<string, number>): void {
    const add = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);
    for (const u of users) {
      const done = u.migs.map((m) => this.settle(m)).filter((s): s is Settled => s?.completed === true);
      if (done.length > 0 && this.choices.get(u.name)?.only) add('selective');
      if (done.some((s) => s.leftBehind.length > 0)) add('leftBehind');
      if (done.length > 1) add('movedLater');
    }
  }

  /** Left behind by a completed migration of the user and moved by none since. */
  private leftBehind(u: User): string[] {
    const moved = this.movedAreas(u);
    const left = new Set<string>();
    for (const m of u.migs) for (const a of this.settle(m)?.leftBehind ?? []) if (!moved.has(a)) left.add(a);
    return [...left];
  }

  /** A finished migration's record, read once; undefined while it runs or the server is down. */
  private settle(m: string): Settled | undefined {
    const known = this.settled.get(m);
    if (known) return known;
    const { server } = this.run.system;
    if (server.isStopped || this.run.down.has('server')) return undefined;
    const c = server.migration(m);
    if (!c || c.outcome === null) return undefined;
    const s = {
      completed: c.outcome === 'completed',
      items: c.items.map((i) => i.area),
      leftBehind: c.skipped.filter((i) => i.outcome === 'leftBehind').map((i) => i.area),
    };
    this.settled.set(m, s);
    return s;
  }

  /** The first migrate-out of a leave-behind user: its provider's migration SAM is cut off from the server past the preflight. */
  private cutOff(choice: Choice): void {
    const cut = choice.cut;
    if (!cut || cut.done) return;
    cut.done = true;
    const { clock, net } = this.run;
    const until = clock.now() + this.run.system.opts.timing!.preflightMs + OUTAGE_PAST_PREFLIGHT_MS;
    net.partitions.push({ a: 'server', b: `migration-sam/${cut.provider}`, until });
    clock.schedule(until, () => net.heal());
    this.run.line(`OUTAGE migration-sam/${cut.provider} cut off from the server until ${until - clock.now()} ms from now`);
  }

  /** The invariant: a migration touches only the areas it moves (module doc); null when it holds or can not be read now. */
  check(system: EmbeddedSystem): Violation | null {
    for (const chip of system.chips.values()) {
      for (const a of chip.memory.list()) {
        const by = [a.last?.mig, a.holder].filter((m): m is string => typeof m === 'string');
        for (const m of by) {
          const areas = this.areas(system, m);
          if (areas && !areas.has(a.area)) {
            return {
              invariant: 'selection',
              message: `migration ${m} touched area ${a.area} of chip ${chip.serial}, which it does not move (${[...areas].join(', ')})`,
            };
          }
        }
        if (a.data && a.state !== 'mainActive' && a.holder === null) {
          return { invariant: 'selection', message: `area ${a.area} of chip ${chip.serial} holds an item, is ${a.state} and is held by no migration` };
        }
      }
    }
    return null;
  }

  private areas(system: EmbeddedSystem, m: string): Set<string> | undefined {
    const known = this.areasOf.get(m);
    if (known !== undefined) return known ?? undefined;
    if (system.server.isStopped || this.run.down.has('server')) return undefined;
    const c = system.server.migration(m);
    const areas = c ? new Set(c.items.map((i) => i.area)) : null;
    this.areasOf.set(m, areas);
    return areas ?? undefined;
  }
}
