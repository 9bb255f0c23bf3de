/**
 * The protocol's crypto: X25519, Ed25519 and ChaCha20-Poly1305 through a backend
 * (backend.ts: node:crypto on servers, @noble on the chip), hashes, HMAC, HKDF and
 * scrypt on @noble/hashes.
 */
export * from './backend.ts';
export { backendForParty, backendForRole, backendNamed, CRYPTO_ENV, CryptoChoiceError, forcedBackendName, parseBackendName } from './backend.choice.ts';
export { nobleBackend } from './backend.noble.ts';
export { nodeBackend } from './backend.node.ts';
export * from './box.ts';
export * from './pairBox.ts';
export * from './bytes.ts';
export * from './channel.ts';
export * from './errors.ts';
export * from './grant.ts';
export * from './identity.ts';
export * from './keys.ts';
export * from './password.ts';
export * from './random.ts';
export * from './secret.ts';
export * from './session.ts';
export * from './voucher.ts';
export * from './issueOrder.ts';
export * from './revocation.ts';
