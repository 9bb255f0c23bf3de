/**
 * `valmove demo`: the main job. Everything embedded in one process, every
 * party with its own LMDB under the data folder:
 *
 *   a user, a source chip with N items its N providers issued to it (signed
 *   issue orders, received by the old phone), an empty
 *   destination chip registered to the same user; one payment on the source;
 *   the migration (one server connection per terminal), step by step; then
 *   the items before and after, a payment that succeeds on the destination
 *   and one that fails on the source.
 */
import { closeSync, mkdirSync, openSync, readdirSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { seededRng, systemRng, toHex } from '../crypto/index.ts';
import { crashHook, parseCrashAt, type CrashAt } from '../actors/crash.ts';
import { driveMigration } from '../actors/driver.ts';
import { parseFaults, type FaultPolicy } from '../transport/faulty.link.ts';
import { FAST_TIMING } from '../timing.ts';
import { TerminalRuntime } from '../actors/terminal.actor.ts';
import { RemoteError } from '../protocol/errors.ts';
import { createLogger } from '../log.ts';
import type { ChipRuntime } from '../actors/chip.actor.ts';
import { EmbeddedSystem } from '../actors/system.ts';
import type { NormalReceipt } from '../actors/terminal.actor.ts';
import type { ProgressEvent } from '../actors/terminalUser.ts';
import type { ValueKind } from '../actors/value.ts';
import { demoProviders, demoValue } from '../fixtures/demo.ts';
import { moves, onlyOption, stayedLine } from '../fixtures/demoSelection.ts';
import { table } from './table.ts';
import type { Recorder } from '../trace/recorder.ts';
import { systemRecorder } from '../trace/wiring.ts';
import type { ReceiptFile } from '../transport/receipt.schemas.ts';
import { migrateWithCancel, parseCancelAt, saveDemoReceipt, StepLog, type StepEntry } from '../fixtures/demoFlow.ts';

export const DEMO_ITEMS_MAX = 20;

export interface DemoOptions {
  items: number;
  data?: string;
  json: boolean;
  out: (line: string) => void;
  /** PARTY:STEP:POINT: crash that party there once, and restart it from its LMDB. */
  crashAt?: string;
  /** Link faults during the migration, e.g. "drop=0.2,dup=0.1,reorder=0.1". */
  faults?: string;
  /** Seed of the fault choices (the same seed, the same faults). */
  seed?: number;
  /** Record every envelope (metadata only) and state change to this JSON Lines run file (`valmove trace` draws it). */
  record?: string;
  /** Stream the same records to a live page's feed, e.g. ws://127.0.0.1:PORT/feed. */
  inspect?: string;
  /** Cancel the migration at this step (S3…S14): the user sees a rollback (demoFlow.ts). */
  cancelAt?: string;
  /** Move only these providers' items (demoSelection.ts); the others stay spendable on the source. */
  only?: string[];
}

export interface DemoItem {
  item: number;
  area: string;
  provider: string;
  kind: ValueKind;
  before: string;
  after: string;
  sourceAfter: string;
  destinationAfter: string;
}

export interface DemoReport {
  outcome: string;
  mig: string;
  dataDir: string;
  items: DemoItem[];
  chips: Record<string, Array<{ area: string; provider: string; state: string }>>;
  paymentOnDestination: { ok: boolean; detail: string };
  paymentOnSource: { ok: boolean; detail: string };
  messagesByHop: Record<string, number>;
  messagesTotal: number;
  elapsedMs: number;
  balances: { before: number; after: number; conserved: boolean };
  /** What fault injection did, when asked for. */
  faults?: { crashAt: string | null; crashes: string[]; links: Record<string, number> };
  /** Every step the migration announced, in order (demoFlow.ts). */
  steps: StepEntry[];
  /** The user's receipt, written in the data folder (`valmove receipt verify PATH`). */
  receipt?: { path: string; trust: string; outcome: string; statements: number };
  /** --cancel-at: the step and the decision the cancel got. */
  cancel?: { at: string; decision: string };
}

export function freshDataDir(): string {
  const base = resolve('data');
  mkdirSync(base, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let dir = join(base, `demo-${stamp}`);
  for (let n = 2; readdirSync(base).includes(dir.slice(base.length + 1)); n++) dir = join(base, `demo-${stamp}-${n}`);
  return dir;
}

/** What normal use shows of an item: a ticket's state, or a balance. */
export function describe(r: { state?: string; balance?: number }): string {
  if (r.state) return r.state;
  return `balance ${r.balance}`;
}

function hopOf(id: string): string {
  return id.split('/')[0] ?? id;
}

/** Normal use on a phone: what it showed, or the refusal's code and reason. */
export async function tryUse(
  t: TerminalRuntime,
  provider: string,
  op: 'balance' | 'pay' | 'use',
  area: string,
  amount?: number,
): Promise<{ ok: boolean; detail: string; receipt?: NormalReceipt; code?: string }> {
  try {
    const receipt = await t.normalUse(provider, op, area, amount);
    return { ok: true, detail: describe(receipt), receipt };
  } catch (e) {
    const code = e instanceof RemoteError ? e.code : 'ERROR';
    return { ok: false, detail: `${code}: ${(e as Error).message}`, code };
  }
}

function areaStates(chip: ChipRuntime): Array<{ area: string; provider: string; state: string }> {
  return chip.memory
    .list()
    .filter((a) => a.state !== 'absent')
    .map((a) => ({ area: a.area, provider: a.provider, state: a.state }));
}

export async function runDemo(opts: DemoOptions): Promise<DemoReport> {
  if (!Number.isInteger(opts.items) || opts.items < 1 || opts.items > DEMO_ITEMS_MAX) {
    throw new RangeError(`--items must be a whole number from 1 to ${DEMO_ITEMS_MAX}; got ${opts.items}`);
  }
  const demo = new Demo(opts);
  const system = await demo.start();
  try {
    return await demo.run(system);
  } finally {
    await demo.stop(system);
  }
}

/** The demo's user, chips and phones. */
interface DemoWorld {
  user: string;
  password: string;
  source: ChipRuntime;
  destination: ChipRuntime;
  oldPhone: TerminalRuntime;
  newPhone: TerminalRuntime;
}

type DemoPlan = ReturnType<typeof demoProviders>;

/** One demo run: its data folder and log, the crash it was asked for, the hops it counts, its system. */
class Demo {
  private readonly say: (line: string) => void;
  private readonly dataDir: string;
  private readonly rng = systemRng;
  private readonly plan: DemoPlan;
  private readonly hops: Record<string, number> = {};
  private counting = false;
  private readonly logFd: number;
  private readonly crashAt: CrashAt | undefined;
  private readonly faultPolicy: FaultPolicy | undefined;
  private readonly crashes: string[] = [];
  /** Crashes and progress lines only during the migration. */
  private armed = false;
  private readonly stepLog = new StepLog();
  private readonly onProgress = (e: ProgressEvent) => {
    this.stepLog.record(e, new Date());
    this.say(`  [${e.step.padEnd(9)}] ${e.text}`);
  };
  private receipt: DemoReport['receipt'];
  private cancel: DemoReport['cancel'];
  private system: EmbeddedSystem | undefined;
  private recorder: Recorder | undefined;

  constructor(private readonly opts: DemoOptions) {
    this.say = opts.json ? () => {} : opts.out;
    this.dataDir = opts.data ? resolve(opts.data) : freshDataDir();
    this.plan = demoProviders(opts.items);
    mkdirSync(this.dataDir, { recursive: true });
    this.logFd = openSync(join(this.dataDir, 'valmove.log'), 'a');
    this.crashAt = opts.crashAt ? parseCrashAt(opts.crashAt) : undefined;
    this.faultPolicy = opts.faults ? parseFaults(opts.faults) : undefined;
    if (opts.cancelAt) parseCancelAt(opts.cancelAt);
  }

  /** With faults on, the user is persistent and the run reports what the faults did. */
  private get faulty(): boolean {
    return this.crashAt !== undefined || this.faultPolicy !== undefined;
  }

  /** Starts every party embedded, under the data folder, recording if asked. */
  async start(): Promise<EmbeddedSystem> {
    const { opts, say } = this;
    const log = createLogger({ level: 'info', sink: { write: (line) => writeSync(this.logFd, line) } });
    const hook = this.crashHook();
    say(`valmove demo: ${opts.items} item(s) from ${opts.items} provider(s); data in ${this.dataDir} (log: valmove.log)`);
    this.recorder = systemRecorder({ record: opts.record ? resolve(opts.record) : undefined, inspect: opts.inspect });
    if (opts.record) say(`recording the run to ${resolve(opts.record)} (draw it with: valmove trace ${opts.record})`);
    this.system = await EmbeddedSystem.start({
      dataDir: this.dataDir,
      providers: this.plan.map((p) => p.provider),
      rng: this.rng,
      log,
      timing: FAST_TIMING,
      faultRng: opts.seed !== undefined ? seededRng(opts.seed) : undefined,
      envelopeTap: this.recorder?.tap,
      inspect: this.recorder?.inspect,
      onTurnPoint: hook ? (party, point, info) => this.armed && hook(party, point, info) : undefined,
      onPartyStarted: (party) => {
        if (party instanceof TerminalRuntime && this.armed) party.onProgress(this.onProgress);
      },
      linkTap: ({ from, to }) => {
        if (!this.counting) return;
        const hop = `${hopOf(from)}->${hopOf(to)}`;
        this.hops[hop] = (this.hops[hop] ?? 0) + 1;
      },
    });
    return this.system;
  }

  /** --crash-at: the party crashes there once, and is restarted from its LMDB once its turn unwound. */
  private crashHook(): ReturnType<typeof crashHook> | undefined {
    const { crashAt } = this;
    if (!crashAt) return undefined;
    return crashHook(crashAt, (party) => {
      this.crashes.push(`${party} at ${crashAt.step} ${crashAt.point}`);
      this.say(`  !! ${party} crashed at ${crashAt.step} (${crashAt.point}); restarting it from its LMDB`);
      this.system!.restarting.add(party);
      setImmediate(() => void this.system!.restart(party));
    });
  }

  async stop(system: EmbeddedSystem): Promise<void> {
    await system.stop();
    await this.recorder?.close();
    closeSync(this.logFd);
  }

  /** The whole story: set up, issue, pay, migrate, then the items and payments after. */
  async run(system: EmbeddedSystem): Promise<DemoReport> {
    const { plan, say } = this;
    const w = await this.setUp(system);
    await this.issue(system, w);
    const emoney = plan.find((p) => (p.kind === 'emoney' || p.kind === 'transit' || p.kind === 'points') && moves(this.opts.only, p.provider));
    if (emoney) {
      const paid = await tryUse(w.oldPhone, emoney.provider, 'pay', emoney.provider, 500);
      say(`normal use on the source: pay 500 from ${emoney.provider} -> ${paid.detail}`);
    }
    const before = new Map<string, string>();
    let sumBefore = 0;
    for (const p of plan) {
      const r = await tryUse(w.oldPhone, p.provider, 'balance', p.provider);
      before.set(p.provider, r.detail);
      sumBefore += r.receipt?.balance ?? 0;
    }
    const { done, elapsedMs } = await this.migrate(system, w);
    const holder = done.outcome === 'rolledBack' ? w.oldPhone : w.newPhone; // where the items are spendable now
    const { items, sumAfter } = await this.itemsAfter(system, w, before, holder);
    // Crashed terminals were replaced: talk to the ones running now.
    const phone = (t: TerminalRuntime) => system.party<TerminalRuntime>(t.id);
    let payDst = { ok: false, detail: 'no spendable item' };
    let paySrc = { ok: false, detail: 'no spendable item' };
    if (emoney) {
      payDst = await tryUse(phone(w.newPhone), emoney.provider, 'pay', emoney.provider, 300);
      paySrc = await tryUse(phone(w.oldPhone), emoney.provider, 'pay', emoney.provider, 300);
      say(`\npay 300 on the destination: ${payDst.ok ? 'accepted' : 'REFUSED'} (${payDst.detail})`);
      say(`pay 300 on the source:      ${paySrc.ok ? 'ACCEPTED' : 'refused'} (${paySrc.detail})`);
    }
    const conserved = sumBefore === sumAfter;
    say(`balances before ${sumBefore}, after ${sumAfter}: ${conserved ? 'conserved' : 'NOT CONSERVED'}`);
    const totalMessages = Object.values(this.hops).reduce((a, b) => a + b, 0);
    say(
      `messages during the migration: ${totalMessages} (${Object.entries(this.hops)
        .map(([h, n]) => `${h} ${n}`)
        .join(', ')})`,
    );
    return {
      outcome: done.outcome,
      mig: done.mig,
      dataDir: this.dataDir,
      items,
      chips: {
        [w.source.serial]: areaStates(system.party<ChipRuntime>(w.source.id)),
        [w.destination.serial]: areaStates(system.party<ChipRuntime>(w.destination.id)),
      },
      paymentOnDestination: payDst,
      paymentOnSource: paySrc,
      messagesByHop: this.hops,
      messagesTotal: totalMessages,
      elapsedMs,
      balances: { before: sumBefore, after: sumAfter, conserved },
      steps: this.stepLog.steps,
      ...(this.receipt ? { receipt: this.receipt } : {}),
      ...(this.cancel ? { cancel: this.cancel } : {}),
      ...(this.faulty ? { faults: { crashAt: this.opts.crashAt ?? null, crashes: this.crashes, links: system.faultCounts() } } : {}),
    };
  }

  /** A user, an empty source and destination chip, each in a phone logged in as the user, each chip registered. */
  private async setUp(system: EmbeddedSystem): Promise<DemoWorld> {
    const { rng, crashAt } = this;
    const tag = toHex(rng.bytes(3)).toUpperCase();
    const user = 'alice';
    const password = toHex(rng.bytes(12));
    await system.server.createUser(user, password);

    const source = await system.addChip(`SRC-${tag}`);
    const destination = await system.addChip(`DST-${tag}`);
    const oldPhone = await system.addTerminal('old-phone');
    const newPhone = await system.addTerminal('new-phone');
    // --crash-at names the chips by role: chip/source, chip/destination.
    if (crashAt?.party === 'chip/source') crashAt.party = source.id;
    if (crashAt?.party === 'chip/destination') crashAt.party = destination.id;
    system.insertChip(oldPhone, source);
    system.insertChip(newPhone, destination);

    for (const t of [oldPhone, newPhone]) {
      system.connectToServer(t);
      await t.login(user, password);
      const reg = await t.register();
      this.say(`${t.id}: ${user} logged in; chip ${reg.serial} registered (proved its serial with K_chip)`);
    }
    return { user, password, source, destination, oldPhone, newPhone };
  }

  /** Each provider signs an issue order for the source chip; the old phone receives them (a migration without a source). */
  private async issue(system: EmbeddedSystem, w: DemoWorld): Promise<void> {
    const { plan, rng, say } = this;
    const orders = plan.map((p, i) => system.issueOrder({ provider: p.provider, serial: w.source.serial, value: demoValue(p.kind, i, toHex(rng.bytes(16))) }));
    const issued = await w.oldPhone.issue(orders);
    if (issued.outcome !== 'completed') throw new Error(`issuance ended ${issued.outcome}: ${issued.reason ?? ''}`);
    const issuedKinds = plan.map((p) => `${p.kind} (${p.provider})`).join(', ');
    say(`source chip ${w.source.serial} issued with: ${issuedKinds} (each provider's signed issue order, issuance ${issued.mig})`);
    say(`destination chip ${w.destination.serial} is empty`);
    for (const p of plan) {
      system.connectReader(w.oldPhone, p.provider);
      system.connectReader(w.newPhone, p.provider);
    }
  }

  /** The migration, its messages counted: step by step, or (with faults on) driven by a persistent user. */
  private async migrate(system: EmbeddedSystem, w: DemoWorld): Promise<{ done: { mig: string; outcome: string }; elapsedMs: number }> {
    const { crashAt, say } = this;
    w.oldPhone.onProgress(this.onProgress);
    w.newPhone.onProgress(this.onProgress);
    this.counting = true;
    const t0 = performance.now();
    const done = this.faulty ? await this.migrateWithFaults(system, w) : await this.migrateStepByStep(system, w);
    const elapsedMs = Math.round(performance.now() - t0);
    this.counting = false;
    if (crashAt && this.crashes.length === 0) {
      say(
        `  note: --crash-at ${this.opts.crashAt} never fired: ${crashAt.party} handled no ${crashAt.step} turn (parties: ${system
          .parties()
          .map((p) => p.id)
          .join(', ')})`,
      );
    }
    say(`migration ${done.mig}: ${done.outcome} in ${elapsedMs} ms\n`);
    return { done, elapsedMs };
  }

  /** With faults on, the user is persistent: logs in again after a lost login, asks again after a lost request. */
  private async migrateWithFaults(system: EmbeddedSystem, w: DemoWorld): Promise<{ mig: string; outcome: string }> {
    const { crashAt, faultPolicy, opts } = this;
    const disturbances = [crashAt ? `a crash at ${opts.crashAt}` : '', faultPolicy ? `link faults ${opts.faults}` : ''].filter(Boolean).join(' and ');
    this.say(`\nmigrating ${w.source.serial} -> ${w.destination.serial} with ${disturbances}`);
    this.armed = true;
    system.setFaults(faultPolicy ?? null);
    const r = await driveMigration(system, {
      user: w.user,
      password: w.password,
      source: w.oldPhone.id,
      destination: w.newPhone.id,
      destinationSerial: w.destination.serial,
      ...onlyOption(this.opts.only),
      timeoutMs: 300_000,
    });
    system.setFaults(null);
    this.armed = false;
    return { mig: r.mig, outcome: r.state };
  }

  private async migrateStepByStep(system: EmbeddedSystem, w: DemoWorld): Promise<{ mig: string; outcome: string }> {
    const { say } = this;
    if (this.opts.cancelAt) {
      const onProgress = (l: (e: ProgressEvent) => void) => {
        for (const t of [w.oldPhone, w.newPhone]) t.onProgress(l);
      };
      const r = await migrateWithCancel({ ...w, onProgress }, w.destination.serial, this.opts.cancelAt, say);
      this.cancel = { at: this.opts.cancelAt, decision: r.decision };
      this.keepReceipt(system, w.oldPhone.receiptOf(r.result));
      return r;
    }
    say(`\nmigrating ${w.source.serial} -> ${w.destination.serial} (source phase, Fig. 3)`);
    const out = await w.oldPhone.migrateOut({ destination: w.destination.serial, ...onlyOption(this.opts.only) });
    if (out.outcome !== 'uploaded') throw new Error(`source phase ended ${out.outcome}: ${out.reason ?? ''}`);
    say(`source phase done: migration ${out.mig}; the source is locked (the backup), every item is held by its provider's migration SAM`);
    say(`\ndestination phase (Fig. 4)`);
    const done = await w.newPhone.migrateIn({ mig: out.mig });
    this.keepReceipt(system, w.newPhone.receiptOf(done));
    return done;
  }

  /** The user's receipt, written in the data folder with the keys that check it. */
  private keepReceipt(system: EmbeddedSystem, receipt: ReceiptFile | undefined): void {
    this.receipt = saveDemoReceipt(this.dataDir, receipt, system.receiptKeys());
    if (this.receipt) this.say(`receipt (${this.receipt.outcome}): ${this.receipt.path}  (check it: valmove receipt verify ${this.receipt.path})`);
  }

  /** Each item after the migration: its balance on the destination, and its area's state on both chips, as a table. */
  private async itemsAfter(
    system: EmbeddedSystem,
    w: DemoWorld,
    before: Map<string, string>,
    holder: TerminalRuntime,
  ): Promise<{ items: DemoItem[]; sumAfter: number }> {
    const items: DemoItem[] = [];
    let sumAfter = 0;
    for (const [i, p] of this.plan.entries()) {
      // Crashed terminals were replaced: talk to the one running now. An item not chosen (--only) is read where it stayed.
      const moved = moves(this.opts.only, p.provider);
      const dst = await tryUse(system.party<TerminalRuntime>((moved ? holder : w.oldPhone).id), p.provider, 'balance', p.provider);
      if (!moved) dst.detail = stayedLine(dst.detail);
      sumAfter += dst.receipt?.balance ?? 0;
      items.push({
        item: i,
        area: p.provider,
        provider: p.provider,
        kind: p.kind,
        before: before.get(p.provider) ?? '?',
        after: dst.detail,
        sourceAfter: system.party<ChipRuntime>(w.source.id).memory.get(p.provider)?.state ?? 'absent',
        destinationAfter: system.party<ChipRuntime>(w.destination.id).memory.get(p.provider)?.state ?? 'absent',
      });
    }
    this.say(
      table(
        ['item', 'provider', 'kind', 'before (source)', 'after (destination)', 'source area', 'destination area'],
        items.map((it) => [String(it.item), it.provider, it.kind, it.before, it.after, it.sourceAfter, it.destinationAfter]),
      ),
    );
    return { items, sumAfter };
  }
}
