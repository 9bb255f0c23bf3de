/**
 * The area key lifecycle (protocol.md §2), the key-swap statechart:
 *
 *   absent --FORMAT(temp) S10--> provisioned --DOWNLOAD(data, main) S14--> loaded --ACTIVATE S16--> mainActive
 *   mainActive --LOCK(temp) S3--> locked --RESTORE--> mainActive   (rollback, source)
 *   provisioned | loaded --WIPE--> absent                          (rollback, destination)
 *   locked --WIPE--> absent                                         (after commit, source)
 *   mainActive --WIPE_REVOKED--> absent                            (a found-again lost chip, under its provider's revocation)
 *
 * Every arrow is a command in an authenticated session and nothing else
 * changes an area. The chip runs every command through this machine inside
 * the LMDB transaction that writes the area (src/actors/chip.actor.ts), so
 * the chart is the rule, not a picture of it.
 *
 * Sessions open only where the active slot holds the key they use:
 * OPEN_UPLOAD (temp, locked), OPEN_DOWNLOAD (temp, provisioned; and loaded,
 * where only the same download may be repeated), OPEN_NORMAL (main, mainActive). UPLOAD and USE are self-loops: they read or change the
 * value, never the keys.
 */
import { getNextSnapshot, setup } from 'xstate';

export const AREA_MACHINE_VERSION = 2;

/** Areas one chip can hold (a secure element's file system is small). */
export const CHIP_AREAS_MAX = 32;

export const AREA_STATES = ['absent', 'provisioned', 'loaded', 'mainActive', 'locked'] as const;
export type AreaState = (typeof AREA_STATES)[number];

export const AREA_COMMANDS = ['FORMAT', 'DOWNLOAD', 'ACTIVATE', 'LOCK', 'RESTORE', 'WIPE', 'WIPE_REVOKED'] as const;
export type AreaCommand = (typeof AREA_COMMANDS)[number];

export const AREA_SESSION_EVENTS = ['OPEN_UPLOAD', 'OPEN_DOWNLOAD', 'OPEN_NORMAL', 'UPLOAD', 'USE'] as const;
export type AreaSessionEvent = (typeof AREA_SESSION_EVENTS)[number];

export type AreaEvent = { type: AreaCommand | AreaSessionEvent };

/** Which key slot is active in each state; `null` means no key at all. */
export const ACTIVE_SLOT: Record<AreaState, 'main' | 'temp' | null> = {
  absent: null,
  provisioned: 'temp',
  loaded: 'temp',
  mainActive: 'main',
  locked: 'temp',
};

/** Which keys an area holds in each state (the invariants chipAreas.ts asserts on every write): never the keys, only the slots. */
export type AreaKeys = 'none' | 'temp' | 'main' | 'both';
export const AREA_KEYS: Record<AreaState, AreaKeys> = {
  absent: 'none',
  provisioned: 'temp',
  loaded: 'both',
  mainActive: 'main',
  locked: 'both',
};

export const areaMachine = setup({
  types: { events: {} as AreaEvent },
}).createMachine({
  id: 'area',
  initial: 'absent',
  states: {
    absent: {
      description: 'No keys, no data.',
      on: { FORMAT: 'provisioned' },
    },
    provisioned: {
      description: 'Formatted with the temp key only (S10); a download session may open.',
      on: { DOWNLOAD: 'loaded', WIPE: 'absent', OPEN_DOWNLOAD: 'provisioned' },
    },
    loaded: {
      description: 'Data and main key installed, temp key still active: not spendable yet.',
      // A download session may open again, only to repeat the same download when its answer was lost
      // (the chip answers a repeated (migration, step) with the stored reply; any other is refused).
      on: { ACTIVATE: 'mainActive', WIPE: 'absent', OPEN_DOWNLOAD: 'loaded' },
    },
    mainActive: {
      description: 'Main key active: spendable through the normal SAM.',
      // WIPE_REVOKED: only the admin SAM sends it, only with the provider's signed revocation of this area (adminLostWipe.ts).
      on: { LOCK: 'locked', OPEN_NORMAL: 'mainActive', USE: 'mainActive', WIPE_REVOKED: 'absent' },
    },
    locked: {
      description: 'Temp key active (S3): unusable normally, the backup; an upload session may open.',
      on: { RESTORE: 'mainActive', WIPE: 'absent', OPEN_UPLOAD: 'locked', UPLOAD: 'locked' },
    },
  },
});

/**
 * Whether the lifecycle allows `event` in `state`, and the state it leads to
 * (null: refused). The chip asks this inside the transaction of every
 * command, so the chart above is the rule.
 */
export function areaTransition(state: AreaState, event: AreaCommand | AreaSessionEvent): AreaState | null {
  const snap = areaMachine.resolveState({ value: state, context: undefined as never });
  if (!snap.can({ type: event })) return null;
  return getNextSnapshot(areaMachine, snap, { type: event }).value as AreaState;
}
