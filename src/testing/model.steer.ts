/**
 * How the model-based runner (model.run.ts) turns a path's environment
 * events into the real world: which request a state waits on, and the
 * armed faults the runtime's interceptor (steering.ts) carries out — a
 * request failed, held back until the path has moved on, a chip's answer or
 * a frame lost, a processed request's answer replaced by an error.
 */
import type { ErrorCode } from '../protocol/errors.ts';
import type { Interceptor } from '../runtime/types.ts';
import type { AnyEnvelope } from '../transport/envelope.ts';
import { steering } from './steering.ts';

/** The providers of the runner's world (each with its migration SAM). */
export const PROVIDERS = ['emoney', 'transit'];
/** A held request is looked at again this often (ms), and goes after HOLD_MS_MAX at the latest. */
const HOLD_POLL_MS = 25;
const HOLD_MS_MAX = 15_000;

/** The request a state of the migration waits on (what fails when the path says STEP_FAILED there). */
const REQUEST_OF: Array<[RegExp, string]> = [
  [/reservingChannel$|\.reserving$/, 'channel.reserve'],
  [/identifying$/, 'admin.identify'],
  [/lockingSource$/, 'admin.lock'],
  [/uploading\.transferring/, 'msam.upload'],
  [/formatting$/, 'admin.format'],
  [/downloading\.transferring/, 'msam.download'],
  [/^committing$/, 'admin.commit'],
  [/^activating$/, 'admin.activate'],
  [/^clearing$|clearingStores$|clearingOrders$/, 'msam.clear'],
  [/^aborting$/, 'admin.abort'],
  [/askingProviders$/, 'msam.preflight'],
  [/refusing$|releasingChannel$|releasing$|releasingDestination$/, 'channel.release'],
  [/fencing$/, 'msam.fence'],
  [/restoring$/, 'admin.restore'],
  [/wiping$/, 'admin.wipe'],
];
/** States in which a chip session runs: a failure there can also come from frames that never arrive. */
const SESSION_STATE = /identifying$|lockingSource$|transferring|formatting$|activating$|restoring$|wiping$/;

/** The request the migration waits on in a state ("a.b" state path), if any. */
export const requestOf = (state: string): string | undefined => REQUEST_OF.find(([re]) => re.test(state))?.[1];

interface Held {
  since: number;
  forEvent: number;
  type: string;
}

/** The faults armed for the next requests, and the requests held back; `progress()` is how many path events have matched. */
export class PathSteering {
  private fail: Array<{ type: string; code: ErrorCode }> = [];
  private blockFrameAt: RegExp | null = null;
  /** Lose the chip's next answer on its way to the server: its SAM sends its frame again (runtime/resends.ts). */
  loseChipAnswer = false;
  /** Requests to hold back when they arrive, until path event `forEvent` has happened. */
  private readonly hold: Array<{ party: RegExp; type: string; forEvent: number }> = [];
  /** Requests being held back (every copy of one, retransmissions too). */
  private readonly holding = new Map<string, Held>();
  /** Replace the next answer of this type by an error (the work stays done). */
  replace: string | null = null;

  constructor(private readonly progress: () => number) {}

  /** Hold back the next `type` request to a party matching `party`, until path event `forEvent` has happened. */
  holdNext(party: RegExp, type: string, forEvent: number): void {
    this.hold.push({ party, type, forEvent });
  }

  /** The path says the step waiting in `state` fails with `code`: fail its request (and, in a session, its next frame). */
  failStep(state: string, code: ErrorCode): void {
    const req = requestOf(state);
    if (req) this.fail.push({ type: req, code });
    if (SESSION_STATE.test(state)) this.blockFrameAt = /^admin-sam$|^migration-sam\//;
  }

  /** The state waits on a request: hold it back, so an event from elsewhere (a cancel, a deadline) comes first. */
  holdWaiting(state: string): void {
    const req = requestOf(state);
    const k = this.progress();
    // A lock or a format is many round trips and a cancel one hop: the cancel lands mid-session without help,
    // and the session then reaches the chip, as the paths that go on to restore or wipe it with a session expect.
    if (!req || /lockingSource$|formatting$/.test(state)) return;
    // Still holding it from the event before (a run of events in the same state): keep holding it for this one too.
    let extended = false;
    for (const h of this.holding.values()) {
      // (held for the event just matched: steering for event k runs right after event k-1 matched)
      if (h.type === req && h.forEvent >= k - 1 && Date.now() - h.since < HOLD_MS_MAX) [h.forEvent, extended] = [k, true];
    }
    for (const h of this.hold) {
      if (h.type === req) [h.forEvent, extended] = [k, true];
    }
    if (extended) return;
    const copies = req === 'msam.preflight' ? PROVIDERS.length : 1;
    for (let n = 0; n < copies; n++) this.holdNext(/./, req, k);
  }

  /** A held request goes once the path event it was held for has happened (or after HOLD_MS_MAX, whatever the machine's load). */
  private released(h: Held): boolean {
    return this.progress() > h.forEvent || Date.now() - h.since > HOLD_MS_MAX;
  }

  private beforeRequest(party: string, env: AnyEnvelope) {
    const held = this.holding.get(`${party} ${env.id}`);
    if (held !== undefined) return this.released(held) ? undefined : { holdMs: HOLD_POLL_MS };
    const h = this.hold.findIndex((x) => x.party.test(party) && x.type === env.type);
    if (h >= 0) {
      const hold = this.hold.splice(h, 1)[0]!;
      this.holding.set(`${party} ${env.id}`, { since: Date.now(), forEvent: hold.forEvent, type: env.type });
      return { holdMs: HOLD_POLL_MS };
    }
    const f = this.fail.findIndex((x) => x.type === env.type);
    if (f >= 0) {
      const { code } = this.fail.splice(f, 1)[0]!;
      this.blockFrameAt = null;
      return { fail: { code, message: 'steered: this step fails here, as the model path says' } };
    }
    if (env.type === 'frame' && this.loseChipAnswer && party === 'server' && env.from.startsWith('terminal/')) {
      this.loseChipAnswer = false;
      return { fail: { code: 'FRAME_REJECTED' as const, message: "steered: the chip's answer is lost; its SAM sends its frame again" } };
    }
    if (env.type === 'frame' && this.blockFrameAt?.test(party)) {
      this.blockFrameAt = null;
      this.fail = [];
      return { fail: { code: 'FRAME_REJECTED' as const, message: 'steered: a frame is lost, the session times out' } };
    }
    return undefined;
  }

  /** The interceptor for EmbeddedSystem's `intercept` option. */
  interceptor(): Interceptor {
    return steering({
      beforeRequest: (party, env) => this.beforeRequest(party, env),
      replaceReply: (_party, reply) => {
        if (!this.replace || reply.type !== this.replace) return undefined;
        this.replace = null;
        return { code: 'SESSION_FAILED', message: 'steered: the answer was lost' };
      },
    });
  }
}
