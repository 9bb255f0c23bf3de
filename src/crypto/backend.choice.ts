/**
 * Which crypto backend each party uses (backend.ts). The parties that run on
 * servers (the server, the admin SAM, the providers' migration and normal
 * SAMs, a terminal) use node: OpenSSL, several times faster where it counts
 * (Ed25519, X25519). The chip uses noble: a secure element or a browser has
 * no OpenSSL, so the chip runs the portable code, in embedded and in process
 * mode alike. VALMOVE_CRYPTO=node|noble forces one backend for every party
 * (to compare them, or to run everything portable).
 */
import type { BackendName, CryptoBackend } from './backend.ts';
import { nobleBackend } from './backend.noble.ts';
import { nodeBackend } from './backend.node.ts';

export const CRYPTO_ENV = 'VALMOVE_CRYPTO';

const BACKENDS: Record<BackendName, CryptoBackend> = { node: nodeBackend, noble: nobleBackend };

/** A VALMOVE_CRYPTO that names no backend: its message says what was given and what is allowed, in one line. */
export class CryptoChoiceError extends Error {
  override readonly name = 'CryptoChoiceError';
}

/** A backend name, or undefined for unset or empty; anything else throws CryptoChoiceError. */
export function parseBackendName(value: string | undefined): BackendName | undefined {
  if (value === undefined || value === '') return undefined;
  if (Object.hasOwn(BACKENDS, value)) return value as BackendName;
  const shown = value.length > 32 ? `${value.slice(0, 32)}…` : value;
  throw new CryptoChoiceError(`${CRYPTO_ENV} must be ${Object.keys(BACKENDS).join(' or ')} (or unset); got ${JSON.stringify(shown)}`);
}

/** The backend VALMOVE_CRYPTO forces on every party, if any. */
export function forcedBackendName(env: NodeJS.ProcessEnv = process.env): BackendName | undefined {
  return parseBackendName(env[CRYPTO_ENV]);
}

export function backendNamed(name: BackendName): CryptoBackend {
  return BACKENDS[name];
}

/** A party's backend by its role (server, admin-sam, migration-sam, normal-sam, provider, terminal, chip). */
export function backendForRole(role: string): CryptoBackend {
  return BACKENDS[forcedBackendName() ?? (role === 'chip' ? 'noble' : 'node')];
}

/** A party's backend by its id ("chip/SRC-1", "migration-sam/emoney", "server"). */
export function backendForParty(partyId: string): CryptoBackend {
  return backendForRole(partyId.split('/')[0]!);
}
