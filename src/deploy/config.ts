/**
 * Process configuration: one JSON file per process (`valmove start <role>
 * --config FILE`), validated here. A config names the process's data folder,
 * its key file (secrets live only there, never in the config), where it
 * listens, and, for each peer it talks to, where the peer is and which public
 * key it must present. Trust is configuration, not discovery (protocol.md §2).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { limitsSchema } from '../transport/limits.ts';

/** Keys a peer field may list at once: the previous and the current one of a rotation window. */
export const KEYS_PER_PEER_MAX = 2;

const b64key = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a 32-byte key in base64url');
/**
 * A peer's public key: one, or, during its rotation window (`valmove keygen rotate`, docs/deploying.md), a
 * list of the keys it may present (old and new); either is accepted. Outside a window it is the one key again.
 */
const peerKeys = z.union([b64key, z.array(b64key).min(1).max(KEYS_PER_PEER_MAX)]);
const name = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only');
const url = z.string().regex(/^wss?:\/\/[^\s]+$/, 'a ws:// or wss:// URL');
const right = z.enum(['upload', 'download', 'clear']);

const listen = z.strictObject({ host: z.string().min(1).max(255), port: z.number().int().min(0).max(65535) });
const tls = z.strictObject({ cert: z.string(), key: z.string() });
const common = {
  id: z.string().min(1).max(128),
  dataDir: z.string().min(1),
  keyFile: z.string().min(1),
  listen,
  tls: tls.optional(),
  /** PEM file of a CA to trust when this process connects with wss:// to a self-signed peer. */
  ca: z.string().optional(),
  log: z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error', 'silent']) }).optional(),
  /** Timeouts and retry delays (ms), each optional; see src/timing.ts for the defaults. */
  timing: z
    .strictObject({
      sessionMs: z.number().int().positive(),
      retransmitMs: z.number().int().positive(),
      retransmitCapMs: z.number().int().positive(),
      retryBaseMs: z.number().int().positive(),
      retryCapMs: z.number().int().positive(),
      preflightMs: z.number().int().positive(),
      inboxRetentionMs: z.number().int().positive(),
    })
    .partial()
    .optional(),
  /** Limits at the door (connections, handshakes, message rates, HTTP timeouts), each optional; see src/transport/limits.ts and docs/limits.md. */
  limits: limitsSchema.optional(),
  /** `requireToken`: /metrics answers only with `authorization: Bearer <operatorToken>` (default: open, for a scraper on a private network). */
  metrics: z.strictObject({ requireToken: z.boolean() }).optional(),
};

const peer = z.strictObject({ url, signPublic: peerKeys });
/**
 * A migration SAM as the admin SAM knows it: the key(s) its receipts are signed with (both during its rotation
 * window) and the one X25519 key grants are sealed to (the old one until the old key is retired: the SAM opens it
 * before and after its restart on the new key).
 */
const migrationSamKeys = z.strictObject({ signPublic: peerKeys, boxPublic: b64key });
const terminalName = z.string().regex(/^terminal\/[A-Za-z0-9._-]{1,64}$/, 'terminal/<name>');
const readerRight = z.enum(['spend', 'charge']);

export const serverConfigSchema = z.strictObject({
  role: z.literal('server'),
  ...common,
  adminSam: z.union([
    peer,
    z.strictObject({
      embedded: z.literal(true),
      dataDir: z.string().min(1),
      keyFile: z.string().min(1),
      migrationSams: z.record(z.string(), migrationSamKeys),
    }),
  ]),
  migrationSams: z.record(name, peer),
  /** Terminals the operator enrolled, each bound to its device key; other names bind at their first login. */
  terminals: z.record(terminalName, b64key).optional(),
  deadlineMs: z.number().int().positive().optional(),
  /** How long a committed migration's backup (the locked source) is kept before it is wiped (default 14 days). */
  backupRetentionMs: z.number().int().positive().optional(),
  scrypt: z
    .strictObject({
      N: z
        .number()
        .int()
        .min(2)
        .max(2 ** 20),
      r: z.number().int().min(1).max(32),
      p: z.number().int().min(1).max(16),
    })
    .optional(),
});

export const adminSamConfigSchema = z.strictObject({
  role: z.literal('admin-sam'),
  ...common,
  trustedServers: z.array(b64key).min(1),
  migrationSams: z.record(z.string().regex(/^migration-sam\/[A-Za-z0-9._-]+$/), migrationSamKeys),
});

export const providerConfigSchema = z.strictObject({
  role: z.literal('provider'),
  ...common,
  provider: name,
  /** The admin SAM's key (its keys during a rotation window): grants signed under any of them are accepted. */
  adminSamSignPublic: peerKeys,
  /** Trusted servers by Ed25519 public key, each with the rights this provider gives it. */
  servers: z.record(b64key, z.array(right)),
  /** Readers this provider enrolled, by Ed25519 key: the name each may use and its rights (`spend`, `charge`). */
  readers: z.record(b64key, z.strictObject({ name: terminalName, rights: z.array(readerRight).min(1) })).optional(),
});

export const chipConfigSchema = z.strictObject({
  role: z.literal('chip'),
  ...common,
  serial: name,
  /** The phone's terminal this chip is paired with: the only connection it answers (protocol.md §1). */
  terminal: z.strictObject({ name: terminalName, signPublic: b64key }),
});

export const terminalConfigSchema = z.strictObject({
  role: z.literal('terminal'),
  ...common,
  name,
  server: peer,
  chip: z.strictObject({ url, serial: name, signPublic: b64key }),
  normalSams: z.record(name, peer),
});

export const configSchema = z.discriminatedUnion('role', [
  serverConfigSchema,
  adminSamConfigSchema,
  providerConfigSchema,
  chipConfigSchema,
  terminalConfigSchema,
]);

export type ServerConfig = z.infer<typeof serverConfigSchema>;
export type AdminSamConfig = z.infer<typeof adminSamConfigSchema>;
export type ProviderConfig = z.infer<typeof providerConfigSchema>;
export type ChipConfig = z.infer<typeof chipConfigSchema>;
export type TerminalConfig = z.infer<typeof terminalConfigSchema>;
export type ProcessConfig = z.infer<typeof configSchema>;
export type Role = ProcessConfig['role'];
export const ROLES: Role[] = ['server', 'admin-sam', 'provider', 'chip', 'terminal'];

/** A peer key field as a list (a config holds one key, or a list during a rotation window). */
export const keyList = (k: string | readonly string[]): string[] => (typeof k === 'string' ? [k] : [...k]);

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Paths in a config are relative to the config file. */
function resolvePaths<T extends ProcessConfig>(cfg: T, base: string): T {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const out = { ...cfg, dataDir: abs(cfg.dataDir), keyFile: abs(cfg.keyFile) } as T;
  if (cfg.tls) out.tls = { cert: abs(cfg.tls.cert), key: abs(cfg.tls.key) };
  if (cfg.ca) out.ca = abs(cfg.ca);
  if (out.role === 'server' && 'embedded' in out.adminSam) {
    out.adminSam = { ...out.adminSam, dataDir: abs(out.adminSam.dataDir), keyFile: abs(out.adminSam.keyFile) };
  }
  return out;
}

export function loadConfig(file: string, expectedRole?: Role): ProcessConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file}: can not read a JSON config (${(e as Error).message})`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`${file}: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  if (expectedRole && parsed.data.role !== expectedRole) {
    throw new ConfigError(`${file} is a ${parsed.data.role} config, not a ${expectedRole} config`);
  }
  return resolvePaths(parsed.data, dirname(resolve(file)));
}
