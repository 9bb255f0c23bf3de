/**
 * `valmove deploy units`: a systemd service per process of a deployment that
 * `keygen` wrote, read from its configs, so a unit names exactly the config,
 * data folder and port the process uses:
 *
 *   DIR/units/valmove-<process>.service
 *
 * The process may write its data folder(s) and nothing else of the file
 * system (ProtectSystem=strict with ReadWritePaths=); it runs as its own
 * unprivileged user, without new privileges or capabilities, with a private
 * /tmp, and is restarted when it fails. Its logs are its stdout: the journal.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LINKS_MAX, PENDING_HANDSHAKES_MAX } from '../transport/limits.ts';
import { ConfigError, loadConfig, type ProcessConfig } from './config.ts';

/** bin/valmove.js of this installation: ExecStart names it by its absolute path. */
export const VALMOVE_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/valmove.js');
/** Descriptors besides the links: LMDB's files, the HTTP server, the log, outgoing links to peers. */
const FILES_BESIDE_LINKS = 1_024;
/** systemd's own wait after SIGTERM before SIGKILL: the process stops cleanly well within it (STOP_TIMEOUT_MS of `up` is 10 s). */
const STOP_TIMEOUT_S = 30;
/** Restart=on-failure: a pause between tries, and at most this many starts in the interval before systemd gives up and says so. */
const RESTART_SEC = 2;
const START_LIMIT_BURST = 5;
const START_LIMIT_INTERVAL_S = 60;
/** Ports below this need CAP_NET_BIND_SERVICE; every other capability is dropped. */
const PRIVILEGED_PORT_MAX = 1_023;
const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

export interface UnitsPlan {
  /** The deployment folder keygen wrote (config/, keys/, data/). */
  dir: string;
  /** The unprivileged system user every process runs as (it must own data/ and read keys/). */
  user: string;
  /** The node binary (absolute); this process's own by default. */
  node?: string;
  /** Where the units go; DIR/units by default. */
  out?: string;
}

export interface WrittenUnit {
  id: string;
  file: string;
  readWrite: string[];
}

/** Every data folder the process writes: its own, and an embedded admin SAM's. */
function writablePaths(cfg: ProcessConfig): string[] {
  const paths = [cfg.dataDir];
  if (cfg.role === 'server' && 'embedded' in cfg.adminSam) paths.push(cfg.adminSam.dataDir);
  return paths;
}

/** systemd splits paths on spaces and expands % specifiers: a path with either is refused rather than quoted wrong. */
function unitPath(p: string, what: string): string {
  if (!isAbsolute(p) || /[\s%"'\\]/.test(p)) throw new ConfigError(`${what} ${p}: a unit needs an absolute path without spaces, quotes or %`);
  return p;
}

/** Folders a unit's own sandbox hides from it (PrivateTmp=, PrivateDevices=): a deployment kept there would see no data. */
const HIDDEN_FROM_UNIT = /^\/(tmp|var\/tmp|dev)(\/|$)/;

/** One process's unit file text. */
export function unitText(cfg: ProcessConfig, configFile: string, o: { dir: string; user: string; node: string; bin: string }): string {
  const rw = writablePaths(cfg).map((p) => unitPath(p, 'data folder'));
  const linksMax = cfg.limits?.linksMax ?? LINKS_MAX;
  const pending = cfg.limits?.pendingHandshakesMax ?? PENDING_HANDSHAKES_MAX;
  // A home folder is hidden by ProtectHome=yes; a deployment kept under one is shown read-only, its data folders writable.
  const underHome = [o.dir, o.node, o.bin].some((p) => /^\/(home|root|run\/user)(\/|$)/.test(p));
  const lowPort = cfg.listen.port > 0 && cfg.listen.port <= PRIVILEGED_PORT_MAX;
  return [
    '# Written by `valmove deploy units`; run it again after keygen rather than editing by hand.',
    '[Unit]',
    `Description=valmove ${cfg.role} ${cfg.id}`,
    `Documentation=file:${resolve(dirname(o.bin), '../docs/deploying.md')}`,
    'Wants=network-online.target',
    'After=network-online.target',
    `StartLimitIntervalSec=${START_LIMIT_INTERVAL_S}`,
    `StartLimitBurst=${START_LIMIT_BURST}`,
    '',
    '[Service]',
    'Type=simple',
    `User=${o.user}`,
    `Group=${o.user}`,
    `WorkingDirectory=${unitPath(o.dir, 'deployment folder')}`,
    `ExecStart=${unitPath(o.node, 'node')} ${unitPath(o.bin, 'valmove')} start ${cfg.role} --config ${unitPath(configFile, 'config')}`,
    'Restart=on-failure',
    `RestartSec=${RESTART_SEC}`,
    'KillSignal=SIGTERM',
    `TimeoutStopSec=${STOP_TIMEOUT_S}`,
    `LimitNOFILE=${linksMax + pending + FILES_BESIDE_LINKS}`,
    'UMask=0077',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    `ReadWritePaths=${rw.join(' ')}`,
    `ProtectHome=${underHome ? 'read-only' : 'yes'}`,
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
    'SystemCallArchitectures=native',
    `CapabilityBoundingSet=${lowPort ? 'CAP_NET_BIND_SERVICE' : ''}`,
    ...(lowPort ? ['AmbientCapabilities=CAP_NET_BIND_SERVICE'] : []),
    '# No MemoryDenyWriteExecute: V8 compiles JavaScript to machine code at run time.',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Writes a unit per config in DIR/config; creates each data folder (ReadWritePaths= must exist when the unit starts). */
export function writeUnits(plan: UnitsPlan): WrittenUnit[] {
  if (!USER_NAME.test(plan.user)) throw new ConfigError(`--user ${plan.user}: a system user name (lower case letters, digits, "_", "-")`);
  const dir = resolve(plan.dir);
  if (HIDDEN_FROM_UNIT.test(dir))
    throw new ConfigError(`${dir}: a unit's private /tmp and /dev hide it from the process; keep the deployment under /srv, /var/lib or /opt`);
  const configDir = join(dir, 'config');
  if (!existsSync(configDir)) throw new ConfigError(`${dir} holds no config/ folder: run valmove keygen --dir ${plan.dir} first`);
  const out = resolve(plan.out ?? join(dir, 'units'));
  const files = readdirSync(configDir).filter((f) => f.endsWith('.json'));
  if (files.length === 0) throw new ConfigError(`${configDir} holds no process config`);
  const units = files.sort().map((f) => {
    const file = join(configDir, f);
    const cfg = loadConfig(file);
    const text = unitText(cfg, file, { dir, user: plan.user, node: plan.node ?? process.execPath, bin: VALMOVE_BIN });
    return { id: cfg.id, file: join(out, `valmove-${cfg.id}.service`), readWrite: writablePaths(cfg), text };
  });
  mkdirSync(out, { recursive: true });
  for (const u of units) {
    for (const p of u.readWrite) mkdirSync(p, { recursive: true, mode: 0o700 });
    writeFileSync(u.file, u.text);
  }
  return units.map(({ id, file, readWrite }) => ({ id, file, readWrite }));
}
