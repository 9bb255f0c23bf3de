/**
 * How a terminal starts, joins or cancels a migration at the server:
 * migrate.out (the source's phone; or the source coming back to a rollback
 * that waits for it), migrate.in (the destination's phone; or an issuance,
 * with the provider's issue orders), migrate.cancel. Each finds or spawns the
 * migration's actor; from there the migration machine runs the steps.
 */
import type { Actor, AnyStateMachine } from 'xstate';
import { decodeIssueOrder, toB64, type Rng } from '../crypto/index.ts';
import type { MigrationContext } from '../machines/migration.machine.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { ServerRecords } from '../store/server.store.ts';
import type { Timing } from '../timing.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import type { TurnContext } from './runtime.ts';
import { MIGRATION } from './serverIntents.ts';

/** What the desk reads of the server. */
export interface MigrationDeskView {
  readonly records: ServerRecords;
  readonly rng: Rng;
  readonly timing: Timing;
  /** Default time a migration waits for its destination (ServerOptions.deadlineMs). */
  readonly deadlineMs: number | undefined;
  requireUser(peer: string): string;
  actorOf(key: string): Actor<AnyStateMachine> | undefined;
  /** The migrations still running: the only ones an event can move. */
  liveMigrationIds(): string[];
  migration(mig: string): MigrationContext | undefined;
  /** The process is draining (SIGTERM): no new migration, nor a destination phase, starts here. */
  draining(): boolean;
}

export class MigrationDesk {
  constructor(private readonly view: MigrationDeskView) {}

  /** The user's migration that is still running, if any (one at a time per user). */
  private activeMigrationOf(user: string): string | undefined {
    return this.view.liveMigrationIds().find((m) => {
      const a = this.view.actorOf(MIGRATION + m)!;
      return a.getSnapshot().status === 'active' && (a.getSnapshot().context as MigrationContext).user === user;
    });
  }

  migrateOut(turn: TurnContext, env: Extract<AnyEnvelope, { type: 'migrate.out' }>, peer: string): void {
    const user = this.view.requireUser(peer);
    const active = this.activeMigrationOf(user);
    if (active) {
      // A rolled-back migration waiting for its source takes the source back (rollback step 3).
      if (
        this.view
          .actorOf(MIGRATION + active)!
          .getSnapshot()
          .can({ type: 'SOURCE_ARRIVED', terminal: peer, request: env.id })
      ) {
        turn.dispatch(MIGRATION + active, { type: 'SOURCE_ARRIVED', terminal: peer, request: env.id });
        return;
      }
      throw new ProtocolError('BUSY', `${user} already has migration ${active} in progress`);
    }
    this.refuseWhileDraining();
    let destinationProblem: string | undefined;
    let destinationAreas: string[] | undefined;
    if (env.body.destination) {
      const dest = this.view.records.registry.get(env.body.destination);
      if (!dest) destinationProblem = `destination ${env.body.destination} is not registered`;
      else if (dest.user !== user) destinationProblem = `destination ${env.body.destination} is not registered to ${user}`;
      else destinationAreas = dest.areas;
    }
    const mig = `m-${toB64(this.view.rng.bytes(6))}`;
    turn.spawn(MIGRATION + mig, 'migration', {
      mig,
      user,
      terminal: peer,
      request: env.id,
      destination: env.body.destination,
      destinationProblem,
      destinationAreas,
      deadlineMs: env.body.deadlineMs ?? this.view.deadlineMs,
      timing: { retryBaseMs: this.view.timing.retryBaseMs, retryCapMs: this.view.timing.retryCapMs, preflightMs: this.view.timing.preflightMs },
      // Selective migration (selection.ts): the providers the user chose, checked against the chip's areas at S2.
      selection: { only: env.body.only ? [...new Set(env.body.only)] : null, leaveBehind: env.body.leaveBehind ?? null },
    });
  }

  private refuseWhileDraining(): void {
    if (this.view.draining()) throw new ProtocolError('DRAINING', 'the server is shutting down and starts no migration now; try again once it is back');
  }

  migrateIn(turn: TurnContext, env: Extract<AnyEnvelope, { type: 'migrate.in' }>, peer: string): void {
    const user = this.view.requireUser(peer);
    this.refuseWhileDraining();
    if (env.body.orders) return this.issue(turn, env, env.body.orders, user, peer);
    const candidates = this.view.liveMigrationIds().filter((m) => {
      const snap = this.view.actorOf(MIGRATION + m)!.getSnapshot();
      const ctx = snap.context as MigrationContext;
      return (
        ctx.user === user && (env.body.mig === undefined || env.body.mig === m) && snap.can({ type: 'DESTINATION_ARRIVED', terminal: peer, request: env.id })
      );
    });
    if (candidates.length === 0) throw new ProtocolError('NO_MIGRATION', `${user} has no migration waiting for a destination`);
    if (candidates.length > 1) throw new ProtocolError('NO_MIGRATION', `${user} has ${candidates.length} migrations waiting; name one`);
    turn.dispatch(MIGRATION + candidates[0]!, { type: 'DESTINATION_ARRIVED', terminal: peer, request: env.id });
  }

  /**
   * An issuance (migrate.in with the provider's issue orders): a migration
   * without a source, its destination this phone. The server reads only what
   * it routes by (provider, chip, area); each provider's migration SAM checks
   * its orders' signatures and opens their sealed items, and refuses a spent
   * or expired one at S14, which aborts the issuance. The same orders sent
   * again (the phone was away, or asks again) reach the issuance they started.
   */
  private issue(turn: TurnContext, env: Extract<AnyEnvelope, { type: 'migrate.in' }>, tokens: string[], user: string, peer: string): void {
    const orders = tokens.map((t, i) => {
      try {
        return decodeIssueOrder(t);
      } catch (e) {
        throw new ProtocolError('BAD_BODY', `migrate.in body is invalid: body.orders.${i}: ${(e as Error).message}`);
      }
    });
    const serial = orders[0]!.serial;
    const areas = new Set<string>();
    for (const [i, o] of orders.entries()) {
      if (o.serial !== serial)
        throw new ProtocolError(
          'BAD_BODY',
          `migrate.in body is invalid: body.orders.${i}: it is for chip ${o.serial}, the first order for ${serial}; one issuance puts items on one chip`,
        );
      if (areas.has(o.area)) throw new ProtocolError('BAD_BODY', `migrate.in body is invalid: body.orders.${i}: a second order for area ${o.area}`);
      areas.add(o.area);
    }
    const chip = this.view.records.registry.get(serial);
    if (!chip || chip.user !== user)
      throw new ProtocolError('NOT_OWNER', `chip ${serial} is not registered to ${user}; register the phone before value is issued to it`);
    const active = this.activeMigrationOf(user);
    if (active) {
      const snap = this.view.actorOf(MIGRATION + active)!.getSnapshot();
      const ctx = snap.context as MigrationContext;
      const arrived = { type: 'DESTINATION_ARRIVED' as const, terminal: peer, request: env.id };
      if (ctx.issuance && ctx.issuance.orders.join(' ') === tokens.join(' ') && snap.can(arrived)) {
        turn.dispatch(MIGRATION + active, arrived);
        return;
      }
      throw new ProtocolError('BUSY', `${user} already has migration ${active} in progress`);
    }
    this.refuseWhileDraining();
    const mig = `i-${toB64(this.view.rng.bytes(6))}`;
    turn.spawn(MIGRATION + mig, 'migration', {
      mig,
      user,
      terminal: peer,
      request: env.id,
      issuance: {
        serial,
        items: orders.map((o, i) => ({ item: i, area: o.area, provider: o.provider, recipient: `migration-sam/${o.provider}` })),
        orders: tokens,
      },
      deadlineMs: this.view.deadlineMs,
      timing: { retryBaseMs: this.view.timing.retryBaseMs, retryCapMs: this.view.timing.retryCapMs, preflightMs: this.view.timing.preflightMs },
    });
  }

  /** migrate.cancel: the user's own migration, if it still runs; one that is over answers the decision that stands. */
  cancel(turn: TurnContext, env: Extract<AnyEnvelope, { type: 'migrate.cancel' }>, peer: string): void {
    const user = this.view.requireUser(peer);
    const ctx = this.view.migration(env.body.mig);
    if (!ctx || ctx.user !== user) throw new ProtocolError('NO_MIGRATION', `no migration ${env.body.mig} of ${user}`);
    if (this.view.actorOf(MIGRATION + env.body.mig)!.getSnapshot().status === 'done') {
      // Over already: the decision that stands (a refused migration locked nothing, so it is "aborted").
      turn.reply(env, 'migrate.cancelled', { mig: env.body.mig, decision: ctx.outcome === 'completed' ? 'committed' : 'aborted' });
      return;
    }
    turn.dispatch(MIGRATION + env.body.mig, { type: 'CANCEL_REQUESTED', reason: `cancelled by ${user}`, terminal: peer, request: env.id });
  }
}
