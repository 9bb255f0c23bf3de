/**
 * `valmove keygen`: a deployment's identities, secrets and trust, written as
 * one key file per process (mode 0600), one config per process, and a
 * public trust.json (who trusts which key, with which rights). It prints
 * public keys only.
 *
 *   DIR/trust.json  DIR/keys/<party>.key.json  DIR/config/<party>.json  DIR/data/<party>/ (at start)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Right } from '../actors/migrationSam.actor.ts';
import { deriveChipKey, exportIdentity, generateIdentity, randomSecret, systemRng, toB64, type Identity, type Rng } from '../crypto/index.ts';
import type { AdminSamConfig, ChipConfig, ProviderConfig, ServerConfig, TerminalConfig } from './config.ts';
import { guardDeployment } from './existing.ts';
import { writeKeyFile } from './keyfiles.ts';
import { type HostsFile, type Placement, checkDistinct, peerUrl, placeProcesses } from './hosts.ts';
import type { Timing } from '../timing.ts';
import type { Limits } from '../transport/limits.ts';

export interface DeploymentPlan {
  dir: string;
  providers: string[];
  chips: string[];
  /** Terminals and the chip each one holds. */
  terminals: Array<{ name: string; chip: string }>;
  /** The address every process binds (127.0.0.1 by default). */
  host?: string;
  /** The address peers dial when every process binds `host` (by default `host`; required when that is a wildcard). */
  advertise?: string;
  /** Several hosts: each process's bind address, advertised address and port (a deployment file, src/deploy/hosts.ts). */
  hosts?: HostsFile;
  /** First port; each process gets the next. 0 picks free ports. */
  basePort?: number;
  /** Run the admin SAM inside the server process (a demo convenience: then protocol.md §4.4 does not hold for that process). */
  embeddedAdminSam?: boolean;
  /** Rights each provider gives the server (all three by default). */
  rights?: Record<string, Right[]>;
  /** More server keys every provider trusts, with their rights (a second server, an operator's probe). */
  extraTrustedServers?: Record<string, Right[]>;
  scrypt?: { N: number; r: number; p: number };
  /** Timeouts and retry delays written into every config (see src/timing.ts). */
  timing?: Partial<Timing>;
  /** Limits at the door written into every config (see docs/limits.md); the defaults otherwise. */
  limits?: Partial<Limits>;
  rng?: Rng;
}

export interface DeploymentSummary {
  dir: string;
  processes: Array<{ id: string; role: string; config: string; port: number; bind: string; address: string }>;
  publicKeys: Record<string, { signPublic?: string; boxPublic?: string }>;
}

/** A free TCP port on the host (bound and released; the caller uses it soon after). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const pub = (id: Identity) => ({ signPublic: toB64(id.signPublic), boxPublic: toB64(id.boxPublic) });

/** Each process's own operator token (/healthz detail, /metrics when required, the server's /status): 24 random bytes. */
const operatorToken = (rng: Rng): string => toB64(rng.bytes(24));

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Writes a new deployment into `plan.dir`, which must hold none: every caller
 * (keygen, up, attack, bench) is refused on an existing one, whatever it checked
 * before (keygen and up remove it first only when told --force).
 */
export async function generateDeployment(plan: DeploymentPlan): Promise<DeploymentSummary> {
  guardDeployment(plan.dir, false);
  const rng = plan.rng ?? systemRng;
  const places = placeProcesses(processIds(plan), { host: plan.host ?? '127.0.0.1', advertise: plan.advertise, hosts: plan.hosts });
  const ids = generateIdentities(plan, rng);
  const ports = await allocatePorts(plan, places);
  for (const sub of ['keys', 'config', 'data']) mkdirSync(join(plan.dir, sub), { recursive: true });
  const d = new DeploymentWriter(plan, rng, places, ports, ids);
  d.writeServer();
  d.writeProviders();
  d.writeChips();
  d.writeTerminals();
  d.writeTrust();
  return d.summary;
}

/** Every identity and master secret of a deployment. */
interface DeploymentIds {
  server: Identity;
  admin: Identity;
  issuerMaster: ReturnType<typeof randomSecret>;
  providers: Array<{ p: string; normal: Identity; migration: Identity; master: ReturnType<typeof randomSecret> }>;
  terminalIds: Map<string, Identity>;
  chipIds: Map<string, Identity>;
}

/** Draws every identity and master secret, and checks the pairing: each terminal's chip is listed, each chip in one phone at most. */
function generateIdentities(plan: DeploymentPlan, rng: Rng): DeploymentIds {
  const server = generateIdentity(rng);
  const admin = generateIdentity(rng);
  const issuerMaster = randomSecret(rng);
  const providers = plan.providers.map((p) => ({ p, normal: generateIdentity(rng), migration: generateIdentity(rng), master: randomSecret(rng) }));
  // Each phone's device key (its terminal's identity) and its chip's own identity: the chip answers only its
  // paired terminal; the server and the providers' normal SAMs take a terminal's name only with proof of its key.
  const terminalIds = new Map(plan.terminals.map((t) => [t.name, generateIdentity(rng)]));
  const chipIds = new Map(plan.chips.map((c) => [c, generateIdentity(rng)]));
  for (const t of plan.terminals) {
    if (!chipIds.has(t.chip)) throw new Error(`terminal ${t.name} holds chip ${t.chip}, which is not in the chip list`);
  }
  for (const c of plan.chips) {
    if (plan.terminals.filter((t) => t.chip === c).length > 1) throw new Error(`chip ${c} is in more than one terminal; a chip is paired with one phone`);
  }
  return { server, admin, issuerMaster, providers, terminalIds, chipIds };
}

/** Every process of the plan, by id, in the order ports are handed out. */
function processIds(plan: DeploymentPlan): string[] {
  return [
    'server',
    ...(plan.embeddedAdminSam ? [] : ['admin-sam']),
    ...plan.providers.map((p) => `provider-${p}`),
    ...plan.chips.map((c) => `chip-${c}`),
    ...plan.terminals.map((t) => `terminal-${t.name}`),
  ];
}

/** A port per process: the one its place names, else from the plan's base port on, or free ones the OS hands out (kept distinct). */
async function allocatePorts(plan: DeploymentPlan, places: Record<string, Placement>): Promise<Record<string, number>> {
  let next = plan.basePort ?? 0;
  // The OS may hand the same free port out twice in a row (bound, released, bound again): keep them distinct.
  const taken = new Set<number>();
  const port = async (host: string): Promise<number> => {
    if (plan.basePort) return next++;
    for (let tries = 0; ; tries++) {
      const p = await freePort(host);
      if (!taken.has(p) || tries >= 100) {
        taken.add(p);
        return p;
      }
    }
  };
  const ports: Record<string, number> = {};
  for (const [id, place] of Object.entries(places)) ports[id] = place.port ?? (await port(place.bind));
  checkDistinct(places, ports);
  return ports;
}

const rel = (kind: 'keys' | 'data', file: string) => `../${kind}/${file}`;

/** Writes each process's key file and config, and trust.json, into the deployment folder; keeps the summary. */
class DeploymentWriter {
  readonly summary: DeploymentSummary;
  private readonly dir: string;
  private readonly enrolledTerminals: Record<string, string>;
  private readonly readers: Record<string, { name: string; rights: Array<'spend'> }>;
  private readonly migrationSams: Record<string, { signPublic: string; boxPublic: string }>;

  constructor(
    private readonly plan: DeploymentPlan,
    private readonly rng: Rng,
    private readonly places: Record<string, Placement>,
    private readonly ports: Record<string, number>,
    private readonly ids: DeploymentIds,
  ) {
    const { terminalIds, providers, server } = ids;
    this.dir = plan.dir;
    this.enrolledTerminals = Object.fromEntries(plan.terminals.map((t) => [`terminal/${t.name}`, toB64(terminalIds.get(t.name)!.signPublic)]));
    this.readers = Object.fromEntries(
      plan.terminals.map((t) => [toB64(terminalIds.get(t.name)!.signPublic), { name: `terminal/${t.name}`, rights: ['spend' as const] }]),
    );
    this.migrationSams = Object.fromEntries(providers.map(({ p, migration }) => [`migration-sam/${p}`, pub(migration)]));
    this.summary = { dir: this.dir, processes: [], publicKeys: { server: pub(server) } };
  }

  /** Where peers dial a process: its advertised address, never the wildcard it may bind. */
  private url(id: string, path: string): string {
    return peerUrl(this.places[id]!, this.ports[id]!, path);
  }

  /** What a process listens on: its own bind address and port. */
  private listen(id: string): { host: string; port: number } {
    return { host: this.places[id]!.bind, port: this.ports[id]! };
  }

  private pairedWith(serial: string): { name: string; chip: string } | undefined {
    return this.plan.terminals.find((t) => t.chip === serial);
  }

  /** Writes a process's config (with the plan's timing and limits) and lists it in the summary. */
  private add(id: string, role: string, cfg: object): void {
    const { plan } = this;
    const file = join(this.dir, 'config', `${id}.json`);
    writeJson(file, { ...cfg, ...this.tlsOf(id), ...(plan.timing ? { timing: plan.timing } : {}), ...(plan.limits ? { limits: plan.limits } : {}) });
    this.summary.processes.push({ id, role, config: file, port: this.ports[id]!, bind: this.places[id]!.bind, address: this.places[id]!.address });
  }

  /** A process's own certificate (it serves wss://) and the deployment CA it checks its wss:// peers against, from the deployment file. */
  private tlsOf(id: string): { tls?: { cert: string; key: string }; ca?: string } {
    const tls = this.places[id]!.tls;
    const ca = this.plan.hosts?.ca;
    return { ...(tls ? { tls } : {}), ...(ca ? { ca } : {}) };
  }

  private keyFile(id: string): string {
    return join(this.dir, 'keys', `${id}.key.json`);
  }

  /** The server's and the admin SAM's key files, and their configs (the admin SAM inside the server's, if embedded). */
  writeServer(): void {
    const { plan, rng, migrationSams } = this;
    const { server, admin, issuerMaster, providers } = this.ids;
    writeKeyFile(this.keyFile('server'), { kind: 'server', identity: exportIdentity(server), operatorToken: operatorToken(rng) });
    writeKeyFile(this.keyFile('admin-sam'), {
      kind: 'admin-sam',
      identity: exportIdentity(admin),
      issuerMaster: toB64(issuerMaster.reveal()),
      operatorToken: operatorToken(rng),
    });
    this.summary.publicKeys['admin-sam'] = pub(admin);
    const serverCfg: ServerConfig = {
      role: 'server',
      id: 'server',
      dataDir: rel('data', 'server'),
      keyFile: rel('keys', 'server.key.json'),
      listen: this.listen('server'),
      adminSam: plan.embeddedAdminSam
        ? { embedded: true, dataDir: rel('data', 'admin-sam'), keyFile: rel('keys', 'admin-sam.key.json'), migrationSams }
        : { url: this.url('admin-sam', '/admin-sam'), signPublic: toB64(admin.signPublic) },
      migrationSams: Object.fromEntries(
        providers.map(({ p, migration }) => [p, { url: this.url(`provider-${p}`, '/migration-sam'), signPublic: toB64(migration.signPublic) }]),
      ),
      terminals: this.enrolledTerminals,
      ...(plan.scrypt ? { scrypt: plan.scrypt } : {}),
    };
    this.add('server', 'server', serverCfg);
    if (plan.embeddedAdminSam) return;
    const cfg: AdminSamConfig = {
      role: 'admin-sam',
      id: 'admin-sam',
      dataDir: rel('data', 'admin-sam'),
      keyFile: rel('keys', 'admin-sam.key.json'),
      listen: this.listen('admin-sam'),
      trustedServers: [toB64(server.signPublic)],
      migrationSams,
    };
    this.add('admin-sam', 'admin-sam', cfg);
  }

  /** Each provider's process: its normal and migration SAMs' identities and master key, the servers and readers it trusts. */
  writeProviders(): void {
    const { plan, rng } = this;
    const { server, admin, providers } = this.ids;
    for (const { p, normal, migration, master } of providers) {
      const id = `provider-${p}`;
      writeKeyFile(this.keyFile(id), {
        kind: 'provider',
        normal: exportIdentity(normal),
        migration: exportIdentity(migration),
        providerMaster: toB64(master.reveal()),
        operatorToken: operatorToken(rng),
      });
      this.summary.publicKeys[`normal-sam/${p}`] = pub(normal);
      this.summary.publicKeys[`migration-sam/${p}`] = pub(migration);
      const cfg: ProviderConfig = {
        role: 'provider',
        id,
        dataDir: rel('data', id),
        keyFile: rel('keys', `${id}.key.json`),
        listen: this.listen(id),
        provider: p,
        adminSamSignPublic: toB64(admin.signPublic),
        servers: { [toB64(server.signPublic)]: plan.rights?.[p] ?? ['upload', 'download', 'clear'], ...plan.extraTrustedServers },
        readers: this.readers,
      };
      this.add(id, 'provider', cfg);
    }
  }

  /** Each chip: K_chip as the issuer derived it at manufacture, its identity, and the terminal it is paired with. */
  writeChips(): void {
    const { rng } = this;
    const { issuerMaster, chipIds, terminalIds } = this.ids;
    for (const serial of this.plan.chips) {
      const id = `chip-${serial}`;
      // Manufacturing: the issuer derives K_chip from its master and writes it into the chip.
      writeKeyFile(this.keyFile(id), {
        kind: 'chip',
        serial,
        kChip: toB64(deriveChipKey(issuerMaster, serial).reveal()),
        identity: exportIdentity(chipIds.get(serial)!),
        operatorToken: operatorToken(rng),
      });
      // Pairing: made when the phone is set up; a chip in no phone answers nobody until it is paired.
      const phone = this.pairedWith(serial);
      const terminal = phone
        ? { name: `terminal/${phone.name}`, signPublic: toB64(terminalIds.get(phone.name)!.signPublic) }
        : { name: 'terminal/unpaired', signPublic: toB64(new Uint8Array(32)) };
      const cfg: ChipConfig = {
        role: 'chip',
        id,
        dataDir: rel('data', id),
        keyFile: rel('keys', `${id}.key.json`),
        listen: this.listen(id),
        serial,
        terminal,
      };
      this.add(id, 'chip', cfg);
    }
  }

  /** Each terminal: its control token and device key, and where its server, chip and normal SAMs are. */
  writeTerminals(): void {
    const { rng } = this;
    const { server, terminalIds, chipIds, providers } = this.ids;
    for (const t of this.plan.terminals) {
      const id = `terminal-${t.name}`;
      writeKeyFile(this.keyFile(id), {
        kind: 'terminal',
        controlToken: toB64(rng.bytes(24)),
        identity: exportIdentity(terminalIds.get(t.name)!),
        operatorToken: operatorToken(rng),
      });
      const cfg: TerminalConfig = {
        role: 'terminal',
        id,
        dataDir: rel('data', id),
        keyFile: rel('keys', `${id}.key.json`),
        listen: this.listen(id),
        name: t.name,
        server: { url: this.url('server', '/terminal'), signPublic: toB64(server.signPublic) },
        chip: { url: this.url(`chip-${t.chip}`, '/chip'), serial: t.chip, signPublic: toB64(chipIds.get(t.chip)!.signPublic) },
        normalSams: Object.fromEntries(
          providers.map(({ p, normal }) => [p, { url: this.url(`provider-${p}`, '/normal-sam'), signPublic: toB64(normal.signPublic) }]),
        ),
      };
      this.add(id, 'terminal', cfg);
    }
  }

  /** trust.json: every public key, and who trusts which, with which rights (no secret). */
  writeTrust(): void {
    const { plan, summary, readers } = this;
    const { server, terminalIds, chipIds, providers } = this.ids;
    for (const t of plan.terminals) summary.publicKeys[`terminal/${t.name}`] = pub(terminalIds.get(t.name)!);
    for (const c of plan.chips) summary.publicKeys[`chip/${c}`] = pub(chipIds.get(c)!);
    writeJson(join(this.dir, 'trust.json'), {
      note: 'public keys and rights only; secrets are in keys/*.key.json (mode 0600)',
      keys: summary.publicKeys,
      trust: {
        'admin-sam': { obeys: [toB64(server.signPublic)] },
        server: { terminals: this.enrolledTerminals },
        ...Object.fromEntries(
          providers.map(({ p }) => [
            `provider-${p}`,
            { servers: { [toB64(server.signPublic)]: plan.rights?.[p] ?? ['upload', 'download', 'clear'] }, readers },
          ]),
        ),
        ...Object.fromEntries(plan.chips.map((c) => [`chip-${c}`, { pairedWith: this.pairedWith(c) ? `terminal/${this.pairedWith(c)!.name}` : null }])),
      },
    });
  }
}
