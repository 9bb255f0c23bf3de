/**
 * What happens to the bytes a party receives, inside their turn: decode
 * and check the envelope (addressed to us, from the party its link names),
 * settle the request of ours it answers, drop a duplicated notice, admit a
 * request through the inbox (a repeat is answered with its stored replies),
 * and hand what is left to the party's handler. A message refused here
 * changed nothing, and is answered with an error (never a reply: no error
 * ping-pong).
 */
import type { Clock } from '../clock.ts';
import type { Rng } from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { Logger } from '../log.ts';
import { isStep, type Step } from '../protocol/steps.ts';
import { decodeEnvelope, peekHeader, PROTOCOL_VERSION, type AnyEnvelope, type Envelope } from '../transport/envelope.ts';
import { kindOf } from '../transport/messages.ts';
import type { Inbox } from './inbox.ts';
import type { Links } from './links.ts';
import type { Outbox } from './outbox.ts';
import type { Resends } from './resends.ts';
import type { Turn } from './turn.ts';
import { randomHex, type OutMessage, type RuntimeDeps } from './types.ts';

export interface IntakeDeps {
  party: string;
  clock: Clock;
  rng: Rng;
  log: Logger;
  links: Pick<Links, 'remoteOf'>;
  outbox: Pick<Outbox, 'pending'>;
  inbox: Pick<Inbox, 'seenNotice' | 'admit'>;
  resends: Pick<Resends, 'received'>;
  observe?: RuntimeDeps['observe'];
  tap?: RuntimeDeps['tap'];
  intercept?: RuntimeDeps['intercept'];
  /** Request types answered without an inbox record. */
  answeredFresh(type: string): boolean;
  /** Says a message (after the turn's commit, when a turn runs). */
  say(o: OutMessage): void;
  /** The same bytes arrive again at `atMs` (a request an interceptor held back). */
  requeue(peer: string, bytes: Uint8Array, atMs: number): void;
  /** The party's handler for a validated, deduplicated envelope; throws ProtocolError before any change to refuse it. */
  handle(env: AnyEnvelope, peer: string, turn: Turn): void;
}

/** Session ids are "<migration>:<step>:<n>": a relayed frame belongs to the step that opened its session. */
function stepOfSession(session: string): Step | undefined {
  const step = session.split(':')[1];
  return isStep(step) ? step : undefined;
}

export class Intake {
  constructor(private readonly deps: IntakeDeps) {}

  /** Handles the bytes `peer` sent, as the turn `turn`. Throws a ProtocolError to refuse them. */
  receive(peer: string, bytes: Uint8Array, turn: Turn): void {
    const env = this.open(peer, bytes, turn);
    // A frame of a session we drive: the last frame we sent got there (a network duplicate too says so).
    this.deps.resends.received(env);
    if (env.corr !== undefined && this.settled(env, peer, turn)) return;
    const kind = kindOf(env.type);
    // Steering first: a notice held back must not be taken for its own duplicate when it comes again.
    if (kind === 'notice' && !this.intercepted(env, peer, bytes)) return;
    if (kind === 'notice' && this.deps.inbox.seenNotice(env.from, env.id)) {
      // A duplicated frame must not reach a session twice (it would restart a handshake or fail a counter).
      this.deps.log.debug('duplicate notice dropped', { type: env.type, id: env.id });
      return;
    }
    if (kind === 'request' && !this.admitted(env, peer, bytes, turn)) return;
    this.deps.handle(env, peer, turn);
  }

  /** Decodes the envelope and checks who it is from and to. */
  private open(peer: string, bytes: Uint8Array, turn: Turn): AnyEnvelope {
    const { party, log } = this.deps;
    this.deps.tap?.(party, 'in', peer, bytes);
    const env = decodeEnvelope(bytes);
    turn.record.received = env;
    turn.record.info = { type: env.type, step: env.step ?? (env.type === 'frame' ? stepOfSession(env.body.session) : undefined) };
    if (env.to !== party) throw new ProtocolError('BAD_ENVELOPE', `message is addressed to ${env.to}, but this is ${party}`);
    const remote = this.deps.links.remoteOf(peer);
    if (env.from !== remote) throw new ProtocolError('BAD_SENDER', `message says it is from ${env.from}, but arrived on the link of ${remote}`);
    this.deps.observe?.message(party, 'in', env.type, bytes.length);
    log.debug('message', { peer, type: env.type, id: env.id, corr: env.corr, mig: env.mig, step: env.step, item: env.item, bytes: bytes.length });
    return env;
  }

  /** An answer to a request of ours: settles it; true when nothing more is to be done with it. */
  private settled(env: AnyEnvelope, peer: string, turn: Turn): boolean {
    const corr = env.corr!;
    // Only an answer on the link the request went out on settles it: ids count up, and any peer could guess one.
    const sent = this.deps.outbox.pending(corr);
    const pending = sent?.peer === peer ? sent : undefined;
    if (pending) turn.record.acked.push(corr);
    else if (kindOf(env.type) === 'reply') {
      this.deps.log.debug('duplicate reply ignored', { type: env.type, corr });
      return true;
    }
    return false;
  }

  /** A request through the inbox and the interceptor; false when it is answered or held already. */
  private admitted(env: AnyEnvelope, peer: string, bytes: Uint8Array, turn: Turn): boolean {
    const fresh = this.deps.answeredFresh(env.type);
    const repeat = this.deps.inbox.admit(env, { fresh });
    if (repeat) {
      for (const reply of repeat) this.deps.say({ peer, env: reply });
      return false;
    }
    if (!this.intercepted(env, peer, bytes)) return false;
    turn.record.inbound = env;
    turn.record.recordInbound = !fresh;
    return true;
  }

  /** A message through the interceptor (a test's steering: held back, refused or lost); false when it is held. */
  private intercepted(env: AnyEnvelope, peer: string, bytes: Uint8Array): boolean {
    const verdict = this.deps.intercept?.inbound?.(this.deps.party, env);
    if (verdict?.holdMs !== undefined) {
      this.deps.requeue(peer, new Uint8Array(bytes), this.deps.clock.now() + verdict.holdMs);
      return false;
    }
    if (verdict?.refuse) throw new ProtocolError(verdict.refuse.code, verdict.refuse.message);
    return true;
  }

  /** The error answer to a message that changed nothing; undefined for one never answered (an error, a reply). */
  refusal(peer: string, bytes: Uint8Array, error: unknown, received?: AnyEnvelope): OutMessage | undefined {
    const { party, log } = this.deps;
    const err = error instanceof ProtocolError ? error : new ProtocolError('INTERNAL', 'internal error');
    const head = received ?? peekHeader(bytes);
    const type = head.type;
    if (type === 'error') return undefined;
    if (received && kindOf(received.type) === 'reply') {
      log.warn('reply refused', { peer, type, code: err.code, reason: err.message });
      return undefined;
    }
    log.warn('message refused', { peer, type, code: err.code, reason: err.message });
    const reply: Envelope<'error'> = {
      v: PROTOCOL_VERSION,
      id: `${party}#e${randomHex(this.deps.rng, 6)}`,
      corr: head.id,
      from: party,
      to: this.deps.links.remoteOf(peer),
      type: 'error',
      body: err.toBody(),
    };
    if (!head.id) delete reply.corr;
    return { peer, env: reply as AnyEnvelope };
  }

  /** Refuses a message that changed nothing (see `refusal`), saying the error. */
  refuse(peer: string, bytes: Uint8Array, error: unknown, received?: AnyEnvelope): void {
    const o = this.refusal(peer, bytes, error, received);
    if (o) this.deps.say(o);
  }
}
