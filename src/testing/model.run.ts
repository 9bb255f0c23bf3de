/**
 * Runs one model path of the migration statechart against a real embedded
 * system: real parties, real crypto, real LMDB in a temp folder (removed at
 * the end). The path's events are what the real server's migration actor must
 * process, in order; the ones the environment chooses (a provider refusing,
 * a step failing, a cancel, a chip or a terminal going away, the deadline)
 * are steered into the real world at the moment the real actor is in the
 * state the path says (model.steer.ts); the others happen by themselves.
 * After each path event the real actor must be in the state the path says
 * (the model's, or the `to` of a JSON path's step); protocol.md §4.1/§4.2 are
 * checked after every delivered message, and, where the path's world is the
 * abstract safety model's, every change of the stores must be a step that
 * model allows (conformance.watch.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnyTransitionDefinition, EventObject } from 'xstate';
import type { EmbeddedSystem } from '../actors/system.ts';
import type { TerminalRuntime } from '../actors/terminal.actor.ts';
import type { ValueItem } from '../actors/value.ts';
import { type Rng, seededRng } from '../crypto/index.ts';
import { MODELS } from '../model/models.ts';
import type { PathJson } from '../model/paths.json.ts';
import { type ModelPath, replay, stateName } from '../model/paths.ts';
import type { ErrorCode } from '../protocol/errors.ts';
import { ConformanceWatch } from './conformance.watch.ts';
import { checkInvariants } from './invariants.ts';
import { PathSteering, PROVIDERS } from './model.steer.ts';
import { begin, furnish, type PathWorld, pathWorld, startSystem } from './model.world.ts';

/** A path that has not matched its next event by then has failed. */
export const PATH_TIMEOUT_MS = 20_000;
/** How often the run looks at what the user should do next (ms). */
const POLL_MS = 5;

export interface PathOutcome {
  ok: boolean;
  /** Path events the real actor took as the path says. */
  matched: number;
  steps: number;
  /** What went wrong: the event waited for, the state expected, and the states the real actor went through. */
  problem?: string;
  /** The real migration actor's states, in order. */
  realStates: string[];
  /** The conformance check against the abstract safety model; null where the path's world is not the model's. */
  conformance: { observations: number; changes: number; stepsMax: number } | null;
}

export interface RunOptions {
  /** Seeds every random byte of the run (keys, challenges, items): the same seed, the same run. Default "model-path". */
  seed?: string;
  /** The chart transitions the real actor took are added here when the whole path matched. */
  covered?: Set<AnyTransitionDefinition>;
  /** Give up on a path event not matched by then (ms; default PATH_TIMEOUT_MS). */
  timeoutMs?: number;
}

/** A path's events and, per event, the state the real actor must be in before and after it. */
interface Expected {
  variant: string | undefined;
  events: EventObject[];
  before: string[];
  after: string[];
}

function expected(path: ModelPath | PathJson): Expected {
  if ('steps' in path) {
    return {
      variant: path.variant ?? undefined,
      events: path.steps.map((s) => s.event as EventObject),
      before: path.steps.map((s) => s.from),
      after: path.steps.map((s) => s.to),
    };
  }
  const r = replay(MODELS.migration!, path.events, path.variant);
  return { variant: path.variant, events: path.events, before: r.steps.map((s) => s.from), after: r.steps.map((s) => s.to) };
}

const microsteps = (e: { type: string }) => (e.type === '@xstate.microstep' ? (e as unknown as { _transitions: AnyTransitionDefinition[] })._transitions : []);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One run of one path; `run()` once. */
class PathRun {
  private k = 0;
  private problem: string | undefined;
  private system: EmbeddedSystem | undefined;
  private mig: string | undefined;
  private ended: string | undefined;
  /** The run is over: what the user was still trying to do stops. */
  private stopped = false;
  private values: ValueItem[] = [];
  private conformance: ConformanceWatch | null = null;
  private readonly realStates: string[] = [];
  private readonly covered = new Set<AnyTransitionDefinition>();
  private readonly later: Array<() => Promise<unknown>> = [];
  private readonly steer = new PathSteering(() => this.k);
  private readonly world: PathWorld;
  private readonly rng: Rng;

  constructor(
    private readonly x: Expected,
    private readonly options: RunOptions,
  ) {
    this.world = pathWorld(x.variant, x.events, x.before);
    this.rng = seededRng(options.seed ?? 'model-path');
  }

  /** Where the run is: the path events matched so far. */
  private soFar(): string {
    const done = this.x.events.slice(0, this.k).map((e) => e.type);
    return `path event ${this.k}/${this.x.events.length} (${done.join(' > ') || 'start'})`;
  }

  private noteProblem(p: string | undefined): void {
    this.problem ??= p;
  }

  /** The environment's part of path event i, armed as the real actor enters the state before it. */
  private steerAt(i: number): void {
    const ev = this.x.events[i] as EventObject & Record<string, unknown>;
    const b = this.x.before[i]!;
    const earlier = this.x.events.slice(0, i);
    switch (ev.type) {
      case 'STEP_FAILED':
        // The admin SAM commits, and its answer is lost: the server sees a failure; the decision stands.
        if (b === 'committing' && this.world.commitReplyLost) this.steer.replace = 'admin.decision';
        else this.steer.failStep(b, ev.code as ErrorCode);
        break;
      case 'SAM_FRAME':
        // A SAM's frame after its command went: the same frame again, as the SAM sends it when the chip's answer is lost.
        if (/copying$/.test(b)) this.steer.loseChipAnswer = true;
        break;
      case 'CANCEL_REQUESTED':
        this.steer.holdWaiting(b);
        this.later.push(() => this.cancelOnHelper());
        break;
      case 'DEADLINE_PASSED':
        this.steer.holdWaiting(b);
        break;
      case 'DECIDED':
        if (ev.decision === 'aborted' && b === 'committing') {
          this.steer.holdNext(/^admin-sam$/, 'admin.commit', this.k);
          this.later.push(() => this.cancelOnHelper());
        }
        break;
      case 'DESTINATION_ARRIVED': {
        this.steer.holdWaiting(b);
        const first = !earlier.some((x) => x.type === 'DESTINATION_ARRIVED');
        const phone = this.world.wrongDestination && first ? 'terminal/old' : 'terminal/new';
        this.later.push(() => this.userDoes(phone, (t) => t.migrateIn({ mig: this.mig })));
        break;
      }
      case 'SOURCE_ARRIVED':
        this.steer.holdWaiting(b);
        this.later.push(() => this.userDoes('terminal/old', (t) => t.migrateOut()));
        break;
      case 'TERMINAL_LOST':
      case 'TERMINAL_BACK':
        this.steer.holdWaiting(b);
        if (ev.type === 'TERMINAL_LOST') this.system!.disconnect(String(ev.terminal));
        else this.system!.reconnect(String(ev.terminal));
        break;
      case 'PROVIDER_READY':
      case 'PROVIDER_REFUSED':
        // Providers answer in any order; hold back the one whose answer the path takes second (or never: a
        // preflight deadline that leaves it behind, in the leave-behind variant).
        if (
          (this.world.refusing || this.x.events[i + 1]?.type === 'DEADLINE_PASSED') &&
          !earlier.some((x) => x.type === 'PROVIDER_READY' || x.type === 'PROVIDER_REFUSED')
        ) {
          const late = ev.type === 'PROVIDER_REFUSED' ? 'emoney' : 'transit';
          this.steer.holdNext(new RegExp(`^migration-sam/${late}$`), 'msam.preflight', this.k);
        }
        break;
    }
  }

  /** The user cancels from a third phone; a phone does one thing at a time, so a second cancel waits for the first. */
  private async cancelOnHelper(): Promise<unknown> {
    for (const until = Date.now() + PATH_TIMEOUT_MS; Date.now() < until && !this.stopped; await pause(10)) {
      try {
        return await this.system!.party<TerminalRuntime>('terminal/helper').cancel(this.mig!);
      } catch (e) {
        if ((e as { code?: string }).code !== 'UNEXPECTED') return undefined;
      }
    }
    return undefined;
  }

  /** What a user does on a phone, once the phone is free for it (logged in, no job running). */
  private async userDoes(id: string, fn: (t: TerminalRuntime) => Promise<unknown>): Promise<unknown> {
    for (const until = Date.now() + PATH_TIMEOUT_MS; Date.now() < until && !this.stopped; await pause(10)) {
      const t = this.system!.party<TerminalRuntime>(id);
      const a = accountOf(t);
      if (a === 'loggedOut') await t.login('alice', 'pw').catch(() => {});
      if (a !== 'loggedIn') continue;
      try {
        return await fn(t);
      } catch (e) {
        // A phone that reconnected is logged out at the server (a login belongs to its connection): log in again.
        // A phone busy with something else: wait for it. Anything else is the answer.
        const code = (e as { code?: string }).code;
        if (code !== 'UNAUTHENTICATED' && code !== 'UNEXPECTED') return undefined;
      }
    }
    return undefined;
  }

  /** The real migration actor took an event: the path's next one, if it is of its type and lands in its state. */
  private onReal(type: string, value: unknown, status: string): void {
    const v = stateName(value);
    if (this.realStates.at(-1) !== v) this.realStates.push(v);
    const { events, before, after } = this.x;
    if (this.k < events.length && type === events[this.k]!.type && v === after[this.k]) {
      this.k++;
      this.conformance?.note(`after ${this.soFar()}`);
      this.noteProblem(this.conformance?.problem);
      if (this.k < events.length && v === before[this.k]) this.steerAt(this.k);
    }
    // A migration that has ended takes no more events: a path still waiting can not match any more.
    if (status === 'done') this.ended = v;
  }

  private inspect(party: string, key: string, ev: { type: string }): void {
    if (party !== 'server' || !key.startsWith('migration:')) return;
    for (const t of microsteps(ev)) this.covered.add(t);
    if (ev.type !== '@xstate.snapshot') return;
    const { snapshot, event } = ev as unknown as { snapshot: { value: unknown; status: string }; event: EventObject };
    this.mig ??= key.slice('migration:'.length);
    if (event.type !== 'xstate.init') this.onReal(event.type, snapshot.value, snapshot.status);
    else if (this.x.before[0] === stateName(snapshot.value)) this.steerAt(0);
  }

  /** After every delivered message: the invariants, and every change a step the abstract safety model allows. */
  private afterDelivery(direction: 'in' | 'out'): void {
    if (direction !== 'in' || this.values.length === 0) return;
    try {
      checkInvariants({ system: this.system!, values: this.values, source: { serial: 'SRC' } });
    } catch (e) {
      this.noteProblem((e as Error).message);
    }
    this.conformance?.note(`a message delivered at ${this.soFar()}`);
    this.noteProblem(this.conformance?.problem);
  }

  /**
   * The abstract safety model knows one migration moving every item of a full source to an empty destination: not an
   * issuance, nor a selective migration that leaves a provider behind (it moves part of the source; the simulator's
   * selection invariant checks those, src/sim/selection.ts).
   */
  private conformanceApplies(): boolean {
    const outside = ['issuance', 'named-destination-full', 'leave-behind'];
    return this.world.areas === 'ok' && !outside.includes(this.x.variant ?? '');
  }

  /** Lets the path play out: what the user does runs on its own (an answer may never come). */
  private async drive(): Promise<void> {
    const until = Date.now() + (this.options.timeoutMs ?? PATH_TIMEOUT_MS);
    const { events, before, after } = this.x;
    while (this.k < events.length && Date.now() < until && !this.problem && this.ended === undefined) {
      const next = this.later.shift();
      if (next) void next().catch(() => {});
      await pause(POLL_MS);
    }
    if (this.problem || this.k === events.length) return;
    const where = this.ended === undefined ? 'went' : `ended in ${this.ended}, through`;
    this.problem =
      `matched ${this.k}/${events.length}: waiting for ${events[this.k]!.type} to lead from ${before[this.k]} to ${after[this.k]}; ` +
      `the real actor ${where} ${this.realStates.join(' > ')}`;
  }

  async run(dir: string): Promise<PathOutcome> {
    const system = await startSystem(dir, this.rng, this.world, {
      inspect: (party, key, ev) => this.inspect(party, key, ev),
      intercept: this.steer.interceptor(),
      envelopeTap: (_party, direction) => this.afterDelivery(direction),
    });
    this.system = system;
    const values = await furnish(system, this.rng, this.world);
    // Invariants are checked once the source holds its value (the issuing desk's own steps are not a migration).
    this.values = values;
    if (this.conformanceApplies()) {
      const tokens = values.map((v) => v.ref);
      this.conformance = new ConformanceWatch(system, { chips: ['SRC', 'DST'], areas: PROVIDERS, providers: PROVIDERS, tokens });
    }
    begin(system, this.rng, this.world);
    await this.drive();
    if (!this.problem && this.conformance) this.problem = await this.conformance.finish(`the end of the path (${this.soFar()})`);
    if (!this.problem) for (const t of this.covered) this.options.covered?.add(t);
    const c = this.conformance;
    const checked = c ? { observations: c.observations, changes: c.changes, stepsMax: c.stepsMax } : null;
    return { ok: !this.problem, matched: this.k, steps: this.x.events.length, problem: this.problem, realStates: this.realStates, conformance: checked };
  }

  /** The run is over: what the parties do while they stop is not checked. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.conformance?.stop();
    this.conformance = null;
    await this.system?.stop();
  }
}

function accountOf(t: TerminalRuntime): string {
  const a = (t.state() as { account?: unknown } | undefined)?.account;
  return typeof a === 'string' ? a : a && typeof a === 'object' ? Object.keys(a)[0]! : 'unknown';
}

/**
 * Runs one path of the migration statechart (a `ModelPath` from `generatePaths`, or a path of
 * `paths --format json`, whose steps' `from` and `to` are then the states checked) on a fresh real embedded
 * system, and says whether the real actor did what the path says.
 */
export async function runMigrationPath(path: ModelPath | PathJson, options: RunOptions = {}): Promise<PathOutcome> {
  const run = new PathRun(expected(path), options);
  const dir = mkdtempSync(join(tmpdir(), 'valmove-model-'));
  // The runtime's timers do not keep a process alive (a party must not hold its process open); this run does.
  const keepAlive = setInterval(() => {}, 1_000);
  try {
    return await run.run(dir);
  } finally {
    clearInterval(keepAlive);
    await run.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
