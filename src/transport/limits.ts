/**
 * Limits at the door (protocol.md §4.8: a stranger holds no more than a
 * bounded share of a party's connections, memory and CPU). Measured against
 * a real deployment before these existed: sockets that never said hello
 * stayed open until the process ran out of file descriptors, and 1,500
 * hellos with random keys cost the server 2.6-4.1 ms of CPU each and stalled
 * /healthz for seconds.
 *
 * The door, in the order a connection meets it:
 *   1. HTTP: a request must arrive whole within HTTP_HEADERS_MS (headers) and
 *      HTTP_REQUEST_MS (body); Node answers 408 and closes the socket.
 *   2. Upgrade: LINKS_MAX, LINKS_PER_ADDRESS_MAX, PENDING_HANDSHAKES_MAX and
 *      PENDING_PER_ADDRESS_MAX are checked before any WebSocket exists;
 *      beyond one, `503 Service Unavailable` names the limit.
 *   3. Channel: a handshake message over HELLO_BYTES_MAX is refused before it
 *      is parsed; shape and trust checks that need no key come next; then a
 *      token from the route's handshake bucket (HANDSHAKES_PER_S, burst
 *      HANDSHAKE_BURST) pays for the public-key work, or the hello is refused
 *      BUSY; a channel not established within HANDSHAKE_MS is refused
 *      HANDSHAKE_TIMEOUT. Each refusal closes the socket with 1008.
 *   4. Messages on stranger-facing routes: MESSAGES_PER_S per link (burst
 *      MESSAGE_BURST); a message over it is dropped (requests are
 *      retransmitted), and a link that drops more than MESSAGE_DROPS_MAX
 *      within MESSAGE_DROPS_WINDOW_MS is closed with 1008.
 *
 * This file holds the numbers; door.ts enforces them. Every refusal is
 * counted (valmove_refused_total{limit}) and logged through a throttle, so a
 * flood costs a few log lines, not one per attempt.
 */
import { z } from 'zod';

/** A channel handshake must complete within this (ms) of the socket opening. */
export const HANDSHAKE_MS = 10_000;
/** WebSocket links a process holds at once, all routes together (far below `ulimit -n`, leaving room for HTTP and LMDB). */
export const LINKS_MAX = 4_096;
/** WebSocket links from one remote address at once (a phone needs one per party it talks to; a NAT may put many phones behind one address). */
export const LINKS_PER_ADDRESS_MAX = 256;
/**
 * Links still in their handshake, all addresses together: what silent or
 * slow sockets may hold at once (a quarter of LINKS_MAX, so they never crowd
 * out established links). Silent sockets from enough addresses can fill it
 * for HANDSHAKE_MS at a time; at 64 per address that takes 16 addresses.
 */
export const PENDING_HANDSHAKES_MAX = 1_024;
/** Links still in their handshake from one address: one address can not take every pending slot. */
export const PENDING_PER_ADDRESS_MAX = 64;
/**
 * Handshakes a route may start per second (a token bucket per route: a flood
 * on /normal-sam does not starve the server's reconnect on /migration-sam).
 * A responder's handshake costs about 2.6-4.1 ms of CPU (X25519 keygen and
 * ECDH, an Ed25519 signature, and a verify for a mutual one), so 50/s is at
 * most ~20% of one core, and still 180,000 phones connecting an hour.
 */
export const HANDSHAKES_PER_S = 50;
/**
 * Handshakes a route may start at once before the per-second rate applies:
 * a reconnect storm after a restart gets this many at once and the rest at
 * the rate (refused ones retry with backoff). Back to back they hold the
 * event loop for up to ~0.2 s, which bounds how long /healthz and existing
 * links can wait behind a burst.
 */
export const HANDSHAKE_BURST = 50;
/**
 * Messages per second one link may send on a stranger-facing route. A
 * migration of the most items the bench runs (20) sends about 175 messages on
 * each terminal's link to the server and on each chip link; they fit in the
 * burst however fast the host answers.
 */
export const MESSAGES_PER_S = 100;
/** Messages a link may send at once before the per-second rate applies. */
export const MESSAGE_BURST = 400;
/**
 * Messages per second the server takes, over all its links together, from
 * terminals that have not logged in: all a stranger with a key of its own
 * can send. A per-link rate does not bound them (a stranger opens more
 * links); this does, so anonymous work gets a bounded share of the server's
 * CPU whatever the number of links (a login is two messages). Beyond it
 * the message is dropped before it is decoded (the sender retransmits).
 */
export const ANONYMOUS_MESSAGES_PER_S = 200;
/** Messages from terminals not logged in the server takes at once before that rate applies. */
export const ANONYMOUS_BURST = 400;
/** Dropped messages within MESSAGE_DROPS_WINDOW_MS after which the link is closed: a flood, not a burst. */
export const MESSAGE_DROPS_MAX = 200;
/** The window MESSAGE_DROPS_MAX is counted in (ms). */
export const MESSAGE_DROPS_WINDOW_MS = 10_000;
/**
 * Largest handshake message (bytes), checked before JSON.parse. A hello is
 * about 200 bytes (a name of at most 128 characters, three base64url keys);
 * this leaves room for JSON escapes and a device key.
 */
export const HELLO_BYTES_MAX = 2_048;
/** An HTTP request's headers must arrive within this (ms) of the connection (or of the previous request). */
export const HTTP_HEADERS_MS = 10_000;
/** A whole HTTP request (headers and body) must arrive within this (ms); answering may take longer. */
export const HTTP_REQUEST_MS = 30_000;
/** How often Node checks the two above (ms): a stalled connection is closed within HTTP_HEADERS_MS plus this. */
export const HTTP_CHECK_INTERVAL_MS = 1_000;
/** Log lines of one kind of refusal per interval; beyond it the refusals are counted and summed up in one line. */
export const REFUSAL_LOG_LINES_MAX = 10;
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

export interface Limits {
  handshakeMs: number;
  linksMax: number;
  linksPerAddressMax: number;
  pendingHandshakesMax: number;
  pendingPerAddressMax: number;
  handshakesPerS: number;
  handshakeBurst: number;
  messagesPerS: number;
  messageBurst: number;
  anonymousPerS: number;
  anonymousBurst: number;
  messageDropsMax: number;
  messageDropsWindowMs: number;
  helloBytesMax: number;
  httpHeadersMs: number;
  httpRequestMs: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  handshakeMs: HANDSHAKE_MS,
  linksMax: LINKS_MAX,
  linksPerAddressMax: LINKS_PER_ADDRESS_MAX,
  pendingHandshakesMax: PENDING_HANDSHAKES_MAX,
  pendingPerAddressMax: PENDING_PER_ADDRESS_MAX,
  handshakesPerS: HANDSHAKES_PER_S,
  handshakeBurst: HANDSHAKE_BURST,
  messagesPerS: MESSAGES_PER_S,
  messageBurst: MESSAGE_BURST,
  anonymousPerS: ANONYMOUS_MESSAGES_PER_S,
  anonymousBurst: ANONYMOUS_BURST,
  messageDropsMax: MESSAGE_DROPS_MAX,
  messageDropsWindowMs: MESSAGE_DROPS_WINDOW_MS,
  helloBytesMax: HELLO_BYTES_MAX,
  httpHeadersMs: HTTP_HEADERS_MS,
  httpRequestMs: HTTP_REQUEST_MS,
});

const count = z.number().int().positive();
/** The optional `limits` block of a process config: any subset, each overriding its default. */
export const limitsSchema = z
  .strictObject({
    handshakeMs: count,
    linksMax: count,
    linksPerAddressMax: count,
    pendingHandshakesMax: count,
    pendingPerAddressMax: count,
    handshakesPerS: count,
    handshakeBurst: count,
    messagesPerS: count,
    messageBurst: count,
    anonymousPerS: count,
    anonymousBurst: count,
    messageDropsMax: count,
    messageDropsWindowMs: count,
    helloBytesMax: z.number().int().min(256),
    httpHeadersMs: count,
    httpRequestMs: count,
  })
  .partial()
  .refine((l) => (l.httpHeadersMs ?? HTTP_HEADERS_MS) <= (l.httpRequestMs ?? HTTP_REQUEST_MS), 'httpHeadersMs must not exceed httpRequestMs');

/** What a refusal is counted under: the `limit` label of valmove_refused_total. */
export type LimitName =
  | 'links'
  | 'links_per_address'
  | 'pending_handshakes'
  | 'pending_per_address'
  | 'handshake_timeout'
  | 'handshakes_per_s'
  | 'hello_bytes'
  | 'messages_per_s'
  | 'anonymous_per_s'
  | 'message_drops'
  | 'http_timeout'
  | 'bearer_token';

/**
 * Routes where only a trusted key gets through a mutual handshake: the
 * server's links to the admin SAM and to migration SAMs. They carry every
 * migration of a server on one link (thousands of messages a second under
 * load), so a per-link rate would throttle the whole system, and the peer
 * behind them holds rights that could do far more harm than a flood. Before
 * their handshake they are strangers like any other: the caps, the hello
 * size, the handshake bucket and the deadline apply, and a link that sends
 * envelopes without a channel is closed after PRE_HANDSHAKE_REFUSALS_MAX.
 * Every other route (/terminal, /normal-sam, /chip) is stranger-facing.
 */
export const TRUSTED_ROUTES: ReadonlySet<string> = new Set(['/admin-sam', '/migration-sam']);
