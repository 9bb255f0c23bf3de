/**
 * The server's logins (protocol.md §1, identities at the edges): a terminal
 * logs in with a scrypt proof of its user's password, per connection; a
 * first login on an unbound terminal name binds it to the device key the
 * connection proved. Failures lock the account out, doubling up to a cap
 * (issue 8).
 *
 * What a stranger may send writes nothing (issue 16): login.begin only
 * reads; login.proof counts a failure on an existing user (that user's one
 * record, bounded) and is safe to run again: a repeat of the same id on the
 * same link is not counted twice (`proofIds`). The fake-salt key exists from
 * the server's start, not from a stranger's turn.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { equalBytes, fromB64, SCRYPT_DEFAULTS, toB64, utf8 } from '../crypto/index.ts';
import type { Logger } from '../log.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { ServerRecords } from '../store/server.store.ts';
import type { Envelope } from '../transport/envelope.ts';
import type { TurnContext } from './runtime.ts';

/** Login failures before the account is locked; the lock doubles with each further failure up to the cap. */
export const LOGIN_FAILURES_FREE = 3;
export const LOCKOUT_BASE_MS = 1_000;
export const LOCKOUT_CAP_MS = 60 * 60 * 1000;
/**
 * Devices one user's logins may bind (a phone, its replacement, a tablet…):
 * what a stranger with one account can make the server store is bounded.
 */
export const DEVICES_PER_USER_MAX = 8;
/** login.proof ids remembered per connection, so a network duplicate is not a second failed attempt (issue 16). */
export const LOGIN_PROOF_IDS_PER_LINK_MAX = 16;

/** What the logins read of the server. */
export interface LoginView {
  readonly id: string;
  readonly records: ServerRecords;
  readonly log: Logger;
  /** scrypt cost for users' passwords (the fake parameters of an unknown user use it too). */
  readonly scrypt: { N: number; r: number; p: number } | undefined;
  hasLink(peer: string): boolean;
  /** The key the peer on this link proved in its channel handshake. */
  peerKeyOf(peer: string): string | undefined;
  /** The device key a terminal name is bound to, if any. */
  deviceKeyOf(name: string): string | undefined;
  /** A failure locked the user out (counted for /metrics once the turn is on disk). */
  lockedOut?(): void;
}

/** What the server keeps per link for its logins; it goes with the link (forget). */
export interface LoginsPerLink {
  /** Per link, the user it logged in as. */
  readonly users: Map<string, string>;
  /** Per link, the login.proof ids it sent lately (bounded). */
  readonly proofIds: Map<string, Set<string>>;
}

export class LoginDesk {
  private readonly users: Map<string, string>;
  private readonly proofIds: Map<string, Set<string>>;

  constructor(
    private readonly view: LoginView,
    perLink: LoginsPerLink,
  ) {
    this.users = perLink.users;
    this.proofIds = perLink.proofIds;
  }

  /** The user this connection logged in as, if it did. */
  userOf(peer: string): string | undefined {
    return this.users.get(peer);
  }

  requireUser(peer: string): string {
    const user = this.users.get(peer);
    if (!user) throw new ProtocolError('UNAUTHENTICATED', 'log in first: this connection has no authenticated user');
    return user;
  }

  /** The connection went, or a new one took its name: a login belongs to the connection that made it. */
  forget(peer: string): void {
    this.users.delete(peer);
    this.proofIds.delete(peer);
  }

  /** login.begin: the user's scrypt parameters and salt (an unknown user's are made up, and stable). */
  begin(turn: TurnContext, env: Envelope<'login.begin'>, now: number): void {
    const rec = this.view.records.users.get(env.body.user);
    if (rec && rec.lockedUntil > now) {
      throw new ProtocolError('LOCKED_OUT', `too many failed logins; try again in ${Math.ceil((rec.lockedUntil - now) / 1000)} s`);
    }
    const params = rec ?? { ...(this.view.scrypt ?? SCRYPT_DEFAULTS), salt: this.fakeSalt(env.body.user) };
    turn.reply(env, 'login.challenge', { user: env.body.user, salt: params.salt, N: params.N, r: params.r, p: params.p });
  }

  /** login.proof: sha256 of the proof against the user's verifier; a failure counts towards the lockout. */
  proof(turn: TurnContext, env: Envelope<'login.proof'>, peer: string, now: number): void {
    const { records, log } = this.view;
    const rec = records.users.get(env.body.user);
    if (rec && rec.lockedUntil > now) {
      throw new ProtocolError('LOCKED_OUT', `too many failed logins; try again in ${Math.ceil((rec.lockedUntil - now) / 1000)} s`);
    }
    const ok = rec !== undefined && equalBytes(sha256(fromB64(env.body.proof)), fromB64(rec.verifier));
    if (!ok) {
      if (rec && !this.proofSeen(peer, env.id)) {
        const failures = rec.failures + 1;
        const over = failures - LOGIN_FAILURES_FREE;
        const lockedUntil = over >= 0 ? now + Math.min(LOCKOUT_CAP_MS, LOCKOUT_BASE_MS * 2 ** Math.min(over, 30)) : 0;
        turn.write(() => records.users.put(rec.user, { ...rec, failures, lockedUntil }));
        if (over >= 0 && this.view.lockedOut) turn.afterTurn(this.view.lockedOut);
      }
      log.warn('login failed', { peer, user: env.body.user });
      turn.reply(env, 'error', { code: 'LOGIN_FAILED', message: 'unknown user or wrong password' });
      return;
    }
    this.bindDevice(turn, peer, rec.user, now);
    if (rec.failures !== 0) turn.write(() => records.users.put(rec.user, { ...rec, failures: 0, lockedUntil: 0 }));
    if (this.view.hasLink(peer)) this.users.set(peer, rec.user); // (a link gone by now keeps nothing)
    turn.reply(env, 'login.ok', { user: rec.user });
  }

  /** A repeat of a login.proof id already seen on this link (remembers the id otherwise). */
  private proofSeen(peer: string, id: string): boolean {
    if (!this.view.hasLink(peer)) return false; // its link is gone (a proof handled after its close): nothing to remember it for
    let ids = this.proofIds.get(peer);
    if (!ids) this.proofIds.set(peer, (ids = new Set()));
    if (ids.has(id)) return true;
    ids.add(id);
    if (ids.size > LOGIN_PROOF_IDS_PER_LINK_MAX) ids.delete(ids.values().next().value!);
    return false;
  }

  private fakeSalt(user: string): string {
    // Unknown users get a stable, plausible salt: a login attempt does not reveal whether a user exists.
    const key = this.view.records.secrets.get('salt-key');
    if (!key) throw new Error(`${this.view.id}: no fake-salt key (start() makes it)`);
    return toB64(hmac(sha256, key, utf8(`valmove/v1/fake-salt/${user}`)).subarray(0, 16));
  }

  /**
   * A first login on an unbound name binds it to the device key this
   * connection proved: from then on no other key may use the name. Written
   * only after the password checked out, and at most DEVICES_PER_USER_MAX
   * per user. A link with no channel key (in-process wiring) binds nothing.
   */
  private bindDevice(turn: TurnContext, peer: string, user: string, now: number): void {
    const key = this.view.peerKeyOf(peer);
    if (key === undefined || this.view.deviceKeyOf(peer) !== undefined) return;
    const records = this.view.records;
    if (records.devicesOf(user) >= DEVICES_PER_USER_MAX) {
      throw new ProtocolError('DEVICE_LIMIT', `${user} already has ${DEVICES_PER_USER_MAX} devices; an operator can remove one`);
    }
    turn.write(() => {
      records.devices.put(peer, { name: peer, key, user, boundAt: now });
      records.userDevices.put(ServerRecords.userDeviceKey(user, peer), now);
    });
  }
}
