/**
 * A party's links: one per peer name, with the party id at the other end
 * (a terminal's "chip" link names its chip), the refusal a channel
 * handshake left, and the one place an envelope is encoded and sent.
 *
 * A peer named by its link is forgotten with it (any number of strangers
 * may come and go); an alias is one of a few fixed names, and is kept.
 */
import type { Logger } from '../log.ts';
import { encodeEnvelope } from '../transport/envelope.ts';
import type { Link } from '../transport/link.ts';
import type { OutMessage, RuntimeDeps } from './types.ts';

/** What the party does with what happens on its links. */
export interface LinkEvents {
  /** Bytes arrived from `peer`. */
  message(peer: string, bytes: Uint8Array): void;
  /** A new connection took the name `peer`. */
  attached(peer: string): void;
  /** The link of `peer` closed (not when a newer link had replaced it). */
  closed(peer: string, reason: string): void;
}

export interface ChannelRefusal {
  code: string;
  message: string;
}

export class Links {
  private readonly links = new Map<string, Link>();
  /** The party id at the other end of each link, when it differs from the link's name. */
  private readonly remoteIds = new Map<string, string>();
  private readonly refusals = new Map<string, ChannelRefusal>();

  constructor(
    private readonly party: string,
    private readonly log: Logger,
    private readonly deps: Pick<RuntimeDeps, 'tap' | 'observe'>,
    private readonly events: LinkEvents,
  ) {}

  /** Binds a link to a peer name (closing the one it replaces); `remoteId` is the party id at the other end. */
  attach(peer: string, link: Link, remoteId: string): void {
    const previous = this.links.get(peer);
    if (previous && previous !== link) previous.close('replaced by a new connection');
    this.links.set(peer, link);
    this.remoteIds.set(peer, remoteId);
    this.events.attached(peer);
    link.onMessage((bytes) => this.events.message(peer, bytes));
    link.onClose((reason) => {
      const refusal = (link as { refusal?: ChannelRefusal }).refusal;
      if (refusal) this.refusals.set(peer, refusal);
      if (this.links.get(peer) !== link) return;
      this.links.delete(peer);
      if (this.remoteIds.get(peer) === peer) this.remoteIds.delete(peer);
      this.events.closed(peer, reason);
    });
  }

  close(peer: string, reason: string): void {
    this.links.get(peer)?.close(reason);
  }

  /** Closes every link (a stop or a crash) and forgets them. */
  closeAll(reason: string): void {
    for (const link of this.links.values()) link.close(reason);
    this.links.clear();
  }

  has(peer: string): boolean {
    return this.links.get(peer)?.isOpen ?? false;
  }

  /** Peers with an open link. */
  open(): string[] {
    return [...this.links.entries()].filter(([, l]) => l.isOpen).map(([p]) => p);
  }

  /**
   * The Ed25519 key (base64url) the peer on this link proved in its channel
   * handshake; undefined for a link with no channel (in-process wiring) or
   * an anonymous initiator. A name is only a claim; this is the proof.
   */
  keyOf(peer: string): string | undefined {
    return (this.links.get(peer) as { peerId?: string } | undefined)?.peerId;
  }

  /** Why the channel to `peer` was refused, if its handshake failed (e.g. the peer does not trust us). */
  refusal(peer: string): ChannelRefusal | undefined {
    return this.refusals.get(peer);
  }

  /** The party id at the other end of the link named `peer`. */
  remoteOf(peer: string): string {
    return this.remoteIds.get(peer) ?? peer;
  }

  /** The link name for a party id (the id itself unless a link aliases it). */
  peerOf(remoteId: string): string {
    for (const [peer, id] of this.remoteIds) if (id === remoteId) return peer;
    return remoteId;
  }

  /**
   * Encodes and sends now; false when there is no open link (a request waits
   * in the outbox, sent again when the link is back; a notice is lost).
   */
  transmit(o: OutMessage): boolean {
    const link = this.links.get(o.peer);
    if (!link?.isOpen) {
      this.log.debug('no link; message waits', { peer: o.peer, type: o.env.type });
      return false;
    }
    let bytes: Uint8Array;
    try {
      bytes = encodeEnvelope(o.env);
    } catch (e) {
      this.log.error('could not encode an outbound message', { type: o.env.type, error: String(e) });
      return false;
    }
    this.deps.tap?.(this.party, 'out', o.peer, bytes);
    this.deps.observe?.message(this.party, 'out', o.env.type, bytes.length);
    link.send(bytes);
    return true;
  }
}
