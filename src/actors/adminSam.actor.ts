/**
 * The administrative SAM (seed 21): the server's tamper-resistant module. It
 * derives K_chip per chip from the issuer master key, runs admin sessions
 * with chips (through the server's relay), generates temp keys, switches
 * active slots, grants temp keys to migration SAMs, and keeps the decision
 * record of every migration.
 *
 * It obeys only the server it trusts (the channel handshake checks that), and
 * only what the decision record allows: activation under `committed`,
 * restore under `aborted`, one destination per migration. A temp key lives
 * until its migration is settled: deleted when the activation or the
 * restore is answered (adminTempKeys.ts, endTempKeys), its key check values kept.
 *
 * Every admin session runs one path (onAdminRequest, then the session's
 * frames and its answer), driven by the admin operation table
 * (src/protocol/adminOps.ts); the few things an operation does besides
 * (`opHooks`) are next to that path; temp keys, decisions, a lost chip's wipe: admin{TempKeys,Decisions,LostWipe}.ts.
 */
import { deriveChipKey, fromB64, keyCheckValue, sameKcv, toB64, type Identity, type Secret } from '../crypto/index.ts';
import {
  batchSize,
  adminSessionMachine,
  ADMIN_SESSION_MACHINE_VERSION,
  type AdminCommand,
  type AdminSessionContext,
  type AdminSessionIntent,
} from '../machines/adminSession.machine.ts';
import { decisionMachine, DECISION_MACHINE_VERSION, type DecisionIntent } from '../machines/decision.machine.ts';
import type { MigrationItem } from '../machines/migration.machine.ts';
import { ADMIN_OPS, adminOpOfRequest, adminStepOf, type AdminOpEntry, type AdminReplyType, type AdminRequestType } from '../protocol/adminOps.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { AdminSamRecords } from '../store/adminSam.store.ts';
import { decodeChipFrame, type ChipCommand, type ChipReply } from '../transport/chip.frames.ts';
import type { AnyEnvelope, Envelope } from '../transport/envelope.ts';
import type { BodyOf } from '../transport/messages.ts';
import { DECISION, Decisions } from './adminDecisions.ts';
import { admitLostWipe } from './adminLostWipe.ts';
import { TempKeys, type MigrationSamKeys } from './adminTempKeys.ts';
import { PartyRuntime, type MachineKind, type RuntimeDeps, type TurnContext } from './runtime.ts';
import { SamSessions } from './samSession.ts';

export type { MigrationSamKeys } from './adminTempKeys.ts';

const SESSION = 'session:';

export interface AdminSamOptions {
  issuerMaster: Secret;
  identity: Identity;
  /** The migration SAMs this admin SAM grants temp keys to, by party id ("migration-sam/<provider>"). */
  migrationSams: Record<string, MigrationSamKeys>;
}

/** A request for an admin session. */
type AdminRequest = Extract<AnyEnvelope, { type: AdminRequestType }>;

/** What the generic path reads of an admin request's body (each request's schema has the fields its operation uses). */
interface AdminRequestBody {
  session: string;
  serial?: string;
  items?: MigrationItem[];
  expiresAt?: number;
  role?: 'source' | 'destination';
  issuance?: true;
}

/** An admin session's answer. */
type AdminAnswer = { [T in AdminReplyType]: { type: T; body: BodyOf<T> } }[AdminReplyType];

/** What an operation does besides the generic path (onAdminRequest), where it really differs. */
interface AdminOpHooks {
  /**
   * First, before the session's own checks: answers at once when there is
   * nothing to do ('answered'), or makes the decision record this request
   * opens ('opened': the gate is skipped, the record being this request's).
   * Every refusal comes before any change.
   */
  admit?(turn: TurnContext, mig: string, env: AdminRequest, body: AdminRequestBody): 'answered' | 'opened' | undefined;
  /** After the gate, before the session opens: makes what the session installs. */
  prepare?(turn: TurnContext, mig: string, body: AdminRequestBody): void;
}

export class AdminSamRuntime extends PartyRuntime {
  protected override readonly resendsFrames = true; // it drives chip sessions: each one's last frame is sent again until answered
  protected readonly kinds: Record<string, MachineKind> = {
    adminSession: { machine: adminSessionMachine, version: ADMIN_SESSION_MACHINE_VERSION },
    decision: { machine: decisionMachine, version: DECISION_MACHINE_VERSION },
  };
  readonly records: AdminSamRecords;
  private readonly keys: TempKeys;
  private readonly decisions: Decisions;
  private readonly sessions: SamSessions;
  private readonly opts: AdminSamOptions;
  /** Areas listed in an identify session, until the session answers. */
  private readonly listed = new Map<string, NonNullable<Extract<ChipReply, { ok: true }>['areas']>>();

  constructor(deps: RuntimeDeps, opts: AdminSamOptions) {
    super(deps);
    this.opts = opts;
    this.records = new AdminSamRecords(deps.store);
    this.decisions = new Decisions(this.records, (key) => this.actorOf(key), { identity: opts.identity, now: () => this.clock.now() });
    this.keys = new TempKeys(this.records, deps.rng, opts.migrationSams, (mig) => this.decisionOf(mig));
    this.sessions = new SamSessions(deps.rng);
  }

  decisionOf(mig: string): string | undefined {
    return this.decisions.stateOf(mig);
  }

  /** After a restart, sessions in progress are lost (their keys lived in RAM): fail them so their steps are retried. */
  override async start(): Promise<void> {
    await super.start();
    await this.runLocal((turn) => this.onReloaded(turn));
  }

  /** After a failed commit the actors were read back from the store: their sessions' keys were RAM, as after a restart. */
  protected override onReloaded(turn: TurnContext): void {
    for (const key of this.actorKeys('adminSession')) turn.tryDispatch(key, { type: 'SESSION_LOST' });
  }

  // ---- the commit point ----------------------------------------------------------------------

  /**
   * The commit (after S14): the decision record takes it only with a valid receipt for every item.
   * (`_env` is for a build that answers the commit itself: src/testing/broken.ts.)
   */
  protected commit(turn: TurnContext, _env: Envelope<'admin.commit'>, mig: string, check: { ok: boolean; problem?: string }): void {
    this.decisions.commit(turn, mig, check);
  }

  /** Sends a session's gate event to the decision record (S16 opens only under a committed record, for the destination it names). */
  protected gateRequest(turn: TurnContext, mig: string, op: AdminOpEntry, body: AdminRequestBody): void {
    if (op.gate === null) return;
    const event = { type: op.gate.event, serial: body.serial!, ...(body.role ? { role: body.role } : {}) };
    this.decisions.gate(turn, mig, event, op.gate.refusal);
  }

  // ---- inbound ------------------------------------------------------------------------------

  protected onEnvelope(env: AnyEnvelope, _peer: string, turn: TurnContext): void {
    // Only servers reach this point: the channel handshake refused every key not in the trust configuration.
    if (env.type === 'frame') return this.sessions.take(env.body.session, env.body.data, () => this.onFrame(turn, env.body.session, env.body.data));
    const op = adminOpOfRequest(env.type);
    if (op) return this.onAdminRequest(turn, op, env as AdminRequest);
    switch (env.type) {
      case 'admin.commit': {
        const mig = this.requireMig(env);
        this.commit(turn, env, mig, this.decisions.checkReceipts(turn, mig, env.body.receipts, this.opts.migrationSams, this.keys));
        return;
      }
      case 'admin.abort':
        this.decisions.abort(turn, this.requireMig(env), env.body.reason, env.body.source);
        return;
      default:
        throw new ProtocolError('UNEXPECTED', `the admin SAM does not accept ${env.type}`);
    }
  }

  /**
   * Every admin operation, as the table declares it: its own checks (opHooks),
   * a new session id, the decision record's gate, then the session: one
   * command per area (or one list), under K_chip. Every refusal is thrown
   * before the first change of the turn: one after a change would stop the
   * SAM (runtime.ts).
   */
  private onAdminRequest(turn: TurnContext, op: AdminOpEntry, env: AdminRequest): void {
    const body: AdminRequestBody = env.body;
    admitLostWipe(env, this.opts.migrationSams); // a wipe of mainActive areas, only under their providers' revocations
    // An operation the decision record gates names its migration; an identify may (a registration's has none).
    const mig = op.gate === null ? (env.mig ?? null) : this.requireMig(env);
    const hooks = this.opHooks[op.op];
    const admitted = mig === null ? undefined : hooks?.admit?.(turn, mig, env, body);
    if (admitted === 'answered') return;
    this.requireNewSession(body.session);
    if (op.gate !== null && admitted !== 'opened') {
      this.decisions.refusedInTurn = false;
      this.gateRequest(turn, mig!, op, body);
      if (this.decisions.refusedInTurn) return;
    }
    if (mig !== null) hooks?.prepare?.(turn, mig, body);
    const items = op.items === 'request' ? body.items! : op.items === 'record' ? this.decisions.context(mig!).items : [];
    if (items.length === 0 && op.answeredWithoutItems) {
      // The abort overtook the lock: no area was switched, nothing to restore or wipe.
      this.answerAtOnce(turn, env, op, body.serial!);
      return;
    }
    const commands: AdminCommand[] =
      op.items === null
        ? [{ op: op.chipCommand }]
        : items.map((i) => ({ op: op.chipCommand, area: i.area, item: i.item, provider: i.provider, recipient: i.recipient }));
    const expiresAt = op.grants === null ? null : body.expiresAt!;
    const session = body.session;
    turn.spawn(SESSION + session, 'adminSession', {
      session,
      op: op.op,
      mig,
      serial: body.serial ?? null,
      commands,
      request: env.id,
      expiresAt,
      deadline: this.clock.now() + this.timing.sessionMs,
    });
  }

  /** What an operation does besides the generic path. */
  private readonly opHooks: { readonly [O in AdminOpEntry['op']]?: AdminOpHooks } = {
    lock: {
      admit: (turn, mig, _env, body) => {
        // Everything that can refuse the lock is checked before the record is created: a refusal after a
        // change would stop the SAM (runtime.ts). Found by test/fuzz: a lock naming an unknown migration SAM.
        this.requireNewSession(body.session);
        for (const item of body.items!) this.keys.requireRecipient(item.recipient);
        if (this.decisions.has(mig)) return undefined; // a lock again: the record's gate decides
        this.decisions.open(turn, mig, body.serial!, body.items!);
        return 'opened';
      },
      prepare: (turn, mig, body) => {
        for (const item of body.items!) this.keys.ensure(turn, mig, item);
      },
    },
    format: {
      admit: (turn, mig, _env, body) => {
        if (body.issuance && !this.decisions.has(mig)) {
          // An issuance has no source to lock: its first format opens the record and makes the temp keys, with
          // everything that can refuse checked first. Its items reach a chip only with the provider's order (S14).
          this.requireNewSession(body.session);
          for (const item of body.items!) this.keys.requireRecipient(item.recipient);
          this.decisions.open(turn, mig, '', body.items!);
          for (const item of body.items!) this.keys.ensure(turn, mig, item);
        }
        // A format for a migration that has no record is refused as such, whatever its session.
        this.decisions.context(mig);
        return undefined;
      },
    },
    wipe: {
      admit: (turn, mig, env, body) => {
        const record = this.decisions.snapshot(mig);
        if (body.role !== 'destination' || record?.value !== 'aborted' || record.context.destination !== null) return undefined;
        // The format never reached us before the abort (we refuse it after): no chip was formatted for this
        // migration, so there is nothing to wipe. Found by the model-based suite: this wipe was refused forever.
        this.answerAtOnce(turn, env, ADMIN_OPS.wipe, body.serial!);
        return 'answered';
      },
    },
  };

  /** Answers an operation that has nothing to do on the chip, in this turn, as a session's success would. */
  private answerAtOnce(turn: TurnContext, env: AdminRequest, op: AdminOpEntry, serial: string): void {
    const answer = this.answerOf(op, serial, null);
    turn.reply(env, answer.type, answer.body);
  }

  /** A session id names one session, ever (refused before any change). */
  private requireNewSession(session: string): void {
    if (this.actorOf(SESSION + session)) throw new ProtocolError('UNEXPECTED', `session ${session} was already used`);
  }

  private requireMig(env: AnyEnvelope): string {
    if (!env.mig) throw new ProtocolError('BAD_ENVELOPE', `${env.type} needs a migration id (header "mig")`);
    return env.mig;
  }

  // ---- admin sessions ---------------------------------------------------------------------------

  private onFrame(turn: TurnContext, session: string, data: string): void {
    const key = SESSION + session;
    const actor = this.actorOf(key);
    if (actor?.getSnapshot().status !== 'active' || !this.sessions.has(session)) {
      throw new ProtocolError('NOT_FOUND', `no open admin session ${session.slice(0, 64)}`);
    }
    if (this.sessions.repeat(session, data)) return; // the chip's answer again, to a frame we sent again (resends.ts): taken once
    const ctx = actor.getSnapshot().context as AdminSessionContext;
    const gone = this.keys.gone(ctx);
    if (gone !== null) {
      // The session fails with the reason (its server hears DECISION_STANDS); the chip's frame is not read.
      turn.dispatch(key, { type: 'CHIP_REFUSED', code: 'DECISION_STANDS', message: gone });
      return;
    }
    const frame = decodeChipFrame(fromB64(data));
    if (actor.getSnapshot().matches('authenticating')) {
      turn.dispatch(
        key,
        this.sessions.answerEvent(session, frame, (serial) => deriveChipKey(this.opts.issuerMaster, serial)),
      );
      return;
    }
    const r = this.sessions.reply(session, frame);
    if (r.kind === 'refused') {
      turn.dispatch(key, { type: 'CHIP_REFUSED', code: r.code, message: r.message });
      return;
    }
    const reply = r.reply;
    const covers = batchSize(ctx, ctx.cursor);
    if (!reply.ok) {
      turn.dispatch(key, { type: 'CHIP_REPLIED', ok: false, verified: false, covers, code: reply.code, message: reply.message });
      return;
    }
    // A batch answers each of its commands, in order: every one must check.
    const replies = covers > 1 ? (reply.replies ?? []) : [reply];
    let bad = replies.length === covers ? -1 : 0;
    for (let i = 0; bad < 0 && i < replies.length; i++) if (!this.verifyReply(turn, ctx, ctx.cursor + i, replies[i]!)) bad = i;
    turn.dispatch(key, { type: 'CHIP_REPLIED', ok: true, verified: bad < 0, covers, ...(bad > 0 ? { at: bad } : {}) });
  }

  /** The key check after each install or switch (protocol.md §2): compared with what this SAM knows, as the table's `keyCheck` says. */
  private verifyReply(turn: TurnContext, ctx: AdminSessionContext, index: number, reply: Extract<ChipReply, { ok: true }>): boolean {
    const cmd = ctx.commands[index]!;
    const serial = ctx.provenSerial!;
    if (cmd.op === 'list') this.listed.set(ctx.session, reply.areas ?? []);
    const check = ADMIN_OPS[ctx.op].keyCheck;
    if (check === 'none') return true;
    const rec = this.keys.get(ctx.mig!, cmd.item!);
    // Only a lock or a format installs the temp key, and only they need it. Activate and restore answer a main key's
    // check value, which this SAM kept, so a retried activation or restore is checked after the temp key is deleted.
    const tempKcv = () => keyCheckValue(this.keys.live(rec), serial, cmd.area!);
    switch (check) {
      case 'tempKeyAndSetAsideMain': // S3, the lock
        if (!sameKcv(reply.kcv, tempKcv()) || !reply.prevKcv) return false;
        if (rec.sourceMainKcv === null) this.keys.update(turn, { ...rec, sourceMainKcv: reply.prevKcv });
        return rec.sourceMainKcv === null || sameKcv(rec.sourceMainKcv, reply.prevKcv);
      case 'tempKey': // S10, the format
        return sameKcv(reply.kcv, tempKcv());
      case 'receiptMainKey': // S16, the activation
        return rec.destinationMainKcv !== null && sameKcv(reply.kcv, rec.destinationMainKcv);
      case 'setAsideSourceMain': // rollback, the restore
        // An area the lock never reached was never switched: there is no set-aside key to check.
        return rec.sourceMainKcv === null || sameKcv(reply.kcv, rec.sourceMainKcv);
    }
  }

  /** The chip command of a session's command: the table's, with what it `carries` (the temp key from the store). */
  private command(ctx: AdminSessionContext, index: number): ChipCommand {
    const cmd = ctx.commands[index]!;
    if (cmd.op === 'list') return { op: 'list' };
    const mig = ctx.mig!;
    const carries: readonly string[] = ADMIN_OPS[ctx.op].carries;
    const key = carries.includes('tempKey') ? toB64(this.keys.live(this.keys.get(mig, cmd.item!)).reveal()) : undefined;
    // Built in the schema's field order (chip.frames.ts), which the table's `carries` follows.
    return {
      op: cmd.op,
      area: cmd.area!,
      ...(carries.includes('provider') ? { provider: cmd.provider! } : {}),
      ...(key === undefined ? {} : { key }),
      mig,
      step: adminStepOf(ctx.op),
    } as ChipCommand;
  }

  /** The answer to a successful session, as the table says: what the chip listed, the grants issued, or the serial reached. */
  private answerOf(op: AdminOpEntry, serial: string, ctx: AdminSessionContext | null): AdminAnswer {
    if (op.chipCommand === 'list') return { type: 'admin.identified', body: { serial, areas: this.listed.get(ctx!.session) ?? [] } };
    if (op.grants !== null) return { type: op.reply, body: { grants: this.keys.grants(ctx!, op.grants, this.opts.identity) } } as AdminAnswer;
    return { type: op.reply, body: { serial } } as AdminAnswer;
  }

  // ---- intents ------------------------------------------------------------------------------------

  protected onIntent(key: string, intent: AdminSessionIntent | DecisionIntent, turn: TurnContext): void {
    if (key.startsWith(DECISION)) return this.decisions.onIntent(turn, key.slice(DECISION.length), intent as DecisionIntent);
    const ctx = this.actorOf(key)!.getSnapshot().context as AdminSessionContext;
    const si = intent as AdminSessionIntent;
    const server = turn.peerOfRequest(ctx.request);
    const header = { mig: ctx.mig ?? undefined, step: adminStepOf(ctx.op), corr: ctx.request };
    switch (si.type) {
      case 'beginAuth': {
        const frame = this.sessions.begin({ session: ctx.session, area: '*', mig: ctx.mig ?? '-', purpose: 'admin' });
        turn.send(server, 'frame', { session: ctx.session, data: toB64(frame) });
        return;
      }
      case 'sendCommand': {
        const n = batchSize(ctx, si.index);
        const command =
          n === 1 ? this.command(ctx, si.index) : ({ op: 'batch', cmds: Array.from({ length: n }, (_, i) => this.command(ctx, si.index + i)) } as ChipCommand);
        const frame = this.sessions.command(ctx.session, command);
        turn.send(server, 'frame', { session: ctx.session, data: toB64(frame) });
        return;
      }
      case 'sessionDone': {
        this.sessions.end(ctx.session); // the chip's session ends with its next one (no close frame, issue 19)
        const op = ADMIN_OPS[ctx.op];
        // Every area answered the key it should (an activation's, the destination's main keys; a restore's, the
        // source's): the migration's temp keys end here, in this turn's commit, before the answer goes.
        if (op.endsTempKeys !== null) this.keys.endTempKeys(turn, ctx.mig!, op, (mig) => this.decisions.context(mig).items);
        const answer = this.answerOf(op, op.chipCommand === 'list' ? ctx.provenSerial! : ctx.serial!, ctx);
        turn.send(server, answer.type, answer.body, header);
        this.listed.delete(ctx.session);
        return;
      }
      case 'sessionFailed':
        this.sessions.end(ctx.session); // the chip's session ends with its next one (no close frame, issue 19)
        this.listed.delete(ctx.session);
        turn.send(server, 'error', { code: si.code, message: si.message }, header);
        return;
    }
  }

  protected override onCommitting(): void {
    this.keys.committed();
  }
}
