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
 * restore is answered (endTempKeys), its key check values kept.
 */
import {
  deriveChipKey,
  fromB64,
  issueGrant,
  keyCheckValue,
  sameKcv,
  Secret,
  toB64,
  verifyReceipt,
  type Identity,
} from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import {
  adminSessionMachine,
  ADMIN_SESSION_MACHINE_VERSION,
  type AdminCommand,
  type AdminOp,
  type AdminSessionContext,
  type AdminSessionIntent,
} from '../machines/adminSession.machine.ts';
import { decisionMachine, DECISION_MACHINE_VERSION, type DecisionContext, type DecisionIntent } from '../machines/decision.machine.ts';
import type { MigrationItem } from '../machines/migration.machine.ts';
import { AdminSamRecords, type TempKeyRecord } from '../store/adminSam.store.ts';
import { decodeChipFrame, type ChipCommand, type ChipReply } from '../transport/chip.frames.ts';
import type { Step } from '../protocol/steps.ts';
import type { AnyEnvelope, Envelope } from '../transport/envelope.ts';
import type { Grant } from '../transport/messages.ts';
import { PartyRuntime, type MachineEvent, type MachineKind, type RuntimeDeps, type TurnContext } from './runtime.ts';
import { SamSessions } from './samSession.ts';

const SESSION = 'session:';
const DECISION = 'decision:';

/** The refusal of a lock, format or grant whose temp key was deleted (endTempKeys). Names no key, only the migration. */
function keysGoneSentence(mig: string, decision: string | undefined): string {
  return `the temp keys of ${mig} were deleted when its record became ${decision ?? 'settled'}: no lock, format or grant runs for it any more`;
}

export interface MigrationSamKeys {
  signPublic: Uint8Array;
  boxPublic: Uint8Array;
}

export interface AdminSamOptions {
  issuerMaster: Secret;
  identity: Identity;
  /** The migration SAMs this admin SAM grants temp keys to, by party id ("migration-sam/<provider>"). */
  migrationSams: Record<string, MigrationSamKeys>;
}

const STEP_OF: Record<AdminOp, Step> = {
  identify: 'S1',
  lock: 'S3',
  format: 'S10',
  activate: 'S16',
  restore: 'rollback',
  wipe: 'rollback',
};

export class AdminSamRuntime extends PartyRuntime {
  protected readonly kinds: Record<string, MachineKind> = {
    adminSession: { machine: adminSessionMachine, version: ADMIN_SESSION_MACHINE_VERSION },
    decision: { machine: decisionMachine, version: DECISION_MACHINE_VERSION },
  };
  readonly records: AdminSamRecords;
  private readonly sessions: SamSessions;
  private readonly opts: AdminSamOptions;
  /** Areas listed in an identify session, until the session answers. */
  private readonly listed = new Map<string, NonNullable<Extract<ChipReply, { ok: true }>['areas']>>();
  /** Set when the decision machine refused the request being handled (the reply is already sent). */
  private refusedInTurn = false;

  constructor(deps: RuntimeDeps, opts: AdminSamOptions) {
    super(deps);
    this.opts = opts;
    this.records = new AdminSamRecords(deps.store);
    this.sessions = new SamSessions(deps.rng);
  }

  decisionOf(mig: string): string | undefined {
    return this.records.decisions.get(mig)?.state;
  }

  /** After a restart, sessions in progress are lost (their keys lived in RAM): fail them so their steps are retried. */
  override async start(): Promise<void> {
    await super.start();
    await this.runLocal((turn) => {
      for (const key of this.actorKeys('adminSession')) turn.tryDispatch(key, { type: 'SESSION_LOST' });
    });
  }

  /** After a failed commit the actors were read back from the store: their sessions' keys were RAM, as after a restart. */
  protected override onReloaded(turn: TurnContext): void {
    for (const key of this.actorKeys('adminSession')) turn.tryDispatch(key, { type: 'SESSION_LOST' });
  }

  // ---- the commit point ----------------------------------------------------------------------

  /** The commit (after S14): the decision record takes it only with a valid receipt for every item. */
  protected commit(turn: TurnContext, env: Envelope<'admin.commit'>, mig: string, check: { ok: boolean; problem?: string }): void {
    turn.dispatch(DECISION + mig, { type: 'COMMIT_REQUESTED', receiptsValid: check.ok, problem: check.problem });
  }

  /** S16 opens only under a committed record, for the destination it names. */
  protected gateActivation(turn: TurnContext, mig: string, serial: string): void {
    this.gate(turn, mig, { type: 'ACTIVATE_REQUESTED', serial }, 'activation needs a committed decision record, for its own destination');
  }

  // ---- inbound ------------------------------------------------------------------------------

  protected onEnvelope(env: AnyEnvelope, peer: string, turn: TurnContext): void {
    // Only servers reach this point: the channel handshake refused every key not in the trust configuration.
    void peer;
    const now = this.clock.now();
    switch (env.type) {
      case 'frame':
        return this.onFrame(turn, env.body.session, env.body.data);
      case 'admin.identify':
        this.openSession(turn, env, 'identify', env.mig ?? null, null, [{ op: 'list' }], null, now);
        return;
      case 'admin.lock': {
        const mig = this.requireMig(env);
        // Everything that can refuse the lock is checked before the record is created: a refusal after a
        // change would stop the SAM (runtime.ts). Found by test/fuzz: a lock naming an unknown migration SAM.
        this.requireNewSession(env.body.session);
        for (const item of env.body.items) this.requireRecipient(item.recipient);
        const decision = this.actorOf(DECISION + mig);
        if (!decision) {
          turn.spawn(DECISION + mig, 'decision', { mig, source: env.body.serial, items: env.body.items });
        } else {
          this.gate(turn, mig, { type: 'LOCK_REQUESTED', serial: env.body.serial }, 'the source can be locked only while the record is pending, and only the source it was created for');
        }
        for (const item of env.body.items) this.ensureTempKey(turn, mig, item);
        const commands = env.body.items.map((i) => ({ op: 'lock' as const, area: i.area, item: i.item, provider: i.provider, recipient: i.recipient }));
        this.openSession(turn, env, 'lock', mig, env.body.serial, commands, env.body.expiresAt, now);
        return;
      }
      case 'admin.format': {
        const mig = this.requireMig(env);
        if (env.body.issuance && !this.actorOf(DECISION + mig)) {
          // An issuance has no source to lock: its first format opens the record and makes the temp keys, with
          // everything that can refuse checked first. Its items reach a chip only with the provider's order (S14).
          this.requireNewSession(env.body.session);
          for (const item of env.body.items) this.requireRecipient(item.recipient);
          turn.spawn(DECISION + mig, 'decision', { mig, source: '', items: env.body.items });
          for (const item of env.body.items) this.ensureTempKey(turn, mig, item);
        }
        const items = this.decisionContext(mig).items;
        this.requireNewSession(env.body.session);
        this.refusedInTurn = false;
        this.gate(turn, mig, { type: 'FORMAT_REQUESTED', serial: env.body.serial }, 'a destination can be formatted only while the record is pending');
        if (this.refusedInTurn) return;
        const commands = items.map((i) => ({ op: 'format' as const, area: i.area, item: i.item, provider: i.provider, recipient: i.recipient }));
        this.openSession(turn, env, 'format', mig, env.body.serial, commands, env.body.expiresAt, now);
        return;
      }
      case 'admin.commit': {
        const mig = this.requireMig(env);
        this.commit(turn, env, mig, this.checkReceipts(turn, mig, env.body.receipts));
        return;
      }
      case 'admin.abort': {
        const mig = this.requireMig(env);
        if (!this.actorOf(DECISION + mig)) {
          // The abort overtook the lock (lost, delayed, or never sent): record the decision now, with no items,
          // so a lock that arrives later is refused and the source, never locked, is "restored" by doing nothing.
          turn.spawn(DECISION + mig, 'decision', { mig, source: env.body.source ?? '', items: [] });
        }
        turn.dispatch(DECISION + mig, { type: 'ABORT_REQUESTED', reason: env.body.reason });
        return;
      }
      case 'admin.activate': {
        const mig = this.requireMig(env);
        this.requireNewSession(env.body.session);
        this.gateActivation(turn, mig, env.body.serial);
        this.openSession(turn, env, 'activate', mig, env.body.serial, this.itemCommands(mig, 'activate'), null, now);
        return;
      }
      case 'admin.restore': {
        const mig = this.requireMig(env);
        this.requireNewSession(env.body.session);
        this.gate(turn, mig, { type: 'RESTORE_REQUESTED', serial: env.body.serial }, 'the source is restored only under an aborted decision record');
        if (this.decisionContext(mig).items.length === 0) {
          // The abort overtook the lock: no area was switched, nothing to restore.
          turn.reply(env, 'admin.restored', { serial: env.body.serial });
          return;
        }
        this.openSession(turn, env, 'restore', mig, env.body.serial, this.itemCommands(mig, 'restore'), null, now);
        return;
      }
      case 'admin.wipe': {
        const mig = this.requireMig(env);
        const record = this.actorOf(DECISION + mig)?.getSnapshot();
        if (env.body.role === 'destination' && record?.value === 'aborted' && (record.context as DecisionContext).destination === null) {
          // The format never reached us before the abort (we refuse it after): no chip was formatted for this
          // migration, so there is nothing to wipe. Found by the model-based suite: this wipe was refused forever.
          turn.reply(env, 'admin.wiped', { serial: env.body.serial });
          return;
        }
        this.requireNewSession(env.body.session);
        this.gate(turn, mig, { type: 'WIPE_REQUESTED', serial: env.body.serial, role: env.body.role }, 'a destination is wiped only when aborted, a source only when committed');
        if (this.decisionContext(mig).items.length === 0) {
          turn.reply(env, 'admin.wiped', { serial: env.body.serial });
          return;
        }
        this.openSession(turn, env, 'wipe', mig, env.body.serial, this.itemCommands(mig, 'wipe'), null, now);
        return;
      }
      default:
        throw new ProtocolError('UNEXPECTED', `the admin SAM does not accept ${env.type}`);
    }
  }

  /** A session id names one session, ever (openSession refuses a used one; here it is refused before any change). */
  private requireNewSession(session: string): void {
    if (this.actorOf(SESSION + session)) throw new ProtocolError('UNEXPECTED', `session ${session} was already used`);
  }

  private requireRecipient(recipient: string): void {
    if (!this.opts.migrationSams[recipient]) throw new ProtocolError('NOT_TRUSTED', `${recipient} is not a migration SAM this admin SAM grants keys to`);
  }

  private requireMig(env: AnyEnvelope): string {
    if (!env.mig) throw new ProtocolError('BAD_ENVELOPE', `${env.type} needs a migration id (header "mig")`);
    return env.mig;
  }

  private decisionContext(mig: string): DecisionContext {
    const a = this.actorOf(DECISION + mig);
    if (!a) throw new ProtocolError('NO_MIGRATION', `no decision record for migration ${mig}: its source was never locked`);
    return a.getSnapshot().context as DecisionContext;
  }

  /** Sends an event to the decision record, refusing with `why` when the record does not allow it. */
  private gate(turn: TurnContext, mig: string, event: MachineEvent, why: string): void {
    const a = this.actorOf(DECISION + mig);
    if (!a) throw new ProtocolError('NO_MIGRATION', `no decision record for migration ${mig}: its source was never locked`);
    const snap = a.getSnapshot();
    if (!snap.can(event)) throw new ProtocolError('DECISION_STANDS', `${why}; the record of ${mig} is ${String(snap.value)}`);
    turn.dispatch(DECISION + mig, event);
  }

  private itemCommands(mig: string, op: 'activate' | 'restore' | 'wipe'): AdminCommand[] {
    return this.decisionContext(mig).items.map((i) => ({ op, area: i.area, item: i.item, provider: i.provider, recipient: i.recipient }));
  }

  private ensureTempKey(turn: TurnContext, mig: string, item: MigrationItem): void {
    const k = AdminSamRecords.keyOf(mig, item.item);
    if (this.records.tempKeys.get(k)) return;
    if (!this.opts.migrationSams[item.recipient]) {
      throw new ProtocolError('NOT_TRUSTED', `${item.recipient} is not a migration SAM this admin SAM grants keys to`);
    }
    // Fresh, random, one per (migration, item), never reused (protocol.md §2).
    const rec: TempKeyRecord = {
      mig,
      item: item.item,
      area: item.area,
      provider: item.provider,
      recipient: item.recipient,
      key: this.rng.bytes(32),
      sourceMainKcv: null,
      destinationMainKcv: null,
    };
    turn.write(() => {
      if (!this.records.tempKeys.get(k)) this.records.tempKeys.put(k, rec);
    });
    this.pendingKeys.set(k, rec);
  }

  /** Temp keys generated in this turn, not yet committed (the lock session reads them before the commit). */
  private readonly pendingKeys = new Map<string, TempKeyRecord>();

  private tempKey(mig: string, item: number): TempKeyRecord {
    const k = AdminSamRecords.keyOf(mig, item);
    const rec = this.pendingKeys.get(k) ?? this.records.tempKeys.get(k);
    if (!rec) throw new Error(`no temp key for ${k}`);
    return rec;
  }

  private updateTempKey(turn: TurnContext, rec: TempKeyRecord): void {
    const k = AdminSamRecords.keyOf(rec.mig, rec.item);
    this.pendingKeys.set(k, rec);
    turn.write(() => this.records.tempKeys.put(k, rec));
  }

  /**
   * The temp key of a record, for a lock, a format or a grant. Those run only
   * while the decision record is pending, and the key is deleted only once it
   * is committed or aborted (endTempKeys), so a null key here is a session
   * that outlived its record: `onFrame` refuses it before the session moves
   * (keysGone), and this is the assertion behind that check.
   */
  private liveKey(rec: TempKeyRecord): Secret {
    if (rec.key === null) throw new ProtocolError('DECISION_STANDS', keysGoneSentence(rec.mig, this.decisionOf(rec.mig)));
    return Secret.of(rec.key);
  }

  /**
   * Why a lock or format session can not go on, or null when it can: the
   * temp key of one of its items was deleted (its migration is settled). A
   * session opened while the record was pending may outlive it: one the
   * server gave up on and a relay keeps feeding, or one that lost a race
   * with the commit or the abort. Checked before the session moves, because
   * past that point the key is read inside the machine's step (command,
   * verifyReply, grants), where a refusal would stop the SAM (runtime.ts).
   */
  private keysGone(ctx: AdminSessionContext): string | null {
    if ((ctx.op !== 'lock' && ctx.op !== 'format') || ctx.mig === null) return null;
    for (const cmd of ctx.commands) {
      if (this.tempKey(ctx.mig, cmd.item!).key === null) return keysGoneSentence(ctx.mig, this.decisionOf(ctx.mig));
    }
    return null;
  }

  /**
   * Issue 16: a temp key ends with its item. Its bytes are deleted (the
   * record stays, with its key check values, area, provider and recipient,
   * for the audit trail) in the turn that answers the session which settles
   * the migration's items, so that answer never goes out while a key is
   * still on disk (persist, then speak; a crash leaves the key and no
   * answer, or no key and the answer in the inbox):
   *
   *  - `committed`: once S16 verified every destination area (`sessionDone`
   *    of the activate session). The source backup is still locked under the
   *    temp key, and stays so until it is wiped; yet nobody can legitimately
   *    ask for the key again. The decision record refuses every lock and
   *    format of a committed migration, so no grant is ever issued again;
   *    the migration SAMs drop the grants they hold at S17; the wipe of the
   *    source backup (protocol.md, "After the commit") is an admin session
   *    under K_chip; a retried activation checks `destinationMainKcv`, kept
   *    here. protocol.md deletes the keys only after that wipe, which may be
   *    a retention period away: a key kept until then opens the backup's
   *    upload sessions and serves no one.
   *  - `aborted`: once the source's areas are back on their main keys
   *    (`sessionDone` of the restore session, each area checked against
   *    `sourceMainKcv`, kept here for a retried restore). The destination's
   *    wipe is under K_chip too. An abort that overtook the lock made no
   *    keys: nothing to delete.
   *
   * Only under the record that settles the items: a session that ran under
   * any other (the simulator's deliberately broken build activates under
   * `pending`) leaves the keys, which a pending migration still needs.
   */
  private endTempKeys(turn: TurnContext, mig: string, settledBy: 'committed' | 'aborted'): void {
    if (this.decisionOf(mig) !== settledBy) return;
    for (const item of this.decisionContext(mig).items) {
      const rec = this.tempKey(mig, item.item);
      if (rec.key !== null) this.updateTempKey(turn, { ...rec, key: null });
    }
  }

  private checkReceipts(turn: TurnContext, mig: string, receipts: readonly import('../transport/messages.ts').Receipt[]): { ok: boolean; problem?: string } {
    const ctx = this.decisionContext(mig);
    if (ctx.destination === null) return { ok: false, problem: 'no destination was formatted for this migration' };
    for (const item of ctx.items) {
      const r = receipts.find((x) => x.item === item.item);
      if (!r) return { ok: false, problem: `no receipt for item ${item.item} (${item.area})` };
      const msam = this.opts.migrationSams[item.recipient];
      if (!msam) return { ok: false, problem: `${item.recipient} is not a known migration SAM` };
      try {
        const body = verifyReceipt(r, msam.signPublic);
        if (body.mig !== mig || body.serial !== ctx.destination || body.area !== item.area || body.provider !== item.provider) {
          return { ok: false, problem: `the receipt for item ${item.item} is bound to another migration, chip, area or provider` };
        }
      } catch {
        return { ok: false, problem: `the receipt for item ${item.item} is not signed by ${item.recipient}` };
      }
    }
    // The receipts' key check values are what activation must show (S16).
    for (const item of ctx.items) {
      const r = receipts.find((x) => x.item === item.item)!;
      this.updateTempKey(turn, { ...this.tempKey(mig, item.item), destinationMainKcv: r.kcv });
    }
    return { ok: true };
  }

  // ---- admin sessions ---------------------------------------------------------------------------

  private openSession(
    turn: TurnContext, env: AnyEnvelope,
    op: AdminOp,
    mig: string | null,
    serial: string | null,
    commands: AdminCommand[],
    expiresAt: number | null,
    now: number,
  ): void {
    const session = 'session' in env.body ? (env.body.session as string) : '';
    if (this.actorOf(SESSION + session)) throw new ProtocolError('UNEXPECTED', `session ${session} was already used`);
    turn.spawn(SESSION + session, 'adminSession', { session, op, mig, serial, commands, request: env.id, expiresAt, deadline: now + this.timing.sessionMs });
  }

  private onFrame(turn: TurnContext, session: string, data: string): void {
    const key = SESSION + session;
    const actor = this.actorOf(key);
    if (!actor || actor.getSnapshot().status !== 'active' || !this.sessions.has(session)) {
      throw new ProtocolError('NOT_FOUND', `no open admin session ${session.slice(0, 64)}`);
    }
    const ctx = actor.getSnapshot().context as AdminSessionContext;
    const gone = this.keysGone(ctx);
    if (gone !== null) {
      // The session fails with the reason (its server hears DECISION_STANDS); the chip's frame is not read.
      turn.dispatch(key, { type: 'CHIP_REFUSED', code: 'DECISION_STANDS', message: gone });
      return;
    }
    const frame = decodeChipFrame(fromB64(data));
    if (actor.getSnapshot().matches('authenticating')) {
      turn.dispatch(key, this.sessions.answerEvent(session, frame, (serial) => deriveChipKey(this.opts.issuerMaster, serial)));
      return;
    }
    const r = this.sessions.reply(session, frame);
    if (r.kind === 'refused') {
      turn.dispatch(key, { type: 'CHIP_REFUSED', code: r.code, message: r.message });
      return;
    }
    const reply = r.reply;
    if (!reply.ok) {
      turn.dispatch(key, { type: 'CHIP_REPLIED', ok: false, verified: false, code: reply.code, message: reply.message });
      return;
    }
    turn.dispatch(key, { type: 'CHIP_REPLIED', ok: true, verified: this.verifyReply(turn, ctx, reply) });
  }

  /** The key check after each install or switch (protocol.md §2): compared with what this SAM knows. */
  private verifyReply(turn: TurnContext, ctx: AdminSessionContext, reply: Extract<ChipReply, { ok: true }>): boolean {
    const cmd = ctx.commands[ctx.cursor]!;
    const serial = ctx.provenSerial!;
    if (cmd.op === 'list') {
      this.listed.set(ctx.session, reply.areas ?? []);
      return true;
    }
    if (cmd.op === 'wipe') return true;
    const rec = this.tempKey(ctx.mig!, cmd.item!);
    // Only a lock or a format installs the temp key, and only they need it. Activate and restore answer a main key's
    // check value, which this SAM kept, so a retried activation or restore is checked after the temp key is deleted.
    const tempKcv = () => keyCheckValue(this.liveKey(rec), serial, cmd.area!);
    switch (cmd.op) {
      case 'lock':
        if (!sameKcv(reply.kcv, tempKcv()) || !reply.prevKcv) return false;
        if (rec.sourceMainKcv === null) this.updateTempKey(turn, { ...rec, sourceMainKcv: reply.prevKcv });
        return rec.sourceMainKcv === null || sameKcv(rec.sourceMainKcv, reply.prevKcv);
      case 'format':
        return sameKcv(reply.kcv, tempKcv());
      case 'activate':
        return rec.destinationMainKcv !== null && sameKcv(reply.kcv, rec.destinationMainKcv);
      case 'restore':
        // An area the lock never reached was never switched: there is no set-aside key to check.
        return rec.sourceMainKcv === null || sameKcv(reply.kcv, rec.sourceMainKcv);
    }
  }

  private command(ctx: AdminSessionContext, index: number): ChipCommand {
    const cmd = ctx.commands[index]!;
    if (cmd.op === 'list') return { op: 'list' };
    const mig = ctx.mig!;
    const step = STEP_OF[ctx.op];
    const area = cmd.area!;
    switch (cmd.op) {
      case 'lock':
        return { op: 'lock', area, key: toB64(this.liveKey(this.tempKey(mig, cmd.item!)).reveal()), mig, step };
      case 'format':
        return { op: 'format', area, provider: cmd.provider!, key: toB64(this.liveKey(this.tempKey(mig, cmd.item!)).reveal()), mig, step };
      case 'activate':
      case 'restore':
      case 'wipe':
        return { op: cmd.op, area, mig, step };
    }
  }

  private grants(ctx: AdminSessionContext, purpose: 'upload' | 'download'): Grant[] {
    return ctx.commands.map((cmd) => {
      const rec = this.tempKey(ctx.mig!, cmd.item!);
      const msam = this.opts.migrationSams[rec.recipient]!;
      return issueGrant(
        {
          mig: ctx.mig!,
          item: rec.item,
          area: rec.area,
          serial: ctx.serial!,
          purpose,
          provider: rec.provider,
          recipient: rec.recipient,
          expiresAt: ctx.expiresAt ?? 0,
        },
        this.liveKey(rec),
        msam.boxPublic,
        this.opts.identity,
        this.rng,
      );
    });
  }

  // ---- intents ------------------------------------------------------------------------------------

  protected onIntent(key: string, intent: AdminSessionIntent | DecisionIntent, turn: TurnContext): void {
    if (key.startsWith(DECISION)) return this.decisionIntent(turn, key.slice(DECISION.length), intent as DecisionIntent);
    const ctx = this.actorOf(key)!.getSnapshot().context as AdminSessionContext;
    const si = intent as AdminSessionIntent;
    const server = turn.peerOfRequest(ctx.request);
    const header = { mig: ctx.mig ?? undefined, step: STEP_OF[ctx.op] };
    switch (si.type) {
      case 'beginAuth': {
        const frame = this.sessions.begin({ session: ctx.session, area: '*', mig: ctx.mig ?? '-', purpose: 'admin' });
        turn.send(server, 'frame', { session: ctx.session, data: toB64(frame) });
        return;
      }
      case 'sendCommand': {
        const frame = this.sessions.command(ctx.session, this.command(ctx, si.index));
        turn.send(server, 'frame', { session: ctx.session, data: toB64(frame) });
        return;
      }
      case 'sessionDone': {
        this.closeChipSession(turn, server, ctx.session);
        const reply = { ...header, corr: ctx.request };
        switch (ctx.op) {
          case 'identify':
            turn.send(server, 'admin.identified', { serial: ctx.provenSerial!, areas: this.listed.get(ctx.session) ?? [] }, reply);
            this.listed.delete(ctx.session);
            return;
          case 'lock':
            turn.send(server, 'admin.locked', { grants: this.grants(ctx, 'upload') }, reply);
            return;
          case 'format':
            turn.send(server, 'admin.formatted', { grants: this.grants(ctx, 'download') }, reply);
            return;
          case 'activate':
            // Every destination area answered its main key: the migration's temp keys end here, in this turn's commit.
            this.endTempKeys(turn, ctx.mig!, 'committed');
            turn.send(server, 'admin.activated', { serial: ctx.serial! }, reply);
            return;
          case 'restore':
            // Every source area is back on its main key: the temp keys end here, in this turn's commit.
            this.endTempKeys(turn, ctx.mig!, 'aborted');
            turn.send(server, 'admin.restored', { serial: ctx.serial! }, reply);
            return;
          case 'wipe':
            turn.send(server, 'admin.wiped', { serial: ctx.serial! }, reply);
            return;
        }
        return;
      }
      case 'sessionFailed':
        this.closeChipSession(turn, server, ctx.session);
        this.listed.delete(ctx.session);
        turn.send(server, 'error', { code: si.code, message: si.message }, { ...header, corr: ctx.request });
        return;
    }
  }

  private closeChipSession(turn: TurnContext, server: string, session: string): void {
    const close = this.sessions.close(session);
    if (close) turn.send(server, 'frame', { session, data: toB64(close) });
  }

  private decisionIntent(turn: TurnContext, mig: string, intent: DecisionIntent): void {
    const inbound = turn.inbound;
    switch (intent.type) {
      case 'recordDecision': {
        const decisions = this.records.decisions;
        const next = { mig, state: intent.decision, destination: intent.destination };
        // Compare-and-set inside the commit: a record leaves `pending` once, and never changes after.
        turn.write(() => {
          const cur = decisions.get(mig);
          if (cur && cur.state !== 'pending') {
            throw new Error(`decision record of ${mig} is ${cur.state}; refusing to write ${intent.decision}`);
          }
          decisions.put(mig, next);
        });
        return;
      }
      case 'answerDecision':
        if (inbound) turn.reply(inbound, 'admin.decision', { decision: intent.decision, ...(intent.reason ? { reason: intent.reason } : {}) });
        return;
      case 'refuse':
        this.refusedInTurn = true;
        if (inbound) turn.reply(inbound, 'error', { code: intent.code, message: intent.message });
        return;
    }
  }

  protected override onCommitting(): void {
    this.pendingKeys.clear();
  }
}
