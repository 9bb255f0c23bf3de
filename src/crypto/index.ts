/** The protocol's crypto, on @noble/curves, @noble/ciphers and @noble/hashes only. */
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
