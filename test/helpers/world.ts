/**
 * A small embedded world for tests: one server, one admin SAM, N providers,
 * a user with a source chip (one item per provider, each with a random
 * 16-byte marker as its `ref`) and an empty destination chip, both
 * registered, each in its own terminal. Everything real: crypto, LMDB files
 * in a temp folder (removed by cleanup()), in-memory links.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChipRuntime } from '../../src/actors/chip.actor.ts';
import type { Right } from '../../src/actors/migrationSam.actor.ts';
import { EmbeddedSystem, type SystemOptions } from '../../src/actors/system.ts';
import type { TerminalRuntime } from '../../src/actors/terminal.actor.ts';
import type { ValueItem, ValueKind } from '../../src/actors/value.ts';
import { systemRng, toHex } from '../../src/crypto/index.ts';
import { createLogger, memorySink } from '../../src/log.ts';
import { forgetTempKeys, watchTempKeys } from './secrets.ts';

export const TEST_SCRYPT = { N: 2 ** 10, r: 8, p: 1 };

export interface Recorded {
  party: string;
  direction: 'in' | 'out';
  peer: string;
  bytes: Uint8Array;
}

export interface World {
  dir: string;
  system: EmbeddedSystem;
  user: string;
  password: string;
  providers: string[];
  values: ValueItem[];
  source: ChipRuntime;
  destination: ChipRuntime;
  oldPhone: TerminalRuntime;
  newPhone: TerminalRuntime;
  envelopes: Recorded[];
  logLines: string[];
  /** Called after every envelope a party receives (invariant checks). */
  onMessage: Array<() => void>;
  cleanup(): Promise<void>;
}

const KINDS: ValueKind[] = ['emoney', 'transit', 'ticket', 'points'];

export function valueFor(kind: ValueKind, i: number): ValueItem {
  const ref = toHex(systemRng.bytes(16));
  switch (kind) {
    case 'emoney':
      return { kind, currency: 'JPY', balance: 10_000 + i, ref };
    case 'transit':
      return { kind, line: 'Chuo', balance: 2_000 + i, ref };
    case 'ticket':
      return { kind, event: `Show ${i}`, seat: `B-${i}`, used: false, ref };
    case 'points':
      return { kind, program: 'Miles', balance: 500 + i, ref };
  }
}

export interface WorldOptions {
  items: number;
  rights?: Record<string, Right[]>;
  untrustingProviders?: string[];
  record?: boolean;
  register?: boolean;
  system?: Partial<SystemOptions>;
}

export async function buildWorld(opts: WorldOptions): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-test-'));
  const providers = Array.from({ length: opts.items }, (_, i) => `p${i}-${KINDS[i % KINDS.length]}`);
  const envelopes: Recorded[] = [];
  const onMessage: Array<() => void> = [];
  const sink = memorySink();
  const watchTemp = watchTempKeys(dir);
  const system = await EmbeddedSystem.start({
    dataDir: dir,
    providers,
    scrypt: TEST_SCRYPT,
    log: createLogger({ level: 'debug', sink }),
    rights: opts.rights,
    untrustingProviders: opts.untrustingProviders,
    envelopeTap: (party, direction, peer, bytes) => {
      if (opts.record) envelopes.push({ party, direction, peer, bytes });
      if (direction === 'in') for (const f of onMessage) f();
    },
    ...opts.system,
    // The admin SAM deletes temp keys once their items are settled; secret scans still need them (secrets.ts).
    onPartyStarted: (party) => {
      watchTemp(party);
      opts.system?.onPartyStarted?.(party);
    },
  });
  const user = 'alice';
  const password = `pw-${toHex(systemRng.bytes(8))}`;
  await system.server.createUser(user, password);
  const source = await system.addChip('SRC-1');
  const destination = await system.addChip('DST-1');
  const oldPhone = await system.addTerminal('old');
  const newPhone = await system.addTerminal('new');
  system.insertChip(oldPhone, source);
  system.insertChip(newPhone, destination);
  const values = providers.map((_, i) => valueFor(KINDS[i % KINDS.length]!, i));
  await system.issue(
    source,
    providers.map((p, i) => ({ area: p, provider: p, value: values[i]! })),
  );
  for (const t of [oldPhone, newPhone]) {
    system.connectToServer(t);
    await t.login(user, password);
    if (opts.register !== false) await t.register();
  }
  for (const p of providers) {
    system.connectReader(oldPhone, p);
    system.connectReader(newPhone, p);
  }
  return {
    dir,
    system,
    user,
    password,
    providers,
    values,
    source,
    destination,
    oldPhone,
    newPhone,
    envelopes,
    logLines: sink.lines,
    onMessage,
    async cleanup() {
      onMessage.length = 0;
      await system.stop();
      forgetTempKeys(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until every party's queue is empty (messages in flight are delivered by setImmediate). */
export async function settle(world: World, rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise((r) => setImmediate(r));
    await Promise.all(world.system.parties().map((p) => p.idle()));
  }
}
