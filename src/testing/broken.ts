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
 */
import { AdminSamRuntime, type AdminSamOptions } from '../actors/adminSam.actor.ts';
import type { RuntimeDeps, TurnContext } from '../actors/runtime.ts';
import type { Envelope } from '../transport/envelope.ts';

export const BREAKS = ['activate-before-commit'] as const;
export type BreakProtocol = (typeof BREAKS)[number];

class ActivateBeforeCommit extends AdminSamRuntime {
  protected override commit(turn: TurnContext, env: Envelope<'admin.commit'>, mig: string, check: { ok: boolean; problem?: string }): void {
    if (check.ok) turn.reply(env, 'admin.decision', { decision: 'committed' });
    else super.commit(turn, env, mig, check);
  }

  protected override gateRequest(...args: Parameters<AdminSamRuntime['gateRequest']>): void {
    // no gate for S16 (activate): it opens whatever the record says
    if (args[2].op !== 'activate') super.gateRequest(...args);
  }
}

/** The admin SAM builder of a broken build, for EmbeddedSystem's `adminSam` option. */
export function brokenAdminSam(kind: BreakProtocol): (deps: RuntimeDeps, opts: AdminSamOptions) => AdminSamRuntime {
  switch (kind) {
    case 'activate-before-commit':
      return (deps, opts) => new ActivateBeforeCommit(deps, opts);
  }
}
