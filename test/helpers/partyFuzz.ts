/**
 * protocol.md §4.7 under fast-check (issue 8, point 6): every party kind —
 * server, terminal, chip, admin SAM, normal SAM, migration SAM — gets
 * malformed envelopes and bodies of every message type, through its own link,
 * in a live world after a real migration. Each refusal is an error with a
 * stable code and a sentence, no refusal changes a record, nothing crashes,
 * and afterwards a real migration through the same party completes.
 *
 * The tests, for a number of cases per party: `npm test` runs a few
 * (test/fuzz/parties.fuzz.test.ts), `npm run test:deep` the CI size
 * (test/deep/fuzz.deep.ts), `npm run fuzz` 10,000. Each party prints how many
 * cases it ran and the answers it gave, by code.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateIdentity, systemRng, toB64 } from '../../src/crypto/index.ts';
import type { RemoteError } from '../../src/protocol/errors.ts';
import { encodeEnvelope, PROTOCOL_VERSION, type AnyEnvelope } from '../../src/transport/envelope.ts';
import type { MessageType } from '../../src/transport/messages.ts';
import { describeTally, fuzzParty, quiesce } from '../fuzz/fuzz.ts';
import { fuzzWorld, migrateAgain, targetFor, type FuzzWorld } from '../fuzz/fuzzWorld.ts';
import { memorySeat, terminalSeat, type Seat } from '../fuzz/seats.ts';
import { MESSAGE_TYPES } from '../property/arbitraries.ts';

/** Cases per party, and fast-check's seed (none: a fresh one each run, printed on a failure). */
export interface Budget {
  runs: number;
  seed?: number;
}

/** The budget from VALMOVE_FUZZ_RUNS and VALMOVE_FUZZ_SEED, or `runs` when unset. */
export function budgetFromEnv(runs: number): Budget {
  const n = Number(process.env.VALMOVE_FUZZ_RUNS ?? runs);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`VALMOVE_FUZZ_RUNS must be a positive integer, not ${process.env.VALMOVE_FUZZ_RUNS}`);
  const seed = process.env.VALMOVE_FUZZ_SEED === undefined ? undefined : Number(process.env.VALMOVE_FUZZ_SEED);
  return { runs: n, seed };
}

/** Sends one well-formed envelope through a seat (to set up a context: an open session). */
let setupSeq = 0;

async function say(fw: FuzzWorld, seat: Seat, type: MessageType, body: object, header: Partial<AnyEnvelope> = {}): Promise<void> {
  // Numbered above the cases' ids (`${seat.self}#<case>`, fuzz.ts), which count from 1.
  seat.send(
    encodeEnvelope({
      v: PROTOCOL_VERSION,
      id: `${seat.self}#${900_000_000_000_000 + ++setupSeq}`,
      from: seat.self,
      to: seat.party.id,
      type,
      ...header,
      body,
    } as AnyEnvelope),
  );
  await quiesce(fw.world);
  seat.got.length = 0;
}

async function run(fw: FuzzWorld, seats: Seat[], budget: Budget): Promise<void> {
  const { runs, seed } = budget;
  const tally = await fuzzParty({ world: fw.world, seats: seats.map((seat) => ({ seat, target: targetFor(fw, seat) })), runs, seed });
  console.log(describeTally(tally));
  assert.is(tally.cases, runs);
  // Every message type's body is broken somewhere in a full run (about 1 case in 5 is a body, over 50 types).
  if (runs >= 2_000) assert.is(tally.bodiesBroken.size, MESSAGE_TYPES.length, 'malformed bodies of every message type');
}

async function inWorld(fn: (fw: FuzzWorld) => Promise<void>): Promise<void> {
  const fw = await fuzzWorld();
  try {
    await fn(fw);
  } finally {
    await fw.cleanup();
  }
}

/** Registers the six parties' tests (one per party kind) on uvu's default suite, each running `budget.runs` cases. */
export function partyFuzzTests(budget: Budget): void {
  test('server: bad input from a terminal connection and from the admin SAM link is refused with a code and a sentence, changes nothing, and a migration completes after', () =>
    inWorld(async (fw) => {
      const server = fw.world.system.server;
      const stranger = terminalSeat(fw.world, 'fz', { commands: ['login.begin', 'login.proof'], refusalMayTouch: { 'login.proof': ['users'] } });
      const asAdminSam = memorySeat(server, 'admin-sam', 'admin-sam');
      await run(fw, [stranger, asAdminSam], budget);
      stranger.close();
      fw.world.system.relink('server', 'admin-sam');
      await migrateAgain(fw);
    }));

  test('terminal: bad input from its server, its chip and a normal SAM is refused, changes nothing, and the terminal migrates after', () =>
    inWorld(async (fw) => {
      const phone = fw.world.newPhone;
      const reader = `normal-sam/${fw.world.providers[0]}`;
      // A release of a channel not held is answered done and changes nothing (the backup's end repeats one after a restart).
      const seats = [
        memorySeat(phone, 'server', 'server', { commands: ['channel.release'] }),
        memorySeat(phone, 'chip', fw.world.destination.id),
        memorySeat(phone, reader, reader),
      ];
      await run(fw, seats, budget);
      for (const peer of ['server', fw.world.destination.id, reader]) fw.world.system.relink(phone.id, peer);
      // The login belonged to the connection the fuzzer took over: the server asks for a new one.
      const expired = await phone.migrateOut({ destination: fw.spareChip.serial }).then(
        () => undefined,
        (e: RemoteError) => e.code,
      );
      assert.is(expired, 'UNAUTHENTICATED');
      await phone.login(fw.world.user, fw.world.password);
      await migrateAgain(fw);
    }));

  test('chip: bad envelopes and bad session frames from a terminal are refused (an err frame inside the session), change no area, and the chip migrates after', () =>
    inWorld(async (fw) => {
      const chip = fw.world.destination;
      const holder = memorySeat(chip, 'terminal/fz', 'terminal/fz', { chip: true, commands: ['chip.select'] });
      await run(fw, [holder], budget);
      holder.close();
      await migrateAgain(fw);
    }));

  test('admin SAM: bad input from its server, bad chip frames in an open admin session included, is refused, changes nothing, and the admin SAM serves a migration after', () =>
    inWorld(async (fw) => {
      const admin = fw.world.system.adminSam;
      const session = 'fz-ctx:S1:1';
      const seat = memorySeat(admin, 'server', 'server', {
        commands: ['admin.identify', 'admin.lock', 'admin.format', 'admin.commit', 'admin.abort', 'admin.activate', 'admin.restore', 'admin.wipe'],
        openSessions: [session],
      });
      await say(fw, seat, 'admin.identify', { session, purpose: 'register' });
      await run(fw, [seat], budget);
      fw.world.system.relink('admin-sam', 'server');
      await migrateAgain(fw);
    }));

  test('normal SAM: bad input from a reader terminal, bad chip frames in an open reader session included, is refused, changes nothing, and the provider serves a migration after', () =>
    inWorld(async (fw) => {
      const provider = fw.world.providers[0]!;
      const nsam = fw.world.system.providers.get(provider)!.normalSam;
      const session = 'terminal/fz:r1:ctx';
      // A reader the provider enrolled (the seat stands for a channel that proved its key).
      const key = toB64(generateIdentity(systemRng).signPublic);
      fw.world.system.enrollReader(provider, key, 'terminal/fz', ['spend']);
      const reader = memorySeat(nsam, 'terminal/fz', 'terminal/fz', { commands: ['normal.begin'], openSessions: [session], provenKey: key });
      await say(fw, reader, 'normal.begin', { session, op: 'balance', area: provider });
      await run(fw, [reader], budget);
      reader.close();
      await migrateAgain(fw);
    }));

  test('migration SAM: bad input from its server is refused, changes nothing, and the provider serves a migration after', () =>
    inWorld(async (fw) => {
      const msam = fw.world.system.providers.get(fw.world.providers[0]!)!.migrationSam;
      const seat = memorySeat(msam, 'server', 'server', {
        commands: ['msam.preflight', 'msam.upload', 'msam.download', 'msam.clear', 'msam.fence', 'msam.recover'],
      });
      await run(fw, [seat], budget);
      fw.world.system.relink(msam.id, 'server');
      await migrateAgain(fw);
    }));
}
