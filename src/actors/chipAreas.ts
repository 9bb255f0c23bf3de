/**
 * What the chip's commands do to its areas, each in the LMDB transaction of
 * the turn that runs it: whether a command may change an area is
 * area.machine.ts (areaTransition), evaluated here; every record written is
 * checked against the invariants of its state first (a violation is a bug,
 * and stops the chip). The sessions that carry the commands: chip.actor.ts.
 */
import type { InspectedSnapshotEvent } from 'xstate';
import { fromB64, keyCheckValue, Secret, toB64, type SessionBinding } from '../crypto/index.ts';
import { areaMachine, areaTransition, CHIP_AREAS_MAX, type AreaCommand, type AreaState } from '../machines/area.machine.ts';
import type { ErrorCode } from '../protocol/errors.ts';
import type { AreaRecord, ChipMemory } from '../store/chip.store.ts';
import type { ChipCommand, ChipReply } from '../transport/chip.frames.ts';
import type { TurnContext } from './runtime.ts';

/** Checks the area invariants the lifecycle promises; a violation is a bug and stops the chip. */
export function assertAreaInvariant(rec: AreaRecord): void {
  const fail = (why: string) => {
    throw new Error(`area ${rec.area} invariant broken: ${why}`);
  };
  switch (rec.state) {
    case 'absent':
      if (rec.data || rec.mainKey || rec.tempKey) fail('an absent area holds data or keys');
      break;
    case 'provisioned':
      if (!rec.tempKey || rec.mainKey || rec.data) fail('a provisioned area holds exactly a temp key');
      break;
    case 'loaded':
      if (!rec.tempKey || !rec.mainKey || !rec.data) fail('a loaded area holds data, a main key and a temp key');
      break;
    case 'mainActive':
      if (!rec.mainKey || !rec.data || rec.tempKey) fail('a mainActive area holds data and a main key, and no temp key');
      break;
    case 'locked':
      if (!rec.tempKey || !rec.mainKey || !rec.data) fail('a locked area holds data, its main key and a temp key');
      break;
  }
}

/** The actor key an area is reported under (run records, the live page): `area:<area>`, of its chip's party. */
export const AREA_ACTOR_PREFIX = 'area:';

/**
 * An area's state as the inspection record XState gives for an actor's move,
 * so the recorder and the live page take an area like any actor (issue 20:
 * the key swap, seen). `by` is the command that moved it, with its (migration,
 * step); none for a report of the state as it is (power-on). Labels only: the
 * recorder keeps the state, the command's name, migration and step.
 */
export function areaInspection(id: string, state: AreaState, by?: { op: string; mig: string; step: string }): InspectedSnapshotEvent {
  const snapshot = areaMachine.resolveState({ value: state, context: undefined as never });
  return {
    type: '@xstate.snapshot',
    rootId: id,
    actorRef: { sessionId: id, send: () => undefined, getSnapshot: () => snapshot },
    snapshot,
    event: by ? { type: by.op.toUpperCase(), mig: by.mig, step: by.step } : { type: 'xstate.init' },
  };
}

/** Told of each area a turn moves to another state (the chip reports it once the turn is on disk). */
export type AreaMoved = (turn: TurnContext, rec: AreaRecord) => void;

/** An admin command on one area. */
type AreaCommandOf = Extract<ChipCommand, { op: 'format' | 'lock' | 'activate' | 'restore' | 'wipe' | 'wipeRevoked' }>;

/** The chip's refusal of a command: an answer in its session like any other. */
export function refusal(code: ErrorCode, message: string): ChipReply {
  return { ok: false, code, message };
}

/** A chip's areas, under the commands of its open session. */
export class ChipAreas {
  constructor(
    private readonly memory: ChipMemory,
    /** The chip's serial (its key check values are bound to it). */
    private readonly serial: () => string,
    private readonly moved: AreaMoved = () => undefined,
  ) {}

  private kcv(key: Uint8Array, area: string): string {
    return toB64(keyCheckValue(Secret.of(key), this.serial(), area));
  }

  private save(turn: TurnContext, rec: AreaRecord): void {
    assertAreaInvariant(rec);
    const before = this.memory.get(rec.area)?.state ?? 'absent';
    if (before !== rec.state) this.moved(turn, rec);
    const areas = this.memory.areas;
    // A wiped area stays as an absent record that remembers its last command, so a repeated wipe gets the same answer.
    turn.write(() => areas.put(rec.area, rec));
  }

  execute(turn: TurnContext, b: SessionBinding, cmd: ChipCommand): ChipReply {
    switch (cmd.op) {
      case 'list':
        return {
          ok: true,
          areas: this.memory
            .list()
            .filter((a) => a.state !== 'absent')
            .map((a) => ({ area: a.area, provider: a.provider, state: a.state })),
        };
      case 'format':
      case 'lock':
      case 'activate':
      case 'restore':
      case 'wipe':
      case 'wipeRevoked':
        return this.batch(turn, [cmd], false);
      case 'batch':
        return this.batch(turn, cmd.cmds, true);
      case 'read': {
        const rec = this.memory.get(b.area)!;
        const event = b.purpose === 'upload' ? 'UPLOAD' : 'USE';
        if (areaTransition(rec.state, event) === null) return refusal('AREA_STATE', `area ${rec.area} is ${rec.state}`);
        return { ok: true, data: toB64(rec.data!), counter: rec.counter };
      }
      case 'write': {
        const rec = this.memory.get(b.area)!;
        if (areaTransition(rec.state, 'USE') === null) return refusal('AREA_STATE', `area ${rec.area} is ${rec.state}`);
        if (cmd.counter !== rec.counter) {
          return refusal('STALE_COUNTER', `area ${rec.area} is at counter ${rec.counter}, the write was prepared at ${cmd.counter}`);
        }
        const next: AreaRecord = { ...rec, data: fromB64(cmd.data), counter: rec.counter + 1 };
        this.save(turn, next);
        return { ok: true, counter: next.counter };
      }
      case 'download': {
        const rec = this.memory.get(b.area)!;
        if (rec.last && rec.last.mig === cmd.mig && rec.last.step === cmd.step && rec.last.op === 'download') return rec.last.reply;
        if (rec.holder !== null && rec.holder !== cmd.mig) return refusal('AREA_HELD', `area ${rec.area} is held by another migration`);
        const state = areaTransition(rec.state, 'DOWNLOAD');
        if (state === null) return refusal('AREA_STATE', `area ${rec.area} is ${rec.state}; DOWNLOAD needs provisioned`);
        const key = fromB64(cmd.key);
        const reply: ChipReply = { ok: true, kcv: this.kcv(key, rec.area) };
        this.save(turn, { ...rec, state, data: fromB64(cmd.data), mainKey: key, counter: 0, last: { mig: cmd.mig, step: cmd.step, op: 'download', reply } });
        return reply;
      }
      case 'close':
        return { ok: true };
    }
  }

  /**
   * Area commands applied together, all or none: each is planned against the
   * areas as the commands before it left them; the first refusal refuses the
   * whole batch (naming its command) and nothing is written; otherwise every
   * area is written in this turn's one transaction. One command alone is a
   * batch of one, answered with its own reply.
   */
  private batch(turn: TurnContext, cmds: readonly AreaCommandOf[], wrapped: boolean): ChipReply {
    const planned = new Map<string, AreaRecord>();
    const view = {
      get: (area: string) => planned.get(area) ?? this.memory.get(area),
      held: () => {
        const areas = new Map(this.memory.list().map((a) => [a.area, a] as const));
        for (const [area, rec] of planned) areas.set(area, rec);
        return [...areas.values()].filter((a) => a.state !== 'absent').length;
      },
    };
    const replies: Array<Extract<ChipReply, { ok: true }>> = [];
    for (const [i, cmd] of cmds.entries()) {
      const { reply, next } = this.plan(cmd, view);
      if (!reply.ok) return wrapped ? refusal(reply.code, `command ${i + 1} of ${cmds.length} (${cmd.op} ${cmd.area}): ${reply.message}`) : reply;
      if (next) planned.set(next.area, next);
      replies.push(reply);
    }
    for (const rec of planned.values()) this.save(turn, rec);
    return wrapped ? { ok: true, replies } : replies[0]!;
  }

  /** What one area command would do: its reply, and the record to write (none for a repeat or a no-op). */
  private plan(cmd: AreaCommandOf, view: { get(area: string): AreaRecord | undefined; held(): number }): { reply: ChipReply; next?: AreaRecord } {
    const existing = view.get(cmd.area);
    const rec: AreaRecord = existing ?? {
      area: cmd.area,
      provider: cmd.op === 'format' ? cmd.provider : '-',
      state: 'absent',
      data: null,
      mainKey: null,
      tempKey: null,
      counter: 0,
      holder: null,
      last: null,
    };
    // ¶ protocol.md §2: admin commands are idempotent and owned.
    if (rec.last && rec.last.mig === cmd.mig && rec.last.step === cmd.step && rec.last.op === cmd.op) return { reply: rec.last.reply };
    if (rec.holder !== null && rec.holder !== cmd.mig) {
      return { reply: refusal('AREA_HELD', `area ${rec.area} is held by another migration`) };
    }
    // A rollback restores every item area of the migration, and wipes every destination area it formatted;
    // an area the migration never reached (locked or formatted) is already as the rollback wants it.
    if (
      (cmd.op === 'restore' && rec.state === 'mainActive' && rec.holder === null) ||
      ((cmd.op === 'wipe' || cmd.op === 'wipeRevoked') && rec.state === 'absent')
    ) {
      return { reply: cmd.op === 'restore' ? { ok: true, kcv: this.kcv(rec.mainKey!, rec.area) } : { ok: true } };
    }
    const event = (cmd.op === 'wipeRevoked' ? 'WIPE_REVOKED' : cmd.op.toUpperCase()) as AreaCommand;
    const state = areaTransition(rec.state, event);
    if (state === null) {
      return { reply: refusal(rec.state === 'absent' ? 'AREA_ABSENT' : 'AREA_STATE', `area ${rec.area} is ${rec.state}; ${event} is not allowed there`) };
    }
    if (cmd.op === 'format' && !existing && view.held() >= CHIP_AREAS_MAX) {
      return { reply: refusal('COMMAND_REFUSED', `the chip already holds ${CHIP_AREAS_MAX} areas`) };
    }
    const last = (reply: ChipReply) => ({ mig: cmd.mig, step: cmd.step, op: cmd.op, reply });
    let next: AreaRecord;
    let reply: ChipReply;
    switch (cmd.op) {
      case 'format': {
        const key = fromB64(cmd.key);
        reply = { ok: true, kcv: this.kcv(key, rec.area) };
        next = { ...rec, provider: cmd.provider, state, tempKey: key, mainKey: null, data: null, counter: 0, holder: cmd.mig, last: last(reply) };
        break;
      }
      case 'lock': {
        const key = fromB64(cmd.key);
        // The answer carries the check value of the main key being set aside, so a restore can be verified.
        reply = { ok: true, kcv: this.kcv(key, rec.area), prevKcv: this.kcv(rec.mainKey!, rec.area) };
        next = { ...rec, state, tempKey: key, holder: cmd.mig, last: last(reply) };
        break;
      }
      case 'activate':
      case 'restore':
        reply = { ok: true, kcv: this.kcv(rec.mainKey!, rec.area) };
        // The temp key is dropped: one per (migration, item), never reused.
        next = { ...rec, state, tempKey: null, holder: null, last: last(reply) };
        break;
      case 'wipe':
      case 'wipeRevoked':
        reply = { ok: true };
        next = { ...rec, state, data: null, mainKey: null, tempKey: null, holder: null, last: last(reply) };
        break;
    }
    return { reply, next };
  }
}
