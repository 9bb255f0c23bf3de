/**
 * A real chip for lifecycle tests (test/property/area.test.ts,
 * test/model/area.model.test.ts): its own temp folder and LMDB store, an
 * operator's console to it, and the SAM side of every session — the keys a
 * real migration would install in each area, the owner it would use — so a
 * lifecycle event becomes the real command on the real chip.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { ChipRuntime } from '../../src/actors/chip.actor.ts';
import { ChipConsole } from '../../src/actors/chipConsole.ts';
import { SamSessions } from '../../src/actors/samSession.ts';
import { encodeValue } from '../../src/actors/value.ts';
import { systemClock } from '../../src/clock.ts';
import { randomSecret, Secret, toB64, type Purpose, type Rng } from '../../src/crypto/index.ts';
import { silentLogger } from '../../src/log.ts';
import { AREA_STATES, type AreaCommand, type AreaSessionEvent, type AreaState } from '../../src/machines/area.machine.ts';
import { PartyStore, type CommitMode } from '../../src/store/party.store.ts';
import type { ChipCommand, ChipReply } from '../../src/transport/chip.frames.ts';

export type AreaEventType = AreaCommand | AreaSessionEvent;

/** What the SAMs installed in one area: its temp and main keys, and the migration holding it (set by format and lock, cleared by activate and restore), as the chip keeps it. */
export interface AreaKeys {
  temp: Secret;
  main: Secret;
  holder: string | null;
}

export class ChipBench {
  private seq = 0;
  readonly keys: Map<string, AreaKeys>;

  private constructor(
    readonly dir: string,
    readonly chip: ChipRuntime,
    readonly console: ChipConsole,
    private readonly kChip: Secret,
    private readonly rng: Rng,
    areas: readonly string[],
  ) {
    this.keys = new Map(areas.map((a) => [a, { temp: randomSecret(rng), main: randomSecret(rng), holder: null }]));
  }

  /** A fresh chip with these areas' keys on the SAM side; `commits` as PartyStore's (the property runs use 'sync'). */
  static async open(o: { serial: string; areas: readonly string[]; rng: Rng; commits?: CommitMode }): Promise<ChipBench> {
    const dir = mkdtempSync(join(tmpdir(), `valmove-${o.serial.toLowerCase()}-`));
    const kChip = randomSecret(o.rng);
    try {
      const chip = new ChipRuntime({
        id: `chip/${o.serial}`,
        store: PartyStore.open(dir, { commits: o.commits }),
        clock: systemClock,
        rng: o.rng,
        log: silentLogger,
      });
      await chip.start({ serial: o.serial, kChip: kChip.reveal() });
      return new ChipBench(dir, chip, ChipConsole.open(chip), kChip, o.rng, o.areas);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  async close(): Promise<void> {
    try {
      this.console.close();
      await this.chip.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  state(area: string): AreaState {
    return this.chip.memory.get(area)?.state ?? 'absent';
  }

  /** The area records as stored, every byte (all of them, or all but one area's). */
  dump(except?: string): string {
    const records = this.chip.memory.list().filter((r) => r.area !== except);
    return JSON.stringify(records, (_k, v: unknown) => (v instanceof Uint8Array ? toB64(v) : v));
  }

  /**
   * What the lifecycle says a stored area holds in its state, checked here
   * independently of the chip's own assertion: which slots are filled, and
   * with the very keys the SAMs installed.
   */
  checkStored(what: string): void {
    for (const rec of this.chip.memory.list()) {
      const k = this.keys.get(rec.area)!;
      assert.ok(AREA_STATES.includes(rec.state), `${what}: ${rec.area} is in no lifecycle state`);
      const slots = `data:${rec.data !== null} main:${rec.mainKey !== null} temp:${rec.tempKey !== null}`;
      const want = {
        absent: 'data:false main:false temp:false',
        provisioned: 'data:false main:false temp:true',
        loaded: 'data:true main:true temp:true',
        mainActive: 'data:true main:true temp:false',
        locked: 'data:true main:true temp:true',
      }[rec.state];
      assert.is(slots, want, `${what}: ${rec.area} is ${rec.state} but holds ${slots}`);
      if (rec.tempKey) assert.ok(k.temp.equals(Secret.of(rec.tempKey)), `${what}: ${rec.area} holds a temp key no SAM installed`);
      if (rec.mainKey) assert.ok(k.main.equals(Secret.of(rec.mainKey)), `${what}: ${rec.area} holds a main key no SAM installed`);
    }
  }

  /** Opens a session for `purpose` with `key` (the chip proves it holds the same key, or refuses), then sends `cmd` in it. */
  private async command(purpose: Purpose, area: string, key: Secret, mig: string, cmd: ChipCommand | null): Promise<ChipReply> {
    const sams = new SamSessions(this.rng);
    const id = `p${++this.seq}`;
    const answer = await this.console.exchange(id, sams.begin({ session: id, area: purpose === 'admin' ? '*' : area, mig, purpose }));
    const a = sams.answer(id, answer, () => key);
    if (a.kind === 'refused') return { ok: false, code: a.code, message: a.message };
    if (!a.proofOk) return { ok: false, code: 'AUTH_FAILED', message: 'the chip does not hold this key' };
    if (!cmd) return { ok: true };
    const r = sams.reply(id, await this.console.exchange(id, sams.command(id, cmd)));
    return r.kind === 'refused' ? { ok: false, code: r.code, message: r.message } : r.reply;
  }

  /** What the event means on the real chip, with the keys and owner a real migration would use. */
  async apply(area: string, event: AreaEventType): Promise<ChipReply> {
    const k = this.keys.get(area)!;
    const step = `P${++this.seq}`;
    const owner = k.holder ?? `mig-${this.seq}`;
    const admin = (cmd: ChipCommand) => this.command('admin', area, this.kChip, owner, cmd);
    switch (event) {
      case 'FORMAT': {
        const temp = randomSecret(this.rng);
        const r = await admin({ op: 'format', area, provider: area, key: toB64(temp.reveal()), mig: owner, step });
        if (r.ok) Object.assign(k, { temp, holder: owner });
        return r;
      }
      case 'DOWNLOAD': {
        const main = randomSecret(this.rng);
        const data = toB64(encodeValue({ kind: 'emoney', currency: 'JPY', balance: this.seq, ref: '0'.repeat(32) }));
        const r = await this.command('download', area, k.temp, owner, { op: 'download', data, key: toB64(main.reveal()), mig: owner, step });
        if (r.ok) k.main = main;
        return r;
      }
      case 'ACTIVATE':
      case 'RESTORE': {
        const r = await admin({ op: event === 'ACTIVATE' ? 'activate' : 'restore', area, mig: owner, step });
        if (r.ok) k.holder = null;
        return r;
      }
      case 'LOCK': {
        const temp = randomSecret(this.rng);
        const r = await admin({ op: 'lock', area, key: toB64(temp.reveal()), mig: owner, step });
        if (r.ok) Object.assign(k, { temp, holder: owner });
        return r;
      }
      case 'WIPE':
      case 'WIPE_REVOKED': {
        const r = await admin({ op: event === 'WIPE' ? 'wipe' : 'wipeRevoked', area, mig: owner, step });
        if (r.ok) k.holder = null;
        return r;
      }
      // Sessions: the active slot decides who gets in (temp key: upload, download; main key: normal use).
      case 'OPEN_UPLOAD':
        return this.command('upload', area, k.temp, owner, null);
      case 'UPLOAD':
        return this.command('upload', area, k.temp, owner, { op: 'read' });
      case 'OPEN_DOWNLOAD':
        return this.command('download', area, k.temp, owner, null);
      case 'OPEN_NORMAL':
        return this.command('normal', area, k.main, '-', null);
      case 'USE':
        return this.command('normal', area, k.main, '-', { op: 'read' });
      default:
        throw new Error(`no real operation for ${String(event)}`);
    }
  }
}
