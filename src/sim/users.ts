/**
 * The simulated users (simulation.md): each has a source chip with 1 to K items and an empty destination, on
 * two phones, and looks at the phones every so often to do the next thing: start a migration, bring the
 * destination, cancel, give the source back to a rollback, or pay. What each does when is drawn from the seed.
 */
import type { ChipRuntime } from '../actors/chip.actor.ts';
import { statePath } from '../actors/status.ts';
import type { TerminalRuntime } from '../actors/terminal.actor.ts';
import type { ValueItem } from '../actors/value.ts';
import { toHex } from '../crypto/index.ts';
import { demoValue } from '../fixtures/demo.ts';
import type { Payments } from './payments.ts';
import type { SimRecovery } from './recovery.ts';
import type { SeedRun } from './seedRun.ts';
import { SimSelection } from './selection.ts';
import type { User } from './types.ts';

/** How often, in virtual ms, a user looks at the phones again (plus up to as much again, drawn). */
const USER_TICK_MS = 60;
/** A user who got no answer on a phone for this long (virtual ms) taps again. */
const USER_PATIENCE_MS = 3_000;
/**
 * A user whose migration was refused (a preflight that timed out under faults, or a stale repeat of a
 * request that the server took up after the phone had already given up on it) starts another, until this
 * many of their migrations were refused. Refusals are counted, not taps: a tap on a phone that is down, or
 * one answered with a transport error, starts nothing and costs nothing.
 */
const USER_REFUSALS_MAX = 4;
/** Share of users who give their migration a deadline, and who cancel it. */
const DEADLINE_RATE = 0.2;
const CANCEL_RATE = 0.2;
/** Share of destination chips made defective when the rogue attacks 'download-kcv'. */
const DEFECTIVE_RATE = 0.3;

const FINAL = new Set(['completed', 'rolledBack', 'refused']);
const KINDS = ['emoney', 'transit', 'ticket', 'points'] as const;

function account(t: TerminalRuntime): string {
  const a = (t.state() as { account?: unknown } | undefined)?.account;
  return typeof a === 'string' ? a : a && typeof a === 'object' ? Object.keys(a)[0]! : 'unknown';
}

/**
 * The phone a user may tap now: up, not stopped, and not busy with the user's last action (one action at a
 * time per phone: the next waits until the last one is answered, or its phone crashed, or patience ran out).
 */
export function freePhone(run: SeedRun, u: User, phoneId: string): TerminalRuntime | undefined {
  const f = u.inFlight.get(phoneId);
  const busy = f !== undefined && f.runtime === run.system.party<TerminalRuntime>(phoneId) && run.clock.now() - f.since < USER_PATIENCE_MS;
  if (busy || run.down.has(phoneId)) return undefined;
  const t = run.system.party<TerminalRuntime>(phoneId);
  return t.isStopped ? undefined : t;
}

export class SimUsers {
  readonly list: User[] = [];
  /** Users look at their phones until the liveness phase is over. */
  private on = true;
  /** Who moves only some providers, or leaves one behind (selection.ts). */
  readonly selection: SimSelection;

  constructor(
    private readonly run: SeedRun,
    private readonly payments: Payments | undefined,
    readonly recovery?: SimRecovery,
  ) {
    this.selection = new SimSelection(run);
    run.checks.push(() => this.selection.check(run.system));
  }

  // ---- the world: each user's chips, items, phones and plan -----------------------------------------------

  /** Adds user `i`: an account, a source chip with its items issued, an empty destination, two phones, a plan. */
  async add(i: number): Promise<void> {
    const { run } = this;
    const { system } = run;
    const name = `u${i}`;
    await run.until(system.server.createUser(name, 'pw'), `user ${name}`);
    const src = await system.addChip(`S${i}`);
    const dst = await system.addChip(`D${i}`);
    const items = await this.issue(i, name, src);
    const oldPhone = await this.phone(i, name, 'old', src);
    const newPhone = await this.phone(i, name, 'new', dst);
    this.payments?.enroll([oldPhone, newPhone], items);
    const defective = run.o.rogue?.includes('download-kcv') === true && run.rogueRng.nextFloat() < DEFECTIVE_RATE;
    if (defective) run.makeDefective(dst);
    const plan = this.drawPlan(defective);
    this.list.push({
      name,
      index: i,
      source: `S${i}`,
      destination: `D${i}`,
      oldPhone,
      newPhone,
      items,
      ...plan,
      cancelled: false,
      migs: [],
      defective,
      cancelTriedAt: -Infinity,
      inFlight: new Map(),
      lastAction: -Infinity,
    });
    for (const it of items) run.refs.push(it.ref);
    const u = this.list[this.list.length - 1]!;
    await this.recovery?.draw(u, !defective && !plan.deadlineMs && plan.cancelAt === undefined);
    // A lost phone's user recovers every item, and a defective destination's migration ends by its deadline (which
    // a leave-behind draw would clear): no selection for either.
    if (!defective && !this.recovery?.isLoser(u)) this.selection.draw(u);
  }

  /** Issues 1 to K items (swarm: the count is drawn) onto the user's source chip, each from its own provider. */
  private async issue(i: number, name: string, src: ChipRuntime): Promise<ValueItem[]> {
    const { run } = this;
    const count = 1 + Math.floor(run.rng.nextFloat() * run.o.items);
    const items = Array.from({ length: count }, (_, k) => demoValue(KINDS[k % KINDS.length]!, i * 10 + k, toHex(run.protoRng.bytes(16))));
    await run.until(
      run.system.issue(
        src,
        items.map((value, k) => ({ area: run.providers[k]!, provider: run.providers[k]!, value })),
      ),
      `issuing ${name}`,
    );
    return items;
  }

  /** A phone with the chip in it, connected to the server, its user logged in and the chip registered. */
  private async phone(i: number, name: string, role: string, chip: ChipRuntime): Promise<string> {
    const { run } = this;
    const t = await run.system.addTerminal(`${role}${i}`);
    run.system.insertChip(t, chip);
    run.system.connectToServer(t);
    await run.until(t.login(name, 'pw'), `login ${t.id}`);
    await run.until(t.register(), `register ${chip.id}`);
    return t.id;
  }

  /** What the user will do: a deadline (and arriving after part of it), a cancel, each drawn. */
  private drawPlan(defective: boolean): Pick<User, 'deadlineMs' | 'arriveAfter' | 'cancelAt'> {
    const { rng, rogueRng, clock } = this.run;
    const hasDeadline = rng.nextFloat() < DEADLINE_RATE;
    const deadlineMs = hasDeadline ? 100 + Math.floor(rng.nextFloat() * 2_000) : undefined;
    const cancels = rng.nextFloat() < CANCEL_RATE;
    const arriveAfter = deadlineMs ? clock.now() + Math.floor(rng.nextFloat() * 2 * deadlineMs) : 0;
    // A defective destination never takes a download (its key check fails each time): its user gives up
    // once the attempts have had time to be refused, and cancels.
    const cancelAt = defective
      ? clock.now() + 3_000 + Math.floor(rogueRng.nextFloat() * 3_000)
      : cancels
        ? clock.now() + Math.floor(rng.nextFloat() * 2_000)
        : undefined;
    return { deadlineMs, arriveAfter, cancelAt };
  }

  // ---- what the server says of each user's migrations -----------------------------------------------------

  /**
   * Who started each migration the server listed, and the final state of each that ended: neither changes
   * again, so each is read once (reading a finished migration brings its actor back from the server's store,
   * and the users ask after every event of a seed).
   */
  private readonly owners = new Map<string, string>();
  private readonly finalStates = new Map<string, string>();

  /** The user's latest migration (the server's list, or `ids` read from it just now, is read for new ones). */
  latest(u: User, ids?: readonly string[]): string | undefined {
    const { server } = this.run.system;
    if (server.isStopped) return undefined;
    for (const m of ids ?? server.migrationIds()) {
      if (u.migs.includes(m)) continue;
      let owner = this.owners.get(m);
      if (owner === undefined) {
        owner = server.migration(m)?.user;
        if (owner !== undefined) this.owners.set(m, owner);
      }
      if (owner === u.name) u.migs.push(m);
    }
    return u.migs[u.migs.length - 1];
  }

  stateOf(m: string): string {
    const known = this.finalStates.get(m);
    if (known !== undefined) return known;
    const s = statePath(this.run.system.server.migrationState(m));
    if (FINAL.has(s)) this.finalStates.set(m, s);
    return s;
  }

  /** How many of this user's migrations were refused (the user gives up after USER_REFUSALS_MAX). */
  private refusals(u: User): number {
    return u.migs.filter((m) => this.stateOf(m) === 'refused').length;
  }

  ended(u: User, ids?: readonly string[]): boolean {
    const m = this.latest(u, ids);
    if (!m) return false;
    const s = this.stateOf(m);
    if (this.recovery && !this.recovery.settled(u)) return false; // a lost phone's report that missed a provider is made again
    if (s === 'completed') {
      if (this.selection.secondDue(u)) return false;
      // With a short retention a completed migration has ended when its backup has too (issue 22), and so has every
      // earlier one of the user (a selective user's first); an issuance (a lost phone's re-issue included) has no
      // source, so no backup.
      const { server } = this.run.system;
      if (this.run.backupRetentionMs === undefined) return true;
      const backedUp = u.migs.filter((x) => this.stateOf(x) === 'completed' && !server.migration(x)?.issuance);
      return backedUp.every((x) => server.backupState(x) === 'wiped');
    }
    return s === 'rolledBack' || (s === 'refused' && (u.cancelled || this.refusals(u) >= USER_REFUSALS_MAX));
  }

  allEnded(): boolean {
    const { server } = this.run.system;
    if (server.isStopped) return false;
    const ids = server.migrationIds(); // one read of the server's list for every user
    return this.list.every((u) => this.ended(u, ids));
  }

  // ---- what users do: look at the phones every so often, and do the next thing -----------------------------

  /** Every user looks at the phones at a drawn time, then every USER_TICK_MS or so, until `stop`. */
  start(): void {
    const { clock, rng } = this.run;
    for (const u of this.list) {
      const again = () => {
        if (!this.on) return;
        this.tick(u);
        clock.schedule(clock.now() + USER_TICK_MS + Math.floor(rng.nextFloat() * USER_TICK_MS), again);
      };
      clock.schedule(clock.now() + Math.floor(rng.nextFloat() * USER_TICK_MS), again);
    }
  }

  stop(): void {
    this.on = false;
  }

  /** A tap on a phone: log in first if the phone is logged out; one action at a time per phone. */
  private act(u: User, phoneId: string, what: string, fn: (t: TerminalRuntime) => Promise<unknown>): void {
    const { run } = this;
    const t = freePhone(run, u, phoneId);
    if (!t) return;
    u.lastAction = run.clock.now();
    const mine = { runtime: t, since: run.clock.now() };
    u.inFlight.set(phoneId, mine);
    const a = account(t);
    const running = a === 'loggedOut' ? t.login(u.name, 'pw') : a === 'loggedIn' ? fn(t) : Promise.resolve();
    run.line(`USER ${u.name} ${a === 'loggedOut' ? 'login' : what} on ${phoneId}`);
    void running.catch(() => {}).finally(() => u.inFlight.get(phoneId) === mine && u.inFlight.delete(phoneId));
  }

  /** The user looks at the phones: pays now and then, else cancels, or moves the migration on. */
  private tick(u: User): void {
    const { run } = this;
    if (run.system.server.isStopped || run.down.has('server')) return;
    if (this.payments?.atRandom(u)) return;
    const m = this.latest(u);
    const s = m ? this.stateOf(m) : undefined;
    if (this.recovery?.isLoser(u)) return this.recovery.tick(u, m, s, (phone, what, fn) => this.act(u, phone, what, fn));
    if (m && this.cancel(u, m, s!)) return;
    const second = s === 'completed' && this.selection.secondDue(u);
    if (!m || second || (s === 'refused' && !u.cancelled && this.refusals(u) < USER_REFUSALS_MAX)) {
      const chosen = this.selection.options(u);
      this.act(u, u.oldPhone, `migrate-out${chosen.only ? ` only ${chosen.only.join(',')}` : ''}${chosen.leaveBehind ? ' leave-behind' : ''}`, (t) =>
        t.migrateOut({ destination: u.destination, ...(u.deadlineMs ? { deadlineMs: u.deadlineMs } : {}), ...chosen }),
      );
    } else if (s === 'awaitingDestination' || s === 'rollingBack.awaitingDestinationWipe') {
      if (run.clock.now() >= u.arriveAfter || s !== 'awaitingDestination') this.act(u, u.newPhone, 'migrate-in', (t) => t.migrateIn({ mig: m }));
    } else if (s === 'rollingBack.awaitingSource') {
      this.act(u, u.oldPhone, 'migrate-out (source back)', (t) => t.migrateOut());
    }
  }

  /** Taps cancel when the user's plan says so (and again, for a defective destination, until it ends). */
  private cancel(u: User, m: string, s: string): boolean {
    const { clock } = this.run;
    if (u.cancelAt !== undefined && !u.cancelled && clock.now() >= u.cancelAt && !FINAL.has(s)) {
      u.cancelled = true;
      u.cancelTriedAt = clock.now();
      this.act(u, u.oldPhone, `cancel ${m}`, (t) => t.cancel(m));
      return true;
    }
    // The user of a defective destination taps cancel until the migration ends (a cancel lost to faults is tried again).
    if (u.defective && u.cancelled && !FINAL.has(s) && !s.startsWith('rollingBack') && clock.now() - u.cancelTriedAt > USER_PATIENCE_MS) {
      u.cancelTriedAt = clock.now();
      this.act(u, u.oldPhone, `cancel ${m} (again)`, (t) => t.cancel(m));
      return true;
    }
    return false;
  }
}
