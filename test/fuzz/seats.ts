/**
 * Where the fuzzer sits: a seat is one end of a link to the party under
 * test, in the place of the peer that normally holds it (as
 * test/security/relay.ts `asServer` does). What the seat sends arrives as
 * bytes through the party's link, exactly as a real peer's message would;
 * what the party answers is collected, decoded, and (for `frame` requests,
 * which travel hop by hop until acknowledged) acknowledged as the real peer
 * would. Not a test file.
 */
import type { PartyRuntime } from '../../src/actors/runtime.ts';
import type { PartyStore } from '../../src/store/party.store.ts';
import { NOTICE_WINDOW } from '../../src/runtime/inbox.ts';
import { decodeEnvelope, type AnyEnvelope } from '../../src/transport/envelope.ts';
import type { Link } from '../../src/transport/link.ts';
import { memoryLinkPair } from '../../src/transport/memory.transport.ts';
import type { MessageType } from '../../src/transport/messages.ts';
import type { World } from '../helpers/world.ts';

/** One message the party sent to the seat. */
export interface Received {
  bytes: Uint8Array;
  env?: AnyEnvelope;
  /** Why the party's message did not decode (a party must never send one). */
  undecodable?: string;
}

export interface SeatOptions {
  /** Requests this seat's peer may legitimately make: the party may serve them (and change its state doing so). */
  commands?: readonly MessageType[];
  /** The party answers a `frame` inside the session with a chip frame, as a chip does (not with an error envelope). */
  chip?: boolean;
  /** Sessions the party has open toward this seat: their frames reach its chip-frame decoder. */
  openSessions?: string[];
  /** Records a refusal of this type may still change (by design: login failures count). */
  refusalMayTouch?: Partial<Record<MessageType, readonly string[]>>;
  /**
   * The key the seat's link reports as proven by a channel handshake (what a
   * real connection's channel tells the party), for a party that checks who
   * is behind a name (a normal SAM's enrolled readers).
   */
  provenKey?: string;
}

export interface Seat {
  /** For reports: who the seat stands for, on which link. */
  label: string;
  party: PartyRuntime;
  /** The party id the seat speaks as. */
  self: string;
  /** The name of the seat's link at the party (where the party's requests to the seat wait, in its outbox). */
  link: string;
  commands: ReadonlySet<string>;
  chip: boolean;
  openSessions: string[];
  refusalMayTouch: Partial<Record<string, readonly string[]>>;
  /** The notices this party has seen from the seat (one seen before, or too old for its stream's window, is dropped silently). */
  noticeIds: NoticeMemory;
  /** Sessions the party opened toward the seat while serving a case (it sent frames in them). */
  liveSessions: Set<string>;
  got: Received[];
  send(bytes: Uint8Array): void;
  close(): void;
}

/**
 * The fuzzer's own model of a party's notice memory (runtime/inbox.ts, seenNotice), written as sets, not
 * bits: an id `<party>#n<tag>.<n>` belongs to the stream `<party>#n<tag>`; a number seen before in it, or
 * NOTICE_WINDOW or more below the highest seen, counts as seen. Ids of another shape are remembered one by one.
 */
export class NoticeMemory {
  private readonly streams = new Map<string, { high: number; seen: Set<number> }>();
  private readonly others = new Set<string>();

  has(id: string): boolean {
    const m = /^(.+#n[0-9a-f]+)\.(\d{1,15})$/.exec(id);
    if (!m) return this.others.has(id);
    const s = this.streams.get(m[1]!);
    const n = Number(m[2]);
    return s !== undefined && (s.seen.has(n) || n <= s.high - NOTICE_WINDOW);
  }

  add(id: string): void {
    const m = /^(.+#n[0-9a-f]+)\.(\d{1,15})$/.exec(id);
    if (!m) {
      this.others.add(id);
      return;
    }
    const s = this.streams.get(m[1]!) ?? { high: 0, seen: new Set<number>() };
    const n = Number(m[2]);
    s.seen.add(n);
    s.high = Math.max(s.high, n);
    this.streams.set(m[1]!, s);
  }
}

/** The party's own store (protected in the runtime; the fuzzer reads it, never writes). */
export function storeOf(party: PartyRuntime): PartyStore {
  return (party as unknown as { store: PartyStore }).store;
}

function seatOn(party: PartyRuntime, self: string, linkName: string, label: string, link: Link, opts: SeatOptions): Seat {
  const got: Received[] = [];
  link.onMessage((bytes) => {
    const r: Received = { bytes: new Uint8Array(bytes) };
    try {
      r.env = decodeEnvelope(bytes);
    } catch (e) {
      r.undecodable = String(e);
    }
    got.push(r);
  });
  return {
    label,
    party,
    self,
    link: linkName,
    commands: new Set(opts.commands ?? []),
    chip: opts.chip ?? false,
    openSessions: opts.openSessions ?? [],
    refusalMayTouch: opts.refusalMayTouch ?? {},
    noticeIds: new NoticeMemory(),
    liveSessions: new Set(),
    got,
    send: (bytes) => link.send(bytes),
    close: () => link.close('the fuzzer leaves'),
  };
}

/**
 * A seat on an in-memory link attached to the party under `linkName`. If the
 * party already has a link of that name (a real peer's), the seat takes its
 * place: give it back with EmbeddedSystem.relink afterwards.
 */
export function memorySeat(party: PartyRuntime, linkName: string, self: string, opts: SeatOptions = {}): Seat {
  const [mine, theirs] = memoryLinkPair(self, party.id);
  if (opts.provenKey !== undefined) Object.defineProperty(theirs, 'peerId', { value: opts.provenKey });
  party.attach(linkName, theirs, self);
  return seatOn(party, self, linkName, `${self} on ${party.id}'s link "${linkName}"`, mine, opts);
}

/** A new terminal connection to the server, through the channel handshake a real terminal runs; not logged in. */
export function terminalSeat(world: World, name: string, opts: SeatOptions = {}): Seat {
  const link = world.system.rawServerConnection(name);
  return seatOn(world.system.server, `terminal/${name}`, `terminal/${name}`, `terminal/${name}, a new channel to the server, not logged in`, link, opts);
}
