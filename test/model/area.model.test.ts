/**
 * Model-based suite for the chip's area key lifecycle (issue 5): every path
 * xstate/graph generates through the area statechart (one per transition)
 * is executed on a real chip — its real command path, real session
 * authentication with the real keys, real LMDB in a temp folder — and after
 * every event the area's state in the chip's store must be the model's.
 * At the end of each path, every event the model does not allow in that
 * state is tried on the chip too: refused, and nothing changes. A
 * transition counts as covered when the real chip took it on a path that
 * matched the model from start to end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor, type AnyTransitionDefinition } from 'xstate';
import { ChipRuntime } from '../../src/actors/chip.actor.ts';
import { ChipConsole } from '../../src/actors/chipConsole.ts';
import { SamSessions } from '../../src/actors/samSession.ts';
import { encodeValue } from '../../src/actors/value.ts';
import { systemClock } from '../../src/clock.ts';
import { randomSecret, seededRng, toB64, type Purpose, type Secret } from '../../src/crypto/index.ts';
import { silentLogger } from '../../src/log.ts';
import { AREA_COMMANDS, AREA_SESSION_EVENTS, areaMachine, areaTransition, type AreaState } from '../../src/machines/area.machine.ts';
import { MODELS } from '../../src/model/models.ts';
import { generatePaths, machineGraph } from '../../src/model/paths.ts';
import { PartyStore } from '../../src/store/party.store.ts';
import type { ChipCommand, ChipReply } from '../../src/transport/chip.frames.ts';

const AREA = 'emoney';
const rng = seededRng('area-model');

/** One real chip in its own temp folder, and an operator's console to it. */
class Bench {
  private seq = 0;
  temp: Secret = randomSecret(rng);
  main: Secret = randomSecret(rng);
  /** The migration holding the area (set by format and lock, cleared by activate and restore), as the chip keeps it. */
  holder: string | null = null;

  private constructor(
    readonly dir: string,
    readonly chip: ChipRuntime,
    readonly console: ChipConsole,
    private readonly kChip: Secret,
  ) {}

  static async open(): Promise<Bench> {
    const dir = mkdtempSync(join(tmpdir(), 'valmove-area-model-'));
    const kChip = randomSecret(rng);
    const chip = new ChipRuntime({ id: 'chip/AREA-MODEL', store: PartyStore.open(dir), clock: systemClock, rng, log: silentLogger });
    await chip.start({ serial: 'AREA-MODEL', kChip: kChip.reveal() });
    return new Bench(dir, chip, ChipConsole.open(chip), kChip);
  }

  async close(): Promise<void> {
    this.console.close();
    await this.chip.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  state(): AreaState {
    return this.chip.memory.get(AREA)?.state ?? 'absent';
  }

  /** Opens a session for `purpose` with `key`; the chip proves it holds the same key, or refuses. */
  private async session(purpose: Purpose, key: Secret, mig: string): Promise<{ ok: true; id: string; sams: SamSessions } | { ok: false; code: string }> {
    const sams = new SamSessions(rng);
    const id = `s${++this.seq}`;
    const answer = await this.console.exchange(id, sams.begin({ session: id, area: purpose === 'admin' ? '*' : AREA, mig, purpose }));
    const a = sams.answer(id, answer, () => key);
    if (a.kind === 'refused') return { ok: false, code: a.code };
    if (!a.proofOk) return { ok: false, code: 'AUTH_FAILED' };
    return { ok: true, id, sams };
  }

  private async command(purpose: Purpose, key: Secret, mig: string, cmd: ChipCommand | null): Promise<ChipReply> {
    const s = await this.session(purpose, key, mig);
    if (!s.ok) return { ok: false, code: s.code, message: 'session refused' };
    if (!cmd) return { ok: true };
    const r = s.sams.reply(s.id, await this.console.exchange(s.id, s.sams.command(s.id, cmd)));
    return r.kind === 'refused' ? { ok: false, code: r.code, message: r.message } : r.reply;
  }

  /** Does what the event means on the real chip, with the keys and owner a real migration would use. */
  async apply(event: string): Promise<ChipReply> {
    const step = `M${++this.seq}`;
    const owner = this.holder ?? `mig-${this.seq}`;
    switch (event) {
      case 'FORMAT': {
        const temp = randomSecret(rng);
        const r = await this.command('admin', this.kChip, owner, { op: 'format', area: AREA, provider: 'emoney', key: toB64(temp.reveal()), mig: owner, step });
        if (r.ok) [this.temp, this.holder] = [temp, owner];
        return r;
      }
      case 'DOWNLOAD': {
        const main = randomSecret(rng);
        const data = toB64(encodeValue({ kind: 'emoney', currency: 'JPY', balance: 1000, ref: '0'.repeat(32) }));
        const r = await this.command('download', this.temp, owner, { op: 'download', data, key: toB64(main.reveal()), mig: owner, step });
        if (r.ok) this.main = main;
        return r;
      }
      case 'ACTIVATE': {
        const r = await this.command('admin', this.kChip, owner, { op: 'activate', area: AREA, mig: owner, step });
        if (r.ok) this.holder = null;
        return r;
      }
      case 'LOCK': {
        const temp = randomSecret(rng);
        const mig = `mig-${this.seq}`;
        const r = await this.command('admin', this.kChip, mig, { op: 'lock', area: AREA, key: toB64(temp.reveal()), mig, step });
        if (r.ok) [this.temp, this.holder] = [temp, mig];
        return r;
      }
      case 'RESTORE': {
        const r = await this.command('admin', this.kChip, owner, { op: 'restore', area: AREA, mig: owner, step });
        if (r.ok) this.holder = null;
        return r;
      }
      case 'WIPE': {
        const r = await this.command('admin', this.kChip, owner, { op: 'wipe', area: AREA, mig: owner, step });
        if (r.ok) this.holder = null;
        return r;
      }
      // Sessions: the active key slot decides who gets in (the temp key for upload and download, the main key for normal use).
      case 'OPEN_UPLOAD':
        return this.command('upload', this.temp, owner, null);
      case 'UPLOAD':
        return this.command('upload', this.temp, owner, { op: 'read' });
      case 'OPEN_DOWNLOAD':
        return this.command('download', this.temp, owner, null);
      case 'OPEN_NORMAL':
        return this.command('normal', this.main, '-', null);
      case 'USE':
        return this.command('normal', this.main, '-', { op: 'read' });
      default:
        throw new Error(`no real operation for ${event}`);
    }
  }
}

/** Operations a rollback repeats on an area it never reached: the chip answers ok and changes nothing (no arrow in the lifecycle). */
const ALREADY_SO = (state: AreaState, event: string) => (state === 'mainActive' && event === 'RESTORE') || (state === 'absent' && event === 'WIPE');

test('every area-lifecycle path runs on a real chip as the model says; every forbidden event is refused; transition coverage 100%', async () => {
  const model = MODELS.area!;
  const paths = generatePaths(model, 'transitions');
  const graph = machineGraph(areaMachine);
  const covered = new Set<AnyTransitionDefinition>();
  const problems: string[] = [];
  let refusalsChecked = 0;
  for (const [i, path] of paths.entries()) {
    const bench = await Bench.open();
    const taken = new Set<AnyTransitionDefinition>();
    const expect = createActor(areaMachine, {
      inspect: (ev) => {
        if (ev.type === '@xstate.microstep') for (const t of (ev as unknown as { _transitions: AnyTransitionDefinition[] })._transitions) taken.add(t);
      },
    }).start();
    try {
      let ok = true;
      for (const [k, ev] of path.events.entries()) {
        const before = expect.getSnapshot().value as AreaState;
        expect.send(ev as never);
        const want = expect.getSnapshot().value as AreaState;
        const reply = await bench.apply(ev.type);
        const got = bench.state();
        if (!reply.ok || got !== want) {
          problems.push(`path #${i} step ${k + 1} ${before} --${ev.type}-->: the model says ${want}; the chip answered ${JSON.stringify(reply)} and is ${got}`);
          ok = false;
          break;
        }
      }
      if (ok) {
        // The forbidden events of the state the path ended in: refused by the real chip, nothing changed.
        const state = bench.state();
        for (const ev of [...AREA_COMMANDS, ...AREA_SESSION_EVENTS]) {
          if (expect.getSnapshot().can({ type: ev })) continue;
          const record = bench.chip.memory.get(AREA);
          const saved = { temp: bench.temp, main: bench.main, holder: bench.holder };
          const reply = await bench.apply(ev);
          Object.assign(bench, saved);
          refusalsChecked++;
          const unchanged = JSON.stringify(bench.chip.memory.get(AREA)) === JSON.stringify(record);
          if (ALREADY_SO(state, ev)) {
            if (!reply.ok || !unchanged) problems.push(`path #${i}: ${ev} on ${state} should be answered ok and change nothing; got ${JSON.stringify(reply)}`);
          } else if (reply.ok || !unchanged) {
            problems.push(`path #${i}: ${ev} is not allowed in ${state}, yet the chip answered ${JSON.stringify(reply)}${unchanged ? '' : ' and the area changed'}`);
          }
        }
        for (const t of taken) covered.add(t);
      }
    } finally {
      expect.stop();
      await bench.close();
    }
  }
  // The lifecycle table the chip enforces is the statechart's.
  for (const t of covered) assert.ok(graph.transitions.has(t));
  const total = graph.transitions.size;
  const reached = [...graph.transitions.keys()].filter((t) => covered.has(t)).length;
  console.log(
    `  area lifecycle: ${paths.length} model paths executed on a real chip, ${paths.length - new Set(problems.map((p) => p.split(' ')[1])).size} matched; ` +
      `${refusalsChecked} forbidden events refused; transitions covered ${reached}/${total} (${((reached / total) * 100).toFixed(0)}%)`,
  );
  assert.equal(problems, []);
  assert.is(reached, total);
  void areaTransition;
});

test.run();
