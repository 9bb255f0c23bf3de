/**
 * Deliberately broken builds, to prove that the simulator's checker can fail
 * (`valmove sim --break KIND`): a check that never fires on a broken build
 * proves nothing. Reached through the system's `adminSam` injection point;
 * nothing else builds them.
 *
 * 'activate-before-commit': the admin SAM answers a commit as committed
 * without writing the decision record, and opens S16 under a pending record.
 * The commit point is then no longer durable before the destination becomes
 * spendable: a crash after S16 leaves the source restorable too.
 *
 * 'activate-before-commit-after-restart': the same mistake, made only by an
 * admin SAM that restarted with decision records in its store (a crash mid-
 * migration). A run without a crash of the admin SAM never shows it, so a
 * failing seed cannot shrink to no fault: the shrunk run keeps that crash.
 */
import { AdminSamRuntime, type AdminSamOptions } from '../actors/adminSam.actor.ts';
import type { RuntimeDeps, TurnContext } from '../actors/runtime.ts';
import type { Envelope } from '../transport/envelope.ts';

export const BREAKS = ['activate-before-commit', 'activate-before-commit-after-restart'] as const;
export type BreakProtocol = (typeof BREAKS)[number];

class ActivateBeforeCommit extends AdminSamRuntime {
  /** Whether this admin SAM makes its mistake now (always, here). */
  protected broken(): boolean {
    return true;
  }

  protected override commit(turn: TurnContext, env: Envelope<'admin.commit'>, mig: string, check: { ok: boolean; problem?: string }): void {
    if (check.ok && this.broken()) turn.reply(env, 'admin.decision', { decision: 'committed' });
    else super.commit(turn, env, mig, check);
  }

  protected override gateRequest(...args: Parameters<AdminSamRuntime['gateRequest']>): void {
    // no gate for S16 (activate): it opens whatever the record says
    if (args[2].op !== 'activate' || !this.broken()) super.gateRequest(...args);
  }
}

class ActivateBeforeCommitAfterRestart extends ActivateBeforeCommit {
  /** This admin SAM started on a store that already held decision records: it crashed mid-migration. */
  private restarted = false;

  protected override broken(): boolean {
    return this.restarted;
  }

  override async start(): Promise<void> {
    for (const _ of this.records.decisions.getKeys({ limit: 1 })) this.restarted = true;
    await super.start();
  }
}

/** The admin SAM builder of a broken build, for EmbeddedSystem's `adminSam` option. */
export function brokenAdminSam(kind: BreakProtocol): (deps: RuntimeDeps, opts: AdminSamOptions) => AdminSamRuntime {
  switch (kind) {
    case 'activate-before-commit':
      return (deps, opts) => new ActivateBeforeCommit(deps, opts);
    case 'activate-before-commit-after-restart':
      return (deps, opts) => new ActivateBeforeCommitAfterRestart(deps, opts);
  }
}
