/**
 * `valmove up`: a whole deployment on this host, every party its own OS
 * process on 127.0.0.1 (server, admin SAM, N providers, two chips, two
 * terminals), each with its own LMDB folder and keys; then one migration
 * through them, driven through the terminals' control APIs, as a user would.
 */
import { migrateWithCancel, type StepEntry } from '../fixtures/demoFlow.ts';
import { foundAgain, saveUpReceipt, stepsOf, watchProgress } from './upFlow.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChipRuntime } from '../actors/chip.actor.ts';
import { issueItems, type IssueRequest } from '../actors/issuer.ts';
import type { ValueItem } from '../actors/value.ts';
import { systemClock } from '../clock.ts';
import { createLogger } from '../log.ts';
import { demoProviders, demoValue } from '../fixtures/demo.ts';
import { moves, onlyOption, stayedLine } from '../fixtures/demoSelection.ts';
import { fromB64, systemRng, toHex } from '../crypto/index.ts';
import type { RemoteError } from '../protocol/errors.ts';
import { PartyStore } from '../store/party.store.ts';
import { newUserRecord, ServerRecords } from '../store/server.store.ts';
import { issueRecoveryCode } from '../actors/serverRecovery.ts';
import { loadConfig, type ChipConfig, type ServerConfig } from './config.ts';
import { TerminalControl } from './control.client.ts';
import { generateDeployment, type DeploymentSummary } from './keygen.ts';
import type { Timing } from '../timing.ts';
import type { Limits } from '../transport/limits.ts';
import { readKeyFile, secretOf } from './keyfiles.ts';
import { recordsToOneFile } from '../trace/wiring.ts';
import { signIssueOrder } from './orders.ts';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/valmove.js');
/** How long a process may take to answer /healthz after it is spawned. */
export const START_TIMEOUT_MS = 30_000;
/** How long a process may take to exit after SIGTERM before it gets SIGKILL. */
export const STOP_TIMEOUT_MS = 10_000;

export interface RunningChild {
  id: string;
  role: string;
  pid: number;
  port: number;
  config: string;
  log: string;
  child: ChildProcess;
  /** Flags it was started with beyond its config (--record, --inspect); a restart keeps them. */
  flags?: string[];
}

/** `valmove start <role> --config FILE` as a child process, logging to its own file. */
export function spawnParty(role: string, config: string, logPath: string, extra: string[] = []): ChildProcess {
  const fd = openSync(logPath, 'a');
  // Own process group: a Ctrl-C meant for `up` reaches `up`, which stops them in order (or keeps them with --keep).
  const child = spawn(process.execPath, [BIN, 'start', role, '--config', config, ...extra], { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  return child;
}

export async function waitHealthy(port: number, child: ChildProcess, id: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${id} exited with code ${child.exitCode} while starting (see its log)`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${id} did not answer /healthz within ${START_TIMEOUT_MS} ms`);
}

function stopChild(c: RunningChild): Promise<void> {
  return new Promise((res) => {
    if (c.child.exitCode !== null || c.child.signalCode !== null) return res();
    const timer = setTimeout(() => c.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    c.child.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    c.child.kill('SIGTERM');
  });
}

export class LocalDeployment {
  constructor(
    readonly dir: string,
    readonly summary: DeploymentSummary,
    readonly processes: RunningChild[],
  ) {}

  terminal(name: string): TerminalControl {
    return TerminalControl.fromConfig(join(this.dir, 'config', `terminal-${name}.json`));
  }

  process(id: string): RunningChild {
    const p = this.processes.find((x) => x.id === id);
    if (!p) throw new Error(`no process ${id}`);
    return p;
  }

  /** SIGKILL: the process dies mid-whatever, as a crash would. */
  async kill(id: string): Promise<void> {
    const p = this.process(id);
    if (p.child.exitCode !== null || p.child.signalCode !== null) return;
    await new Promise<void>((res) => {
      p.child.once('exit', () => res());
      p.child.kill('SIGKILL');
    });
  }

  /** Starts the process again with `valmove start`, on its config and its LMDB folder as it was left. */
  async restart(id: string, extra: string[] = []): Promise<RunningChild> {
    const p = this.process(id);
    const child = spawnParty(p.role, p.config, p.log, [...(p.flags ?? []), ...extra]);
    Object.assign(p, { child, pid: child.pid ?? -1 });
    await waitHealthy(p.port, child, id);
    return p;
  }

  /** Lets this process exit while the deployment keeps running (`up --keep`). */
  detach(): void {
    for (const p of this.processes) p.child.unref();
  }

  /** SIGTERM to every process, SIGKILL to any that does not exit in time. */
  async stop(): Promise<void> {
    await Promise.all(this.processes.map(stopChild));
  }
}

/** The phones of pair i (0-based): old/new with chips SRC/DST, then old2/new2 with SRC2/DST2, … */
export function pairNames(pairs: number): Array<{ old: string; neu: string; source: string; destination: string }> {
  return Array.from({ length: pairs }, (_, i) => {
    const n = i === 0 ? '' : String(i + 1);
    return { old: `old${n}`, neu: `new${n}`, source: `SRC${n}`, destination: `DST${n}` };
  });
}

export interface LaunchOptions {
  dir: string;
  /** Pairs of phones (a source with items, an empty destination), all the same user's; 1 by default. */
  pairs?: number;
  providers: string[];
  user: string;
  password: string;
  /** Items issued onto the source chip before the terminals start. */
  items: IssueRequest[];
  /**
   * How the source chips get their items: at the factory, by a desk holding the issuer's and the
   * providers' master keys before the chip process starts (tests and benchmarks), or not at all, for
   * the caller to issue them through the running system with the providers' issue orders (`valmove up`).
   */
  issueBy?: 'factory' | 'orders';
  rights?: Record<string, Array<'upload' | 'download' | 'clear'>>;
  extraTrustedServers?: Record<string, Array<'upload' | 'download' | 'clear'>>;
  scrypt?: { N: number; r: number; p: number };
  embeddedAdminSam?: boolean;
  timing?: Partial<Timing>;
  /** Limits at the door for every process (docs/limits.md). */
  limits?: Partial<Limits>;
  /** Every process records (`start --record`): a .jsonl file they all append to, or a folder of per-party files. */
  record?: string;
  /** Every process streams its records to this live feed (`start --inspect`). */
  inspect?: string;
}

/** Keys, configs, a user, every process started and healthy, the source chip issued. */
export async function launchDeployment(opts: LaunchOptions): Promise<LocalDeployment> {
  const dir = resolve(opts.dir);
  const summary = await generateDeployment({
    dir,
    providers: opts.providers,
    chips: pairNames(opts.pairs ?? 1).flatMap((p) => [p.source, p.destination]),
    terminals: pairNames(opts.pairs ?? 1).flatMap((p) => [
      { name: p.old, chip: p.source },
      { name: p.neu, chip: p.destination },
    ]),
    rights: opts.rights,
    extraTrustedServers: opts.extraTrustedServers,
    scrypt: opts.scrypt,
    embeddedAdminSam: opts.embeddedAdminSam,
    timing: opts.timing,
    limits: opts.limits,
  });
  // The operator creates the user in the server's store before the server starts.
  const serverCfg = loadConfig(join(dir, 'config', 'server.json'), 'server') as ServerConfig;
  const store = PartyStore.open(serverCfg.dataDir);
  await store.commit(() => new ServerRecords(store).users.put(opts.user, newUserRecord(opts.user, opts.password, systemRng, opts.scrypt)));
  await store.close();

  mkdirSync(join(dir, 'logs'), { recursive: true });
  const flags: string[] = [];
  if (opts.record) {
    const record = resolve(opts.record);
    // One shared file starts empty (this run only); a folder gets a file per party.
    if (recordsToOneFile(record)) {
      mkdirSync(dirname(record), { recursive: true });
      writeFileSync(record, '');
    } else mkdirSync(record, { recursive: true });
    flags.push('--record', record);
  }
  if (opts.inspect) flags.push('--inspect', opts.inspect);
  const order = ['admin-sam', 'provider', 'chip', 'server', 'terminal'];
  const planned = [...summary.processes].sort((a, b) => order.indexOf(a.role) - order.indexOf(b.role));
  const deployment = new LocalDeployment(dir, summary, []);
  // Each source chip leaves the factory with its items, before it is put in its phone (then it answers only the phone).
  for (const pair of pairNames(opts.pairs ?? 1)) {
    const src = planned.find((p) => p.id === `chip-${pair.source}`);
    if (src && (opts.issueBy ?? 'factory') === 'factory') await issueAtFactory(dir, src.config, opts.items);
  }
  try {
    for (const p of planned) {
      const logPath = join(dir, 'logs', `${p.id}.log`);
      const child = spawnParty(p.role, p.config, logPath, flags);
      deployment.processes.push({ id: p.id, role: p.role, pid: child.pid ?? -1, port: p.port, config: p.config, log: logPath, child, flags });
      if (p.role === 'chip') await waitHealthy(p.port, child, p.id);
    }
    for (const p of deployment.processes) await waitHealthy(p.port, p.child, p.id);
  } catch (e) {
    await deployment.stop();
    throw e;
  }
  return deployment;
}

/**
 * The factory: the chip is personalised (serial, K_chip) and its items are
 * issued through its real command path, in this process, on the chip's own
 * store, before its process starts (a chip in a phone answers only that
 * phone). The issuing desk stands for the card issuer and each provider.
 */
async function issueAtFactory(dir: string, chipConfig: string, items: IssueRequest[]): Promise<void> {
  const cfg = loadConfig(chipConfig, 'chip') as ChipConfig;
  const keys = readKeyFile(cfg.keyFile, 'chip');
  const admin = readKeyFile(join(dir, 'keys', 'admin-sam.key.json'), 'admin-sam');
  const providerMasters = Object.fromEntries(
    [...new Set(items.map((i) => i.provider))].map((p) => [p, secretOf(readKeyFile(join(dir, 'keys', `provider-${p}.key.json`), 'provider').providerMaster)]),
  );
  const chip = new ChipRuntime({
    id: `chip/${cfg.serial}`,
    store: PartyStore.open(cfg.dataDir),
    clock: systemClock,
    rng: systemRng,
    log: createLogger({ level: 'silent' }),
  });
  try {
    await chip.start({ serial: cfg.serial, kChip: fromB64(keys.kChip) });
    await issueItems(chip, { issuerMaster: secretOf(admin.issuerMaster), providerMasters }, items, systemRng);
  } finally {
    await chip.stop();
  }
}

export interface UpReport {
  dir: string;
  outcome: string;
  mig: string;
  processes: Array<{ id: string; role: string; pid: number; port: number; dataDir: string }>;
  items: Array<{ provider: string; before: string; after: string }>;
  paymentOnDestination: string;
  paymentOnSource: string;
  elapsedMs: number;
  stopped: boolean;
  /** Every step the migration announced on either phone, in order (upFlow.ts). */
  steps?: StepEntry[];
  /** The new phone's receipt (the old phone's after --cancel-at), checked with `valmove receipt verify PATH --trust TRUST`. */
  receipt?: { path: string; trust: string; outcome: string };
  cancel?: { at: string; decision: string };
  /** --lost-source: the lost phone found again and connected: whether its revoked areas were wiped, and what a payment on it was answered. */
  foundAgain?: { pay: string; wiped: boolean };
}

/** Each provider's operator signs an issue order for the source chip (valmove provider issue); the old phone receives them. */
async function issueToSource(
  dir: string,
  items: Array<{ area: string; provider: string; value: ValueItem }>,
  oldPhone: TerminalControl,
  say: (line: string) => void,
): Promise<void> {
  const sourceSerial = (loadConfig(join(dir, 'config', `chip-${pairNames(1)[0]!.source}.json`), 'chip') as ChipConfig).serial;
  const orders = items.map(
    (it) => signIssueOrder(join(dir, 'config', `provider-${it.provider}.json`), { serial: sourceSerial, area: it.area, item: it.value, ttlHours: 1 }).token,
  );
  const issued = await oldPhone.issue(orders);
  if (issued.outcome !== 'completed') throw new Error(`issuance ended ${issued.outcome}: ${issued.reason ?? ''}`);
  say(`\nissuance ${issued.mig}: each provider's signed order put its item on ${sourceSerial} (${issued.outcome})`);
}

/** Pays 300 from the provider's item through a phone: what the phone's user would see. */
async function tryPay(t: TerminalControl, provider: string): Promise<string> {
  try {
    const r = await t.normal(provider, 'pay', 300);
    return `accepted (${r.state ?? `balance ${r.balance}`})`;
  } catch (e) {
    return `refused (${(e as RemoteError).code})`;
  }
}

/** Where `up --keep` leaves the pids of the processes it started, one a line: `kill $(cat DIR/up.pids)` stops them. */
export const UP_PIDS_FILE = 'up.pids';

const describe = (r: { balance?: number; state?: string }) => r.state ?? `balance ${r.balance}`;
const processRows = (dir: string, d: LocalDeployment) =>
  d.processes.map((p) => ({ id: p.id, role: p.role, pid: p.pid, port: p.port, dataDir: join(dir, 'data', p.id) }));

/** `up --no-migrate`: the old phone holds the items, the new one is fresh; what to do next is the user's. */
function readyReport(dir: string, d: LocalDeployment, before: Map<string, string>, keep: boolean, say: (line: string) => void): UpReport {
  say('\nno migration (--no-migrate): terminal-old is logged in as alice, its chip SRC registered and holding:');
  for (const [provider, value] of before) say(`  ${provider.padEnd(12)} ${value}`);
  say('terminal-new (chip DST) is fresh: log in and register it, then migrate-out on the old phone and migrate-in on the new');
  return {
    dir,
    outcome: 'ready',
    mig: '',
    processes: processRows(dir, d),
    items: [...before].map(([provider, value]) => ({ provider, before: value, after: value })),
    paymentOnDestination: '',
    paymentOnSource: '',
    elapsedMs: 0,
    stopped: !keep,
  };
}

/** What a flow through the running processes works with: the deployment, its items and their balances before. */
interface Through {
  dir: string;
  d: LocalDeployment;
  plan: Array<{ provider: string }>;
  before: Map<string, string>;
  keep: boolean;
  say: (line: string) => void;
}

/**
 * `up --lost-source`: the old phone is lost. The operator gives alice a one-time recovery code (as `valmove user
 * recovery-code` does, in the running server's store), she reports the old chip from the new phone, each provider
 * revokes it and re-issues its items there from its ledger; the old phone's payment is then refused (AREA_REVOKED).
 */
async function recoverThrough({ dir, d, plan, before, keep, say }: Through): Promise<UpReport> {
  const cfg = loadConfig(join(dir, 'config', 'server.json'), 'server') as ServerConfig;
  const store = PartyStore.open(cfg.dataDir);
  let code: string;
  try {
    code = await issueRecoveryCode(store, new ServerRecords(store), 'alice', systemRng, systemClock.now());
  } finally {
    await store.close();
  }
  const lost = (loadConfig(join(dir, 'config', `chip-${pairNames(1)[0]!.source}.json`), 'chip') as ChipConfig).serial;
  say(`
the old phone (chip ${lost}) is lost: alice reports it from the new phone with the operator's one-time code`);
  const t0 = Date.now();
  const oldPhone = d.terminal('old');
  const newPhone = d.terminal('new');
  const done = await newPhone.recover(lost, code);
  const elapsedMs = Date.now() - t0;
  for (const p of done.providers) say(`  ${p.provider.padEnd(12)} ${p.outcome}${p.reason ? ` (${p.reason})` : ''}`);
  const rows = [];
  for (const p of plan)
    rows.push({ provider: p.provider, before: before.get(p.provider) ?? '?', after: describe(await newPhone.normal(p.provider, 'balance')) });
  const paid = plan[0]!.provider;
  const payDst = await tryPay(newPhone, paid);
  const paySrc = await tryPay(oldPhone, paid);
  const found = await foundAgain(oldPhone, paid, tryPay);
  say(`
recovery onto ${done.to}: ${done.outcome} in ${elapsedMs} ms (issuance ${done.issuance?.mig ?? '-'})`);
  for (const r of rows) say(`  ${r.provider.padEnd(12)} before ${r.before.padEnd(40)} after ${r.after}`);
  say(`pay 300 on the new phone:            ${payDst}`);
  say(`pay 300 on the lost (old) phone:     ${paySrc}`);
  say(`found again, connected, pays 300:    ${found.pay}${found.wiped ? ' (its revoked areas wiped)' : ''}`);
  const receipt = done.issuance ? saveUpReceipt(dir, done.issuance) : undefined;
  if (receipt) say(`receipt (${receipt.outcome}): ${receipt.path}  (check it: valmove receipt verify ${receipt.path} --trust ${receipt.trust})`);
  const steps = done.issuance ? await stepsOf([oldPhone, newPhone], done.issuance.mig) : [];
  const base = { dir, outcome: done.outcome, mig: done.issuance?.mig ?? '', processes: processRows(dir, d), items: rows };
  const more = { ...(receipt ? { receipt } : {}), foundAgain: found };
  return { ...base, paymentOnDestination: payDst, paymentOnSource: paySrc, elapsedMs, stopped: !keep, steps, ...more };
}

/** The migration through the running processes: the old phone's source phase, the new phone's destination phase, then what each phone's user sees. */
async function migrateThrough({ dir, d, plan, before, keep, say }: Through, cancelAt?: string, only?: string[]): Promise<UpReport> {
  const oldPhone = d.terminal('old');
  const newPhone = d.terminal('new');
  const t0 = Date.now();
  const { done, cancel } = cancelAt ? await upWithCancel(oldPhone, newPhone, cancelAt, say) : await upStepByStep(oldPhone, newPhone, say, only);
  const elapsedMs = Date.now() - t0;
  const holder = done.outcome === 'rolledBack' ? oldPhone : newPhone; // where the items are spendable now
  const rows = [];
  // An item not chosen (--only) stayed on the source, spendable: it is read there.
  for (const p of plan) {
    const moved = moves(only, p.provider);
    const after = describe(await (moved ? holder : oldPhone).normal(p.provider, 'balance'));
    rows.push({ provider: p.provider, before: before.get(p.provider) ?? '?', after: moved ? after : stayedLine(after) });
  }
  const paid = plan.find((p) => moves(only, p.provider))!.provider;
  const payDst = await tryPay(newPhone, paid);
  const paySrc = await tryPay(oldPhone, paid);
  const receipt = saveUpReceipt(dir, done);
  if (receipt) say(`receipt (${receipt.outcome}): ${receipt.path}  (check it: valmove receipt verify ${receipt.path} --trust ${receipt.trust})`);
  say(`\nmigration ${done.mig}: ${done.outcome} in ${elapsedMs} ms`);
  for (const r of rows) say(`  ${r.provider.padEnd(12)} before ${r.before.padEnd(40)} after ${r.after}`);
  say(`pay 300 on the destination: ${payDst}`);
  say(`pay 300 on the source:      ${paySrc}`);
  return {
    dir,
    outcome: done.outcome,
    mig: done.mig,
    processes: processRows(dir, d),
    items: rows,
    paymentOnDestination: payDst,
    paymentOnSource: paySrc,
    elapsedMs,
    stopped: !keep,
    steps: await stepsOf([oldPhone, newPhone], done.mig),
    ...(receipt ? { receipt } : {}),
    ...(cancel ? { cancel } : {}),
  };
}

async function upStepByStep(oldPhone: TerminalControl, newPhone: TerminalControl, say: (line: string) => void, only?: string[]) {
  say('\nsource phase over WebSocket...');
  const out = await oldPhone.migrateOut({ destination: 'DST', ...onlyOption(only) });
  if (out.outcome !== 'uploaded') throw new Error(`source phase ended ${out.outcome}: ${out.reason ?? ''}`);
  say(`destination phase (migration ${out.mig})...`);
  return { done: await newPhone.migrateIn({ mig: out.mig }), cancel: undefined };
}

/** --cancel-at: the user cancels at that step from the other phone; the old phone comes back for its keys. */
async function upWithCancel(oldPhone: TerminalControl, newPhone: TerminalControl, step: string, say: (line: string) => void) {
  const listeners: Array<(e: { step: string; mig: string; terminal: string }) => void> = [];
  const phones = [
    { name: 'terminal/old', t: oldPhone },
    { name: 'terminal/new', t: newPhone },
  ];
  const stop = await watchProgress(phones, (l) => {
    for (const f of listeners) f(l);
  });
  try {
    say(`\nmigrating over WebSocket; the user cancels at ${step}...`);
    const r = await migrateWithCancel({ oldPhone, newPhone, onProgress: (f) => listeners.push(f) }, 'DST', step, say);
    return { done: r.result, cancel: { at: step, decision: r.decision } };
  } finally {
    stop();
  }
}

export async function runUp(opts: {
  providers: number;
  dir?: string;
  keep: boolean;
  out?: (line: string) => void;
  record?: string;
  inspect?: string;
  /** alice's password (VALMOVE_PASSWORD or --password-file); without it `up` picks one and shows it once, on stderr. */
  password?: string;
  /** false: issue the items onto the old phone and stop there, no migration (`--no-migrate`). */
  migrate?: boolean;
  /** The user cancels the migration at this step (S3…S14): a rollback (fixtures/demoFlow.ts). */
  cancelAt?: string;
  /** Move only these providers' items (src/fixtures/demoSelection.ts); the others stay spendable on the source. */
  only?: string[];
  /** The old phone is lost: recover its items onto the new one from the providers' ledgers (no migration). */
  lostSource?: boolean;
}): Promise<UpReport> {
  const say = opts.out ?? (() => {});
  const dir = resolve(opts.dir ?? join('deploy', `up-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  const plan = demoProviders(opts.providers);
  const password = opts.password ?? toHex(systemRng.bytes(12));
  const items = plan.map((p, i) => ({ area: p.provider, provider: p.provider, value: demoValue(p.kind, i, toHex(systemRng.bytes(16))) }));
  say(`valmove up: ${plan.length} provider(s), every party its own process on 127.0.0.1; deployment in ${dir}`);
  const d = await launchDeployment({
    dir,
    providers: plan.map((p) => p.provider),
    user: 'alice',
    password,
    items,
    issueBy: 'orders',
    record: opts.record,
    inspect: opts.inspect,
  });
  if (opts.record) say(`every process records to ${resolve(opts.record)} (draw it with: valmove trace ${opts.record})`);
  // Shown once, to the terminal that ran `up` (stderr: not into a redirected report); never logged or stored.
  if (opts.password === undefined && opts.keep) process.stderr.write(`alice's password (generated; set VALMOVE_PASSWORD to choose it): ${password}\n`);
  if (opts.keep) writeFileSync(join(dir, UP_PIDS_FILE), d.processes.map((p) => `${p.pid}\n`).join(''));
  // Interrupted: stop what we started (unless asked to keep it), then leave.
  let stopping = false;
  const onSignal = () => {
    if (stopping) return;
    stopping = true;
    void (opts.keep ? Promise.resolve() : d.stop()).then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal); // on, not once: see `start` (deploy.commands.ts)
  process.on('SIGTERM', onSignal);
  try {
    say('');
    say(['role'.padEnd(10), 'process'.padEnd(22), 'pid'.padEnd(8), 'port'].join(' '));
    for (const p of d.processes) say([p.role.padEnd(10), p.id.padEnd(22), String(p.pid).padEnd(8), String(p.port)].join(' '));
    const oldPhone = d.terminal('old');
    const newPhone = d.terminal('new');
    // --no-migrate leaves the new phone as a user gets it: not logged in, its chip not registered.
    for (const t of opts.migrate === false ? [oldPhone] : [oldPhone, newPhone]) {
      await t.login('alice', password);
      await t.register();
    }
    await issueToSource(dir, items, oldPhone, say);
    const before = new Map<string, string>();
    for (const p of plan) before.set(p.provider, describe(await oldPhone.normal(p.provider, 'balance')));
    if (opts.migrate === false) return readyReport(dir, d, before, opts.keep, say);
    const through = { dir, d, plan, before, keep: opts.keep, say };
    if (opts.lostSource) return await recoverThrough(through);
    return await migrateThrough(through, opts.cancelAt, opts.only);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!opts.keep) {
      await d.stop();
      say('\nevery process stopped (use --keep to leave them running)');
    } else {
      d.detach();
      say(`\nprocesses left running; stop them with: kill $(cat ${join(dir, UP_PIDS_FILE)})`);
    }
  }
}
