/**
 * A hostile relay: a Link wrapper that hands every message its
 * party sends to a `Tamper` function and sends what that returns instead.
 * It sits where the sending party itself sits, above the channel, so it
 * holds the envelope bytes a hostile server or terminal holds: it can flip,
 * truncate, drop, hold back (and later release) or add messages, as a
 * relay that is not honest can. The simulator's rogue server and the
 * hostile-relay tests put it at a party's seat through the embedded system's
 * `wrapSender` injection point (`tampering(fn)`); otherwise nothing changes.
 */
import { LinkWrapper, type Link, type LinkSite } from '../transport/link.ts';

/** Who is sending what to whom: the sending party's id, the party at the other end, the link's label. */
export interface TamperSite extends LinkSite {
  /** Sends on this link now, past the tamper (a relay that speaks when its party does not: the simulator's rogue server). */
  send?: (data: Uint8Array) => void;
}

/**
 * Called with every message the party sends on the link; returns the
 * messages to send in its place, in order: `[]` drops it, `[data]` passes
 * it, `[other]` replaces it, `[data, extra]` sends one more. Held messages
 * are released by returning them with a later one.
 */
export type Tamper = (data: Uint8Array, site: TamperSite) => Uint8Array[];

export class TamperLink extends LinkWrapper {
  constructor(
    inner: Link,
    site: TamperSite,
    private readonly tamper: Tamper,
  ) {
    super(inner);
    this.site = { ...site, send: (data) => this.inner.send(data) };
  }

  private readonly site: TamperSite;

  send(data: Uint8Array): void {
    for (const out of this.tamper(new Uint8Array(data), this.site)) this.inner.send(out);
  }
}

/** For EmbeddedSystem's `wrapSender`: every party's sending end of every link goes through `tamper`. */
export function tampering(tamper: Tamper): (link: Link, site: LinkSite) => Link {
  return (link, site) => new TamperLink(link, site, tamper);
}
