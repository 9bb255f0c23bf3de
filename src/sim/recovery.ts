/**
 * Lost phones in simulation (issue 22, protocol.md §3 "Recovery of a lost
 * phone" and §4.9): some users, drawn from the seed, lose the old phone
 * instead of migrating. Each reports it from the new phone with the
 * operator's one-time code; every provider revokes the old chip and
 * re-issues its items on the new one from its ledger (an issuance). A user
 * reports again until every item is revoked on the lost chip and active on
 * the new one. Once the items are back, the "found again" old phone
 * sometimes tries to pay (an accepted payment is a violation: value spent
 * twice), then connects: its chip identifies, and the server must wipe its
 * revoked areas (they end `absent`).
 *
 * The checks read what the providers revoked (revokedHere): a revoked area
 * is not spendable (no duplication), its value is in its provider's ledger
 * until it is re-issued (no loss), and it is not counted in the balances.
 */
import type { EmbeddedSystem } from '../actors/system.ts';
import type { TerminalRuntime } from '../actors/terminal.actor.ts';
import { seededRng, type SeededRng } from '../crypto/index.ts';
import type { SeedRun } from './seedRun.ts';
import type { User } from './types.ts';

/** Share of users (without a cancel, a deadline or a defective destination) who lose the old phone. */
const LOSE_RATE = 0.2;
/** Share of those whose old phone is found again, and tries to pay after the report. */
const FOUND_AGAIN_RATE = 0.6;

/** Whether a chip's area of this provider was revoked (its chip reported lost): its normal SAM serves it no more. */
export function revokedHere(system: EmbeddedSystem, provider: string, serial: string): boolean {
  const sam = system.providers.get(provider)?.normalSam;
  // A normal SAM that is down (crashed, not yet restarted) has its store closed: nothing is read of it then.
  return sam !== undefined && !sam.isStopped && sam.ledger.chipRevoked(serial);
}

/** The chips each provider revoked (its normal SAM's ledger), for the safety checker's cache. */
export function revokedChips(system: EmbeddedSystem, provider: string): Set<string> {
  const out = new Set<string>();
  const ledger = system.providers.get(provider)?.normalSam.ledger;
  if (!ledger) return out;
  for (const { value } of ledger.db.getRange({ start: 'chip:', end: 'chip;' })) out.add((value as { serial: string }).serial);
  return out;
}

/**
 * Where a loser's areas end: active on the new chip; on the lost one still active (revoked at its providers), or
 * absent once the phone was found again and its chip identified to the server (the revoked areas wiped).
 */
export const LOST_END_STATE = { source: 'mainActive', destination: 'mainActive' } as const;
export const FOUND_END_STATE = { source: 'absent', destination: 'mainActive' } as const;

interface Loser {
  code: string;
  /** waiting: found again once the items are back; paid: its payment tried (refused); connected: its chip identified. */
  foundAgain: 'no' | 'waiting' | 'paid' | 'connected';
}

type Act = (phoneId: string, what: string, fn: (t: TerminalRuntime) => Promise<unknown>) => void;

export class SimRecovery {
  private readonly rng: SeededRng;
  private readonly losers = new Map<string, Loser>();

  constructor(private readonly run: SeedRun) {
    this.rng = seededRng(`${run.o.seed}/recovery`);
  }

  isLoser(u: User): boolean {
    return this.losers.has(u.name);
  }

  /** The seed's tally: lost phones recovered (`recovered`), and of those found again and wiped (`foundWiped`). */
  tally(users: readonly User[], outcomes: Record<string, number>): void {
    const add = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);
    for (const u of users) {
      if (!this.isLoser(u) || !this.settled(u)) continue;
      add('recovered');
      if (this.foundAndWiped(u)) add('foundWiped');
    }
  }

  /** Whether the user's lost phone was found again and its chip wiped (where its areas must end). */
  foundAndWiped(u: User): boolean {
    return this.losers.get(u.name)?.foundAgain === 'connected';
  }

  /**
   * At setup: the user is drawn to lose the old phone (only a user with no cancel, deadline or defective
   * destination: the outcome checks expect theirs to complete). Each item is read once through its normal
   * SAM, so its ledger knows it (the sim's items are issued at a desk), and the operator's code is made.
   */
  async draw(u: User, eligible: boolean): Promise<void> {
    const { run } = this;
    if (this.rng.nextFloat() >= LOSE_RATE || !eligible) return;
    const { system } = run;
    const [oldPhone, newPhone] = [system.party<TerminalRuntime>(u.oldPhone), system.party<TerminalRuntime>(u.newPhone)];
    for (const k of u.items.keys()) {
      const p = run.providers[k]!;
      if (!run.o.pay) for (const t of [oldPhone, newPhone]) system.connectReader(t, p);
      await run.until(oldPhone.normalUse(p, 'balance', p), `ledger of ${u.name} item ${k}`);
    }
    const code = await run.until(system.server.recoveryCode(u.name), `recovery code of ${u.name}`);
    this.losers.set(u.name, { code, foundAgain: this.rng.nextFloat() < FOUND_AGAIN_RATE ? 'waiting' : 'no' });
    run.line(`LOSER ${u.name} will lose ${u.source}`);
  }

  /**
   * Every provider of the user's items revoked the lost chip and its item is active on the new one: a report that
   * missed a provider is made again, and so is one whose provider answered after the user's answer had gone (it
   * revoked, and its issue orders wait in the server's record for the next report). Unknown while a SAM is down.
   */
  settled(u: User): boolean {
    if (!this.isLoser(u)) return true;
    if (!this.placed(u)) return false;
    // A phone found again connects until its chip is wiped (the sim's users end there).
    const found = this.losers.get(u.name)!.foundAgain;
    const { server } = this.run.system;
    return found === 'no' || (found === 'connected' && !server.isStopped && !this.run.down.has('server') && server.lostWipeState(u.source) === 'wiped');
  }

  /** Every item revoked on the lost chip and active on the new one. */
  private placed(u: User): boolean {
    const { system, providers } = this.run;
    // A chip that is down (crashed, not yet restarted) has its store closed: unknown until it is back.
    const chip = system.chips.get(u.destination);
    if (!chip || chip.isStopped || this.run.down.has(chip.id)) return false;
    return u.items.every((_, k) => revokedHere(system, providers[k]!, u.source) && chip.memory.get(providers[k]!)?.state === 'mainActive');
  }

  /**
   * A loser at the phones: reports the old phone lost (again, while a provider has not revoked it, once the
   * last re-issue ended), then, the items back, maybe finds the old phone again and tries to pay with it.
   */
  tick(u: User, mig: string | undefined, state: string | undefined, act: Act): void {
    const l = this.losers.get(u.name)!;
    if (mig && (state === 'awaitingDestination' || state === 'rollingBack.awaitingDestinationWipe')) {
      // The re-issue waits for this phone (its first answer was lost, or its login with a server that restarted).
      act(u.newPhone, 'migrate-in (re-issue)', (t) => t.migrateIn({ mig }));
      return;
    }
    const over = state === 'completed' || state === 'rolledBack' || state === 'refused';
    if (state === undefined || (over && !this.placed(u))) {
      act(u.newPhone, `recover ${u.source}`, (t) =>
        t.recover(u.source, l.code).then(
          (r) => this.run.line(`RECOVERED ${u.name} ${r.outcome}: ${r.providers.map((p) => `${p.provider} ${p.outcome}`).join(', ')}`),
          (e: unknown) => this.run.line(`RECOVER ${u.name} failed: ${(e as { code?: string }).code ?? (e as Error).message}`),
        ),
      );
      return;
    }
    if (state !== 'completed' || l.foundAgain === 'no') return;
    if (l.foundAgain !== 'waiting') return this.reconnect(u, l, act);
    l.foundAgain = 'paid';
    const k = Math.floor(this.rng.nextFloat() * u.items.length);
    const p = this.run.providers[k]!;
    const ticket = u.items[k]!.kind === 'ticket';
    act(u.oldPhone, `found again: pays with item ${k}`, (t) =>
      t.normalUse(p, ticket ? 'use' : 'pay', p, ticket ? undefined : 1).then(
        () => this.run.fail({ invariant: 'no-duplication', message: `${u.name}'s lost phone paid with item ${k} after its report` }),
        (e: unknown) => this.run.line(`FOUND AGAIN ${u.name} refused: ${(e as { code?: string }).code ?? (e as Error).message}`),
      ),
    );
  }

  /**
   * The found-again phone connects: its user registers its chip again, and the chip identifying in that admin
   * session is what the server wipes it on (protocol.md §3, "Found again: wiped"). Asked until the server's wipe
   * of it has begun (a tap may only log the phone in, or be lost with a crash); then it must end `wiped`.
   */
  private reconnect(u: User, l: Loser, act: Act): void {
    const server = this.run.system.server;
    if (server.lostWipeState(u.source) !== undefined) {
      l.foundAgain = 'connected';
      return;
    }
    act(u.oldPhone, 'found again: register', (t) =>
      t.register().then(
        () => this.run.line(`FOUND AGAIN ${u.name} registered its chip again`),
        (e: unknown) => this.run.line(`FOUND AGAIN ${u.name} register: ${(e as { code?: string }).code ?? (e as Error).message}`),
      ),
    );
  }
}
