/**
 * The secrets of an embedded system that some other code starts and stops
 * (`valmove demo`'s runDemo, the simulator's runSeed), for a secret-hygiene
 * scan of what that code leaves behind. While installed, EmbeddedSystem.start
 * hands the system a random source that keeps its 32-byte draws
 * (keyCapture.ts), optionally a logger of the test's own, and watches the
 * system it made: users created (password, login proof, verifier), chips
 * added, items issued, and every temp key as the admin SAM stores it (it
 * deletes each once its item is settled). Needles are read while the system
 * runs: its stores may be gone by the time the caller returns.
 */
import { EmbeddedSystem, type SystemOptions } from '../../src/actors/system.ts';
import type { ValueItem } from '../../src/actors/value.ts';
import { systemRng } from '../../src/crypto/index.ts';
import type { Logger } from '../../src/log.ts';
import type { KeyCapture } from './keyCapture.ts';
import {
  caughtTempKeys,
  chipKeyNeedles,
  NEEDLE_BYTES_MIN,
  systemMasters,
  systemNeedles,
  tempKeyNeedles,
  valueNeedles,
  watchTempKeys,
  type Needle,
} from './secrets.ts';

export interface SystemSpy {
  /** Every needle of every system started while installed (deduplicated by bytes), `more`, and the run's captured keys. */
  needles(more?: Needle[]): Needle[];
  /** Needles left out because they are too short to search for (the simulator's password "pw"). */
  tooShort(): string[];
  readonly systems: number;
  restore(): void;
}

export function spySystems(capture: KeyCapture, opts: { log?: Logger } = {}): SystemSpy {
  const original = EmbeddedSystem.start;
  const found = new Map<string, Needle>();
  const values: ValueItem[] = [];
  const serials: string[] = [];
  const masters: Array<ReturnType<typeof systemMasters>> = [];
  const short: string[] = [];
  /** Each spied system with its data folder, whose temp keys were caught as they were stored. */
  const spied: Array<{ system: EmbeddedSystem; dataDir: string }> = [];
  let systems = 0;
  const keep = (ns: Needle[]) => {
    for (const n of ns) {
      if (n.bytes.length < NEEDLE_BYTES_MIN) short.push(n.name);
      else if (!found.has(Buffer.from(n.bytes).toString('hex'))) found.set(Buffer.from(n.bytes).toString('hex'), n);
    }
  };
  EmbeddedSystem.start = async (o: SystemOptions) => {
    const watch = watchTempKeys(o.dataDir);
    const system = await original.call(EmbeddedSystem, {
      ...o,
      rng: capture.rng(o.rng ?? systemRng),
      ...(opts.log ? { log: opts.log } : {}),
      onPartyStarted: (party) => {
        watch(party);
        o.onPartyStarted?.(party);
      },
    });
    spied.push({ system, dataDir: o.dataDir });
    systems++;
    masters.push(systemMasters(system));
    keep(systemNeedles(system, { users: [], values: [], serials: [] }));
    const server = system.server;
    const createUser = server.createUser.bind(server);
    server.createUser = async (user: string, password: string) => {
      await createUser(user, password);
      keep(systemNeedles(system, { users: [{ user, password }], values: [], serials: [] }));
    };
    // A chip's own key and a phone's device key are made as each is added: their needles (owned by them) after.
    const addChip = system.addChip.bind(system);
    system.addChip = async (serial: string) => {
      serials.push(serial);
      const chip = await addChip(serial);
      keep(systemNeedles(system, { users: [], values: [], serials: [] }));
      return chip;
    };
    const addTerminal = system.addTerminal.bind(system);
    system.addTerminal = async (name: string) => {
      const terminal = await addTerminal(name);
      keep(systemNeedles(system, { users: [], values: [], serials: [] }));
      return terminal;
    };
    const issue = system.issue.bind(system);
    system.issue = async (chip, items) => {
      values.push(...items.map((i) => i.value));
      return issue(chip, items);
    };
    // An issue order's item is sealed to its migration SAM: its plaintext must show up nowhere else.
    const issueOrder = system.issueOrder.bind(system);
    system.issueOrder = (o) => {
      values.push(o.value);
      return issueOrder(o);
    };
    return system;
  };
  return {
    needles(more = []) {
      keep(more);
      for (const m of masters) keep(chipKeyNeedles(m.issuer, m.providers, serials));
      for (const s of spied) keep(tempKeyNeedles(caughtTempKeys(s.dataDir), s.system.chips.keys()));
      keep(valueNeedles(values, []));
      const known = [...found.values()];
      return [...known, ...capture.needles(known)];
    },
    tooShort: () => [...new Set(short)],
    get systems() {
      return systems;
    },
    restore() {
      EmbeddedSystem.start = original;
    },
  };
}
