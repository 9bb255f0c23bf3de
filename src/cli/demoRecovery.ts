/**
 * `valmove demo --lost-source` (issue 22): the old phone is lost. Its items
 * were issued by their providers and spent through their normal SAMs, so
 * each provider's ledger holds their values. The user, on the new phone,
 * reports the old chip lost with the operator's one-time recovery code; each
 * provider revokes the old chip and re-issues its items on the new one, as
 * an issuance (decision record, receipts, activation). Then the figures: the
 * new chip holds each item with the ledger's value, the old chip's areas are
 * refused by every normal SAM, balances are conserved against the ledger.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ChipRuntime } from '../actors/chip.actor.ts';
import type { NormalSamRuntime } from '../actors/normalSam.actor.ts';
import { saveDemoReceipt } from '../fixtures/demoFlow.ts';
import { recoverable } from '../actors/normalSamLedger.ts';
import { EmbeddedSystem } from '../actors/system.ts';
import type { TerminalRuntime } from '../actors/terminal.actor.ts';
import { publicState, worth, type ValueItem, type ValueKind } from '../actors/value.ts';
import { systemRng, toHex } from '../crypto/index.ts';
import { demoProviders, demoValue } from '../fixtures/demo.ts';
import { createLogger } from '../log.ts';
import { FAST_TIMING } from '../timing.ts';
import { describe, freshDataDir, tryUse } from './demo.ts';
import { table } from './table.ts';

export interface LostSourceItem {
  provider: string;
  area: string;
  kind: ValueKind;
  /** The provider's ledger for the old chip, before the report. */
  ledger: string;
  /** What the new chip holds after the recovery (its normal SAM's answer). */
  newChip: string;
  /** What every normal SAM answers the old chip after the report. */
  oldChip: string;
}

export interface LostSourceReport {
  outcome: string;
  mig: string | null;
  lost: string;
  to: string;
  dataDir: string;
  providers: Array<{ provider: string; outcome: string; areas: string[]; reason?: string }>;
  items: LostSourceItem[];
  balances: { ledger: number; newChip: number; conserved: boolean };
  oldChipRefused: boolean;
  /** The recovery's signed receipt (the re-issue's statements and outcome) and the keys that check it, in the data folder. */
  receipt?: ReturnType<typeof saveDemoReceipt>;
}

const describeValue = (v: ValueItem) => describe(publicState(v));

interface LostWorld {
  system: EmbeddedSystem;
  plan: Array<{ provider: string; kind: ValueKind }>;
  source: ChipRuntime;
  destination: ChipRuntime;
  oldPhone: TerminalRuntime;
  newPhone: TerminalRuntime;
}

/** A user with two registered phones; the providers issue the items to the old one, which pays once. */
async function setUp(system: EmbeddedSystem, plan: LostWorld['plan'], say: (line: string) => void): Promise<LostWorld> {
  const password = toHex(systemRng.bytes(12));
  await system.server.createUser('alice', password);
  const tag = toHex(systemRng.bytes(3)).toUpperCase();
  const [source, destination] = [await system.addChip(`SRC-${tag}`), await system.addChip(`DST-${tag}`)];
  const [oldPhone, newPhone] = [await system.addTerminal('old-phone'), await system.addTerminal('new-phone')];
  system.insertChip(oldPhone, source);
  system.insertChip(newPhone, destination);
  for (const t of [oldPhone, newPhone]) {
    system.connectToServer(t);
    await t.login('alice', password);
    await t.register();
    for (const p of plan) system.connectReader(t, p.provider);
  }
  const orders = plan.map((p, i) =>
    system.issueOrder({ provider: p.provider, serial: source.serial, value: demoValue(p.kind, i, toHex(systemRng.bytes(16))) }),
  );
  const issued = await oldPhone.issue(orders);
  if (issued.outcome !== 'completed') throw new Error(`issuance ended ${issued.outcome}: ${issued.reason ?? ''}`);
  say(`old chip ${source.serial}: issued ${plan.map((p) => `${p.kind} (${p.provider})`).join(', ')}`);
  const spend = plan.find((p) => p.kind !== 'ticket');
  if (spend) say(`pay 500 on the old phone (${spend.provider}): ${(await tryUse(oldPhone, spend.provider, 'pay', spend.provider, 500)).detail}`);
  return { system, plan, source, destination, oldPhone, newPhone };
}

/** Each item: the ledger's value, the new chip's, and what the old chip is answered. */
async function figures(w: LostWorld, ledger: Map<string, ValueItem>): Promise<{ items: LostSourceItem[]; sumLedger: number; sumNew: number }> {
  const items: LostSourceItem[] = [];
  let [sumLedger, sumNew] = [0, 0];
  for (const p of w.plan) {
    const v = ledger.get(p.provider);
    const now = await tryUse(w.newPhone, p.provider, 'balance', p.provider);
    const old = await tryUse(w.oldPhone, p.provider, 'pay', p.provider, 1);
    sumLedger += v ? worth(v) : 0;
    sumNew += now.receipt?.balance ?? 0;
    items.push({
      provider: p.provider,
      area: p.provider,
      kind: p.kind,
      ledger: v ? describeValue(v) : '-',
      newChip: now.detail,
      oldChip: old.code ?? 'ACCEPTED',
    });
  }
  return { items, sumLedger, sumNew };
}

export async function runLostSourceDemo(opts: { items: number; data?: string; json: boolean; out: (line: string) => void }): Promise<LostSourceReport> {
  const say = opts.json ? () => {} : opts.out;
  const dataDir = opts.data ? resolve(opts.data) : freshDataDir();
  mkdirSync(dataDir, { recursive: true });
  const logFd = openSync(join(dataDir, 'valmove.log'), 'a');
  const plan = demoProviders(opts.items);
  const log = createLogger({ level: 'info', sink: { write: (line) => writeSync(logFd, line) } });
  const system = await EmbeddedSystem.start({ dataDir, providers: plan.map((p) => p.provider), rng: systemRng, log, timing: FAST_TIMING });
  try {
    say(`valmove demo --lost-source: ${opts.items} item(s) from ${opts.items} provider(s); data in ${dataDir}`);
    const w = await setUp(system, plan, say);
    const normalSam = (p: string) => system.providers.get(p)!.normalSam as NormalSamRuntime;
    const ledger = new Map<string, ValueItem>();
    for (const p of plan) for (const e of normalSam(p.provider).ledger.entriesOf(w.source.serial)) ledger.set(e.area, recoverable(e));
    say(`\nthe old phone is lost. Each provider's ledger for ${w.source.serial}: ${[...ledger].map(([a, v]) => `${a} ${describeValue(v)}`).join('; ')}`);
    const code = await system.server.recoveryCode('alice');
    say('the operator gives alice a one-time recovery code (the second proof; the server keeps only its hash)');
    const done = await w.newPhone.recover(w.source.serial, code);
    for (const p of done.providers) say(`  ${p.provider}: ${p.outcome}${p.reason ? ` (${p.reason})` : ''}; areas ${p.areas.join(', ') || '-'}`);
    say(`re-issued on ${w.destination.serial}: issuance ${done.issuance?.mig ?? '-'} ${done.issuance?.outcome ?? 'not run'}`);
    const receipt = done.issuance ? saveDemoReceipt(dataDir, w.newPhone.receiptOf(done.issuance), system.receiptKeys()) : undefined;
    if (receipt) say(`receipt (${receipt.outcome}): ${receipt.path}  (check it: valmove receipt verify ${receipt.path})`);
    say('');
    const { items, sumLedger, sumNew } = await figures(w, ledger);
    say(
      table(
        ['provider', 'kind', 'ledger (old chip)', 'new chip', 'old chip pays 1'],
        items.map((i) => [i.provider, i.kind, i.ledger, i.newChip, i.oldChip]),
      ),
    );
    const conserved = sumLedger === sumNew && items.every((i) => i.ledger === i.newChip);
    const oldChipRefused = items.every((i) => i.oldChip === 'AREA_REVOKED');
    say(`balances: ledger ${sumLedger}, new chip ${sumNew}: ${conserved ? 'conserved' : 'NOT CONSERVED'}`);
    say(`the old chip: ${oldChipRefused ? 'refused by every normal SAM (AREA_REVOKED)' : 'STILL SPENDABLE somewhere'}`);
    const ok = done.issuance?.outcome === 'completed' && conserved && oldChipRefused;
    return {
      outcome: ok ? 'completed' : (done.issuance?.outcome ?? 'failed'),
      ...{ mig: done.issuance?.mig ?? null, lost: w.source.serial, to: w.destination.serial, dataDir, providers: done.providers, items },
      balances: { ledger: sumLedger, newChip: sumNew, conserved },
      oldChipRefused,
      ...(receipt ? { receipt } : {}),
    };
  } finally {
    await system.stop();
    closeSync(logFd);
  }
}

/** The demo command's options (main.ts). */
export interface DemoFlags {
  items: number;
  data?: string;
  json: boolean;
  crashAt?: string;
  faults?: string;
  seed?: number;
  record?: string;
  inspect?: string;
  lostSource?: boolean;
}

/** `demo --lost-source`: exit 1 unless the items are back, conserved, and the old chip refused. */
export async function lostSourceDemo(o: DemoFlags, out: (line: string) => void): Promise<void> {
  const report = await runLostSourceDemo({ items: o.items, data: o.data, json: o.json, out });
  if (o.json) out(JSON.stringify(report, null, 2));
  if (report.outcome !== 'completed') process.exitCode = 1;
}
