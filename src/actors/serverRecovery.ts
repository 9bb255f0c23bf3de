/**
 * A lost phone's report at the server (issue 22, protocol.md §3 "Recovery of
 * a lost phone"). The user, logged in on the new phone, names the lost chip
 * and the new one (both registered to them) and gives the second proof: a
 * one-time recovery code the operator handed out (`valmove user
 * recovery-code`), kept here only as its sha256 and bound, at its first use,
 * to the one lost chip. The server then asks every provider's migration SAM
 * to revoke the lost chip's areas and to sign an issue order for each on the
 * new chip (msam.recover); it answers the user with each provider's outcome
 * and the orders, which the new phone receives as an issuance.
 *
 * The server never sees a value: the orders' items are sealed to their
 * migration SAMs. A provider that is away is reported refused; the same
 * report later asks again only the providers that have not revoked.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import type { Database } from 'lmdb';
import { toHex, type Rng } from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { MigrationItem } from '../machines/migration.machine.ts';
import type { ServerRecords } from '../store/server.store.ts';
import type { PartyStore } from '../store/party.store.ts';
import type { AnyEnvelope, Envelope } from '../transport/envelope.ts';
import { ORDERS_PER_ISSUANCE_MAX, type BodyOf } from '../transport/messages.ts';
import type { TurnContext } from './runtime.ts';

/** How long an operator's recovery code stays usable. */
export const RECOVERY_CODE_TTL_MS = 24 * 3_600_000;
/** Random bytes in a recovery code (shown as hex: 20 characters, 80 bits). */
export const RECOVERY_CODE_BYTES = 10;

interface CodeRecord {
  user: string;
  /** sha256 of the code (hex): the code itself is not kept. */
  hash: string;
  expiresAt: number;
  /** The lost chip the code was first used for; it serves no other. */
  lost: string | null;
}

type ProviderOutcome = BodyOf<'recover.orders'>['providers'][number] | { provider: string; outcome: 'asked'; areas: string[] };

interface RecoveryRecord {
  lost: string;
  to: string;
  user: string;
  /** The terminal and request the answer goes to (the latest report), and the areas its chip held then. */
  terminal: string;
  request: string;
  held?: string[];
  providers: Record<string, ProviderOutcome & { orders?: string[]; revocations?: string[] }>;
}

/** What the recovery desk reads of the server. */
export interface RecoveryView {
  records: ServerRecords;
  rng: Rng;
  /** Every provider of the deployment (its migration SAMs). */
  providers: readonly string[];
  requireUser(peer: string): string;
  hasLink(peer: string): boolean;
  now(): number;
}

const CODES_DB = 'recovery-codes';
const hashOf = (code: string) => toHex(sha256(new TextEncoder().encode(code.trim().toLowerCase())));

export class RecoveryDesk {
  private readonly codes: Database<CodeRecord, string>;
  private readonly recoveries: Database<RecoveryRecord, string>;

  constructor(
    store: PartyStore,
    private readonly view: RecoveryView,
  ) {
    this.codes = store.db<CodeRecord>(CODES_DB);
    this.recoveries = store.db<RecoveryRecord>('recoveries');
  }

  /** The lost chip's revoked areas, one item per area, with the revocations their providers signed (for admin.wipe-lost). */
  lostWipe(lost: string): { user: string; items: MigrationItem[]; revocations: string[] } | undefined {
    const rec = this.recoveries.get(lost);
    if (!rec) return undefined;
    const revoked = Object.values(rec.providers).filter((p) => p.outcome === 'revoked');
    const items = revoked.flatMap((p) => p.areas.map((area) => ({ area, provider: p.provider, recipient: `migration-sam/${p.provider}` })));
    return { user: rec.user, items: items.map((i, item) => ({ item, ...i })), revocations: revoked.flatMap((p) => p.revocations ?? []) };
  }

  /** recover.report: checked whole before anything is written; then each provider not yet revoked is asked. */
  report(turn: TurnContext, env: Envelope<'recover.report'>, peer: string): void {
    const user = this.view.requireUser(peer);
    const { lost, to, code } = env.body;
    for (const serial of [lost, to]) {
      const reg = this.view.records.registry.get(serial);
      if (reg?.user !== user) throw new ProtocolError('NOT_OWNER', `chip ${serial} is not registered to ${user}`);
    }
    if (lost === to) throw new ProtocolError('RECOVERY_REFUSED', 'the lost chip and the new chip are the same');
    const c = this.codes.get(user);
    if (!c || c.hash !== hashOf(code) || c.expiresAt <= this.view.now() || (c.lost !== null && c.lost !== lost)) {
      throw new ProtocolError('RECOVERY_REFUSED', 'the recovery code is wrong, expired or for another chip; ask the operator for a new one');
    }
    const rec = this.recoveries.get(lost);
    if (rec && rec.to !== to) throw new ProtocolError('RECOVERY_REFUSED', `chip ${lost} was reported lost already, its items going to ${rec.to}`);
    const held = env.body.held ?? [];
    const next: RecoveryRecord = { lost, to, user, terminal: peer, request: env.id, held, providers: { ...(rec?.providers ?? {}) } };
    for (const provider of this.view.providers) {
      if (next.providers[provider]?.outcome === 'revoked') continue;
      const sam = `migration-sam/${provider}`;
      if (!this.view.hasLink(sam)) {
        next.providers[provider] = { provider, outcome: 'refused', areas: [], reason: `UNAVAILABLE: ${provider} is not connected; report again later` };
        continue;
      }
      next.providers[provider] = { provider, outcome: 'asked', areas: [] };
      turn.send(sam, 'msam.recover', { lost, to });
    }
    turn.write(() => {
      this.codes.put(user, { ...c, lost });
      this.recoveries.put(lost, next);
    });
    this.answerIfDone(turn, next);
  }

  /** A migration SAM's answer to msam.recover: its outcome noted; the user answered once every provider has. */
  answered(turn: TurnContext, env: AnyEnvelope, req: AnyEnvelope, peer: string): void {
    if (req.type !== 'msam.recover') throw new ProtocolError('UNEXPECTED', `${env.type} answers no recovery of ours`);
    const provider = peer.slice('migration-sam/'.length);
    const rec = this.recoveries.get(req.body.lost);
    if (!rec) throw new ProtocolError('NOT_FOUND', `no recovery of ${req.body.lost}`);
    let outcome: RecoveryRecord['providers'][string];
    if (env.type === 'msam.recovered') {
      outcome = { provider, outcome: 'revoked', areas: env.body.areas, orders: env.body.orders, revocations: env.body.revocations };
    } else if (env.type === 'error') outcome = { provider, outcome: 'refused', areas: [], reason: `${env.body.code}: ${env.body.message}` };
    else throw new ProtocolError('UNEXPECTED', `${env.type} is no answer to msam.recover`);
    const next = { ...rec, providers: { ...rec.providers, [provider]: outcome } };
    turn.write(() => this.recoveries.put(rec.lost, next));
    this.answerIfDone(turn, next);
  }

  private answerIfDone(turn: TurnContext, rec: RecoveryRecord): void {
    const all = Object.values(rec.providers);
    if (all.some((p) => p.outcome === 'asked')) return;
    const providers = all.map(({ orders: _, revocations: _r, ...p }) => p as BodyOf<'recover.orders'>['providers'][number]);
    // The orders of the areas the new chip does not hold yet, as many as one answer carries; the rest at the next report.
    const held = new Set(rec.held ?? []);
    // A provider's answer lists its areas and their orders in the same order (msam.recovered).
    const due = all.flatMap((p) => (p.orders ?? []).filter((_, n) => !held.has(p.areas[n]!)));
    const orders = due.slice(0, ORDERS_PER_ISSUANCE_MAX);
    const more = due.length > orders.length ? { more: true } : {};
    turn.send(rec.terminal, 'recover.orders', { lost: rec.lost, to: rec.to, providers, orders, ...more }, { corr: rec.request });
  }
}

/**
 * Operator (`valmove user recovery-code`): a fresh one-time recovery code for
 * a user, replacing any earlier one; the store keeps only its sha256. The
 * code is returned once, to be handed to the user by a channel the operator
 * trusts (in person, a call back to a known number).
 */
export async function issueRecoveryCode(store: PartyStore, records: ServerRecords, user: string, rng: Rng, now: number): Promise<string> {
  if (!records.users.get(user)) throw new ProtocolError('NOT_FOUND', `no user ${user}`);
  const code = toHex(rng.bytes(RECOVERY_CODE_BYTES));
  const rec: CodeRecord = { user, hash: hashOf(code), expiresAt: now + RECOVERY_CODE_TTL_MS, lost: null };
  await store.commit(() => store.db<CodeRecord>(CODES_DB).put(user, rec));
  return code;
}
