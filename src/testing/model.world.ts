/**
 * The world a model path of the migration statechart runs in: what the path
 * needs of it (read from its events and states), and the real embedded
 * system built for it — real parties, real crypto, real LMDB in the folder
 * given — with alice's source chip SRC on the old phone, her empty
 * destination DST on the new one, a third phone to cancel from, and the
 * providers' readers.
 */
import type { EventObject } from 'xstate';
import type { ChipRuntime } from '../actors/chip.actor.ts';
import { EmbeddedSystem, type SystemOptions } from '../actors/system.ts';
import type { TerminalRuntime } from '../actors/terminal.actor.ts';
import type { ValueItem } from '../actors/value.ts';
import { type Rng, toHex } from '../crypto/index.ts';
import { demoValue } from '../fixtures/demo.ts';
import { createLogger } from '../log.ts';
import { FAST_TIMING } from '../timing.ts';
import { PROVIDERS } from './model.steer.ts';

const SCRYPT = { N: 2 ** 10, r: 8, p: 1 };
/** The preflight's own deadline in these runs (short, so a path can let it pass). */
const PREFLIGHT_MS = 1_000;
/** Back-off of the paths where an outside event lands during a back-off (so it cannot be overtaken by RETRY_DUE). */
const SLOW_BACK_OFF = { retryBaseMs: 4_000, retryCapMs: 4_000 };
/** The deadline a path that lets the destination's deadline pass gives its migration (ms). */
const SHORT_DEADLINE_MS = 300;

/** What a path needs of its world. */
export interface PathWorld {
  variant: string | undefined;
  /** Who owns the source chip as the admin SAM identifies it. */
  owner: string;
  /** The source's areas: all holding an item, one only formatted, or none. */
  areas: 'ok' | 'partial' | 'empty';
  /** A provider refuses the preflight (it has no download right). */
  refusing: boolean;
  /** The admin SAM commits and its answer is lost (a cancel came first on the path). */
  commitReplyLost: boolean;
  /** The destination's deadline passes while the migration waits for it. */
  deadline: boolean;
  /** The user brings the wrong phone first in S9. */
  wrongDestination: boolean;
  /** Something from outside lands while the migration backs off. */
  eventDuringBackOff: boolean;
}

/** Reads the world from the path's events and the model's state before each of them. */
export function pathWorld(variant: string | undefined, events: readonly EventObject[], before: readonly string[]): PathWorld {
  const e = events as Array<EventObject & Record<string, unknown>>;
  const src = e.find((x) => x.type === 'CHIP_IDENTIFIED' && x.chip === 'source');
  const areas = (src?.areas as Array<{ state: string }> | undefined) ?? [];
  return {
    variant,
    owner: src ? ((src.owner as string | null) ?? 'nobody') : 'alice',
    areas: areas.length === 0 && src ? 'empty' : areas.some((a) => a.state !== 'mainActive') ? 'partial' : 'ok',
    refusing: e.some((x) => x.type === 'PROVIDER_REFUSED'),
    commitReplyLost: e.some((x, i) => x.type === 'DECIDED' && x.decision === 'committed' && e.slice(0, i).some((y) => y.type === 'CANCEL_REQUESTED')),
    deadline: e.some((x, i) => x.type === 'DEADLINE_PASSED' && before[i] === 'awaitingDestination'),
    wrongDestination: e.some((x, i) => x.type === 'CHIP_IDENTIFIED' && x.serial !== 'DST' && before[i] === 'destinationPhase.identifying'),
    // The back-off must outlast the round trip that brings the outside event, however loaded the machine is
    // (with FAST_TIMING's 30 ms it did not, on a busy CI box).
    eventDuringBackOff: e.some((x, i) => /Retry$/.test(before[i]!) && x.type !== 'RETRY_DUE'),
  };
}

/** The hooks the runner watches and steers the system through. */
export type WorldHooks = Pick<SystemOptions, 'inspect' | 'intercept' | 'envelopeTap'>;

/** Starts the embedded system of a path's world in `dataDir`. */
export function startSystem(dataDir: string, rng: Rng, world: PathWorld, hooks: WorldHooks): Promise<EmbeddedSystem> {
  return EmbeddedSystem.start({
    dataDir,
    providers: PROVIDERS,
    rng,
    log: createLogger({ level: 'silent' }),
    scrypt: SCRYPT,
    timing: { ...FAST_TIMING, preflightMs: PREFLIGHT_MS, ...(world.eventDuringBackOff ? SLOW_BACK_OFF : {}) },
    deadlineMs: 60_000,
    rights: world.refusing ? { transit: ['upload', 'clear'] } : undefined,
    ...hooks,
  });
}

const kindOf = (provider: string) => (provider === 'emoney' ? 'emoney' : 'transit');

/** The source's items as the path's world has them (every area, one formatted only, or none). */
async function fillSource(system: EmbeddedSystem, rng: Rng, world: PathWorld, src: ChipRuntime): Promise<ValueItem[]> {
  if (world.areas === 'empty') return [];
  const issued = PROVIDERS.map((p, i) => demoValue(kindOf(p), i, toHex(rng.bytes(16))));
  const formatOnly = (i: number) => world.areas === 'partial' && i === 1;
  await system.issue(
    src,
    PROVIDERS.map((p, i) => ({ area: p, provider: p, value: issued[i]!, formatOnly: formatOnly(i) })),
  );
  return issued.filter((_v, i) => !formatOnly(i));
}

/**
 * Users, chips and phones of the world, registered; resolves with the items the source holds (what must be
 * neither lost nor spendable twice) once the migration (or the issuance) has been asked for.
 */
export async function furnish(system: EmbeddedSystem, rng: Rng, world: PathWorld): Promise<ValueItem[]> {
  for (const u of ['alice', 'bob']) await system.server.createUser(u, 'pw');
  const src = await system.addChip('SRC');
  const dst = await system.addChip('DST');
  const values = await fillSource(system, rng, world, src);
  if (world.variant === 'named-destination-full') {
    await system.issue(dst, [{ area: 'emoney', provider: 'emoney', value: demoValue('emoney', 9, toHex(rng.bytes(16))) }]);
  }
  const phone = async (name: string, chip: ChipRuntime | undefined, user: string): Promise<TerminalRuntime> => {
    const t = await system.addTerminal(name);
    if (chip) system.insertChip(t, chip);
    system.connectToServer(t);
    await t.login(user, 'pw');
    return t;
  };
  const oldPhone = await phone('old', src, 'alice');
  const newPhone = await phone('new', dst, 'alice');
  await phone('helper', undefined, 'alice');
  if (world.owner === 'alice') await oldPhone.register();
  if (world.owner === 'bob') await (await phone('bob', src, 'bob')).register();
  await newPhone.register();
  for (const p of PROVIDERS) system.connectReader(oldPhone, p);
  return values;
}

/** The user asks for the migration (or, in the issuance variant, the new phone for the providers' orders); not awaited. */
export function begin(system: EmbeddedSystem, rng: Rng, world: PathWorld): void {
  const oldPhone = system.party<TerminalRuntime>('terminal/old');
  const newPhone = system.party<TerminalRuntime>('terminal/new');
  if (world.variant === 'issuance') {
    // The providers sign one order each for DST (the model's ISSUANCE_INPUT): the new phone asks for them.
    const orders = PROVIDERS.map((p, i) =>
      system.issueOrder({ provider: p, serial: 'DST', area: p, value: demoValue(kindOf(p), 20 + i, toHex(rng.bytes(16))) }),
    );
    void newPhone.issue(orders).catch(() => {});
    return;
  }
  const destination = world.variant === 'named-destination-unusable' ? 'NOPE' : world.variant === 'named-destination-full' ? 'DST' : undefined;
  // The selective variants (src/model/models.ts): what the user chose on migrate-out.
  const chosen = world.variant === 'leave-behind' ? { leaveBehind: 'unavailable' as const } : world.variant === 'only-unknown' ? { only: ['nosuch'] } : {};
  void oldPhone
    .migrateOut({ ...(destination ? { destination } : {}), ...(world.deadline ? { deadlineMs: SHORT_DEADLINE_MS } : {}), ...chosen })
    .catch(() => {});
}
