/**
 * A provider's migration SAM (seed 12). It obeys only servers it was
 * configured to trust, each with its own rights (upload, download, clear;
 * ¶0053, ¶0057), and uses a temp key only as its grant binds it: this
 * migration, this item, this area, this chip serial, this purpose, before
 * expiry, and never for a migration it has fenced.
 */
import {
  fromB64,
  keyCheckValue,
  openGrant,
  sameKcv,
  openFromPair,
  Secret,
  signReceipt,
  toB64,
  verifyGrant,
  VerifiedSets,
  type GrantBinding,
  type Identity,
} from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { migrationSamMachine, MIGRATION_SAM_MACHINE_VERSION, type MigrationSamContext, type MigrationSamIntent } from '../machines/migrationSam.machine.ts';
import { MigrationSamRecords, type HeldItem } from '../store/migrationSam.store.ts';
import { decodeChipFrame } from '../transport/chip.frames.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import type { Grant } from '../transport/messages.ts';
import { MAIN_KEY_SEAL_INFO } from './normalSam.actor.ts';
import { PartyRuntime, type MachineKind, type RuntimeDeps, type TurnContext } from './runtime.ts';
import { placeOrder } from './migrationSamOrders.ts';
import { SamSessions } from './samSession.ts';

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

interface Working {
  /** The server link this item's sessions are relayed through. */
  server: string;
  grant: GrantBinding;
  tempKey: Secret;
  mainKey?: Secret;
  readData?: { data: Uint8Array; counter: number };
  kcv?: string;
}

const RIGHT_OF: Partial<Record<AnyEnvelope['type'], Right>> = {
  'msam.upload': 'upload',
  'msam.download': 'download',
  'msam.clear': 'clear',
  'msam.fence': 'clear',
};

export class MigrationSamRuntime extends PartyRuntime {
  // It drives chip sessions (each one's last frame is sent again until answered); msam.preflight only reads rights.
  protected override readonly resendsFrames = true;
  protected override readonly requestsAnsweredFresh: ReadonlySet<string> = new Set(['msam.preflight']);
  private readonly verifiedSets = new VerifiedSets(); // grant sets whose signature this SAM checked
  protected readonly kinds: Record<string, MachineKind> = { migrationSam: { machine: migrationSamMachine, version: MIGRATION_SAM_MACHINE_VERSION } };
  readonly records: MigrationSamRecords;
  private readonly sessions: SamSessions;
  private readonly opts: MigrationSamOptions;
  private readonly working = new Map<string, Working>();
  private readonly sessionOwner = new Map<string, string>();
  private fenceReplies = new Set<string>(); // a fence reply is one per request, whatever the number of items it fenced

  constructor(deps: RuntimeDeps, opts: MigrationSamOptions) {
    super(deps);
    [this.opts, this.records, this.sessions] = [opts, new MigrationSamRecords(deps.store), new SamSessions(deps.rng)];
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

  private checkGrant(env: AnyEnvelope, grant: Grant, purpose: 'upload' | 'download', now: number): GrantBinding {
    const mig = this.requireMig(env);
    if (env.item === undefined) throw new ProtocolError('BAD_ENVELOPE', `${env.type} needs an item (header "item")`);
    try {
      const expect = { mig, item: env.item, purpose, provider: this.opts.provider, recipient: this.id };
      return verifyGrant(grant, this.opts.adminSamSignPublic, expect, now, this.verifiedSets);
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'GRANT_INVALID';
      throw new ProtocolError('GRANT_REFUSED', `${code}: ${(e as Error).message}`);
    }
  }

  private transferRequested(turn: TurnContext, env: Extract<AnyEnvelope, { type: 'msam.upload' | 'msam.download' }>, now: number): void {
    const purpose = env.type === 'msam.upload' ? 'upload' : 'download';
    const binding = this.checkGrant(env, env.body.grant, purpose, now);
    const mig = binding.mig;
    // protocol.md §2: a grant is never used for a migration this SAM has fenced — an upload grant neither. Found by
    // test/security/chipMisuse.test.ts: an msam.upload that arrived after the fence (delayed, or replayed by a relay)
    // spawned the item, wrote a held record for the aborted migration and opened an upload session; its clear had
    // already been answered, so the store was never empty again. (Relayed to a source still locked, the item would
    // be copied into the fenced SAM, and `holding` takes no CLEAR_REQUESTED: the rollback's clear would be refused.)
    if (this.records.fenced.get(mig)) {
      throw new ProtocolError('MIGRATION_ABORTED', `migration ${mig} was aborted; this SAM is fenced and refuses every ${purpose} for it`);
    }
    const key = `${ITEM}${mig}:${binding.item}`;
    const session = env.body.session;
    let placed: HeldItem | undefined;
    if (!this.actorOf(key)) {
      if (purpose === 'download') {
        const order = env.type === 'msam.download' ? env.body.order : undefined;
        if (!order) throw new ProtocolError('NO_MIGRATION', `this migration SAM never received item ${binding.item} of ${mig}`);
        placed = placeOrder(turn, key, order, binding, now, { identity: this.opts.identity, provider: this.opts.provider, records: this.records });
      } else {
        turn.spawn(key, 'migrationSam', { mig, item: binding.item });
      }
    }
    const state = this.actorOf(key)!.getSnapshot();
    const starts = purpose === 'upload' ? state.matches('idle') : state.matches('holding');
    if (starts) {
      const tempKey = openGrant(env.body.grant, this.opts.identity);
      this.working.set(key, { server: env.from, grant: binding, tempKey });
      this.sessionOwner.set(session, key);
      if (purpose === 'upload') {
        turn.write(() =>
          this.records.items.put(MigrationSamRecords.keyOf(mig, binding.item), {
            mig,
            item: binding.item,
            area: binding.area,
            provider: binding.provider,
            uploadGrant: env.body.grant,
            downloadGrant: null,
            data: null,
            counter: 0,
            receipt: null,
          }),
        );
      }
    }
    turn.dispatch(key, {
      type: purpose === 'upload' ? 'UPLOAD_REQUESTED' : 'DOWNLOAD_REQUESTED',
      request: env.id,
      session,
      deadline: now + this.timing.sessionMs,
    });
    if (starts && purpose === 'download') {
      // An item placed in this turn is not in the store until the turn commits.
      const rec = placed ?? this.heldRecord(mig, binding.item);
      turn.write(() => this.records.items.put(MigrationSamRecords.keyOf(mig, binding.item), { ...rec, downloadGrant: env.body.grant }));
    }
  }

  private heldRecord(mig: string, item: number): HeldItem {
    const rec = this.records.items.get(MigrationSamRecords.keyOf(mig, item));
    if (!rec) throw new Error(`no held record for ${mig} item ${item}`);
    return rec;
  }

  private fromNormalSam(turn: TurnContext, env: AnyEnvelope): void {
    const req = turn.requestOf(env.corr);
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
    const actor = key ? this.actorOf(key) : undefined;
    const w = key ? this.working.get(key) : undefined;
    if (!key || !actor || !w || !this.sessions.has(session)) throw new ProtocolError('NOT_FOUND', `no open item session ${session.slice(0, 64)}`);
    if (this.sessions.repeat(session, data)) return; // the chip's answer again, to a frame we sent again (resends.ts): taken once
    const frame = decodeChipFrame(fromB64(data));
    const snap = actor.getSnapshot();
    if (snap.matches({ uploading: 'authenticating' }) || snap.matches({ downloading: 'authenticating' })) {
      // The temp key is used only for the serial its grant names.
      turn.dispatch(
        key,
        this.sessions.answerEvent(session, frame, (serial) => (serial === w.grant.serial ? w.tempKey : null)),
      );
      return;
    }
    const r = this.sessions.reply(session, frame);
    if (r.kind === 'refused') return turn.dispatch(key, { type: 'CHIP_REFUSED', code: r.code, message: r.message });
    const reply = r.reply;
    if (!reply.ok) return turn.dispatch(key, { type: 'CHIP_REPLIED', ok: false, verified: false, code: reply.code, message: reply.message });
    if (snap.matches({ uploading: 'reading' })) {
      if (reply.data === undefined || reply.counter === undefined) {
        return turn.dispatch(key, { type: 'CHIP_REPLIED', ok: false, verified: false, code: 'BAD_BODY', message: 'the chip returned no item' });
      }
      w.readData = { data: fromB64(reply.data), counter: reply.counter };
      return turn.dispatch(key, { type: 'CHIP_REPLIED', ok: true, verified: true });
    }
    // Download: the key check value must be that of the main key our normal SAM derived for this chip.
    const expected = keyCheckValue(w.mainKey!, w.grant.serial, w.grant.area);
    w.kcv = reply.kcv;
    turn.dispatch(key, { type: 'CHIP_REPLIED', ok: true, verified: sameKcv(reply.kcv, expected) });
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
        turn.send(this.normalSamPeer, 'nsam.main-key', { serial: w!.grant.serial, area: w!.grant.area }, { ...header, step: 'S14' });
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
      case 'answerUploaded':
        turn.send(turn.peerOfRequest(intent.request), 'msam.uploaded', {}, { ...header, step: 'S7', corr: intent.request });
        return;
      case 'signReceipt':
        return this.signReceipt(turn, key, ctx, w!);
      case 'answerDownloaded': {
        const receipt = this.pendingReceipt.get(key) ?? this.heldRecord(ctx.mig, ctx.item).receipt;
        this.pendingReceipt.delete(key);
        if (!receipt) throw new Error(`no receipt for ${key}`);
        turn.send(turn.peerOfRequest(intent.request), 'msam.downloaded', { receipt }, { ...header, step: 'S14', corr: intent.request });
        return;
      }
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
        turn.write(() => this.records.items.remove(k));
        this.working.delete(key);
        return;
      }
      case 'answerCleared':
        turn.send(turn.peerOfRequest(intent.request), 'msam.cleared', {}, { ...header, step: 'S17', corr: intent.request });
        return;
    }
  }

  private readonly pendingReceipt = new Map<string, import('../transport/messages.ts').Receipt>();
}
