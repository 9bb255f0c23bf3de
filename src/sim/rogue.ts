/**
 * The simulator's rogue server (issue 17): the server's seat on its links to
 * the admin SAM and the migration SAMs taken by an adversary that holds the
 * server's keys. It lets the honest server's requests through, and now and
 * then, by seed, asks for what an honest server never would: a commit with a
 * receipt left out or forged, an activation before the decision, a restore or
 * a source wipe under a record that is not aborted (or committed), a download
 * with a grant bound to another item or SAM, a download after the fence, and,
 * once every migration has ended and an hour has passed, a download with an
 * expired grant. Every such request must be refused by the check it was made
 * for (the refusal's code says which); anything else — an acceptance, an
 * opened session, a refusal by another check — is a violation naming the
 * check. The rogue swallows the answers to its own requests, so the honest
 * server never sees them.
 *
 * While one of its requests about a migration is unanswered, the rogue holds
 * back the honest server's commit and abort of that migration (the server's
 * seat is its own): the record cannot change under the attack, so whether
 * the answer is right is known. It releases them when the answer comes, or
 * after ROGUE_HOLD_MS (a request lost to the network's faults).
 *
 * Also here: a defective destination chip (`makeDefective`), which writes a
 * corrupted main key at a download and answers that key's check value — the
 * mistake the migration SAM's key check value comparison exists to catch.
 */
import type { ChipRuntime } from '../actors/chip.actor.ts';
import type { Clock } from '../clock.ts';
import { fromB64, toB64, type SeededRng } from '../crypto/index.ts';
import { parseRequestId } from '../actors/runtime.ts';
import { decodeEnvelope, encodeEnvelope, type AnyEnvelope } from '../transport/envelope.ts';
import type { Tamper, TamperSite } from '../testing/tamper.link.ts';

export const ROGUE_ATTACKS = [
  'commit-receipt-missing',
  'commit-receipt-forged',
  'activate-before-commit',
  'restore-not-aborted',
  'wipe-source-pending',
  'download-foreign-grant',
  'download-after-fence',
  'download-expired-grant',
  'download-kcv',
] as const;
export type RogueAttack = (typeof ROGUE_ATTACKS)[number];

/** The check each attack is aimed at: what a violation names. */
export const CHECK_OF: Record<RogueAttack, string> = {
  'commit-receipt-missing': 'receipts-complete (the admin SAM commits only with a valid receipt for every item)',
  'commit-receipt-forged': "receipts-signed (a receipt counts only with its migration SAM's signature)",
  'activate-before-commit': 'activate-after-commit (S16 only under a committed record, for its own destination)',
  'restore-not-aborted': 'restore-after-abort (a source is restored only under an aborted record)',
  'wipe-source-pending': 'wipe-source-after-commit (a source is wiped only under a committed record)',
  'download-foreign-grant': 'grant-binding (a grant opens only its own migration, item and migration SAM)',
  'download-after-fence': 'fence (a fenced migration SAM downloads nothing of the aborted migration)',
  'download-expired-grant': 'grant-expiry (a grant is refused after its expiry time)',
  'download-kcv': 'download-kcv (a download counts only when the chip shows the main key the provider derived)',
};

/** How long, virtual ms, the honest commit or abort of a migration under attack is held back at most. */
export const ROGUE_HOLD_MS = 300;
/** Probability that the rogue attacks at an opportunity (one honest request it can forge from). */
export const ROGUE_RATE = 0.5;

/** Refusals that show the aimed check held: error code, and a pattern its message must match. */
const EXPECT: Record<Exclude<RogueAttack, 'download-kcv'>, Array<{ code: string; message?: RegExp }>> = {
  'commit-receipt-missing': [{ code: 'RECEIPT_REFUSED', message: /no receipt for item/ }],
  'commit-receipt-forged': [{ code: 'RECEIPT_REFUSED', message: /not signed by|bound to another/ }],
  // A pending or aborted record; NO_MIGRATION when the forged request overtook an issuance's first format.
  'activate-before-commit': [{ code: 'DECISION_STANDS' }, { code: 'NO_MIGRATION' }],
  'restore-not-aborted': [{ code: 'DECISION_STANDS' }],
  'wipe-source-pending': [{ code: 'DECISION_STANDS' }, { code: 'NO_MIGRATION' }],
  'download-foreign-grant': [{ code: 'GRANT_REFUSED', message: /^GRANT_BINDING/ }],
  'download-after-fence': [{ code: 'MIGRATION_ABORTED' }],
  'download-expired-grant': [{ code: 'GRANT_REFUSED', message: /^GRANT_EXPIRED/ }],
};

export interface RogueStats {
  tried: number;
  refused: number;
  /** Lost to the network's faults, or answered after the rogue stopped waiting: no verdict. */
  unanswered: number;
}

export interface RogueFinding {
  attack: RogueAttack;
  check: string;
  message: string;
}

interface Outstanding {
  attack: RogueAttack;
  mig: string;
  what: string;
  session?: string;
  /** Migrations whose honest commit and abort are held while this is unanswered. */
  freezes: string[];
  done: boolean;
}

interface Held {
  mig: string;
  bytes: Uint8Array;
  to: string;
}

/** The tamper link gives each call its link's `send`, so the rogue can speak on a link when the server does not. */
type Send = NonNullable<TamperSite['send']>;

/** Forged requests kept for their late answers; past this, the answered or given-up ones go, oldest first, down to half. */
const OUTSTANDING_MAX = 2_000;

export class RogueServer {
  readonly stats = Object.fromEntries(ROGUE_ATTACKS.map((a) => [a, { tried: 0, refused: 0, unanswered: 0 }])) as Record<RogueAttack, RogueStats>;
  finding: RogueFinding | undefined;
  private readonly out = new Map<string, Outstanding>();
  private readonly sessions = new Map<string, string>();
  private readonly held: Held[] = [];
  private readonly sends = new Map<string, Send>();
  private readonly honest = new Map<string, AnyEnvelope>();
  private readonly decisions = new Map<string, 'committed' | 'aborted'>();
  private readonly sources = new Map<string, string>();
  private readonly attacked = new Set<string>();
  private readonly committing = new Set<string>();
  /** Download grants the honest server sent: (migration SAM, envelope); replayed expired in the epilogue. */
  private readonly grants: Array<{ to: string; env: AnyEnvelope & { type: 'msam.download' } }> = [];
  private n = 0;
  private maxSeq = 0;

  constructor(
    private readonly rng: SeededRng,
    private readonly clock: Clock,
    private readonly attacks: ReadonlySet<RogueAttack>,
    private readonly line: (s: string) => void,
    private readonly rate = ROGUE_RATE,
  ) {}

  readonly tamper: Tamper = (bytes, site) => {
    const server = site.from === 'server';
    const sam = site.to === 'admin-sam' || site.to.startsWith('migration-sam/');
    if (!(server && sam) && !(site.to === 'server' && (site.from === 'admin-sam' || site.from.startsWith('migration-sam/')))) return [bytes];
    let env: AnyEnvelope;
    try {
      env = decodeEnvelope(bytes);
    } catch {
      return [bytes];
    }
    if (server) {
      if (site.send) this.sends.set(site.to, site.send);
      return this.fromServer(env, bytes, site.to);
    }
    return this.toServer(env, bytes, site.from);
  };

  // ---- the honest server's requests: pass, hold, or forge from them ------------------------------------

  private fromServer(env: AnyEnvelope, bytes: Uint8Array, to: string): Uint8Array[] {
    this.honest.set(env.id, env);
    this.maxSeq = Math.max(this.maxSeq, parseRequestId(env.id)?.seq ?? 0);
    if (this.honest.size > 10_000) this.honest.delete(this.honest.keys().next().value!);
    const mig = env.mig;
    if (mig && (env.type === 'admin.commit' || env.type === 'admin.abort') && this.frozen(mig)) {
      this.held.push({ mig, bytes, to });
      this.line(`ROGUE holds ${env.type} ${env.id} (an attack on ${mig} is unanswered)`);
      return [];
    }
    const forged: Uint8Array[] = [];
    const add = (f: Uint8Array | undefined) => f && forged.push(f);
    switch (env.type) {
      case 'admin.lock':
        if (mig) this.sources.set(mig, env.body.serial);
        break;
      case 'admin.commit':
        // Only at the first commit of a migration: a later one may follow an earlier that is already decided.
        if (mig && !this.decisions.has(mig) && !this.committing.has(mig)) {
          this.committing.add(mig);
          add(this.maybe('commit-receipt-missing', mig, to, () => this.commitMissing(env)));
          if (forged.length === 0) add(this.maybe('commit-receipt-forged', mig, to, () => this.commitForged(env)));
          if (forged.length > 0) {
            // The honest commit waits for the answer to the forged one.
            this.held.push({ mig, bytes, to });
            return forged;
          }
        }
        if (mig) this.committing.add(mig);
        break;
      case 'admin.format':
        if (mig && this.decisions.get(mig) !== 'committed') {
          // Pending, or aborted by a cancel: both must refuse. (A restore is not tried here: an abort may be on its way.)
          add(this.maybe('activate-before-commit', mig, to, () => this.adminSession(env, 'admin.activate', { serial: env.body.serial })));
          const source = this.sources.get(mig);
          if (source) add(this.maybe('wipe-source-pending', mig, to, () => this.adminSession(env, 'admin.wipe', { serial: source, role: 'source' })));
        }
        break;
      case 'admin.activate':
        // Committed (the honest server activates only then): a restore of its source must be refused.
        if (mig && this.sources.has(mig) && this.decisions.get(mig) === 'committed') {
          add(this.maybe('restore-not-aborted', mig, to, () => this.adminSession(env, 'admin.restore', { serial: this.sources.get(mig)! })));
        }
        break;
      case 'msam.download':
        if (mig) {
          this.grants.push({ to, env });
          if (this.grants.length > 1_000) this.grants.shift();
          add(this.maybe('download-foreign-grant', mig, to, () => this.foreignGrant(env, to)));
        }
        break;
    }
    return [...forged, bytes];
  }

  /** Attacks with probability `rate`, once per attack and migration, and only attacks this run has on. */
  private maybe(
    attack: RogueAttack,
    mig: string,
    via: string,
    make: () => { env: AnyEnvelope; what: string; freezes: string[]; to?: string } | undefined,
  ): Uint8Array | undefined {
    const key = `${attack}/${mig}`;
    const to = via;
    if (!this.attacks.has(attack) || this.attacked.has(key) || this.rng.nextFloat() >= this.rate) return undefined;
    const made = make();
    if (!made) return undefined;
    this.attacked.add(key);
    return this.launch(attack, mig, made.to ?? to, made.env, made.what, made.freezes, via);
  }

  private launch(attack: RogueAttack, mig: string, to: string, env: AnyEnvelope, what: string, freezes: string[], via: string): Uint8Array | undefined {
    const o: Outstanding = { attack, mig, what, freezes, done: false };
    if ('session' in env.body && typeof env.body.session === 'string') {
      o.session = env.body.session;
      this.sessions.set(env.body.session, env.id);
    }
    this.out.set(env.id, o);
    this.stats[attack].tried++;
    this.line(`ROGUE ${attack} -> ${to} ${env.type} ${env.id} ${mig}: ${what}`);
    this.clock.schedule(this.clock.now() + ROGUE_HOLD_MS, () => {
      if (o.done) return;
      o.done = true;
      this.stats[attack].unanswered++;
      this.line(`ROGUE ${attack} ${env.id}: no answer within ${ROGUE_HOLD_MS} ms`);
      this.release();
    });
    const bytes = encodeEnvelope(env);
    if (to === via) return bytes;
    // Another receiver than the honest request's: sent on that link, now.
    const send = this.sends.get(to);
    if (!send) {
      o.done = true;
      this.stats[attack].tried--;
      return undefined;
    }
    try {
      send(bytes);
    } catch {
      // that link is closed (its party restarted): the timer above counts it unanswered
    }
    return undefined;
  }

  /**
   * A forged request's id: "server#<seq>.<16 hex>", with the sequence number of the honest request it was
   * forged from (just sent, so above what the receiver has pruned: runtime.ts, STALE_REQUEST). A higher one would,
   * once its record is pruned, raise the receiver's floor for the server above requests the honest server has
   * not had answered yet. The epilogue, after everything, takes numbers above every one the server used.
   */
  private forgeId(seq: number): string {
    return `server#${seq}.f${(++this.n).toString(16).padStart(15, '0')}`;
  }

  private forge<T extends AnyEnvelope['type']>(
    from: AnyEnvelope,
    to: string,
    type: T,
    body: unknown,
    header: { mig?: string; item?: number; seq?: number } = {},
  ): AnyEnvelope | undefined {
    const seq = header.seq ?? parseRequestId(from.id)?.seq;
    if (seq === undefined) return undefined;
    const id = this.forgeId(seq);
    const env = { v: from.v, id, from: 'server', to, type, mig: header.mig ?? from.mig, ...(from.step ? { step: from.step } : {}), body } as Record<
      string,
      unknown
    >;
    const item = header.item ?? from.item;
    if (item !== undefined) env.item = item;
    return env as unknown as AnyEnvelope;
  }

  private commitMissing(env: AnyEnvelope & { type: 'admin.commit' }) {
    const receipts = env.body.receipts;
    const k = Math.floor(this.rng.nextFloat() * receipts.length);
    // One item's receipt left out; with one item, it is replaced by a copy numbered for an item that does not exist.
    const rest = receipts.length > 1 ? receipts.filter((_, i) => i !== k) : [{ ...receipts[0]!, item: receipts[0]!.item + 7 }];
    const f = this.forge(env, 'admin-sam', 'admin.commit', { receipts: rest });
    return f && { env: f, what: `item ${receipts[k]!.item}'s receipt left out`, freezes: [env.mig!] };
  }

  private commitForged(env: AnyEnvelope & { type: 'admin.commit' }) {
    const receipts = env.body.receipts;
    const k = Math.floor(this.rng.nextFloat() * receipts.length);
    const r = receipts[k]!;
    // Another key check value under the same signature: what a server that wanted another key activated would send.
    const kcv = fromB64(r.kcv);
    kcv[0] = kcv[0]! ^ 0x01;
    const f = this.forge(env, 'admin-sam', 'admin.commit', { receipts: receipts.map((x, i) => (i === k ? { ...x, kcv: toB64(kcv) } : x)) });
    return f && { env: f, what: `item ${r.item}'s receipt with another key check value`, freezes: [env.mig!] };
  }

  private adminSession(
    env: AnyEnvelope & { body: { session: string } },
    type: 'admin.activate' | 'admin.restore' | 'admin.wipe',
    body: Record<string, string>,
  ) {
    const session = `${env.body.session}.r${++this.n}`.slice(-120);
    const f = this.forge(env, 'admin-sam', type, { session, ...body }, { mig: env.mig });
    return f && { env: f, what: `${type} ${JSON.stringify(body)} under a record that is ${this.decisions.get(env.mig!) ?? 'pending'}`, freezes: [env.mig!] };
  }

  private foreignGrant(env: AnyEnvelope & { type: 'msam.download' }, to: string) {
    const others = [...this.sends.keys()].filter((p) => p.startsWith('migration-sam/') && p !== to);
    const toOther = others.length > 0 && this.rng.nextFloat() < 0.5;
    const target = toOther ? others[Math.floor(this.rng.nextFloat() * others.length)]! : to;
    const item = toOther ? env.item : (env.item ?? 0) + 1;
    const session = `${env.body.session}.r${++this.n}`.slice(-120);
    const f = this.forge(env, target, 'msam.download', { session, grant: env.body.grant }, { item });
    return (
      f && {
        env: f,
        to: target,
        what: toOther ? `the grant of item ${env.item} of ${to} sent to ${target}` : `the grant of item ${env.item} for item ${item}`,
        freezes: [],
      }
    );
  }

  /** Downloads with a grant of a migration that migration SAM has fenced (asked when the fence is answered). */
  private afterFence(mig: string, msam: string, fence: AnyEnvelope): void {
    const g = [...this.grants].reverse().find((x) => x.env.mig === mig && x.to === msam);
    if (!g) return;
    const session = `${g.env.body.session}.r${++this.n}`.slice(-120);
    this.maybe('download-after-fence', mig, '', () => {
      const f = this.forge(g.env, msam, 'msam.download', { session, grant: g.env.body.grant }, { item: g.env.item, seq: parseRequestId(fence.id)?.seq });
      return f && { env: f, to: msam, what: `a download of item ${g.env.item} after ${msam} fenced ${mig}`, freezes: [] };
    });
  }

  /**
   * The epilogue, with the clock past every grant's expiry: every download grant the honest server used, sent
   * again with a new session. Each must be refused as expired, whatever became of its migration.
   */
  replayExpired(): number {
    let sent = 0;
    const seen = new Set<string>();
    for (const g of this.grants) {
      const key = `${g.to}/${g.env.mig}/${g.env.item}`;
      if (seen.has(key) || !this.attacks.has('download-expired-grant')) continue;
      seen.add(key);
      if (g.env.body.grant.expiresAt >= this.clock.now()) continue;
      const session = `${g.env.body.session}.x${++this.n}`.slice(-120);
      const f = this.forge(g.env, g.to, 'msam.download', { session, grant: g.env.body.grant }, { item: g.env.item, seq: this.maxSeq + 1 });
      if (!f) continue;
      this.launch('download-expired-grant', g.env.mig!, g.to, f, `item ${g.env.item}'s grant, expired at ${g.env.body.grant.expiresAt}`, [], '');
      sent++;
    }
    return sent;
  }

  // ---- answers to the server: swallow and judge those to forged requests ---------------------------------

  private toServer(env: AnyEnvelope, bytes: Uint8Array, from: string): Uint8Array[] {
    if (env.type === 'frame') {
      const forgedId = this.sessions.get(env.body.session);
      if (forgedId === undefined) return [bytes];
      const o = this.out.get(forgedId)!;
      if (!o.done) this.judge(forgedId, o, `${from} opened the session (sent a frame)`, false);
      return [];
    }
    const o = env.corr !== undefined ? this.out.get(env.corr) : undefined;
    if (o) {
      if (!o.done) {
        if (env.type === 'error') {
          const ok = (EXPECT[o.attack as keyof typeof EXPECT] ?? []).some((e) => e.code === env.body.code && (!e.message || e.message.test(env.body.message)));
          this.judge(env.corr!, o, `${from} answered ${env.body.code}: ${env.body.message}`, ok);
        } else if (env.type === 'admin.decision' && env.body.decision === 'aborted') {
          // A commit after an abort is answered with the abort: nothing was accepted.
          this.judge(env.corr!, o, `${from} answered the decision aborted`, true);
        } else {
          this.judge(env.corr!, o, `${from} answered ${env.type} ${JSON.stringify(env.body).slice(0, 120)}`, false);
        }
      }
      return [];
    }
    // A defective destination's download refused by its key check (makeDefective): counted once per migration.
    if (env.type === 'error' && env.body.code === 'KEY_CHECK_FAILED' && env.mig && !this.attacked.has(`download-kcv/${env.mig}`)) {
      this.attacked.add(`download-kcv/${env.mig}`);
      this.stats['download-kcv'].refused++;
      this.line(`ROGUE download-kcv ${env.mig}: refused (${from} answered KEY_CHECK_FAILED: ${env.body.message})`);
    }
    // An answer to the honest server: learn from it, and pass it.
    const req = env.corr !== undefined ? this.honest.get(env.corr) : undefined;
    if (req) {
      if (env.type === 'admin.decision' && req.mig) this.decisions.set(req.mig, env.body.decision);
      if (env.type === 'msam.fenced' && req.mig) this.afterFence(req.mig, from, req);
    }
    return [bytes];
  }

  private judge(id: string, o: Outstanding, answer: string, refusedByCheck: boolean): void {
    o.done = true;
    if (refusedByCheck) {
      this.stats[o.attack].refused++;
      this.line(`ROGUE ${o.attack} ${id}: refused (${answer.slice(0, 200)})`);
    } else {
      const message = `check ${CHECK_OF[o.attack]} did not hold: ${o.attack} on ${o.mig} (${o.what}): ${answer.slice(0, 300)}`;
      this.finding ??= { attack: o.attack, check: CHECK_OF[o.attack], message };
      this.line(`ROGUE ${o.attack} ${id}: ACCEPTED: ${answer.slice(0, 200)}`);
    }
    this.release();
  }

  private frozen(mig: string): boolean {
    for (const o of this.out.values()) if (!o.done && o.freezes.includes(mig)) return true;
    return false;
  }

  /** Sends the honest commits and aborts held back, of every migration no longer under attack. */
  private release(): void {
    for (let i = 0; i < this.held.length; ) {
      const h = this.held[i]!;
      if (this.frozen(h.mig)) {
        i++;
        continue;
      }
      this.held.splice(i, 1);
      try {
        this.sends.get(h.to)?.(h.bytes);
      } catch {
        // the link closed (a restart): the honest server sends it again from its outbox
      }
    }
    // Forged requests answered or given up are kept only as long as a late answer could still come.
    if (this.out.size > OUTSTANDING_MAX) {
      for (const [k, o] of this.out) {
        if (this.out.size <= OUTSTANDING_MAX / 2) break;
        if (o.done) this.out.delete(k);
      }
    }
  }

  summary(): string {
    return ROGUE_ATTACKS.filter((a) => this.stats[a].tried > 0)
      .map((a) => `${a} ${this.stats[a].refused}/${this.stats[a].tried}`)
      .join(', ');
  }
}

// ---- a defective chip ------------------------------------------------------------------------------------

type Execute = (turn: unknown, binding: unknown, cmd: { op: string; key?: string }) => unknown;

/**
 * Makes a destination chip defective: the main key of each download is written with one bit flipped, and the chip
 * answers that key's check value (it holds the wrong key, and says so truthfully). The migration SAM must refuse
 * the download (its key check value is not the one of the key the provider derived): the migration never commits.
 */
export function makeDefective(chip: ChipRuntime): void {
  const c = chip as unknown as { execute: Execute };
  const execute = c.execute.bind(chip) as Execute;
  c.execute = (turn, binding, cmd) => {
    if (cmd.op !== 'download' || cmd.key === undefined) return execute(turn, binding, cmd);
    const key = fromB64(cmd.key);
    key[0] = key[0]! ^ 0x80;
    return execute(turn, binding, { ...cmd, key: toB64(key) });
  };
}
