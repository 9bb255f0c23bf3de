/**
 * The terminal runtime: the phone a user holds, linked to one chip, to the
 * server (a channel that authenticates the server) and, for normal use, to a
 * provider's normal SAM. Its public methods are what a user does; each runs
 * as one turn of the terminal machine and resolves when the server (or the
 * reader SAM) has answered.
 *
 * The password is held in RAM from login() until the scrypt proof is sent;
 * it never enters the machine, the store, a message or a log. The messages
 * its request intents become: terminalRequests.ts.
 */
import type { Identity } from '../crypto/index.ts';
import { assembleReceipt } from './terminalReceipt.ts';
import type { ReceiptFile } from '../transport/receipt.schemas.ts';
import { toB64 } from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { terminalMachine, TERMINAL_MACHINE_VERSION, type MigrateOutOptions, type ReaderOp, type TerminalIntent } from '../machines/terminal.machine.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import type { BodyOf } from '../transport/messages.ts';
import { PartyRuntime, type MachineEvent, type MachineKind, type TurnContext } from './runtime.ts';
import { RecoveryReports, type RecoveryResult } from './terminalRecovery.ts';
import { CHIP_PEER, requestIntent, SERVER_PEER } from './terminalRequests.ts';
import { failure, loginProof, type ProgressEvent, type Waiter } from './terminalUser.ts';

const TERMINAL_ACTOR = 'terminal';
export { CHIP_PEER, SERVER_PEER };

export type MigrationResult = BodyOf<'migrate.result'>;
export type NormalReceipt = BodyOf<'normal.receipt'>;
export type ChipInfo = BodyOf<'chip.info'>;

export class TerminalRuntime extends PartyRuntime {
  protected readonly kinds: Record<string, MachineKind> = { terminal: { machine: terminalMachine, version: TERMINAL_MACHINE_VERSION } };
  /** Its name is not authenticated at the server: its request ids prove a repeat. A job's result it shows is written first. */
  protected override readonly requestIdsUnguessable = true;
  protected override readonly absorbsAnswers = false;
  /**
   * The login proof works as the password (the server checks sha256(proof)
   * against its verifier), so it never reaches the terminal's disk: a
   * terminal that restarts mid-login is logged out and the user logs in again.
   * Nor does a lost phone's report, which carries the operator's recovery code:
   * a terminal that restarts while it waits has the user report again.
   */
  protected override readonly requestsKeptOffDisk: ReadonlySet<string> = new Set(['login.proof', 'recover.report']);
  private password: string | null = null;
  private loginWaiter: Waiter<void> | null = null;
  private jobWaiter: Waiter<unknown> | null = null;
  private readerWaiter: Waiter<NormalReceipt> | null = null;
  private selectWaiter: Waiter<ChipInfo> | null = null;
  private readerReceipt: NormalReceipt | null = null;
  private readerSeq = 0;
  private readonly progressListeners: Array<(p: ProgressEvent) => void> = [];

  override async start(): Promise<void> {
    await super.start();
    await this.runLocal((turn) => {
      if (!this.actorOf(TERMINAL_ACTOR)) turn.spawn(TERMINAL_ACTOR, 'terminal', { name: this.id });
      else turn.tryDispatch(TERMINAL_ACTOR, { type: 'RESTARTED' });
    });
  }

  /** After a failed commit the actor was read back from the store, as after a restart. */
  protected override onReloaded(turn: TurnContext): void {
    turn.tryDispatch(TERMINAL_ACTOR, { type: 'RESTARTED' });
  }

  onProgress(listener: (p: ProgressEvent) => void): void {
    this.progressListeners.push(listener);
  }

  /** The machine's current state (for status output). */
  state(): unknown {
    return this.actorOf(TERMINAL_ACTOR)?.getSnapshot().value;
  }

  // ---- what a user does -------------------------------------------------------------------

  login(user: string, password: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.runLocal((turn) => {
        this.password = password;
        this.loginWaiter = { resolve, reject };
        turn.dispatch(TERMINAL_ACTOR, { type: 'LOGIN_REQUESTED', user });
      }).catch((e) => {
        this.password = null;
        this.loginWaiter = null;
        reject(e);
      });
    });
  }

  /** Logs the user out of this terminal; it then runs no job until the next login. Refused while a login or a job is under way. */
  logout(): Promise<{ user: string | null }> {
    const snapshot = this.actorOf(TERMINAL_ACTOR)?.getSnapshot();
    const user = (snapshot?.context as { user: string | null } | undefined)?.user ?? null;
    if (!snapshot?.matches({ account: 'loggedIn' }) && !snapshot?.matches({ account: 'loggedOut' })) {
      return Promise.reject(failure('BUSY', `${user ?? 'the user'} is logging in or has a job under way; log out when it has ended`));
    }
    if (snapshot.matches({ account: 'loggedOut' })) return Promise.resolve({ user: null });
    return this.runLocal((turn) => turn.dispatch(TERMINAL_ACTOR, { type: 'LOGOUT' })).then(() => ({ user }));
  }

  private job<T>(event: MachineEvent): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.runLocal((turn) => {
        turn.dispatch(TERMINAL_ACTOR, event);
        this.jobWaiter = { resolve: resolve as (v: unknown) => void, reject };
      }).catch(reject);
    });
  }

  /** Registers the linked chip to the logged-in user (the chip proves its serial to the admin SAM). */
  register(): Promise<BodyOf<'chip.registered'>> {
    return this.job({ type: 'REGISTER_REQUESTED' });
  }

  /** Source phase (S1–S8): resolves when every item is held by its migration SAM, or with the refusal. */
  migrateOut(opts: MigrateOutOptions = {}): Promise<MigrationResult> {
    return this.job({ type: 'MIGRATE_OUT_REQUESTED', ...opts });
  }

  /** Destination phase (S9–S17): resolves when the destination is spendable and the SAM stores are empty. */
  migrateIn(opts: { mig?: string } = {}): Promise<MigrationResult> {
    return this.job({ type: 'MIGRATE_IN_REQUESTED', ...opts });
  }

  /** An issuance: the provider's issue orders put their items on this phone's chip (a destination phase with no source). */
  issue(orders: string[]): Promise<MigrationResult> {
    return this.job({ type: 'MIGRATE_IN_REQUESTED', orders });
  }

  /** A lost phone's report, then its items re-issued here (terminalRecovery.ts). */
  recover(lost: string, code: string): Promise<RecoveryResult> {
    const phone = { runLocal: (fn: (turn: TurnContext) => void) => this.runLocal(fn), clock: this.clock, waitMs: this.timing.preflightMs };
    return this.recoveries.recover({ ...phone, selectChip: () => this.selectChip(), issue: (o) => this.issue(o) }, lost, code);
  }

  private readonly recoveries = new RecoveryReports();

  /** This phone's device key, which opens the statements of its receipts (set by whoever holds the key). */
  deviceIdentity: Identity | undefined;

  /** The receipt of a migration that ended (completed, rolled back), opened with the device key. */
  receiptOf(result: MigrationResult): ReceiptFile | undefined {
    return this.deviceIdentity ? assembleReceipt(this.deviceIdentity, result) : undefined;
  }

  cancel(mig: string): Promise<BodyOf<'migrate.cancelled'>> {
    return this.job({ type: 'CANCEL_REQUESTED', mig });
  }

  /** The user confirms a committed migration: its backup on the source chip is wiped (now, or when the source phone connects). */
  endBackup(mig: string): Promise<BodyOf<'backup.state'>> {
    return this.job({ type: 'END_BACKUP_REQUESTED', mig });
  }

  /** Polls the linked chip: its claimed serial and public area directory. */
  selectChip(): Promise<ChipInfo> {
    return new Promise<ChipInfo>((resolve, reject) => {
      this.runLocal((turn) => {
        this.selectWaiter = { resolve, reject };
        turn.send(CHIP_PEER, 'chip.select', {});
      }).catch(reject);
    });
  }

  /**
   * Normal use as a reader: the provider's normal SAM authenticates to the
   * area with the main key. A top-up creates value: it carries a voucher the
   * provider signed, unless this terminal is enrolled as a charging reader.
   */
  normalUse(provider: string, op: ReaderOp, area: string, amount?: number, voucher?: string): Promise<NormalReceipt> {
    return new Promise<NormalReceipt>((resolve, reject) => {
      this.runLocal((turn) => {
        const session = `${this.id}:r${++this.readerSeq}:${toB64(this.rng.bytes(6))}`;
        this.readerWaiter = { resolve, reject };
        this.readerVoucher = voucher ?? null;
        turn.dispatch(TERMINAL_ACTOR, { type: 'READER_REQUESTED', provider, op, area, amount, session });
      }).catch((e) => {
        this.readerWaiter = null;
        this.readerVoucher = null;
        reject(e);
      });
    });
  }

  /** The voucher of the reader session being opened (kept out of the machine: it is the provider's permission, not state). */
  private readerVoucher: string | null = null;

  // ---- inbound ------------------------------------------------------------------------------

  protected onEnvelope(env: AnyEnvelope, peer: string, turn: TurnContext): void {
    if (peer === CHIP_PEER) return this.fromChip(turn, env);
    if (peer === SERVER_PEER) return this.fromServer(turn, env);
    if (peer.startsWith('normal-sam/')) return this.fromReaderSam(turn, env, peer);
    throw new ProtocolError('BAD_SENDER', `a terminal does not talk to ${peer}`);
  }

  private fromChip(turn: TurnContext, env: AnyEnvelope): void {
    if (env.type === 'chip.info') {
      const w = this.selectWaiter;
      this.selectWaiter = null;
      if (w) turn.afterTurn(() => w.resolve(env.body));
      return;
    }
    if (env.type === 'frame') {
      turn.dispatch(TERMINAL_ACTOR, { type: 'CHIP_FRAME', session: env.body.session, data: env.body.data });
      return;
    }
    throw new ProtocolError('UNEXPECTED', `the chip link does not carry ${env.type}`);
  }

  private requestType(turn: TurnContext, corr: string | undefined): string | undefined {
    return turn.requestOf(corr)?.type;
  }

  private fromServer(turn: TurnContext, env: AnyEnvelope): void {
    switch (env.type) {
      case 'login.challenge':
        return turn.dispatch(TERMINAL_ACTOR, { type: 'CHALLENGE_RECEIVED', ...env.body });
      case 'login.ok':
        return turn.dispatch(TERMINAL_ACTOR, { type: 'LOGIN_ACCEPTED' });
      case 'channel.reserve':
        return turn.dispatch(TERMINAL_ACTOR, { type: 'CHANNEL_RESERVE_REQUESTED', request: env.id, purpose: env.body.purpose, mig: env.body.mig });
      case 'channel.release':
        return turn.dispatch(TERMINAL_ACTOR, { type: 'CHANNEL_RELEASE_REQUESTED', request: env.id, purpose: env.body.purpose });
      case 'frame':
        turn.dispatch(TERMINAL_ACTOR, { type: 'SERVER_FRAME', session: env.body.session, data: env.body.data });
        // Progress lines the server's turn sent with the frame (issue 19: progress coalesced).
        for (const line of env.body.progress ?? []) turn.tryDispatch(TERMINAL_ACTOR, { type: 'PROGRESS', ...line });
        return;
      case 'progress':
        for (const line of [env.body, ...(env.body.more ?? [])])
          turn.dispatch(TERMINAL_ACTOR, { type: 'PROGRESS', mig: env.body.mig, step: line.step, text: line.text });
        return;
      case 'migrate.result':
        this.result = env.body;
        return turn.dispatch(TERMINAL_ACTOR, { type: 'JOB_FINISHED', mig: env.body.mig, outcome: env.body.outcome, reason: env.body.reason });
      case 'chip.registered':
        this.result = env.body;
        return turn.dispatch(TERMINAL_ACTOR, { type: 'JOB_FINISHED', outcome: 'registered' });
      case 'recover.orders':
        return this.recoveries.answered(turn, env.body);
      case 'migrate.cancelled':
      case 'backup.state':
        this.result = env.body;
        return turn.dispatch(TERMINAL_ACTOR, { type: 'JOB_FINISHED', mig: env.body.mig, outcome: 'decision' in env.body ? env.body.decision : env.body.state });
      case 'error': {
        const asked = this.requestType(turn, env.corr);
        if (asked === 'recover.report') {
          // As for a job: a login the server no longer knows logs this terminal out (the user logs in again).
          if (env.body.code === 'UNAUTHENTICATED')
            turn.tryDispatch(TERMINAL_ACTOR, { type: 'SESSION_EXPIRED', code: env.body.code, message: env.body.message });
          return this.recoveries.refused(turn, failure(env.body.code, env.body.message));
        }
        if (asked === 'login.begin' || asked === 'login.proof') {
          return turn.dispatch(TERMINAL_ACTOR, { type: 'LOGIN_REJECTED', code: env.body.code, message: env.body.message });
        }
        if (asked === 'chip.register' || asked === 'migrate.out' || asked === 'migrate.in' || asked === 'migrate.cancel' || asked === 'backup.end') {
          // A login lives with its connection: after a server restart the user logs in again.
          const type = env.body.code === 'UNAUTHENTICATED' ? 'SESSION_EXPIRED' : 'JOB_FAILED';
          return turn.dispatch(TERMINAL_ACTOR, { type, code: env.body.code, message: env.body.message });
        }
        this.log.warn('server reported an error', { code: env.body.code, reason: env.body.message });
        return;
      }
      default:
        throw new ProtocolError('UNEXPECTED', `a terminal does not expect ${env.type} from the server`);
    }
  }

  /** The body of the reply that finished the current job, handed to the waiting caller. */
  private result: unknown = null;

  private fromReaderSam(turn: TurnContext, env: AnyEnvelope, _peer: string): void {
    switch (env.type) {
      case 'frame':
        return turn.dispatch(TERMINAL_ACTOR, { type: 'READER_FRAME', session: env.body.session, data: env.body.data });
      case 'normal.receipt':
        this.readerReceipt = env.body;
        return turn.dispatch(TERMINAL_ACTOR, { type: 'READER_DONE' });
      case 'error':
        return turn.dispatch(TERMINAL_ACTOR, { type: 'READER_FAILED', code: env.body.code, message: env.body.message });
      default:
        throw new ProtocolError('UNEXPECTED', `a terminal does not expect ${env.type} from a normal SAM`);
    }
  }

  // ---- intents ----------------------------------------------------------------------------

  protected onIntent(_key: string, intent: TerminalIntent, turn: TurnContext): void {
    switch (intent.type) {
      case 'beginLogin':
      case 'proveLogin':
      case 'loginFinished':
        return this.loginIntent(turn, intent);
      case 'beginReader':
      case 'readerRefused':
      case 'readerFinished':
        return this.readerIntent(turn, intent);
      case 'showProgress':
      case 'jobFinished':
        return this.userIntent(turn, intent);
      default:
        return requestIntent(turn, intent);
    }
  }

  /** The login: its request, the scrypt proof (the password leaves RAM here), and the user's answer. */
  private loginIntent(turn: TurnContext, intent: Extract<TerminalIntent, { type: 'beginLogin' | 'proveLogin' | 'loginFinished' }>): void {
    switch (intent.type) {
      case 'beginLogin':
        turn.send(SERVER_PEER, 'login.begin', { user: intent.user });
        return;
      case 'proveLogin': {
        const password = this.password;
        this.password = null;
        if (password === null) {
          // The terminal restarted between asking and proving: the password was in RAM only.
          turn.raise(TERMINAL_ACTOR, { type: 'LOGIN_REJECTED', code: 'LOGIN_FAILED', message: 'the password is no longer in memory; log in again' });
          return;
        }
        const proof = loginProof(password, intent);
        if (typeof proof === 'string') {
          turn.raise(TERMINAL_ACTOR, { type: 'LOGIN_REJECTED', code: 'LOGIN_FAILED', message: proof });
          return;
        }
        turn.send(SERVER_PEER, 'login.proof', { user: intent.user, proof: toB64(proof) });
        return;
      }
      case 'loginFinished': {
        const w = this.loginWaiter;
        this.loginWaiter = null;
        this.password = null;
        if (w) turn.afterTurn(() => (intent.ok ? w.resolve() : w.reject(failure(intent.code ?? 'LOGIN_FAILED', intent.message ?? 'login failed'))));
        return;
      }
    }
  }

  /** What the user sees: a migration's progress, and the answer to the job they started. */
  private userIntent(turn: TurnContext, intent: Extract<TerminalIntent, { type: 'showProgress' | 'jobFinished' }>): void {
    switch (intent.type) {
      case 'showProgress': {
        const p = { terminal: this.id, mig: intent.mig, step: intent.step, text: intent.text };
        turn.afterTurn(() => {
          for (const l of this.progressListeners) l(p);
        });
        return;
      }
      case 'jobFinished': {
        const w = this.jobWaiter;
        this.jobWaiter = null;
        const result = this.result;
        this.result = null;
        if (w) {
          turn.afterTurn(() => (intent.ok ? w.resolve(result) : w.reject(failure(intent.code ?? 'INTERNAL', intent.message ?? 'the server refused'))));
        }
        return;
      }
    }
  }

  /** Normal use at a provider's normal SAM (this terminal as a reader): the request, and the user's answer. */
  private readerIntent(turn: TurnContext, intent: Extract<TerminalIntent, { type: 'beginReader' | 'readerRefused' | 'readerFinished' }>): void {
    switch (intent.type) {
      case 'beginReader': {
        const voucher = this.readerVoucher;
        this.readerVoucher = null;
        turn.send(`normal-sam/${intent.provider}`, 'normal.begin', {
          session: intent.session,
          op: intent.op,
          area: intent.area,
          ...(intent.amount !== undefined ? { amount: intent.amount } : {}),
          ...(voucher !== null ? { voucher } : {}),
        });
        return;
      }
      case 'readerRefused':
      case 'readerFinished': {
        const w = this.readerWaiter;
        this.readerWaiter = null;
        const receipt = this.readerReceipt;
        this.readerReceipt = null;
        const ok = intent.type === 'readerFinished' && intent.ok;
        if (w) turn.afterTurn(() => (ok && receipt ? w.resolve(receipt) : w.reject(failure(intent.code ?? 'INTERNAL', intent.message ?? 'normal use failed'))));
        return;
      }
    }
  }
}
