/**
 * A minimal party for the runtime's own promises (the inbox, its floors,
 * its limits, a full store, a failed commit): a manual clock whose timers
 * never fire on their own, one link as "server", and two requests of the
 * catalog with a handler each. Not a test file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup } from 'xstate';
import type { Clock } from '../../src/clock.ts';
import { INBOX_RECORDS_MAX, PartyRuntime, type MachineKind, type RuntimeDeps, type TurnContext } from '../../src/actors/runtime.ts';
import { systemRng } from '../../src/crypto/index.ts';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { silentLogger } from '../../src/log.ts';
import { PartyStore } from '../../src/store/party.store.ts';
import { FAST_TIMING, type Timing } from '../../src/timing.ts';
import { decodeEnvelope, type AnyEnvelope } from '../../src/transport/envelope.ts';
import type { Link } from '../../src/transport/link.ts';
import { memoryLinkPair } from '../../src/transport/memory.transport.ts';

/** Virtual ms that move only when the test says; timers are kept, never fired (no retransmission noise). */
export class ManualClock implements Clock {
  t = 1_700_000_000_000;
  now(): number {
    return this.t;
  }
  schedule(_atMs: number, _fn: () => void): () => void {
    return () => {};
  }
}

/** A session that finishes at once: what `discardWhenDone` is for. */
const sessionMachine = setup({}).createMachine({ id: 'session', initial: 'open', states: { open: { on: { CLOSE: 'closed' } }, closed: { type: 'final' } } });

/** Waits for answers to its own requests: the first moves it on in RAM, the second brings it to rest. */
const waiterMachine = setup({}).createMachine({
  id: 'waiter',
  initial: 'waiting',
  states: { waiting: { on: { GOT: 'got' } }, got: { on: { GOT: 'rested' } }, rested: { tags: ['rest'] } },
});

/**
 * Requests it takes from "server":
 *   msam.clear   answered at once (msam.cleared), naming the request's migration;
 *   msam.fence   left unanswered (work in progress) until `answer(id)`;
 *   msam.preflight  spawns an actor "s:<id>" and answers (a turn with a snapshot to write).
 */
export class TestParty extends PartyRuntime {
  protected readonly kinds: Record<string, MachineKind> = {
    session: { machine: sessionMachine, version: 1 },
    waiter: { machine: waiterMachine, version: 1 },
  };
  /** Which waiter each of its requests belongs to (`wait`). */
  private readonly waiters = new Map<string, string>();
  /** Migrations this party calls settled (`isSettled`). */
  readonly settled = new Set<string>();
  /** Request ids whose handler ran: a request applied twice shows here twice. */
  readonly applied: string[] = [];
  protected override readonly inboxRecordsMax: number;

  constructor(deps: RuntimeDeps, inboxRecordsMax?: number) {
    super(deps);
    this.inboxRecordsMax = inboxRecordsMax ?? INBOX_RECORDS_MAX;
  }

  get partyStore(): PartyStore {
    return this.store;
  }

  protected override isSettled(mig: string): boolean {
    return this.settled.has(mig);
  }

  protected onIntent(): void {}

  protected onEnvelope(env: AnyEnvelope, _peer: string, turn: TurnContext): void {
    this.applied.push(env.id);
    const waiter = env.corr === undefined ? undefined : this.waiters.get(env.corr);
    if (env.type === 'channel.reserved' && waiter) return turn.dispatch(waiter, { type: 'GOT' });
    switch (env.type) {
      case 'msam.clear':
        turn.reply(env, 'msam.cleared', {});
        return;
      case 'msam.fence':
        return;
      case 'msam.preflight':
        turn.spawn(`s:${env.id}`, 'session', {});
        turn.reply(env, 'msam.ready', { provider: 'p' });
        return;
      default:
        throw new ProtocolError('UNEXPECTED', `the test party does not take ${env.type}`);
    }
  }

  /** Sends a request of its own to `peer` (kept in its outbox until answered on that peer's link); resolves with its id. */
  request(peer: string): Promise<string> {
    return this.runLocal((turn) => turn.send(peer, 'channel.reserve', { purpose: 'register' }).id);
  }

  /** Sends a request of its own to "server" for the waiter `key` (spawned the first time); resolves with its id. */
  wait(key: string): Promise<string> {
    return this.runLocal((turn) => {
      if (!this.actorKeys().includes(key)) turn.spawn(key, 'waiter', {});
      const id = turn.send('server', 'channel.reserve', { purpose: 'register' }).id;
      this.waiters.set(id, key);
      return id;
    });
  }

  /** Answers a request it left unanswered. */
  answer(id: string): Promise<void> {
    return this.runLocal((turn) => {
      turn.send('server', 'msam.fenced', {}, { corr: id });
    });
  }

  live(): string[] {
    return this.actorKeys();
  }
}

export interface Bench {
  dir: string;
  clock: ManualClock;
  party: TestParty;
  /** The server's end of the link. */
  link: Link;
  /** Everything the party sent on the link, decoded. */
  got: AnyEnvelope[];
  /** Sends a request as the server (id "server#<seq>") and resolves with the party's answers to it. */
  ask(type: 'msam.clear' | 'msam.fence' | 'msam.preflight', seq: number | string, header?: { mig?: string }): Promise<AnyEnvelope[]>;
  /** Sends raw bytes as the server. */
  send(env: object): void;
  /** Waits until the party is idle and every message delivered. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export interface BenchOptions {
  timing?: Partial<Timing>;
  mapBytes?: number;
  inboxRecordsMax?: number;
  commits?: 'sync' | 'async';
  commitPolicy?: RuntimeDeps['commitPolicy'];
  intercept?: RuntimeDeps['intercept'];
  onTurnPoint?: RuntimeDeps['onTurnPoint'];
  /** A clock of the test's own (one that fires its timers, say). */
  clock?: ManualClock;
}

export async function testBench(opts: BenchOptions = {}): Promise<Bench> {
  const dir = mkdtempSync(join(tmpdir(), 'valmove-inbox-'));
  const clock = opts.clock ?? new ManualClock();
  const store = PartyStore.open(dir, { mapBytes: opts.mapBytes, commits: opts.commits });
  const { commitPolicy, intercept, onTurnPoint } = opts;
  const party = new TestParty(
    { id: 'test-party', store, clock, rng: systemRng, log: silentLogger, timing: { ...FAST_TIMING, ...opts.timing }, commitPolicy, intercept, onTurnPoint },
    opts.inboxRecordsMax,
  );
  await party.start();
  const [link, theirs] = memoryLinkPair('server', 'test-party');
  party.attach('server', theirs);
  const got: AnyEnvelope[] = [];
  link.onMessage((b) => got.push(decodeEnvelope(b)));
  const settle = async () => {
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r));
      await party.idle();
    }
  };
  const send = (env: object) => link.send(new TextEncoder().encode(JSON.stringify({ v: 1, from: 'server', to: 'test-party', ...env })));
  return {
    dir,
    clock,
    party,
    link,
    got,
    send,
    settle,
    async ask(type, seq, header = {}) {
      const id = `server#${seq}`;
      const from = got.length;
      send({ id, type, ...header, body: type === 'msam.preflight' ? { rights: ['upload'] } : {} });
      await settle();
      return got.slice(from).filter((e) => e.corr === id);
    },
    async close() {
      link.close('test over');
      await party.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
