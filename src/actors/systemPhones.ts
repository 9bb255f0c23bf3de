/**
 * How the embedded system links a phone (system.ts): its chip in it (a
 * channel the chip answers only for its paired phone's device key), its
 * connection to the server (the phone checks the server's key and proves its
 * device key), a bare connection for tools that speak envelopes directly, and
 * the phone as a reader at a provider's normal SAM (normal use).
 */
import { generateIdentity, type Identity, type Rng } from '../crypto/index.ts';
import type { Link } from '../transport/link.ts';
import { memoryLinkPair } from '../transport/memory.transport.ts';
import { SecureInitiatorLink, SecureResponderLink } from '../transport/secure.link.ts';
import type { ChipRuntime } from './chip.actor.ts';
import type { NormalSamRuntime, ReaderRight } from './normalSam.actor.ts';
import type { ServerRuntime } from './server.actor.ts';
import type { OwnKeys } from './systemKeys.ts';
import type { Wire } from './systemWires.ts';
import type { TerminalRuntime } from './terminal.actor.ts';

/** What linking a phone needs of the system. */
export interface PhoneHost {
  readonly serverIdentity: Identity;
  readonly rng: Rng;
  readonly ownKeys: OwnKeys;
  wire(w: Wire): void;
  /** Keeps a link made outside a wire. */
  keep(...links: Link[]): void;
  /** The running server (read again at each handshake: it may have restarted). */
  server(): ServerRuntime;
  /** The running normal SAM of a provider. */
  normalSam(provider: string): NormalSamRuntime;
  /** The provider's normal SAM identity (it throws for an unknown provider). */
  normalSamIdentity(provider: string): Identity;
  enrollReader(provider: string, key: string, name: string, rights: ReaderRight[]): void;
}

/**
 * Puts a chip in a terminal (the phone's local link) and pairs them: the
 * chip answers only this terminal's device key, over a channel to its own key.
 */
export function insertChip(host: PhoneHost, terminal: TerminalRuntime, chip: ChipRuntime): void {
  const termKey = host.ownKeys.publicKeyOf(terminal.id);
  host.wire({
    a: { party: terminal.id, name: 'chip', remoteId: chip.id },
    b: { party: chip.id, name: terminal.id },
    channel: {
      initiator: host.ownKeys.get(terminal.id)!,
      responder: host.ownKeys.get(chip.id)!,
      mutual: true,
      trust: (k, n) => (k === termKey && n === terminal.id ? true : { code: 'UNTRUSTED_PEER', message: `${chip.id} answers only the phone it is paired with` }),
      admitFirst: true,
    },
  });
}

/** One connection from the terminal to the server: the terminal checks the server's key and proves its device key. */
export function connectToServer(host: PhoneHost, terminal: TerminalRuntime): void {
  host.wire({
    a: { party: terminal.id, name: 'server' },
    b: { party: 'server', name: terminal.id },
    channel: {
      initiator: host.ownKeys.get(terminal.id)!,
      responder: host.serverIdentity,
      mutual: true,
      trust: (k, n) => host.server().admitTerminal(n, k),
      admitFirst: true,
    },
  });
}

/**
 * A bare channel to the server, as a terminal program would open it, for
 * tools and tests that speak envelopes directly (bad input, attacks). It
 * proves `identity` (a new device key unless given): a name bound to
 * another key is refused at the handshake, as a stranger's would be.
 */
export function rawServerConnection(host: PhoneHost, name: string, identity: Identity = generateIdentity(host.rng)): Link {
  const id = `terminal/${name}`;
  const [t, s] = memoryLinkPair(id, 'server');
  host.keep(t, s);
  const link = new SecureInitiatorLink(t, { name: id, identity, peerSignPublic: host.serverIdentity.signPublic, rng: host.rng });
  const server = host.server();
  const responder = new SecureResponderLink(s, {
    name: 'server',
    identity: host.serverIdentity,
    trust: (k, n) => server.admitTerminal(n, k),
    requireMutual: true,
    rng: host.rng,
  });
  responder.onEstablished = (l) => void server.attachTerminal(id, l);
  return link;
}

/**
 * A terminal acting as a reader connects to a provider's normal SAM
 * (normal use; no server involved). The provider enrols the terminal's
 * device key first, with `rights` (a phone spends; a charging reader also
 * tops up without a voucher).
 */
export function connectReader(host: PhoneHost, terminal: TerminalRuntime, provider: string, rights: ReaderRight[]): void {
  const normal = host.normalSamIdentity(provider);
  host.enrollReader(provider, host.ownKeys.publicKeyOf(terminal.id), terminal.id, rights);
  const samId = `normal-sam/${provider}`;
  host.wire({
    a: { party: terminal.id, name: samId },
    b: { party: samId, name: terminal.id },
    channel: {
      initiator: host.ownKeys.get(terminal.id)!,
      responder: normal,
      mutual: true,
      trust: (k, n) => host.normalSam(provider).admitReader(n, k),
      admitFirst: true,
    },
  });
}
