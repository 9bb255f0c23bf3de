/**
 * Steering, for model-based tests and the security suites: make a request
 * fail as if its receiver had hit a transient fault, hold it back, or turn
 * the answer to a request that was processed into an error (the work stays
 * done, as when a reply is lost). It plugs into the runtime's Interceptor
 * (RuntimeDeps.intercept, EmbeddedSystem's `intercept` option); nothing else
 * builds it.
 */
import type { Refusal } from '../protocol/errors.ts';
import type { Interceptor } from '../runtime/types.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';

export interface Steering {
  /** Before a new request is handled: refuse it with this error, or hold it back this many ms (then it arrives). */
  beforeRequest?(party: string, env: AnyEnvelope): { fail?: Refusal; holdMs?: number } | undefined;
  /** After a request was handled: send this error instead of the reply (the work stays done). */
  replaceReply?(party: string, reply: AnyEnvelope): Refusal | undefined;
}

/** The interceptor that carries out `steer`. */
export function steering(steer: Steering): Interceptor {
  return {
    inbound(party, env) {
      const verdict = steer.beforeRequest?.(party, env);
      if (!verdict) return undefined;
      return { ...(verdict.fail ? { refuse: verdict.fail } : {}), ...(verdict.holdMs !== undefined ? { holdMs: verdict.holdMs } : {}) };
    },
    outbound(party, env) {
      // Only an answer (it names the request it answers), and never an error already.
      if (env.corr === undefined || env.type === 'error' || !steer.replaceReply) return undefined;
      const err = steer.replaceReply(party, env);
      return err ? ({ ...env, type: 'error', body: err } as AnyEnvelope) : undefined;
    },
  };
}
