/**
 * Where each process of a deployment runs: the address it binds to and the
 * address (and port) its peers reach it at. One host for everything is
 * `keygen --host`; several hosts are a deployment file (`keygen --hosts
 * FILE`), validated here like the configs:
 *
 *   { "default": { "bind": "0.0.0.0" },
 *     "processes": { "server": { "address": "10.0.0.1", "port": 7400 }, "provider-emoney": { "address": "10.0.0.2" }, … } }
 *
 * A peer URL names an address a peer can reach, never a wildcard: a config
 * that says `ws://0.0.0.0:7401` works on one machine and nowhere else.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from './config.ts';

/** Bind-only addresses: they mean "every interface" to a listener and "this machine" to a connector. */
const WILDCARDS = new Set(['0.0.0.0', '::', '[::]', '*']);
const hostName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9.:_\-[\]]+$/, 'a host name or an IP address');
const address = hostName.refine((h) => !WILDCARDS.has(h), 'a wildcard is a bind address; peers need the address they reach this process at');
const hostEntry = z.strictObject({
  /** What the process listens on; its `address` when absent (or the default's bind). */
  bind: hostName.optional(),
  /** What its peers connect to: an IP address or a name they resolve. */
  address: address.optional(),
  port: z.number().int().min(1).max(65535).optional(),
  /** Serve wss:// with this certificate and key (paths as they are on that host); its peers then dial wss://. */
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
});
export const hostsFileSchema = z.strictObject({
  /** For every process the file does not name (and under each named one's own fields). */
  default: hostEntry.optional(),
  /** The deployment CA's certificate (PEM path on each host), written into every config: whom a wss:// peer's certificate must chain to. */
  ca: z.string().min(1).optional(),
  processes: z.record(z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'a process id such as server or provider-emoney'), hostEntry),
});
export type HostsFile = z.infer<typeof hostsFileSchema>;

/** One process's place: what it binds, what its peers dial, and its port when the deployer chose one. */
export interface Placement {
  bind: string;
  address: string;
  port?: number;
  tls?: { cert: string; key: string };
}

export function readHostsFile(file: string): HostsFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file}: can not read a JSON deployment file (${(e as Error).message})`);
  }
  const parsed = hostsFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`${file}: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/**
 * Each process's place. With a deployment file, every process must be named
 * there (or covered by its default), and a name the deployment does not have
 * is a typo, refused. Without one, every process binds `host` and is reached
 * at `advertise` (by default `host`, unless that is a wildcard).
 */
export function placeProcesses(ids: string[], o: { host: string; advertise?: string; hosts?: HostsFile }): Record<string, Placement> {
  const out: Record<string, Placement> = {};
  if (!o.hosts) {
    const addr = o.advertise ?? o.host;
    if (WILDCARDS.has(addr)) {
      throw new ConfigError(`--host ${o.host} binds every interface, but peers can not dial it: add --advertise ADDRESS, or name each host with --hosts FILE`);
    }
    for (const id of ids) out[id] = { bind: o.host, address: addr };
    return out;
  }
  const { processes, default: dflt } = o.hosts;
  const unknown = Object.keys(processes).filter((id) => !ids.includes(id));
  if (unknown.length) throw new ConfigError(`the deployment file names ${unknown.join(', ')}, not in this deployment (${ids.join(', ')})`);
  for (const id of ids) {
    const e = { ...dflt, ...processes[id] };
    const addr = e.address ?? (e.bind && !WILDCARDS.has(e.bind) ? e.bind : undefined);
    if (!addr) throw new ConfigError(`the deployment file gives no address for ${id} (under processes.${id} or default)`);
    out[id] = { bind: e.bind ?? addr, address: addr, ...(e.port ? { port: e.port } : {}), ...(e.tls ? { tls: e.tls } : {}) };
  }
  return out;
}

/** `ws://address:port/path` (`wss://` when the process serves TLS), with IPv6 addresses in brackets. */
export function peerUrl(p: Placement, port: number, path: string): string {
  const host = p.address.includes(':') && !p.address.startsWith('[') ? `[${p.address}]` : p.address;
  return `${p.tls ? 'wss' : 'ws'}://${host}:${port}${path}`;
}

/** Two processes dialled at one address and port would be one listener and one refusal at start: refused here, by name. */
export function checkDistinct(places: Record<string, Placement>, ports: Record<string, number>): void {
  const seen = new Map<string, string>();
  for (const [id, p] of Object.entries(places)) {
    const at = `${p.address}:${ports[id]}`;
    const other = seen.get(at);
    if (other) throw new ConfigError(`${other} and ${id} are both at ${at}: give one of them another port in the deployment file`);
    seen.set(at, id);
  }
}
