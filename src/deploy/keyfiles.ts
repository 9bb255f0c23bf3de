/**
 * Key files: a process's secrets, one JSON file each, written with mode 0600
 * and read only at start. Configs point at them; nothing prints them.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { fromB64, importIdentity, Secret, type CryptoBackend, type ExportedIdentity, type Identity } from '../crypto/index.ts';
import { ConfigError } from './config.ts';

const b64 = z.string().regex(/^[A-Za-z0-9_-]+$/);
const identity = z.strictObject({ signSecret: b64, boxSecret: b64, signPublic: b64, boxPublic: b64 });

/** Every kind may carry one: it unlocks /healthz detail, /metrics (when the config requires it) and the server's /status. */
const operatorToken = b64.optional();

/**
 * The identity `valmove keygen rotate` replaced, with when (ISO 8601): kept until `valmove keygen retire`
 * (docs/deploying.md, "Rotating an identity key"). The process itself signs only with `identity`.
 */
const previousIdentity = z.strictObject({ ...identity.shape, replacedAt: z.iso.datetime() }).optional();

const keyFileSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('server'), identity, previousIdentity, operatorToken }),
  z.strictObject({ kind: z.literal('admin-sam'), identity, previousIdentity, issuerMaster: b64, operatorToken }),
  z.strictObject({
    kind: z.literal('provider'),
    normal: identity,
    migration: identity,
    /** Each SAM's identity before `keygen rotate --role normal-sam/<p>` (`migration-sam/<p>`), until retired. */
    previousNormal: previousIdentity,
    previousMigration: previousIdentity,
    providerMaster: b64,
    operatorToken,
  }),
  z.strictObject({ kind: z.literal('chip'), serial: z.string(), kChip: b64, identity, operatorToken }),
  z.strictObject({ kind: z.literal('terminal'), controlToken: b64, identity, operatorToken }),
]);
export type KeyFile = z.infer<typeof keyFileSchema>;

export function writeKeyFile(path: string, content: KeyFile): void {
  writeFileSync(path, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

export function readKeyFile<K extends KeyFile['kind']>(path: string, kind: K): Extract<KeyFile, { kind: K }> {
  const parsed = readAnyKeyFile(path);
  if (parsed.kind !== kind) throw new ConfigError(`key file ${path} holds ${parsed.kind} keys, not ${kind} keys`);
  return parsed as Extract<KeyFile, { kind: K }>;
}

/** A key file of whatever kind (the operator token is read before the role's own keys). */
export function readAnyKeyFile(path: string): KeyFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const cause = (e as NodeJS.ErrnoException).code; // a file system error's name (ENOENT, EACCES), not a protocol code
    throw new ConfigError(`key file ${path} can not be read (${cause ?? 'bad JSON'})`);
  }
  const parsed = keyFileSchema.safeParse(raw);
  // Never echo a key file's content in an error: name the field only.
  if (!parsed.success) throw new ConfigError(`key file ${path} is malformed at ${parsed.error.issues[0]?.path.join('.') ?? '(root)'}`);
  return parsed.data;
}

/** `crypto`: the backend of the party whose identity it is (a chip's process derives its public keys with the chip's). */
/**
 * `crypto`: the backend of the party whose identity it is (a chip's process derives its public keys with the chip's).
 * `previous`: the identity a rotation replaced (a SAM's, in its window): the runtime opens and verifies with it too.
 */
export function identityOf(e: ExportedIdentity, crypto?: CryptoBackend, previous?: ExportedIdentity): Identity {
  const id = importIdentity(e, crypto);
  if (previous) id.previous = importIdentity(previous, crypto);
  return id;
}
export const secretOf = (b64value: string): Secret => Secret.of(fromB64(b64value));
