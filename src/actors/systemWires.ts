/**
 * How the embedded system links its parties (system.ts): an in-memory link
 * pair per wire, with the channel handshake where the wire has one, the
 * network's faults above the channel, and a hostile relay's wrapper (the
 * sending party itself) above the faults. Every wire is kept, so a party that
 * restarts, or a terminal that comes back online, is linked the same way.
 */
import type { Clock } from '../clock.ts';
import { backendForParty, type Identity, type Rng, type TrustCheck } from '../crypto/index.ts';
import type { Logger } from '../log.ts';
import { FaultyLink, type FaultPolicy } from '../transport/faulty.link.ts';
import type { Link, LinkSite, LinkTap, Scheduler } from '../transport/link.ts';
import { memoryLinkPair } from '../transport/memory.transport.ts';
import { SecureInitiatorLink, SecureResponderLink } from '../transport/secure.link.ts';
import type { PartyRuntime } from './runtime.ts';

export type Side = { party: string; name: string; remoteId?: string };

/** How two parties are linked; kept so a restarted party can be linked again the same way. */
export interface Wire {
  a: Side;
  b: Side;
  /**
   * a initiates a channel to b: b presents `responder`, a presents `initiator`. With `admitFirst`, b takes
   * the link only once the handshake is done (as a listening process does), so a connection b's trust
   * check refuses never takes the name from the one that holds it (a terminal's name, a reader's).
   */
  channel?: { initiator?: Identity; responder: Identity; mutual: boolean; trust: TrustCheck; admitFirst?: boolean };
  /** Called with b's end once it is attached (the migration SAM keeps its server links to check rights). */
  onB?: (link: Link) => void;
}

/** What the wires take from the system's options (SystemOptions). */
export interface WireOptions {
  rng: Rng;
  clock: Clock;
  log: Logger;
  scheduler?: Scheduler;
  linkTap?: LinkTap;
  faultRng?: Rng;
  wrapSender?: (link: Link, site: LinkSite) => Link;
}

export class Wires {
  private readonly wires: Wire[] = [];
  private readonly links: Link[] = [];
  private readonly faulty: FaultyLink[] = [];
  private faultPolicy: FaultPolicy | null = null;

  constructor(
    private readonly opts: WireOptions,
    /** The running party of an id, if it runs. */
    private readonly partyOf: (id: string) => PartyRuntime | undefined,
  ) {}

  /** Links two parties as the wire says (and again, the same way, when either restarts). */
  wire(w: Wire, record = true): void {
    if (record) this.wires.push(w);
    const a = this.partyOf(w.a.party);
    const b = this.partyOf(w.b.party);
    if (!a || !b || a.isStopped || b.isStopped) return;
    const [rawA, rawB] = memoryLinkPair(w.a.party, w.b.party, { scheduler: this.opts.scheduler, tap: this.opts.linkTap });
    this.links.push(rawA, rawB);
    let endA: Link = rawA;
    let endB: Link = rawB;
    if (w.channel) {
      const onReject = (party: string) => (code: string, message: string) => this.opts.log.warn('channel message rejected', { party, code, reason: message });
      endA = new SecureInitiatorLink(
        rawA,
        {
          name: w.a.party,
          identity: w.channel.initiator,
          peerSignPublic: w.channel.responder.signPublic,
          rng: this.opts.rng,
          crypto: backendForParty(w.a.party),
        },
        { onReject: onReject(w.a.party) },
      );
      endB = new SecureResponderLink(
        rawB,
        {
          name: w.b.party,
          identity: w.channel.responder,
          trust: w.channel.trust,
          requireMutual: w.channel.mutual,
          rng: this.opts.rng,
          crypto: backendForParty(w.b.party),
        },
        { onReject: onReject(w.b.party) },
      );
    }
    // Faults sit above the channel: they lose, repeat and delay envelopes, as a network would lose packets under TLS.
    const faultRng = this.opts.faultRng ?? this.opts.rng;
    const fa = new FaultyLink(endA, faultRng, this.opts.clock, () => this.faultPolicy);
    const fb = new FaultyLink(endB, faultRng, this.opts.clock, () => this.faultPolicy);
    this.faulty.push(fa, fb);
    // A hostile relay is the sending party itself: it sits above the network's faults.
    const wrap = this.opts.wrapSender;
    const hostile = (link: FaultyLink, from: string, to: string): Link => (wrap ? wrap(link, { from, to, link: link.label }) : link);
    a.attach(w.a.name, hostile(fa, w.a.party, w.a.remoteId ?? w.b.party), w.a.remoteId ?? w.b.party);
    const takeB = () => b.attach(w.b.name, hostile(fb, w.b.party, w.b.remoteId ?? w.a.party), w.b.remoteId ?? w.a.party);
    if (w.channel?.admitFirst && endB instanceof SecureResponderLink) endB.onEstablished = () => (b.isStopped ? undefined : takeB());
    else takeB();
    w.onB?.(endB);
  }

  /** Links a restarted party again, by every wire it had. */
  rewire(id: string): void {
    for (const w of this.wires) if (w.a.party === id || w.b.party === id) this.wire(w, false);
  }

  /** A new connection on the wire from a terminal to the server (the phone is back online). */
  reconnect(terminalId: string): void {
    const w = this.wires.find((x) => x.a.party === terminalId && x.b.party === 'server');
    if (!w) throw new Error(`${terminalId} was never connected to the server`);
    this.wire(w, false);
  }

  /** New connections on every wire between two parties (EmbeddedSystem.relink). */
  relink(a: string, b: string): void {
    const found = this.wires.filter((w) => (w.a.party === a && w.b.party === b) || (w.a.party === b && w.b.party === a));
    if (found.length === 0) throw new Error(`${a} and ${b} were never linked`);
    for (const w of found) this.wire(w, false);
  }

  /** Keeps links made outside a wire (a bare connection), as the wires' own are kept. */
  keep(...links: Link[]): void {
    this.links.push(...links);
  }

  /** Counts of faults applied so far, over every link. */
  faultCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const f of this.faulty) for (const [k, v] of Object.entries(f.counts)) out[k] = (out[k] ?? 0) + v;
    return out;
  }

  /** Makes every link lose, repeat and delay messages by `policy` (null: a perfect network again). */
  setFaults(policy: FaultPolicy | null): void {
    this.faultPolicy = policy;
  }

  /** A perfect network again, and whatever the faults held back delivered. */
  quiet(): void {
    this.faultPolicy = null;
    for (const f of this.faulty) f.flush();
  }
}
