/**
 * A provider's migration SAM (seed 12). It obeys only servers it was
 * configured to trust, each with its own rights (upload, download, clear;
 * ¶0053, ¶0057), and uses a temp key only as its grant binds it: this
 * migration, this item, this area, this chip serial, this purpose, before
 * expiry, and never for a migration it has fenced.
 */
import { openFromPair, Secret, signReceipt, toB64, VerifiedSets, type Identity } from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { migrationSamMachine, MIGRATION_SAM_MACHINE_VERSION, type MigrationSamContext, type MigrationSamIntent } from '../machines/migrationSam.machine.ts';
import { MigrationSamRecords, type HeldItem } from '../store/migrationSam.store.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { MAIN_KEY_SEAL_INFO } from './normalSam.actor.ts';
import { PartyRuntime, type MachineKind, type RuntimeDeps, type TurnContext } from './runtime.ts';
import { ledgerNote, MigrationSamRecoveries, tellLedger, type RecoveryHost } from './migrationSamRecovery.ts';
import { transferRequested, type TransferHost, type Working } from './migrationSamTransfers.ts';
import { SamSessions } from './samSession.ts';
import { onSamFrame } from './migrationSamFrames.ts';
import { itemStatement, type StatementSigner } from './migrationSamStatements.ts';

export type Right = 'upload' | 'download' | 'clear';
const ITEM = 'item:';

export interface MigrationSamOptions {
  provider: string;
  identity: Identity;
  adminSamSignPublic: Uint8Array | readonly Uint8Array[];
  /** Our own normal SAM's X25519 key (new, old in its rotation window): main keys come sealed under the key we share with it (pairBox.ts). */
  normalSamBoxPublic: Uint8Array | readonly Uint8Array[];
  /** Trusted servers by Ed25519 public key (base64url), each with its rights. */
  servers: Record<string, Right[]>;
  /** Which trusted server each server link belongs to (filled from the channel handshake). */
  serverKeyOf: (peer: string) => string | undefined;
}

const RIGHT_OF: Partial<Record<AnyEnvelope['type'], Right>> = {
  'msam.upload': 'upload',
  'msam.download': 'download',
  'msam.clear': 'clear',
  'msam.fence': 'clear',
  'msam.recover': 'download',
};

export class MigrationSamRuntime extends PartyRuntime {
  // It drives chip sessions (each one's last frame is sent again until answered); msam.preflight only reads rights.
  protected override readonly resendsFrames = true;
  protected override readonly requestsAnsweredFresh: ReadonlySet<string> = new Set(['msam.preflight']);
  private readonly verifiedSets = new VerifiedSets(); // grant sets whose signature this SAM checked
  protected readonly kinds: Record<string, MachineKind> = { migrationSam: { machine: migrationSamMachine, version: MIGRATION_SAM_MACHINE_VERSION } };
  readonly records: MigrationSamRecords;
  /** Lost chips reported to this provider, and the orders that re-issue their items (migrationSamRecovery.ts). */
  readonly recoveries: MigrationSamRecoveries;
  private readonly recoveryHost: RecoveryHost;
  private readonly sessions: SamSessions;
  private readonly opts: MigrationSamOptions;
  private readonly working = new Map<string, Working>();
  private readonly sessionOwner = new Map<string, string>();
  private fenceReplies = new Set<string>(); // a fence reply is one per request, whatever the number of items it fenced

  constructor(deps: RuntimeDeps, opts: MigrationSamOptions) {
    super(deps);
    [this.opts, this.records, this.sessions] = [opts, new MigrationSamRecords(deps.store), new SamSessions(deps.rng)];
    this.recoveryHost = { ...opts, records: this.records, normalSamPeer: this.normalSamPeer, rng: deps.rng };
    this.recoveries = new MigrationSamRecoveries(deps.store, this.recoveryHost);
  }

  get provider(): string {
    return this.opts.provider;
  }

  get normalSamPeer(): string {
    return `normal-sam/${this.opts.provider}`;
  }

  /** Items this SAM still holds (protocol.md §4.2: empty at the end of every migration). */
  held(): HeldItem[] {
    return this.records.held();
  }

  // ---- authority -------------------------------------------------------------------------------

  private rightsOf(peer: string): Right[] {
    const key = this.opts.serverKeyOf(peer);
    const rights = key === undefined ? undefined : this.opts.servers[key];
    if (!rights) throw new ProtocolError('NOT_TRUSTED', `${peer} is not a server this migration SAM trusts`);
    return rights;
  }

  private requireRight(peer: string, right: Right): void {
    if (!this.rightsOf(peer).includes(right)) {
      throw new ProtocolError('RIGHT_DENIED', `this server was not given the "${right}" right by provider ${this.opts.provider}`);
    }
  }

  /** After a restart, sessions in progress are lost (their keys lived in RAM): fail them so their steps are retried. */
  override async start(): Promise<void> {
    await super.start();
    await this.runLocal((turn) => this.onReloaded(turn));
  }

  /** After a failed commit the actors were read back from the store: their sessions' keys were RAM, as after a restart. */
  protected override onReloaded(turn: TurnContext): void {
    for (const key of this.actorKeys('migrationSam')) turn.tryDispatch(key, { type: 'SESSION_LOST' });
  }

  // ---- inbound ------------------------------------------------------------------------------------

  protected onEnvelope(env: AnyEnvelope, peer: string, turn: TurnContext): void {
    if (peer === this.normalSamPeer) return this.fromNormalSam(turn, env);
    // Every other peer must be a server this SAM trusts, and every request needs its right.
    const right = RIGHT_OF[env.type];
    if (right) this.requireRight(peer, right);
    else this.rightsOf(peer);
    const now = this.clock.now();
    switch (env.type) {
      case 'msam.preflight': {
        const granted = this.rightsOf(peer);
        const missing = env.body.rights.filter((r) => !granted.includes(r));
        if (missing.length > 0) {
          throw new ProtocolError('RIGHT_DENIED', `provider ${this.opts.provider} did not give this server the right(s): ${missing.join(', ')}`);
        }
        if (env.body.source) this.recoveries.refuseUploadFrom(env.body.source);
        turn.reply(env, 'msam.ready', { provider: this.opts.provider });
        return;
      }
      case 'msam.upload':
      case 'msam.download':
        return this.transferRequested(turn, env, now);
      case 'msam.clear': {
        const mig = this.requireMig(env);
        if (env.item === undefined) throw new ProtocolError('BAD_ENVELOPE', 'msam.clear needs an item (header "item")');
        const key = `${ITEM}${mig}:${env.item}`;
        if (!this.actorOf(key) && (this.records.fenced.get(mig) || !this.records.items.get(MigrationSamRecords.keyOf(mig, env.item)))) {
          // Nothing of this item was ever held here (aborted before its upload): clearing it is already done.
          turn.reply(env, 'msam.cleared', {});
          return;
        }
        turn.dispatch(this.itemKey(env), { type: 'CLEAR_REQUESTED', request: env.id });
        return;
      }
      case 'msam.fence': {
        const mig = this.requireMig(env);
        // Durable before anything else: from now on no download for this migration, ever.
        turn.write(() => this.records.fenced.put(mig, { mig, reason: "aborted by the admin SAM's decision" }));
        this.fenceReplies.add(env.id);
        for (const key of this.actorKeys('migrationSam')) {
          if (key.startsWith(`${ITEM}${mig}:`)) turn.tryDispatch(key, { type: 'FENCE_REQUESTED', request: env.id });
        }
        this.fenceReplies.delete(env.id);
        turn.reply(env, 'msam.fenced', {});
        return;
      }
      case 'msam.recover':
        return this.recoveries.requested(turn, env, peer);
      case 'frame':
        return this.sessions.take(env.body.session, env.body.data, () => this.onFrame(turn, env.body.session, env.body.data));
      default:
        throw new ProtocolError('UNEXPECTED', `a migration SAM does not accept ${env.type}`);
    }
  }

  private requireMig(env: AnyEnvelope): string {
    if (!env.mig) throw new ProtocolError('BAD_ENVELOPE', `${env.type} needs a migration id (header "mig")`);
    return env.mig;
  }

  private itemKey(env: AnyEnvelope): string {
    const mig = this.requireMig(env);
    if (env.item === undefined) throw new ProtocolError('BAD_ENVELOPE', `${env.type} needs an item (header "item")`);
    const key = `${ITEM}${mig}:${env.item}`;
    if (!this.actorOf(key)) throw new ProtocolError('NO_MIGRATION', `this migration SAM holds nothing of ${mig} item ${env.item}`);
    return key;
  }

  private transferRequested(turn: TurnContext, env: Extract<AnyEnvelope, { type: 'msam.upload' | 'msam.download' }>, now: number): void {
    transferRequested(this.transferHost, turn, env, now);
  }

  private get transferHost(): TransferHost {
    const { provider, identity, adminSamSignPublic } = this.opts;
    return {
      ...{ provider, identity, adminSamSignPublic, id: this.id, records: this.records, verifiedSets: this.verifiedSets },
      ...{ working: this.working, sessionOwner: this.sessionOwner, sessionMs: this.timing.sessionMs },
      actorOf: (key) => this.actorOf(key),
      heldRecord: (mig, item) => this.heldRecord(mig, item),
      requireMig: (env) => this.requireMig(env),
      refuseUploadFrom: (serial) => this.recoveries.refuseUploadFrom(serial),
    };
  }

  private heldRecord(mig: string, item: number): HeldItem {
    const rec = this.records.items.get(MigrationSamRecords.keyOf(mig, item));
    if (!rec) throw new Error(`no held record for ${mig} item ${item}`);
    return rec;
  }

  private fromNormalSam(turn: TurnContext, env: AnyEnvelope): void {
    const req = turn.requestOf(env.corr);
    if (req?.type === 'nsam.moved') return; // the ledger noted the move
    if (req?.type === 'nsam.revoke') return env.type === 'error' ? this.recoveries.refused(turn, env, req) : this.recoveries.revoked(turn, env as never, req);
    if (req?.type !== 'nsam.main-key') throw new ProtocolError('UNEXPECTED', `${env.type} answers no main-key request of ours`);
    const key = `${ITEM}${req.mig}:${req.item}`;
    const w = this.working.get(key);
    if (env.type === 'error') {
      turn.dispatch(key, { type: 'CHIP_REFUSED', code: env.body.code, message: `our normal SAM refused the main key: ${env.body.message}` });
      return;
    }
    if (env.type !== 'nsam.main-key.sealed' || !w) throw new ProtocolError('UNEXPECTED', `${env.type} is not a main key for a download in progress`);
    const aad = new TextEncoder().encode(`${w.grant.serial}/${w.grant.area}`);
    w.mainKey = Secret.of(openFromPair(this.opts.identity, this.opts.normalSamBoxPublic, env.body, MAIN_KEY_SEAL_INFO, aad));
    turn.dispatch(key, { type: 'MAIN_KEY_RECEIVED' });
  }

  private onFrame(turn: TurnContext, session: string, data: string): void {
    const key = this.sessionOwner.get(session);
    onSamFrame(turn, { key, actor: key ? this.actorOf(key) : undefined, w: key ? this.working.get(key) : undefined, sessions: this.sessions }, session, data);
  }

  // ---- intents --------------------------------------------------------------------------------------

  /** S15: the receipt, signed and kept with the item, goes back with the download's answer. */
  private signReceipt(turn: TurnContext, key: string, ctx: MigrationSamContext, w: Working): void {
    const rec = this.heldRecord(ctx.mig, ctx.item);
    const receipt = signReceipt(
      { mig: ctx.mig, item: ctx.item, serial: w.grant.serial, area: w.grant.area, provider: this.opts.provider, kcv: w.kcv! },
      this.opts.identity,
    );
    turn.write(() => this.records.items.put(MigrationSamRecords.keyOf(ctx.mig, ctx.item), { ...rec, receipt }));
    this.pendingReceipt.set(key, receipt);
  }

  protected onIntent(key: string, intent: MigrationSamIntent, turn: TurnContext): void {
    const ctx = this.actorOf(key)!.getSnapshot().context as MigrationSamContext;
    const w = this.working.get(key);
    const server = w?.server ?? ('request' in intent ? turn.peerOfRequest(intent.request) : undefined);
    const frame = (session: string, bytes: Uint8Array) => {
      if (server) turn.send(server, 'frame', { session, data: toB64(bytes) });
    };
    const header = { mig: ctx.mig, item: ctx.item };
    switch (intent.type) {
      case 'beginAuth':
        frame(intent.session, this.sessions.begin({ session: intent.session, area: w!.grant.area, mig: ctx.mig, purpose: intent.purpose }));
        return;
      case 'sendRead':
        frame(intent.session, this.sessions.command(intent.session, { op: 'read' }));
        return;
      case 'askMainKey':
        turn.send(this.normalSamPeer, 'nsam.main-key', ledgerNote(this.recoveryHost, w!.placed ?? this.heldRecord(ctx.mig, ctx.item), w!.grant), {
          ...header,
          step: 'S14',
        });
        return;
      case 'sendDownload': {
        const held = this.heldRecord(ctx.mig, ctx.item);
        frame(
          intent.session,
          this.sessions.command(intent.session, {
            op: 'download',
            data: toB64(held.data!),
            key: toB64(w!.mainKey!.reveal()),
            mig: ctx.mig,
            step: 'S14',
          }),
        );
        return;
      }
      case 'storeItem': {
        const rec = this.heldRecord(ctx.mig, ctx.item);
        const read = w!.readData!;
        turn.write(() => this.records.items.put(MigrationSamRecords.keyOf(ctx.mig, ctx.item), { ...rec, data: read.data, counter: read.counter }));
        return;
      }
      case 'answerUploaded': {
        const rec = this.heldRecord(ctx.mig, ctx.item);
        const statement = itemStatement(turn, this.signer, rec, 'out', w?.readData?.data ?? rec.data, this.clock.now());
        turn.send(turn.peerOfRequest(intent.request), 'msam.uploaded', statement ? { statement } : {}, { ...header, step: 'S7', corr: intent.request });
        return;
      }
      case 'signReceipt':
        return this.signReceipt(turn, key, ctx, w!);
      case 'answerDownloaded':
        return this.answerDownloaded(turn, key, ctx, intent.request);
      case 'answerFailed':
        turn.send(turn.peerOfRequest(intent.request), 'error', { code: intent.code, message: intent.message }, { ...header, corr: intent.request });
        return;
      case 'endSession':
        this.sessions.end(intent.session);
        this.sessionOwner.delete(intent.session);
        return;
      case 'answerFenced':
        if (!this.fenceReplies.has(intent.request)) turn.send(turn.peerOfRequest(intent.request), 'msam.fenced', {}, { ...header, corr: intent.request });
        return;
      case 'clearItem': {
        // S17: the item and its grants leave this SAM.
        const k = MigrationSamRecords.keyOf(ctx.mig, ctx.item);
        tellLedger(this.recoveryHost, turn, this.records.items.get(k));
        turn.write(() => this.records.items.remove(k));
        this.working.delete(key);
        return;
      }
      case 'answerCleared':
        turn.send(turn.peerOfRequest(intent.request), 'msam.cleared', {}, { ...header, step: 'S17', corr: intent.request });
        return;
    }
  }

  /** S14's answer: the receipt (signed at S15, kept with the item) and the user's statement of the item. */
  private answerDownloaded(turn: TurnContext, key: string, ctx: MigrationSamContext, request: string): void {
    const rec = this.heldRecord(ctx.mig, ctx.item);
    const receipt = this.pendingReceipt.get(key) ?? rec.receipt;
    this.pendingReceipt.delete(key);
    if (!receipt) throw new Error(`no receipt for ${key}`);
    const statement = itemStatement(turn, this.signer, rec, 'in', rec.data, this.clock.now());
    const body = { receipt, ...(statement ? { statement } : {}) };
    turn.send(turn.peerOfRequest(request), 'msam.downloaded', body, { mig: ctx.mig, item: ctx.item, step: 'S14', corr: request });
  }

  private get signer(): StatementSigner {
    return { identity: this.opts.identity, provider: this.opts.provider, records: this.records, rng: this.rng };
  }

  private readonly pendingReceipt = new Map<string, import('../transport/messages.ts').Receipt>();
}
