/**
 * Persist, then speak (architecture.md): a party sends a new envelope only between the commit of the turn that
 * made it and that turn's end. One sent at any other time (a resend of what is on disk is not new) is told to a
 * peer before it is durable: a crash there makes what the party remembers and what its peers were told disagree.
 * A session frame sent again (resends.ts) repeats one a turn said after its commit: not new.
 */
import type { TurnPoint } from '../actors/runtime.ts';
import type { Violation } from './invariants.ts';

/** Whether a party's store holds an envelope it sends (or deliberately keeps it off disk: a login proof). */
export type Remembers = (party: string, id: string, corr: string | undefined) => boolean;

export class PersistThenSpeak {
  /** Parties inside a turn's send: after its commit, before its end. */
  private readonly speaking = new Set<string>();
  /** Envelope ids each party sent already (a resend is not new). */
  private readonly sentIds = new Map<string, Set<string>>();
  /** Session frames each party sent inside a turn's send (party, session, data): a later copy is a resend. */
  private readonly spokenFrames = new Set<string>();
  /** The first envelope sent before it was on disk, if any. */
  unpersisted: Violation | undefined;

  constructor(private readonly remembers: Remembers) {}

  /** A party reached a point of its turn: it may speak from its commit to its turn's end. */
  turnPoint(party: string, point: TurnPoint): void {
    if (point === 'after-persist') this.speaking.add(party);
    else this.speaking.delete(party);
  }

  /** A party sent an envelope (the first send of each id is checked). */
  spoke(party: string, peer: string, h: { id?: string; type?: string }, bytes: Uint8Array): void {
    if (h.id === undefined) return;
    let ids = this.sentIds.get(party);
    if (!ids) this.sentIds.set(party, (ids = new Set()));
    if (ids.has(h.id)) return;
    ids.add(h.id);
    // A session frame sent again under a new id (src/runtime/resends.ts) repeats what a turn said after its commit.
    const frame = h.type === 'frame' ? this.frameKey(party, bytes) : undefined;
    if (frame !== undefined && this.speaking.has(party)) this.spokenFrames.add(frame);
    else if (frame !== undefined && this.spokenFrames.has(frame)) return;
    // Outside a turn's send: a refusal (it changed nothing), or what is on disk already (the outbox, or a reply in
    // the inbox record of its request), sent now because its link was down when its turn spoke.
    if (this.speaking.has(party) || h.type === 'error' || this.durable(party, h.id, bytes)) return;
    this.unpersisted ??= {
      invariant: 'persist-then-speak',
      message: `${party} sent ${h.type ?? '?'} ${h.id} to ${peer} before it was on disk: a peer was told what ${party} would not remember after a crash`,
    };
  }

  /** A frame's party, session and data: what a resend repeats. */
  private frameKey(party: string, bytes: Uint8Array): string {
    const body = (JSON.parse(new TextDecoder().decode(bytes)) as { body?: { session?: string; data?: string } }).body;
    return `${party}\u0000${body?.session}\u0000${body?.data}`;
  }

  /** Whether an envelope a party sends is in its store (or deliberately kept off disk: a login proof). */
  private durable(party: string, id: string, bytes: Uint8Array): boolean {
    const corr = (JSON.parse(new TextDecoder().decode(bytes)) as { corr?: string }).corr;
    return this.remembers(party, id, corr);
  }
}
