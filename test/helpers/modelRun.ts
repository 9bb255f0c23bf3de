/**
 * Runs a model path of the migration statechart against the real embedded
 * system: real parties, real crypto, real LMDB. The path's events are what
 * the real server's migration actor must process, in order; the ones the
 * environment chooses (a provider refusing, a step failing, a cancel, a chip
 * or a terminal going away, the deadline) are steered into the real world at
 * the moment the real actor is in the state the path says; the others happen
 * by themselves. After each path event the real actor must be in the state
 * the model reached, and invariants 1 and 2 are checked after every
 * delivered message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createActor, type AnyTransitionDefinition, type EventObject } from 'xstate';
import { statePath } from '../../src/actors/status.ts';
import { EmbeddedSystem } from '../../src/actors/system.ts';
import type { TerminalRuntime } from '../../src/actors/terminal.actor.ts';
import { demoValue } from '../../src/fixtures/demo.ts';
import { seededRng, toHex } from '../../src/crypto/index.ts';
import type { ErrorCode } from '../../src/protocol/errors.ts';
import { createLogger } from '../../src/log.ts';
import { MODELS } from '../../src/model/models.ts';
import type { ModelPath } from '../../src/model/paths.ts';
import { FAST_TIMING } from '../../src/timing.ts';
import type { AnyEnvelope } from '../../src/transport/envelope.ts';
import { steering } from '../../src/testing/steering.ts';
import { ConformanceWatch } from './conformance.ts';
import { checkInvariants } from './invariants.ts';
import type { World } from './world.ts';

const PROVIDERS = ['emoney', 'transit'];
const SCRYPT = { N: 2 ** 10, r: 8, p: 1 };
/** A path that has not matched its next event by then has failed. */
export const PATH_TIMEOUT_MS = 20_000;
/** The preflight's own deadline in these runs (short, so a path can let it pass). */
const PREFLIGHT_MS = 1_000;
/** A held request is looked at again this often (ms), and goes after HOLD_MS_MAX at the latest. */
const HOLD_POLL_MS = 25;
const HOLD_MS_MAX = 15_000;
/** Back-off of the paths where an outside event lands during a back-off (so it cannot be overtaken by RETRY_DUE). */
const SLOW_BACK_OFF = { retryBaseMs: 4_000, retryCapMs: 4_000 };

/** The request a state of the migration waits on (what fails when the path says STEP_FAILED there). */
const REQUEST_OF: Array<[RegExp, string]> = [
  [/reservingChannel$|\.reserving$/, 'channel.reserve'],
  [/identifying$/, 'admin.identify'],
  [/lockingSource$/, 'admin.lock'],
  [/uploading\.transferring/, 'msam.upload'],
  [/formatting$/, 'admin.format'],
  [/downloading\.transferring/, 'msam.download'],
  [/^committing$/, 'admin.commit'],
  [/^activating$/, 'admin.activate'],
  [/^clearing$|clearingStores$|clearingOrders$/, 'msam.clear'],
  [/^aborting$/, 'admin.abort'],
  [/askingProviders$/, 'msam.preflight'],
  [/refusing$|releasingChannel$|releasing$|releasingDestination$/, 'channel.release'],
  [/fencing$/, 'msam.fence'],
  [/restoring$/, 'admin.restore'],
  [/wiping$/, 'admin.wipe'],
];
/** States in which a chip session runs: a failure there can also come from frames that never arrive. */
const SESSION_STATE = /identifying$|lockingSource$|transferring|formatting$|activating$|restoring$|wiping$/;

export interface PathOutcome {
  ok: boolean;
  matched: number;
  steps: number;
  problem?: string;
  realStates: string[];
  /** The conformance check against the abstract safety model; null where the path's world is not the model's (see below). */
  conformance: { observations: number; changes: number; stepsMax: number } | null;
}

function analyse(path: ModelPath) {
  const e = path.events as Array<EventObject & Record<string, unknown>>;
  const src = e.find((x) => x.type === 'CHIP_IDENTIFIED' && x.chip === 'source');
  const areas = (src?.areas as Array<{ state: string }> | undefined) ?? [];
  return {
    owner: src ? ((src.owner as string | null) ?? 'nobody') : 'alice',
    areas: areas.length === 0 && src ? 'empty' : areas.some((a) => a.state !== 'mainActive') ? 'partial' : 'ok',
    refusing: e.some((x) => x.type === 'PROVIDER_REFUSED'),
    commitReplyLost: e.some((x, i) => x.type === 'DECIDED' && x.decision === 'committed' && e.slice(0, i).some((y) => y.type === 'CANCEL_REQUESTED')),
  };
}

function account(t: TerminalRuntime): string {
  const a = (t.state() as { account?: unknown } | undefined)?.account;
  return typeof a === 'string' ? a : a && typeof a === 'object' ? Object.keys(a)[0]! : 'unknown';
}

/**
 * Runs one path; the transitions the real actor took are added to `covered`
 * only when the whole path matched (a transition counts as covered when its
 * real execution did what the model said).
 */
export async function runMigrationPath(path: ModelPath, coveredTotal: Set<AnyTransitionDefinition>, seed: string): Promise<PathOutcome> {
  const covered = new Set<AnyTransitionDefinition>();
  const model = MODELS.migration!;
  // The model's expectations: the state before and after every event of the path.
  const before: string[] = [];
  const after: string[] = [];
  const expect = createActor(model.machine, { input: (model.variants?.find((v) => v.name === path.variant)?.input ?? model.input) as never }).start();
  for (const ev of path.events) {
    before.push(statePath(expect.getSnapshot().value));
    expect.send(ev as never);
    after.push(statePath(expect.getSnapshot().value));
  }
  expect.stop();

  const flags = {
    ...analyse(path),
    deadline: path.events.some((x, i) => x.type === 'DEADLINE_PASSED' && before[i] === 'awaitingDestination'),
    // A chip other than the destination identified in S9: the user brought the wrong phone first.
    wrongDestination: path.events.some(
      (x, i) => x.type === 'CHIP_IDENTIFIED' && (x as { serial?: string }).serial !== 'DST' && before[i] === 'destinationPhase.identifying',
    ),
    // Something from outside (a cancel, a phone lost) must land while the migration backs off: the back-off must outlast
    // the round trip that brings it, however loaded the machine is (with FAST_TIMING's 30 ms it did not, on a busy CI box).
    eventDuringBackOff: path.events.some((x, i) => /Retry$/.test(before[i]!) && x.type !== 'RETRY_DUE'),
  };
  const rng = seededRng(seed);
  const dir = mkdtempSync(join(tmpdir(), 'valmove-model-'));
  const realStates: string[] = [];
  let k = 0;
  let problem: string | undefined;
  let system: EmbeddedSystem | undefined;
  let mig: string | undefined;
  const armed = {
    fail: [] as Array<{ type: string; code: ErrorCode; party?: string }>,
    blockFrameAt: null as RegExp | null,
    /** Lose the chip's next answer on its way to the server: its SAM sends its frame again (runtime/resends.ts). */
    loseChipAnswer: false,
    /** Requests to hold back when they arrive, until path event `forEvent` has happened. */
    hold: [] as Array<{ party: RegExp; type: string; forEvent: number }>,
    /** Requests being held back (every copy of one, retransmissions too), until a time. */
    holding: new Map<string, { since: number; forEvent: number; type: string }>(),
    replace: null as string | null,
  };
  const later: Array<() => Promise<unknown>> = [];
  const act = (fn: () => Promise<unknown>) => later.push(fn);
  let values: World['values'] = [];
  /**
   * The abstract safety model (src/model/safety/) knows one migration moving every item of a full source to an
   * empty destination: paths whose world is another (an issuance, a source with an empty or a formatted-only
   * area, a destination already holding an item) are not checked against it.
   */
  let conformance: ConformanceWatch | null = null;
  const conformanceApplies = flags.areas === 'ok' && path.variant !== 'issuance' && path.variant !== 'named-destination-full';
  /** Where the run is, for a conformance problem: the path events matched so far. */
  const pathSoFar = () =>
    `path event ${k}/${path.events.length} (${
      path.events
        .slice(0, k)
        .map((e) => e.type)
        .join(' > ') || 'start'
    })`;

  /** The state waits on a request: hold it back, so an event from elsewhere (a cancel, a deadline) comes first. */
  const holdWaiting = (b: string) => {
    const req = REQUEST_OF.find(([re]) => re.test(b))?.[1];
    // A lock or a format is many round trips and a cancel one hop: the cancel lands mid-session without help,
    // and the session then reaches the chip, as the paths that go on to restore or wipe it with a session expect.
    if (!req || /lockingSource$|formatting$/.test(b)) return;
    // Still holding it from the event before (a run of events in the same state): keep holding it for this one too.
    let extended = false;
    for (const h of armed.holding.values()) {
      // (held for the event just matched: steerAt(k) runs right after event k-1 matched)
      if (h.type === req && h.forEvent >= k - 1 && Date.now() - h.since < HOLD_MS_MAX) [h.forEvent, extended] = [k, true];
    }
    for (const h of armed.hold) {
      if (h.type === req) [h.forEvent, extended] = [k, true];
    }
    if (extended) return;
    const copies = req === 'msam.preflight' ? PROVIDERS.length : 1;
    for (let n = 0; n < copies; n++) armed.hold.push({ party: /./, type: req, forEvent: k });
  };
  /** A held request goes once the path event it was held for has happened (or after HOLD_MS_MAX, whatever the machine's load). */
  const released = (h: { since: number; forEvent: number; type: string }) => k > h.forEvent || Date.now() - h.since > HOLD_MS_MAX;

  const steerAt = (i: number) => {
    const ev = path.events[i] as EventObject & Record<string, unknown>;
    const b = before[i]!;
    switch (ev.type) {
      case 'STEP_FAILED': {
        if (b === 'committing' && flags.commitReplyLost) {
          // The admin SAM commits, and its answer is lost: the server sees a failure; the decision stands.
          armed.replace = 'admin.decision';
          break;
        }
        const req = REQUEST_OF.find(([re]) => re.test(b))?.[1];
        if (req) armed.fail.push({ type: req, code: ev.code as ErrorCode }); // a STEP_FAILED of src/model/models.ts
        if (SESSION_STATE.test(b)) armed.blockFrameAt = /^admin-sam$|^migration-sam\//;
        break;
      }
      case 'SAM_FRAME':
        // A SAM's frame after its command went: the same frame again, as the SAM sends it when the chip's answer is lost.
        if (/copying$/.test(b)) armed.loseChipAnswer = true;
        break;
      case 'CANCEL_REQUESTED':
        holdWaiting(b);
        act(() => cancelOnHelper());
        break;
      case 'DEADLINE_PASSED':
        holdWaiting(b);
        break;
      case 'DECIDED':
        if (ev.decision === 'aborted' && b === 'committing') {
          armed.hold.push({ party: /^admin-sam$/, type: 'admin.commit', forEvent: k });
          act(() => cancelOnHelper());
        }
        break;
      case 'DESTINATION_ARRIVED': {
        holdWaiting(b);
        const firstArrival = !path.events.slice(0, i).some((x) => x.type === 'DESTINATION_ARRIVED');
        const phone = flags.wrongDestination && firstArrival ? 'terminal/old' : 'terminal/new';
        act(() => userDoes(phone, (t) => t.migrateIn({ mig })));
        break;
      }
      case 'SOURCE_ARRIVED':
        holdWaiting(b);
        act(() => userDoes('terminal/old', (t) => t.migrateOut()));
        break;
      case 'TERMINAL_LOST':
        holdWaiting(b);
        system!.disconnect(String(ev.terminal));
        break;
      case 'TERMINAL_BACK':
        holdWaiting(b);
        system!.reconnect(String(ev.terminal));
        break;
      case 'PROVIDER_READY':
      case 'PROVIDER_REFUSED': {
        // Providers answer in any order; hold back the one whose answer the path takes second.
        const first = !path.events.slice(0, i).some((x) => x.type === 'PROVIDER_READY' || x.type === 'PROVIDER_REFUSED');
        if (first && flags.refusing) {
          const late = ev.type === 'PROVIDER_REFUSED' ? 'emoney' : 'transit';
          armed.hold.push({ party: new RegExp(`^migration-sam/${late}$`), type: 'msam.preflight', forEvent: k });
        }
        break;
      }
    }
  };

  /** The user cancels from a third phone; a phone does one thing at a time, so a second cancel waits for the first. */
  const cancelOnHelper = async () => {
    for (const until = Date.now() + PATH_TIMEOUT_MS; Date.now() < until; ) {
      try {
        return await system!.party<TerminalRuntime>('terminal/helper').cancel(mig!);
      } catch (e) {
        if ((e as { code?: string }).code !== 'UNEXPECTED') return;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };

  /** What a user does on a phone, once the phone is free for it (logged in, no job running). */
  const userDoes = async (id: string, fn: (t: TerminalRuntime) => Promise<unknown>) => {
    for (const until = Date.now() + PATH_TIMEOUT_MS; Date.now() < until; ) {
      const t = system!.party<TerminalRuntime>(id);
      const a = account(t);
      if (a === 'loggedOut') await t.login('alice', 'pw').catch(() => {});
      else if (a === 'loggedIn') {
        try {
          return await fn(t);
        } catch (e) {
          // A phone that reconnected is logged out at the server (a login belongs to its connection): log in again.
          // A phone busy with something else: wait for it. Anything else is the answer.
          const code = (e as { code?: string }).code;
          if (code !== 'UNAUTHENTICATED' && code !== 'UNEXPECTED') return;
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  const onReal = (type: string, value: unknown) => {
    const v = statePath(value);
    if (process.env.DEBUG_MODEL === seed) console.error('real', type, v);
    if (realStates[realStates.length - 1] !== v) realStates.push(v);
    if (k < path.events.length && type === path.events[k]!.type && v === after[k]) {
      k++;
      conformance?.note(`after ${pathSoFar()}`);
      if (conformance?.problem) problem ??= conformance.problem;
      if (k < path.events.length && v === before[k]) steerAt(k);
    }
  };

  // The runtime's timers do not keep a process alive (a party must not hold its process open); this run does.
  const keepAlive = setInterval(() => {}, 1_000);
  try {
    system = await EmbeddedSystem.start({
      dataDir: dir,
      providers: PROVIDERS,
      rng,
      log: createLogger({ level: 'silent' }),
      scrypt: SCRYPT,
      timing: { ...FAST_TIMING, preflightMs: PREFLIGHT_MS, ...(flags.eventDuringBackOff ? SLOW_BACK_OFF : {}) },
      deadlineMs: 60_000,
      rights: flags.refusing ? { transit: ['upload', 'clear'] } : undefined,
      inspect: (party, key, ev) => {
        if (party !== 'server' || !key.startsWith('migration:')) return;
        if (ev.type === '@xstate.microstep') for (const t of (ev as unknown as { _transitions: AnyTransitionDefinition[] })._transitions) covered.add(t);
        if (ev.type === '@xstate.snapshot') {
          const snap = (ev as unknown as { snapshot: { value: unknown } }).snapshot;
          const cause = (ev as unknown as { event: EventObject }).event;
          mig ??= key.slice('migration:'.length);
          if (cause.type === 'xstate.init') {
            if (before[0] === statePath(snap.value)) steerAt(0);
            return;
          }
          onReal(cause.type, snap.value);
        }
      },
      intercept: steering({
        beforeRequest(party, env: AnyEnvelope) {
          if (process.env.DEBUG_MODEL === seed) console.error('req', party, env.type, JSON.stringify(armed.hold));
          const held = armed.holding.get(`${party} ${env.id}`);
          if (held !== undefined) return released(held) ? undefined : { holdMs: HOLD_POLL_MS };
          const h = armed.hold.findIndex((x) => x.party.test(party) && x.type === env.type);
          if (h >= 0) {
            const hold = armed.hold.splice(h, 1)[0]!;
            armed.holding.set(`${party} ${env.id}`, { since: Date.now(), forEvent: hold.forEvent, type: env.type });
            return { holdMs: HOLD_POLL_MS };
          }
          const f = armed.fail.findIndex((x) => x.type === env.type);
          if (f >= 0) {
            const { code } = armed.fail.splice(f, 1)[0]!;
            armed.blockFrameAt = null;
            return { fail: { code, message: 'steered: this step fails here, as the model path says' } };
          }
          if (env.type === 'frame' && armed.loseChipAnswer && party === 'server' && env.from.startsWith('terminal/')) {
            armed.loseChipAnswer = false;
            return { fail: { code: 'FRAME_REJECTED', message: "steered: the chip's answer is lost; its SAM sends its frame again" } };
          }
          if (env.type === 'frame' && armed.blockFrameAt?.test(party)) {
            armed.blockFrameAt = null;
            armed.fail = [];
            return { fail: { code: 'FRAME_REJECTED', message: 'steered: a frame is lost, the session times out' } };
          }
          return undefined;
        },
        replaceReply(_party, reply) {
          if (armed.replace && reply.type === armed.replace) {
            armed.replace = null;
            return { code: 'SESSION_FAILED', message: 'steered: the answer was lost' };
          }
          return undefined;
        },
      }),
      envelopeTap: (_party, direction) => {
        if (direction === 'in' && values.length > 0) {
          try {
            checkInvariants({ system, values, source: { serial: 'SRC' } } as unknown as World);
          } catch (e) {
            problem ??= (e as Error).message;
          }
          // Every step the real system takes must be a step the abstract model allows.
          conformance?.note(`a message delivered at ${pathSoFar()}`);
          if (conformance?.problem) problem ??= conformance.problem;
        }
      },
    });
    for (const u of ['alice', 'bob']) await system.server.createUser(u, 'pw');
    const src = await system.addChip('SRC');
    const dst = await system.addChip('DST');
    // Invariants are checked once the source holds its value (the issuing desk's own steps are not a migration).
    let issued = PROVIDERS.map((p, i) => demoValue(p === 'emoney' ? 'emoney' : 'transit', i, toHex(rng.bytes(16))));
    if (flags.areas !== 'empty') {
      await system.issue(
        src,
        PROVIDERS.map((p, i) => ({ area: p, provider: p, value: issued[i]!, formatOnly: flags.areas === 'partial' && i === 1 })),
      );
    } else issued = [];
    if (flags.areas === 'partial') issued = issued.slice(0, 1);
    if (path.variant === 'named-destination-full') {
      await system.issue(dst, [{ area: 'emoney', provider: 'emoney', value: demoValue('emoney', 9, toHex(rng.bytes(16))) }]);
    }
    const phone = async (name: string, chip: typeof src | undefined, user: string) => {
      const t = await system!.addTerminal(name);
      if (chip) system!.insertChip(t, chip);
      system!.connectToServer(t);
      await t.login(user, 'pw');
      return t;
    };
    const oldPhone = await phone('old', src, 'alice');
    const newPhone = await phone('new', dst, 'alice');
    await phone('helper', undefined, 'alice');
    if (flags.owner === 'alice') await oldPhone.register();
    if (flags.owner === 'bob') await (await phone('bob', src, 'bob')).register();
    await newPhone.register();
    for (const p of PROVIDERS) system.connectReader(oldPhone, p);

    values = issued;
    if (conformanceApplies) {
      conformance = new ConformanceWatch(system, { chips: ['SRC', 'DST'], areas: PROVIDERS, providers: PROVIDERS, tokens: issued.map((v) => v.ref) });
    }
    const destination = path.variant === 'named-destination-unusable' ? 'NOPE' : path.variant === 'named-destination-full' ? 'DST' : undefined;
    if (path.variant === 'issuance') {
      // The providers sign one order each for DST (the model's ISSUANCE_INPUT): the new phone asks for them.
      const orders = PROVIDERS.map((p, i) =>
        system!.issueOrder({ provider: p, serial: 'DST', area: p, value: demoValue(p === 'emoney' ? 'emoney' : 'transit', 20 + i, toHex(rng.bytes(16))) }),
      );
      void newPhone.issue(orders).catch(() => {});
    } else {
      void oldPhone.migrateOut({ ...(destination ? { destination } : {}), ...(flags.deadline ? { deadlineMs: 300 } : {}) }).catch(() => {});
    }
    const until = Date.now() + PATH_TIMEOUT_MS;
    while (k < path.events.length && Date.now() < until && !problem) {
      // What the user does runs on its own (an answer may never come: a path can leave a request unanswered).
      const next = later.shift();
      if (next) void next().catch(() => {});
      await new Promise((r) => setTimeout(r, 5));
    }
    if (!problem && k < path.events.length) {
      problem = `matched ${k}/${path.events.length}: waiting for ${path.events[k]!.type} to lead from ${before[k]} to ${after[k]}; the real actor went ${realStates.join(' > ')}`;
    }
    if (!problem && conformance) problem = await conformance.finish(`the end of the path (${pathSoFar()})`);
    if (!problem) for (const t of covered) coveredTotal.add(t);
    const checked = conformance ? { observations: conformance.observations, changes: conformance.changes, stepsMax: conformance.stepsMax } : null;
    return { ok: !problem, matched: k, steps: path.events.length, problem, realStates, conformance: checked };
  } finally {
    clearInterval(keepAlive);
    // The run is over: what the parties do while they stop is not checked.
    conformance?.stop();
    conformance = null;
    await system?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
