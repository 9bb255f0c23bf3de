/**
 * One seed's world and its event loop (simulation.md): the generators drawn from the seed, the virtual clock
 * and pooled network, the embedded system on them, the trace and its hash, the faults that strike (crashes
 * and restarts included), and the loop that delivers the next message or fires the next timer, then waits
 * until every party is idle and checks the invariants.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import type { ChipRuntime } from '../actors/chip.actor.ts';
import { CrashSignal, ONE_TURN_PER_COMMIT, type TurnPoint } from '../actors/runtime.ts';
import { EmbeddedSystem } from '../actors/system.ts';
import { utf8 } from '../crypto/bytes.ts';
import { seededRng, type SeededRng } from '../crypto/index.ts';
import { createLogger } from '../log.ts';
import { FAST_TIMING, type Timing } from '../timing.ts';
import { brokenAdminSam } from '../testing/broken.ts';
import { tampering } from '../testing/tamper.link.ts';
import { peekHeader } from '../transport/envelope.ts';
import type { FaultPolicy } from '../transport/faulty.link.ts';
import { observable, SafetyChecker, type Violation } from './invariants.ts';
import { PersistThenSpeak } from './persistThenSpeak.ts';
import { makeDefective, RogueServer } from './rogue.ts';
import type { FaultKind, FaultMix, SeedResult, SimOptions } from './types.ts';
import { SimNetwork, VirtualClock } from './world.ts';

/**
 * The protocol's timeouts in simulation: FAST_TIMING, on the virtual clock,
 * with inbox records kept 2 s: above the longest partition (1.5 s) and a
 * restart, so a seed prunes inboxes in its safety phase, under faults.
 */
export const SIM_TIMING: Timing = { ...FAST_TIMING, inboxRetentionMs: 2_000 };
/** scrypt cost of user passwords in simulation (logins are not what is under test). */
const SIM_SCRYPT = { N: 2 ** 10, r: 8, p: 1 };
/** A message's latency on a link: 0 to this many virtual ms. */
const LATENCY_MAX_MS = 4;
/** Deliveries and timer firings a seed may take in all (a run that loops forever is a violation, not a hang). */
const EVENTS_MAX = 400_000;
/** Setup steps (a user, an issue, a login) spin the loop at most this many times before the seed gives up on them. */
const SETUP_SPINS_MAX = 10_000;

/** Parties whose stores hold what the invariants read. */
const OBSERVED = /^(chip\/|migration-sam\/|normal-sam\/|admin-sam$)/;

export function pick<T>(rng: SeededRng, xs: readonly T[]): T {
  return xs[Math.floor(rng.nextFloat() * xs.length)]!;
}

/** Draws this seed's fault mix (swarm testing: some seeds lose a third of their messages, some nothing). */
export function drawMix(rng: SeededRng, kinds: readonly FaultKind[]): FaultMix {
  const on = (k: FaultKind) => kinds.includes(k);
  return {
    drop: on('drop') ? pick(rng, [0, 0.01, 0.05, 0.15, 0.3]) : 0,
    dup: on('dup') ? pick(rng, [0, 0.02, 0.1, 0.3]) : 0,
    reorder: on('reorder') ? pick(rng, [0, 0.02, 0.1, 0.3]) : 0,
    delay: on('delay') ? pick(rng, [0, 0.05, 0.2, 0.5]) : 0,
    delayMaxMs: pick(rng, [5, 20, 100]),
    crash: on('crash') ? pick(rng, [0, 0.0005, 0.002, 0.006]) : 0,
    partition: on('partition') ? pick(rng, [0, 0.5, 2]) : 0,
  };
}

export class SeedRun {
  /** The protocol's random bytes (independent streams from the one seed). */
  readonly protoRng: SeededRng;
  /** The scheduler and the weather: latencies, crashes, partitions, what users do when. */
  readonly rng: SeededRng;
  private readonly faultRng: SeededRng;
  /** Which destination chips the rogue makes defective, and when their users give up. */
  readonly rogueRng: SeededRng;
  readonly mix: FaultMix;
  readonly clock = new VirtualClock();
  readonly net: SimNetwork;
  private readonly dir: string;
  private readonly hash = sha256.create();
  private readonly trace: string[] = [];
  private readonly t0: number;
  /** The providers: one per item a user may hold, at least two. */
  readonly providers: string[];

  phase: 'setup' | 'safety' | 'liveness' = 'setup';
  private faultNo = 0;
  private readonly struck: number[] = [];
  private readonly faults: Record<string, number> = {};
  /** Parties crashed and not yet restarted. */
  readonly down = new Set<string>();
  private readonly pending = new Set<Promise<unknown>>();
  private crashes = 0;
  private restarts = 0;
  partitions = 0;

  readonly rogue: RogueServer | undefined;
  /** Destination chips made defective (made so again at each restart). */
  private readonly defective = new Set<string>();
  private readonly speech: PersistThenSpeak;
  private escaped: Violation | undefined;
  private readonly onEscape = (e: unknown) => {
    this.escaped ??= { invariant: 'uncaught', message: `an exception escaped a party: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}` };
  };

  system!: EmbeddedSystem;
  private events = 0;
  violation: SeedResult['violation'];
  /** Every item issued: what the safety checker tracks. */
  readonly refs: string[] = [];
  private checker: SafetyChecker | undefined;
  /** A party restarted since the last check: read every store again. */
  private stale = true;
  /** How each migration ended: completed, rolled back, refused. */
  readonly outcomes: Record<string, number> = {};
  /** Half the seeds end each committed migration's backup soon (issue 22): its wipe runs among the faults, and must end. */
  readonly backupRetentionMs: number | undefined;
  /** More invariants, checked with the others after every message that reaches an observed party (selection.ts). */
  readonly checks: Array<() => Violation | null> = [];

  constructor(readonly o: SimOptions) {
    this.protoRng = seededRng(`${o.seed}/protocol`);
    this.rng = seededRng(`${o.seed}/scheduler`);
    this.faultRng = seededRng(`${o.seed}/faults`);
    this.rogueRng = seededRng(`${o.seed}/rogue-chips`);
    this.mix = drawMix(this.rng, o.faults);
    this.backupRetentionMs = seededRng(`${o.seed}/backup`).nextFloat() < 0.5 ? 300 : undefined;
    this.net = new SimNetwork(this.clock, this.rng, LATENCY_MAX_MS);
    this.dir = join(o.dataDir, `seed-${o.seed.replace(/[^A-Za-z0-9_-]/g, '_')}`);
    this.t0 = this.clock.now();
    this.providers = Array.from({ length: Math.max(2, o.items) }, (_, i) => `p${i}`);
    this.rogue = o.rogue && o.rogue.length > 0 ? new RogueServer(seededRng(`${o.seed}/rogue`), this.clock, new Set(o.rogue), (s) => this.line(s)) : undefined;
    this.speech = new PersistThenSpeak((party, id, corr) => this.system.party(party).remembers(id, corr));
  }

  /** Virtual ms since the seed began. */
  get elapsedMs(): number {
    return this.clock.now() - this.t0;
  }

  /** A trace line: hashed always, kept when asked. */
  line(s: string): void {
    const l = `${String(this.elapsedMs).padStart(7)} ${s}`;
    this.hash.update(utf8(`${l}\n`));
    if (this.o.keepTrace) this.trace.push(l);
  }

  /** Numbers a fault; false when the shrinker switched this one off. */
  strike(kind: string, where: string): boolean {
    const n = this.faultNo++;
    if (this.o.mask?.has(n)) return false;
    this.struck.push(n);
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
    this.line(`FAULT #${n} ${kind} ${where}`);
    return true;
  }

  /** Records the first violation (and every one in the trace). */
  fail(v: Violation): void {
    this.violation ??= { ...v, atMs: this.elapsedMs, event: this.events };
    this.line(`VIOLATION ${v.invariant}: ${v.message}`);
  }

  /** An exception that escaped a party, if any and no violation came first, is the seed's violation. */
  failOnEscape(): void {
    if (this.escaped && !this.violation) this.fail(this.escaped);
  }

  // ---- the system: started on the virtual world, its crashes and restarts -----------------------------------

  /** Makes the folder, watches for exceptions that escape a party, and starts every party. */
  async start(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
    // A party that throws outside its turns (an intent handler's mistake, a turn that failed after a state change)
    // would end the process with an uncaught exception: here it ends the seed with a named violation instead.
    process.on('uncaughtException', this.onEscape);
    process.on('unhandledRejection', this.onEscape);
    this.system = await EmbeddedSystem.start({
      dataDir: this.dir,
      providers: this.providers,
      rng: this.protoRng,
      clock: this.clock,
      scheduler: this.net,
      faultRng: this.faultRng,
      // VALMOVE_SIM_LOG=debug|info|warn: the parties' logs on stderr, with virtual timestamps (for a replayed seed).
      log: createLogger({
        level: (process.env.VALMOVE_SIM_LOG as 'info' | undefined) ?? 'silent',
        now: () => this.clock.now(),
        sink: { write: (s: string) => void process.stderr.write(s) },
      }),
      scrypt: SIM_SCRYPT,
      timing: SIM_TIMING,
      backupRetentionMs: this.backupRetentionMs,
      adminSam: this.o.breakProtocol ? brokenAdminSam(this.o.breakProtocol) : undefined,
      wrapSender: this.rogue ? tampering(this.rogue.tamper) : undefined,
      onPartyStarted: (party) => {
        if (this.defective.has(party.id)) makeDefective(party as ChipRuntime);
      },
      commits: 'sync',
      commitPolicy: ONE_TURN_PER_COMMIT,
      envelopeTap: (party, direction, peer, bytes) => {
        const h = peekHeader(bytes);
        if (direction === 'out') return this.phase === 'setup' ? undefined : this.speech.spoke(party, peer, h, bytes);
        this.line(`${party} <- ${peer} ${h.type ?? '?'} ${h.id ?? ''}`);
      },
      onTurnPoint: (party, point, info) => this.turnPoint(party, point, info.type),
    });
  }

  /** Waits for what is still running, stops every party and removes the seed's folder. */
  async stop(): Promise<void> {
    await Promise.allSettled([...this.pending]);
    process.off('uncaughtException', this.onEscape);
    process.off('unhandledRejection', this.onEscape);
    this.system.setFaults(null);
    await this.system.stop().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** At each turn point, in the safety phase, a party may crash (it is restarted a little later). */
  private turnPoint(party: string, point: TurnPoint, type: string | undefined): void {
    this.speech.turnPoint(party, point);
    const { mix, rng } = this;
    if (this.phase !== 'safety' || mix.crash === 0 || this.down.has(party)) return;
    if (rng.nextFloat() >= mix.crash || !this.strike('crash', `${party} ${point} ${type ?? ''}`)) return;
    this.crashes++;
    this.down.add(party);
    const back = this.clock.now() + 5 + Math.floor(rng.nextFloat() * 400);
    this.clock.schedule(back, () => this.restart(party));
    throw new CrashSignal(`${party} at ${point}`);
  }

  restart(id: string): void {
    this.track(
      this.system.restart(id).then(() => {
        this.down.delete(id);
        this.stale = true;
        this.restarts++;
        this.line(`RESTART ${id}`);
      }),
    );
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch(() => {}).finally(() => this.pending.delete(q));
    this.pending.add(q);
  }

  /** Makes a destination chip write wrong main keys, now and after every restart (rogue 'download-kcv'). */
  makeDefective(chip: ChipRuntime): void {
    this.defective.add(chip.id);
    makeDefective(chip);
    this.rogue!.stats['download-kcv'].tried++;
  }

  /** The safety phase: the link faults of this seed's mix strike. */
  faultsOn(): void {
    const { mix } = this;
    const policy: FaultPolicy = {
      drop: mix.drop,
      duplicate: mix.dup,
      reorder: mix.reorder,
      delay: mix.delay,
      delayMaxMs: mix.delayMaxMs,
      strike: (kind, link) => this.strike(kind === 'duplicate' ? 'dup' : kind, link),
    };
    this.system.setFaults(policy);
  }

  // ---- the loop: deliver the next message or fire the next timer, then wait until every party is idle --------

  private busy(): boolean {
    return this.pending.size > 0 || this.system.parties().some((p) => p.busy);
  }

  /** Waits until no party has work and nothing tracked is pending. */
  async settle(): Promise<void> {
    for (;;) {
      if (this.busy()) {
        await Promise.all([...this.system.parties().map((p) => p.idle()), ...this.pending]);
        continue;
      }
      await new Promise<void>((r) => setImmediate(r));
      if (!this.busy()) return;
    }
  }

  /** A violation found outside the invariant checks: a rogue's finding, an envelope sent too early, an escaped exception. */
  private finding(): Violation | undefined {
    if (this.rogue?.finding) return { invariant: 'rogue', message: this.rogue.finding.message };
    return this.speech.unpersisted ?? this.escaped;
  }

  /** Runs until `done`, quiescence, the virtual time `endAt`, or a violation. */
  async pump(done: () => boolean, endAt: number, check: boolean): Promise<void> {
    for (;;) {
      await this.settle();
      const found = this.violation ? undefined : this.finding();
      if (found) return this.fail(found);
      if (this.violation || done()) return;
      const tn = this.net.nextAt();
      const tc = this.clock.nextAt();
      if (tn === undefined && tc === undefined) return;
      const next = Math.min(tn ?? Infinity, tc ?? Infinity);
      if (next > endAt) return;
      if (++this.events > EVENTS_MAX) return this.fail({ invariant: 'liveness', message: `no end after ${EVENTS_MAX} events` });
      this.clock.advanceTo(next);
      if (tn !== undefined && tn <= (tc ?? Infinity)) {
        const m = this.net.take()!;
        m.fn();
        // Only chips, migration SAMs and the admin SAM keep what the invariants read: check after what reaches them.
        if (check && OBSERVED.test(m.delivery.to)) {
          const v = await this.checkInvariants(m.delivery.to);
          if (v) return this.fail(v);
        }
      } else this.clock.fireNext();
    }
  }

  /** The invariants, once the parties are idle after a delivery to `to` (skipped while a store's party is down). */
  private async checkInvariants(to: string): Promise<Violation | null | undefined> {
    await this.settle();
    if (!observable(this.system, this.down)) return undefined;
    this.checker ??= new SafetyChecker(this.system, new Set(this.refs));
    if (this.stale) {
      this.checker.refreshAll();
      this.stale = false;
    } else this.checker.refresh(to);
    const v = this.checker.check();
    if (v) return v;
    for (const more of this.checks) {
      const found = more();
      if (found) return found;
    }
    return null;
  }

  /** Runs the world until a setup step (a user, an issue, a login) finishes, and gives its result. */
  async until<T>(p: Promise<T>, what: string): Promise<T> {
    let settled = false;
    let value: T | undefined;
    let error: unknown;
    p.then(
      (v) => {
        settled = true;
        value = v;
      },
      (e) => {
        settled = true;
        error = e;
      },
    );
    // The issuing desk's console talks to a chip outside the simulated network (on the event loop): let it.
    for (let spins = 0; !settled && spins < SETUP_SPINS_MAX; spins++) {
      await this.pump(() => settled, this.clock.now() + 60_000, false);
      if (!settled) await new Promise<void>((r) => setImmediate(r));
    }
    if (!settled) throw new Error(`simulation setup: ${what} did not finish`);
    if (error) throw error;
    return value as T;
  }

  // ---- the result ---------------------------------------------------------------------------------------------

  /** What the seed reports: the verdict, the trace hash (and lines, if kept), the mix and the figures. */
  result(wallMs: number, payments: NonNullable<SeedResult['stats']['payments']> | undefined): SeedResult {
    const { rogue } = this;
    return {
      seed: this.o.seed,
      ok: !this.violation,
      violation: this.violation,
      traceHash: bytesToHex(this.hash.digest()).slice(0, 32),
      trace: this.trace,
      mix: this.mix,
      struck: this.struck,
      stats: {
        delivered: this.net.delivered,
        events: this.events,
        virtualMs: this.elapsedMs,
        faults: this.faults,
        crashes: this.crashes,
        restarts: this.restarts,
        partitions: this.partitions,
        outcomes: this.outcomes,
        wallMs,
        ...(rogue ? { rogue: rogue.stats } : {}),
        ...(payments ? { payments } : {}),
      },
    };
  }
}
