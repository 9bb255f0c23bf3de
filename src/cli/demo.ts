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
import { crashHook, parseCrashAt } from '../actors/crash.ts';
import { driveMigration } from '../actors/driver.ts';
import { parseFaults } from '../transport/faulty.link.ts';
import { FAST_TIMING } from '../timing.ts';
import { TerminalRuntime } from '../actors/terminal.actor.ts';
import { RemoteError } from '../errors.ts';
import { createLogger } from '../log.ts';
import type { ChipRuntime } from '../actors/chip.actor.ts';
import { EmbeddedSystem } from '../actors/system.ts';
import type { NormalReceipt, ProgressEvent } from '../actors/terminal.actor.ts';
import type { ValueKind } from '../actors/value.ts';
import { demoProviders, demoValue } from '../fixtures/demo.ts';
import { table } from './table.ts';
import { systemRecorder } from '../trace/wiring.ts';

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
}

function freshDataDir(): string {
  const base = resolve('data');
  mkdirSync(base, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let dir = join(base, `demo-${stamp}`);
  for (let n = 2; readdirSync(base).includes(dir.slice(base.length + 1)); n++) dir = join(base, `demo-${stamp}-${n}`);
  return dir;
}

function describe(r: NormalReceipt): string {
  if (r.state) return r.state;
  return `balance ${r.balance}`;
}

function hopOf(id: string): string {
  return id.split('/')[0] ?? id;
}

async function tryUse(t: TerminalRuntime, provider: string, op: 'balance' | 'pay' | 'use', area: string, amount?: number): Promise<{ ok: boolean; detail: string; receipt?: NormalReceipt }> {
  try {
    const receipt = await t.normalUse(provider, op, area, amount);
    return { ok: true, detail: describe(receipt), receipt };
  } catch (e) {
    const code = e instanceof RemoteError ? e.code : 'ERROR';
    return { ok: false, detail: `${code}: ${(e as Error).message}` };
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
  const say = opts.json ? () => {} : opts.out;
  const dataDir = opts.data ? resolve(opts.data) : freshDataDir();
  const rng = systemRng;
  const plan = demoProviders(opts.items);
  const hops: Record<string, number> = {};
  let counting = false;
  mkdirSync(dataDir, { recursive: true });
  const logFd = openSync(join(dataDir, 'valmove.log'), 'a');
  const log = createLogger({ level: 'info', sink: { write: (line) => writeSync(logFd, line) } });

  const crashAt = opts.crashAt ? parseCrashAt(opts.crashAt) : undefined;
  const faultPolicy = opts.faults ? parseFaults(opts.faults) : undefined;
  const crashes: string[] = [];
  let armed = false;
  const onProgress = (e: ProgressEvent) => say(`  [${e.step.padEnd(9)}] ${e.text}`);
  let system: EmbeddedSystem | undefined;
  const hook = crashAt
    ? crashHook(crashAt, (party) => {
        crashes.push(`${party} at ${crashAt.step} ${crashAt.point}`);
        say(`  !! ${party} crashed at ${crashAt.step} (${crashAt.point}); restarting it from its LMDB`);
        system!.restarting.add(party);
        setImmediate(() => void system!.restart(party));
      })
    : undefined;
  say(`valmove demo: ${opts.items} item(s) from ${opts.items} provider(s); data in ${dataDir} (log: valmove.log)`);
  const recorder = systemRecorder({ record: opts.record ? resolve(opts.record) : undefined, inspect: opts.inspect });
  if (opts.record) say(`recording the run to ${resolve(opts.record)} (draw it with: valmove trace ${opts.record})`);
  system = await EmbeddedSystem.start({
    dataDir,
    providers: plan.map((p) => p.provider),
    rng,
    log,
    timing: FAST_TIMING,
    faultRng: opts.seed !== undefined ? seededRng(opts.seed) : undefined,
    envelopeTap: recorder?.tap,
    inspect: recorder?.inspect,
    onTurnPoint: hook ? (party, point, info) => armed && hook(party, point, info) : undefined,
    onPartyStarted: (party) => {
      if (party instanceof TerminalRuntime && armed) party.onProgress(onProgress);
    },
    linkTap: ({ from, to }) => {
      if (!counting) return;
      const hop = `${hopOf(from)}->${hopOf(to)}`;
      hops[hop] = (hops[hop] ?? 0) + 1;
    },
  });
  try {
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
      say(`${t.id}: ${user} logged in; chip ${reg.serial} registered (proved its serial with K_chip)`);
    }

    // Each provider signs an issue order for the source chip; the old phone receives them (a migration without a source).
    const orders = plan.map((p, i) => system.issueOrder({ provider: p.provider, serial: source.serial, value: demoValue(p.kind, i, toHex(rng.bytes(16))) }));
    const issued = await oldPhone.issue(orders);
    if (issued.outcome !== 'completed') throw new Error(`issuance ended ${issued.outcome}: ${issued.reason ?? ''}`);
    say(`source chip ${source.serial} issued with: ${plan.map((p) => `${p.kind} (${p.provider})`).join(', ')} (each provider's signed issue order, issuance ${issued.mig})`);
    say(`destination chip ${destination.serial} is empty`);
    for (const p of plan) {
      system.connectReader(oldPhone, p.provider);
      system.connectReader(newPhone, p.provider);
    }

    const emoney = plan.find((p) => p.kind === 'emoney' || p.kind === 'transit' || p.kind === 'points');
    if (emoney) {
      const paid = await tryUse(oldPhone, emoney.provider, 'pay', emoney.provider, 500);
      say(`normal use on the source: pay 500 from ${emoney.provider} -> ${paid.detail}`);
    }

    const before = new Map<string, string>();
    let sumBefore = 0;
    for (const p of plan) {
      const r = await tryUse(oldPhone, p.provider, 'balance', p.provider);
      before.set(p.provider, r.detail);
      sumBefore += r.receipt?.balance ?? 0;
    }

    oldPhone.onProgress(onProgress);
    newPhone.onProgress(onProgress);

    counting = true;
    const t0 = performance.now();
    let done: { mig: string; outcome: string };
    if (crashAt || faultPolicy) {
      // With faults on, the user is persistent: logs in again after a lost login, asks again after a lost request.
      say(`\nmigrating ${source.serial} -> ${destination.serial} with ${[crashAt ? `a crash at ${opts.crashAt}` : '', faultPolicy ? `link faults ${opts.faults}` : ''].filter(Boolean).join(' and ')}`);
      armed = true;
      system.setFaults(faultPolicy ?? null);
      const r = await driveMigration(system, {
        user,
        password,
        source: oldPhone.id,
        destination: newPhone.id,
        destinationSerial: destination.serial,
        timeoutMs: 300_000,
      });
      system.setFaults(null);
      armed = false;
      done = { mig: r.mig, outcome: r.state };
    } else {
      say(`\nmigrating ${source.serial} -> ${destination.serial} (source phase, Fig. 3)`);
      const out = await oldPhone.migrateOut({ destination: destination.serial });
      if (out.outcome !== 'uploaded') throw new Error(`source phase ended ${out.outcome}: ${out.reason ?? ''}`);
      say(`source phase done: migration ${out.mig}; the source is locked (the backup), every item is held by its provider's migration SAM`);
      say(`\ndestination phase (Fig. 4)`);
      done = await newPhone.migrateIn({ mig: out.mig });
    }
    const elapsedMs = Math.round(performance.now() - t0);
    counting = false;
    if (crashAt && crashes.length === 0) {
      say(`  note: --crash-at ${opts.crashAt} never fired: ${crashAt.party} handled no ${crashAt.step} turn (parties: ${system.parties().map((p) => p.id).join(', ')})`);
    }
    say(`migration ${done.mig}: ${done.outcome} in ${elapsedMs} ms\n`);
    // Crashed terminals were replaced: talk to the ones running now.
    const phone = (t: TerminalRuntime) => system!.party<TerminalRuntime>(t.id);

    const items: DemoItem[] = [];
    let sumAfter = 0;
    for (const [i, p] of plan.entries()) {
      const dst = await tryUse(phone(newPhone), p.provider, 'balance', p.provider);
      sumAfter += dst.receipt?.balance ?? 0;
      items.push({
        item: i,
        area: p.provider,
        provider: p.provider,
        kind: p.kind,
        before: before.get(p.provider) ?? '?',
        after: dst.detail,
        sourceAfter: system.party<ChipRuntime>(source.id).memory.get(p.provider)?.state ?? 'absent',
        destinationAfter: system.party<ChipRuntime>(destination.id).memory.get(p.provider)?.state ?? 'absent',
      });
    }
    say(
      table(
        ['item', 'provider', 'kind', 'before (source)', 'after (destination)', 'source area', 'destination area'],
        items.map((it) => [String(it.item), it.provider, it.kind, it.before, it.after, it.sourceAfter, it.destinationAfter]),
      ),
    );

    let payDst = { ok: false, detail: 'no spendable item' };
    let paySrc = { ok: false, detail: 'no spendable item' };
    if (emoney) {
      payDst = await tryUse(phone(newPhone), emoney.provider, 'pay', emoney.provider, 300);
      paySrc = await tryUse(phone(oldPhone), emoney.provider, 'pay', emoney.provider, 300);
      say(`\npay 300 on the destination: ${payDst.ok ? 'accepted' : 'REFUSED'} (${payDst.detail})`);
      say(`pay 300 on the source:      ${paySrc.ok ? 'ACCEPTED' : 'refused'} (${paySrc.detail})`);
    }
    const conserved = sumBefore === sumAfter;
    say(`balances before ${sumBefore}, after ${sumAfter}: ${conserved ? 'conserved' : 'NOT CONSERVED'}`);
    const totalMessages = Object.values(hops).reduce((a, b) => a + b, 0);
    say(`messages during the migration: ${totalMessages} (${Object.entries(hops).map(([h, n]) => `${h} ${n}`).join(', ')})`);

    return {
      outcome: done.outcome,
      mig: done.mig,
      dataDir,
      items,
      chips: { [source.serial]: areaStates(system.party<ChipRuntime>(source.id)), [destination.serial]: areaStates(system.party<ChipRuntime>(destination.id)) },
      paymentOnDestination: payDst,
      paymentOnSource: paySrc,
      messagesByHop: hops,
      messagesTotal: totalMessages,
      elapsedMs,
      balances: { before: sumBefore, after: sumAfter, conserved },
      ...(crashAt || faultPolicy ? { faults: { crashAt: opts.crashAt ?? null, crashes, links: system.faultCounts() } } : {}),
    };
  } finally {
    await system.stop();
    await recorder?.close();
    closeSync(logFd);
  }
}
