/**
 * The deployers' commands: keygen, start <role>, user add, terminal <command>, up.
 */
import { cancelAtProblem } from '../fixtures/demoFlow.ts';
import { receiptOutOption, saveReceiptOut } from './receipt.command.ts';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { readMigrations, type MigrationStatus } from '../actors/status.ts';
import { type Command, InvalidArgumentError } from 'commander';
import { systemClock } from '../clock.ts';
import { systemRng } from '../crypto/index.ts';
import { RemoteError } from '../protocol/errors.ts';
import { loadConfig, ROLES, type Role, type ServerConfig } from '../deploy/config.ts';
import { TerminalControl } from '../deploy/control.client.ts';
import { outcomeText } from '../machines/selection.ts';
import type { MigrationResult } from '../actors/terminal.actor.ts';
import { providerList, selectionOf, withSelection } from './selection.options.ts';
import { onlyProblem } from '../fixtures/demoSelection.ts';
import { guardDeployment } from '../deploy/existing.ts';
import { generateDeployment } from '../deploy/keygen.ts';
import { PARTY_NAME, retireIdentity, ROTATABLE_ROLES, rotateIdentity } from '../deploy/rotate.ts';
import { readHostsFile } from '../deploy/hosts.ts';
import { writeUnits } from '../deploy/units.ts';
import { startProcess } from '../deploy/process.ts';
import { runUp } from '../deploy/up.ts';
import { issueRecoveryCode } from '../actors/serverRecovery.ts';
import type { RecoveryResult } from '../actors/terminalRecovery.ts';
import { PartyStore } from '../store/party.store.ts';
import { newUserRecord, ServerRecords } from '../store/server.store.ts';

type Out = (line: string) => void;

const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
function whole(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('not a whole number');
  return n;
}

/** The password: from stdin (one line) when --password-stdin, else VALMOVE_PASSWORD. Never an argument (it would show in `ps`). */
function readPassword(fromStdin: boolean): string {
  const pw = fromStdin ? (readFileSync(0, 'utf8').split(/\r?\n/)[0] ?? '') : (process.env.VALMOVE_PASSWORD ?? '');
  if (!pw) throw new Error('no password: pipe it with --password-stdin, or set VALMOVE_PASSWORD');
  return pw;
}

/** keygen and up: refuse a folder that holds a deployment, or (--force) say on stderr what is replaced. */
function refuseOverwrite(dir: string, force: boolean): void {
  const replaced = guardDeployment(resolve(dir), force);
  if (replaced) process.stderr.write(`${replaced}\n`);
}

export function addDeployCommands(program: Command, out: Out): void {
  addKeygenCommand(program, out);
  addStartCommand(program);
  addUserCommands(program, out);
  addTerminalCommands(program, out);
  addStatusCommand(program, out);
  addUpCommand(program, out);
  addUnitsCommand(program, out);
}

/** `valmove keygen`: a deployment's identities, key files, configs and trust list. */
function addKeygenCommand(program: Command, out: Out): void {
  // `keygen rotate --dir …`: keygen's own options stop at its subcommand's name, so --dir reaches the subcommand
  // (the program's own options stop at the command's name too: buildCli in main.ts).
  const keygen = program
    .command('keygen')
    .enablePositionalOptions()
    .description('write identities, key files (mode 0600), per-process configs and trust.json for a deployment; prints public keys only')
    // Not commander's required option: a required option of keygen would be asked of `keygen rotate` too.
    .option('--dir <dir>', 'deployment folder (required)')
    .option('--providers <list>', 'provider names, comma-separated', 'emoney,transit,tickets')
    .option('--chips <list>', 'chip serials, comma-separated', 'SRC,DST')
    .option('--terminals <list>', 'terminal:chip pairs, comma-separated', 'old:SRC,new:DST')
    .option('--host <host>', 'address every process binds (one host)', '127.0.0.1')
    .option('--advertise <address>', 'address peers dial when every process binds --host (needed when --host is 0.0.0.0)')
    .option('--hosts <file>', "several hosts: a JSON deployment file naming each process's bind address, address and port (docs/deploying.md)")
    .option('--base-port <n>', 'first port (each process takes the next); 0 picks free ports', whole, 7400)
    .option('--embedded-admin-sam', 'run the admin SAM inside the server process (demo convenience)', false)
    .option('--json', 'print the summary as JSON', false)
    .option('--force', 'replace a deployment already in --dir (its keys, configs, data and logs are removed)', false)
    .action(async (o) => {
      if (!o.dir) throw new InvalidArgumentError("required option '--dir <dir>' not specified");
      refuseOverwrite(o.dir, o.force);
      const summary = await generateDeployment({
        dir: resolve(o.dir),
        providers: list(o.providers),
        chips: list(o.chips),
        terminals: list(o.terminals).map((t) => {
          const [name, chip] = t.split(':');
          if (!name || !chip) throw new InvalidArgumentError(`--terminals wants name:chip pairs, got "${t}"`);
          return { name, chip };
        }),
        host: o.host,
        advertise: o.advertise,
        hosts: o.hosts ? readHostsFile(o.hosts) : undefined,
        basePort: o.basePort,
        embeddedAdminSam: o.embeddedAdminSam,
        rng: systemRng,
      });
      if (o.json) {
        out(JSON.stringify(summary, null, 2));
        return;
      }
      out(`deployment written to ${summary.dir} (secrets in keys/, mode 0600)`);
      for (const p of summary.processes) out(`  ${p.role.padEnd(10)} ${p.id.padEnd(22)} ${`${p.address}:${p.port}`.padEnd(22)} ${p.config}`);
      out('public keys:');
      for (const [id, k] of Object.entries(summary.publicKeys)) out(`  ${id.padEnd(24)} sign ${k.signPublic ?? '-'}  box ${k.boxPublic ?? '-'}`);
      out(`start each with: valmove start <role> --config ${summary.dir}/config/<process>.json`);
    });
  addRotationCommands(keygen, out);
}

/** `valmove keygen rotate|retire`: a party's identity key replaced, with a window in which its peers accept either key. */
function addRotationCommands(keygen: Command, out: Out): void {
  const role = (v: string) => {
    if (!PARTY_NAME.test(v)) throw new InvalidArgumentError('a party as keygen names it: server, admin-sam, migration-sam/<provider>, …');
    return v;
  };
  keygen
    .command('rotate')
    .description("a new identity for a party; its new public key written beside the old one in every peer's config and trust.json")
    .requiredOption('--dir <dir>', 'the deployment folder keygen wrote')
    .requiredOption('--role <party>', `the party whose key to replace (${ROTATABLE_ROLES.join(', ')})`, role)
    .action((o: { dir: string; role: string }) => {
      const r = rotateIdentity(resolve(o.dir), o.role, { rng: systemRng, now: new Date(systemClock.now()) });
      out(`${r.role}: new identity, sign ${r.signPublic}; the old key (sign ${r.oldSignPublic}) is trusted beside it until retired`);
      out(`written: ${r.files.join(', ')}`);
      out(`restart ${r.peers.length ? `its peers first (${r.peers.join(', ')}), then ` : ''}${r.process}`);
      out(`once the migrations in flight have ended: valmove keygen retire --dir ${o.dir} --role ${r.role}`);
    });
  keygen
    .command('retire')
    .description("a rotated party's old key removed from every peer's config and trust.json, its old secret from the key file")
    .requiredOption('--dir <dir>', 'the deployment folder keygen wrote')
    .requiredOption('--role <party>', 'the party whose old key to retire', role)
    .action((o: { dir: string; role: string }) => {
      const r = retireIdentity(resolve(o.dir), o.role);
      out(`${r.role}: old key (sign ${r.oldSignPublic}) retired; sign ${r.signPublic} is its only key`);
      out(`written: ${r.files.join(', ')}`);
      if (r.peers.length) out(`restart its peers (${r.peers.join(', ')}): from then they refuse the old key`);
      if (r.process !== r.role) out(`then restart ${r.process}: it no longer opens nor accepts what was sealed or signed to the old key`);
    });
}

/** `valmove start <role>`: one party as its own process, until SIGTERM or SIGINT. */
function addStartCommand(program: Command): void {
  program
    .command('start')
    .description(`run one party as its own process: ${ROLES.join(', ')}`)
    .argument('<role>', ROLES.join(' | '))
    .requiredOption('--config <file>', 'the process config written by keygen')
    .option('--crash-at <party:step:point>', 'fault injection: die (SIGKILL) at that point of that step, e.g. server:S14:after-persist')
    .option('--faults <spec>', 'fault injection: lose, repeat, reorder or delay messages on every link, e.g. drop=0.1,dup=0.1')
    .option('--seed <n>', 'seed of the fault choices', whole)
    .option('--record <path>', "record each party's envelopes (metadata only) and state changes: a .jsonl file, or a folder for <party>.jsonl files")
    .option('--inspect <url>', "stream the same records to a live page's feed, e.g. ws://127.0.0.1:PORT/feed")
    .action(async (role: string, o: { config: string; crashAt?: string; faults?: string; seed?: number; record?: string; inspect?: string }) => {
      if (!ROLES.includes(role as Role)) throw new InvalidArgumentError(`unknown role "${role}"; one of ${ROLES.join(', ')}`);
      const cfg = loadConfig(o.config, role as Role);
      const running = await startProcess(cfg, {
        crashAt: o.crashAt,
        faults: o.faults,
        seed: o.seed,
        record: o.record ? resolve(o.record) : undefined,
        inspect: o.inspect,
      });
      // Drain first (drain.ts): no new migration, the ones in flight reach a safe point; then stop.
      let stopping = false;
      const stop = () => {
        if (stopping) return; // a second signal while draining changes nothing
        stopping = true;
        running
          .drain()
          .catch(() => undefined)
          .then(() => running.stop())
          .then(
            () => process.exit(0),
            () => process.exit(1),
          );
      };
      // on, not once: a listener that removes itself leaves a library's exit hook (signal-exit) alone on the signal, and it re-raises it.
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      await new Promise(() => {});
    });
}

/** `valmove user add | unlock`: the operator's edits of a server's users. */
function addUserCommands(program: Command, out: Out): void {
  const user = program.command('user').description("operator: manage users in a server's store (the server may be running)");
  user
    .command('add')
    .description('create or reset a user (password from --password-stdin or VALMOVE_PASSWORD)')
    .requiredOption('--config <file>', "the server's config")
    .requiredOption('--user <name>', 'user id')
    .option('--password-stdin', 'read the password from standard input', false)
    .action(async (o: { config: string; user: string; passwordStdin: boolean }) => {
      const cfg = loadConfig(o.config, 'server') as ServerConfig;
      const password = readPassword(o.passwordStdin);
      const store = PartyStore.open(cfg.dataDir);
      await store.commit(() => new ServerRecords(store).users.put(o.user, newUserRecord(o.user, password, systemRng, cfg.scrypt)));
      await store.close();
      out(`user ${o.user} saved (scrypt verifier only)`);
    });
  user
    .command('recovery-code')
    .description("a one-time code for the user's lost-phone report (the second proof; shown once, the store keeps its hash)")
    .requiredOption('--config <file>', "the server's config")
    .requiredOption('--user <name>', 'user id')
    .action((o: { config: string; user: string }) =>
      withUser(o, async (store, records) => {
        const code = await issueRecoveryCode(store, records, o.user, systemRng, systemClock.now());
        out(`recovery code for ${o.user} (valid 24 h, once per lost chip): ${code}`);
      }),
    );
  user
    .command('unlock')
    .description("clear a user's failed logins and lockout (after too many wrong passwords)")
    .requiredOption('--config <file>', "the server's config")
    .requiredOption('--user <name>', 'user id')
    .action((o: { config: string; user: string }) =>
      withUser(o, async (store, records, rec) => {
        await store.commit(() => records.users.put(o.user, { ...rec, failures: 0, lockedUntil: 0 }));
        const until = rec.lockedUntil > systemClock.now() ? `, locked until ${new Date(rec.lockedUntil).toISOString()}` : '';
        out(`user ${o.user} unlocked (had ${rec.failures} failed login${rec.failures === 1 ? '' : 's'}${until})`);
      }),
    );
}

/** An operator's command on one user in the server's store (the server may be running): refused when there is no such user. */
async function withUser(
  o: { config: string; user: string },
  fn: (store: PartyStore, records: ServerRecords, rec: NonNullable<ReturnType<ServerRecords['users']['get']>>) => Promise<void>,
): Promise<void> {
  const cfg = loadConfig(o.config, 'server') as ServerConfig;
  const store = PartyStore.open(cfg.dataDir);
  try {
    const records = new ServerRecords(store);
    const rec = records.users.get(o.user);
    if (!rec) throw new Error(`no user ${o.user} in the server's store at ${cfg.dataDir}`);
    await fn(store, records, rec);
  } finally {
    await store.close();
  }
}

/** `valmove terminal <command>`: what a user does on a running terminal process, through its control API. */
/** One subcommand of `valmove terminal`: its options, the control API call it makes, and how its answer is shown. */
type TerminalCall = (
  name: string,
  description: string,
  build: (c: Command) => Command,
  run: (t: TerminalControl, o: Record<string, unknown>) => Promise<unknown>,
  show: (r: never) => string,
) => void;

function addTerminalCommands(program: Command, out: Out): void {
  const terminal = program.command('terminal').description('what a user does on a running terminal process (its control API)');
  const call: TerminalCall = (
    name: string,
    description: string,
    build: (c: Command) => Command,
    run: (t: TerminalControl, o: Record<string, unknown>) => Promise<unknown>,
    show: (r: never) => string,
  ) => {
    build(terminal.command(name).description(description))
      .requiredOption('--config <file>', "the terminal's config")
      .option('--user <name>', 'log in first as this user (password from --password-stdin or VALMOVE_PASSWORD)')
      .option('--password-stdin', 'read the password from standard input', false)
      .option('--json', 'print the result as JSON', false)
      .action(async (o: Record<string, unknown>) => {
        const t = TerminalControl.fromConfig(o.config as string);
        try {
          if (o.user) await t.login(o.user as string, readPassword(o.passwordStdin as boolean));
          const result = await run(t, o);
          const refused = notDone(name, result);
          if (refused) process.exitCode = 1;
          if (refused && !o.json) process.stderr.write(`refused: ${show(result as never)}\n`);
          else out(o.json ? JSON.stringify(result, null, 2) : show(result as never));
        } catch (e) {
          if (e instanceof RemoteError) {
            if (o.json) out(JSON.stringify({ error: { code: e.code, message: e.message } }, null, 2));
            else process.stderr.write(`refused: ${e.code}: ${e.message}\n`);
            process.exitCode = 1;
            return;
          }
          throw e;
        }
      });
  };
  addTerminalAccountCommands(call);
  addTerminalRecoverCommand(call);
  addTerminalReaderCommands(call);
}

/** The outcome each migration command is done with; any other (refused, rolledBack, failed) exits 1. */
const DONE_OUTCOME: Record<string, string> = { 'migrate-out': 'uploaded', 'migrate-in': 'completed', issue: 'completed', recover: 'completed' };
const notDone = (command: string, result: unknown): boolean => command in DONE_OUTCOME && (result as { outcome?: string }).outcome !== DONE_OUTCOME[command];

const migrationLine = (r: Omit<MigrationResult, 'receipt'> & { receiptOut?: string }) =>
  `migration ${r.mig}: ${r.outcome}${r.reason ? ` (${r.reason})` : ''}; items: ${r.items.map((i) => i.provider).join(', ')}` +
  (r.outcomes?.some((o) => o.outcome === 'notChosen' || o.outcome === 'leftBehind') ? `; per item: ${outcomeText(r.outcomes)}` : '') +
  (r.receiptOut ? `\nreceipt: ${r.receiptOut} (check it: valmove receipt verify ${r.receiptOut} --trust DIR/trust.json)` : '');
const receiptLine = (r: { op: string; area: string; balance?: number; amount?: number; state?: string }) =>
  `${r.op} on ${r.area}: ${r.state ?? `balance ${r.balance}`}${r.amount !== undefined ? ` (amount ${r.amount})` : ''}`;

/** Login, registration and the migrations a user starts on a terminal. */
function addTerminalAccountCommands(call: TerminalCall): void {
  call(
    'login',
    "log the terminal's user in",
    (c) => c,
    async (_t, o) => {
      if (!o.user) throw new InvalidArgumentError('--user is required');
      return { user: o.user };
    },
    (r: { user: string }) => `logged in as ${r.user}`,
  );
  call(
    'logout',
    "log the terminal's user out: it runs no job until the next login (a login while logged in replaces the user)",
    (c) => c,
    (t) => t.logout(),
    (r: { user: string | null }) => (r.user ? `logged out ${r.user}` : 'no user was logged in'),
  );
  call(
    'register',
    "register the terminal's chip to the logged-in user",
    (c) => c,
    (t) => t.register(),
    (r: { serial: string; user: string }) => `chip ${r.serial} registered to ${r.user}`,
  );
  call(
    'migrate-out',
    "source phase (S1-S8): lock this chip and upload every item (or the chosen providers' items)",
    (c) => receiptOutOption(withSelection(c.option('--destination <serial>', 'the destination chip, checked up front'))),
    async (t, o) => saveReceiptOut(await t.migrateOut({ ...(o.destination ? { destination: o.destination as string } : {}), ...selectionOf(o) }), o.receiptOut),
    migrationLine,
  );
  call(
    'migrate-in',
    'destination phase (S9-S17): format, download, commit, activate',
    (c) => receiptOutOption(c.option('--mig <id>', 'the migration, when the user has several')),
    async (t, o) => saveReceiptOut(await t.migrateIn(o.mig ? { mig: o.mig as string } : {}), o.receiptOut),
    migrationLine,
  );
  call(
    'issue',
    'receive value the provider issued to this chip (`valmove provider issue` orders): the destination phase, with no source',
    (c) => receiptOutOption(c.requiredOption('--order <token...>', "the provider's issue order(s), one per item")),
    async (t, o) => saveReceiptOut(await t.issue(o.order as string[]), o.receiptOut),
    migrationLine,
  );
  call(
    'cancel',
    'cancel a migration that has not committed',
    (c) => c.requiredOption('--mig <id>', 'the migration'),
    (t, o) => t.cancel(o.mig as string),
    (r: { mig: string; decision: string }) => `migration ${r.mig}: ${r.decision}`,
  );
  call(
    'end-backup',
    "confirm a committed migration: its backup on the old phone's chip is wiped now, or when the old phone connects",
    (c) => c.requiredOption('--mig <id>', 'the migration'),
    (t, o) => t.endBackup(o.mig as string),
    backupLine,
  );
}

/** A lost phone's report, from the new phone (issue 22). */
function addTerminalRecoverCommand(call: TerminalCall): void {
  call(
    'recover',
    'report the old phone lost (from the new one): each provider revokes it and re-issues its items here from its ledger',
    (c) =>
      receiptOutOption(
        c
          .requiredOption('--lost <serial>', "the lost phone's chip (registered to the user)")
          .option('--code-file <file>', "a file whose first line is the operator's one-time recovery code (or VALMOVE_RECOVERY_CODE)"),
      ),
    async (t, o) => {
      const r = await t.recover(o.lost as string, recoveryCodeOf(o.codeFile as string | undefined));
      return { ...r, issuance: r.issuance && saveReceiptOut(r.issuance, o.receiptOut) };
    },
    (r: RecoveryResult) =>
      `lost chip ${r.lost} -> ${r.to}: ${r.outcome}; ${r.providers.map((p) => `${p.provider} ${p.outcome}${p.reason ? ` (${p.reason})` : ''}`).join(', ')}` +
      (r.issuance ? `; ${migrationLine(r.issuance)}` : ''),
  );
}

/** What `terminal end-backup` prints: where the backup is now. */
function backupLine(r: { mig: string; state: string; wipedAt?: number }): string {
  if (r.state === 'wiped') return `migration ${r.mig}: backup wiped at ${new Date(r.wipedAt ?? 0).toISOString()}`;
  if (r.state === 'waitingForSource') return `migration ${r.mig}: backup wiped when the old phone connects`;
  return `migration ${r.mig}: backup ${r.state}`;
}

/** Normal use through the terminal's reader, and the terminal's own state. */
function addTerminalReaderCommands(call: TerminalCall): void {
  call(
    'balance',
    "read an item on the chip through the provider's normal SAM",
    (c) => c.requiredOption('--provider <name>', 'provider'),
    (t, o) => t.normal(o.provider as string, 'balance'),
    receiptLine,
  );
  call(
    'pay',
    'pay from an item on the chip (normal use)',
    (c) => c.requiredOption('--provider <name>', 'provider').requiredOption('--amount <n>', 'amount', whole),
    (t, o) => t.normal(o.provider as string, 'pay', o.amount as number),
    receiptLine,
  );
  call(
    'topup',
    'top up an item on the chip: with a voucher the provider signed (`valmove provider voucher`), or as a charging reader',
    (c) =>
      c
        .requiredOption('--provider <name>', 'provider')
        .option('--voucher <token>', "the provider's voucher (carries the amount)")
        .option('--amount <n>', "amount (a charging reader, or to check the voucher's)", whole),
    (t, o) => t.normal(o.provider as string, 'topup', o.amount as number | undefined, undefined, o.voucher as string | undefined),
    receiptLine,
  );
  call(
    'status',
    "the terminal's state and recent progress lines",
    (c) => c,
    (t) => t.status(),
    (r: { id: string; state: unknown; progress: Array<{ step: string; text: string }> }) =>
      [`${r.id}: ${JSON.stringify(r.state)}`, ...r.progress.slice(-20).map((p) => `  [${p.step}] ${p.text}`)].join('\n'),
  );
}

/** A live server's /status: what it holds, or one line saying why not (not reachable, refused, not a server's answer). */
async function liveStatus(url: string, token: string | undefined): Promise<MigrationStatus[]> {
  const at = `${url.replace(/\/$/, '')}/status`;
  let res: Response;
  try {
    res = await fetch(at, { headers: { authorization: `Bearer ${token ?? ''}` }, signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
  } catch (e) {
    const c = (e as { cause?: { code?: string; message?: string } }).cause;
    const cause = c?.code ?? c?.message ?? (e as Error).message;
    throw new Error(`the server at ${url} does not answer (${cause}); is it started, and is this its status port?`);
  }
  const body = (await res.json().catch(() => null)) as { migrations?: MigrationStatus[]; error?: { code: string; message: string } } | null;
  if (!res.ok) throw new Error(`${url}: ${body?.error?.code ?? `HTTP ${res.status}`}: ${body?.error?.message ?? 'refused'}`);
  if (!body || !Array.isArray(body.migrations)) throw new Error(`${at} did not answer a server's status (no migrations list)`);
  return body.migrations;
}

/** How long `status --url` waits for the server. */
const STATUS_TIMEOUT_MS = 10_000;

/** `valmove status`: every migration a server holds, from its store or its live status API. */
function addStatusCommand(program: Command, out: Out): void {
  program
    .command('status')
    .description('every migration a server holds: its phase, where each item is, and what it waits for')
    .option('--data <dir>', "a data folder (a demo's, or a server's own)")
    .option('--config <file>', 'a server config (reads its data folder; the server may be running)')
    .option('--url <url>', "a live server's address (http://host:port), with --token")
    .option('--token <token>', "the operator token from the server's key file (for --url)")
    .option('--json', 'print JSON', false)
    .action(async (o: { data?: string; config?: string; url?: string; token?: string; json: boolean }) => {
      let migrations: MigrationStatus[];
      if (o.url) {
        migrations = await liveStatus(o.url, o.token);
      } else {
        const dir = o.config ? (loadConfig(o.config, 'server') as ServerConfig).dataDir : o.data;
        if (!dir) throw new InvalidArgumentError('give --data DIR, --config server.json or --url URL');
        const serverDir = existsSync(join(dir, 'server', 'data.mdb')) ? join(dir, 'server') : dir;
        if (!existsSync(join(serverDir, 'data.mdb'))) throw new Error(`${dir} holds no server store (no data.mdb)`);
        const store = PartyStore.open(serverDir);
        try {
          migrations = readMigrations(store);
        } finally {
          await store.close();
        }
      }
      if (o.json) {
        out(JSON.stringify(migrations, null, 2));
        return;
      }
      if (migrations.length === 0) out('no migrations');
      for (const m of migrations) {
        out(
          `${m.mig}  user ${m.user}  ${m.kind === 'issuance' ? 'issue orders' : (m.source ?? '?')} -> ${m.destination ?? '?'}  ` +
            `state ${m.state}${m.outcome ? `  outcome ${m.outcome}` : ''}${m.decision ? `  decision ${m.decision}` : ''}`,
        );
        out(`  ${m.step ? `step ${m.step.id} (${m.step.title}); ` : ''}waiting for: ${m.waitingFor}${m.reason ? `  (last reason: ${m.reason})` : ''}`);
        for (const i of m.items) out(`  item ${i.item ?? '-'} ${i.area.padEnd(12)} ${i.state}${i.outcome === 'leftBehind' ? ` (${i.reason})` : ''}`);
        if (m.backup) out(`  backup: ${m.backup.text}`);
      }
    });
}

type UpOptions = {
  providers: number;
  dir?: string;
  keep: boolean;
  json: boolean;
  record?: string;
  inspect?: string;
  migrate: boolean;
  cancelAt?: string;
  only?: string[];
  lostSource: boolean;
} & UpFlags;
type UpFlags = { passwordFile?: string; force: boolean };

/** `up`'s password for alice: from a file or VALMOVE_PASSWORD, never an argument (it would show in `ps`); undefined: `up` picks one. */
function upPassword(file: string | undefined): string | undefined {
  if (file === undefined) return process.env.VALMOVE_PASSWORD || undefined;
  return secretFromFile('--password-file', file);
}

/** A secret given by file (never on the command line, where `ps` and the shell's history show it): the file's first line. */
function secretFromFile(flag: string, file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`${flag} ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const secret = text.split(/\r?\n/)[0] ?? '';
  if (!secret) throw new InvalidArgumentError(`${flag} ${file}: its first line is empty`);
  return secret;
}

/** `valmove up`: every party as its own process on 127.0.0.1, and a migration through them. */
function addUpCommand(program: Command, out: Out): void {
  program
    .command('up')
    .description('start every party as its own process on 127.0.0.1, run a migration through them, print processes and result')
    .option('--providers <n>', 'providers (one item each)', whole, 3)
    .option('--dir <dir>', 'deployment folder (default: a fresh ./deploy/up-<time>)')
    .option('--keep', 'leave the processes running', false)
    .option('--json', 'print one machine-readable report', false)
    .option('--record <path>', "every process records its parties' envelopes and state changes: a .jsonl file (shared), or a folder of <party>.jsonl files")
    .option('--inspect <url>', "every process streams its records to a live page's feed, e.g. ws://127.0.0.1:PORT/feed")
    .option('--no-migrate', 'stop before the migration: the old phone logged in, holding the items; the new phone fresh (needs --keep)')
    .option('--password-file <file>', "alice's password: the file's first line (else VALMOVE_PASSWORD, else one is picked and, with --keep, shown on stderr)")
    .option('--force', 'replace a deployment already in --dir (stop its processes first)', false)
    .option('--cancel-at <step>', 'the user cancels the migration at that step (S3-S14): a rollback; exit 0 when it ends rolledBack')
    .option('--only <providers>', "move only these providers' items (e.g. emoney); the others stay spendable on the source", providerList)
    .option('--lost-source', 'the old phone is lost: report it from the new one, and the providers re-issue its items there from their ledgers', false)
    .action(async (o: UpOptions) => {
      if (o.providers < 1 || o.providers > 20) program.error('error: --providers must be from 1 to 20', { exitCode: 2 });
      if (o.lostSource && (o.cancelAt !== undefined || o.only !== undefined || !o.migrate)) {
        program.error('error: --lost-source runs alone: not with --cancel-at, --only or --no-migrate', { exitCode: 2 });
      }
      const cancelProblem = o.cancelAt === undefined ? undefined : cancelAtProblem(o.cancelAt, o.migrate ? undefined : '--no-migrate');
      if (cancelProblem) program.error(`error: ${cancelProblem}`, { exitCode: 2 });
      if (!o.migrate && !o.keep) program.error('error: --no-migrate leaves the deployment for you to drive: add --keep', { exitCode: 2 });
      if (o.dir) refuseOverwrite(o.dir, o.force);
      const onlyError = onlyProblem(o.only, o.providers);
      if (onlyError) program.error(`error: ${onlyError}`, { exitCode: 2 });
      let password: string | undefined;
      try {
        password = upPassword(o.passwordFile);
      } catch (e) {
        program.error(`error: ${(e as Error).message}`, { exitCode: 2 });
      }
      const report = await runUp({
        providers: o.providers,
        dir: o.dir,
        keep: o.keep,
        out: o.json ? undefined : out,
        record: o.record,
        inspect: o.inspect,
        password,
        migrate: o.migrate,
        cancelAt: o.cancelAt,
        only: o.only,
        lostSource: o.lostSource,
      });
      if (o.json) out(JSON.stringify(report, null, 2));
      // Done is what was asked: the migration completed, the rollback asked for, the deployment left ready, or (a lost
      // phone) its items recovered, the old phone refused, and once found again and connected, wiped.
      const lostOk =
        report.outcome === 'completed' &&
        report.paymentOnSource.startsWith('refused') &&
        report.foundAgain?.wiped === true &&
        report.foundAgain.pay.startsWith('refused');
      if (o.lostSource ? !lostOk : report.outcome !== (o.migrate ? (o.cancelAt ? 'rolledBack' : 'completed') : 'ready')) process.exitCode = 1;
    });
}

/** `valmove deploy units`: a systemd service per process of a deployment keygen wrote. */
function addUnitsCommand(program: Command, out: Out): void {
  const deploy = program.command('deploy').description("files for running a deployment's processes as services");
  deploy
    .command('units')
    .description('write a hardened systemd unit per process (DIR/units/valmove-<process>.service) from the configs keygen wrote')
    .requiredOption('--dir <dir>', 'the deployment folder keygen wrote')
    .requiredOption('--user <name>', 'the unprivileged system user the processes run as (it owns data/ and reads keys/)')
    .option('--node <path>', 'absolute path of node', process.execPath)
    .option('--out <dir>', 'where the units go (default DIR/units)')
    .option('--json', 'print the written units as JSON', false)
    .action((o: { dir: string; user: string; node: string; out?: string; json: boolean }) => {
      const units = writeUnits({ dir: o.dir, user: o.user, node: o.node, out: o.out });
      if (o.json) {
        out(JSON.stringify(units, null, 2));
        return;
      }
      for (const u of units) out(`  ${u.id.padEnd(22)} ${u.file}`);
      out(`${units.length} units written; check them with: systemd-analyze verify ${units[0] ? dirname(units[0].file) : ''}/*.service`);
      out(`then: chown -R ${o.user}: ${join(resolve(o.dir), 'data')}; give ${o.user} read access to keys/ and config/; copy the units to /etc/systemd/system/`);
    });
}

/** The recovery code from --code-file, or from VALMOVE_RECOVERY_CODE: never on the command line. */
function recoveryCodeOf(file: string | undefined): string {
  if (file !== undefined) return secretFromFile('--code-file', file);
  const c = process.env.VALMOVE_RECOVERY_CODE;
  if (!c) throw new InvalidArgumentError('the recovery code is required: VALMOVE_RECOVERY_CODE, or --code-file FILE');
  return c;
}
