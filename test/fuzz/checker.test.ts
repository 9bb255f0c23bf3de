/**
 * The fuzz harness can fail (protocol.md §5: a checker must be able to
 * fail): against a server broken on purpose, one way at a time, fuzzParty
 * reports each break. The breaks are monkey patches on this one server
 * object, undone after each test; the last one stops the server.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { fuzzParty } from './fuzz.ts';
import { fuzzWorld, targetFor, type FuzzWorld } from './fuzzWorld.ts';
import { storeOf, terminalSeat, type Seat } from './seats.ts';

/** Enough cases that each break shows (a third of them reach the server's handler), few enough to stay quick. */
const RUNS = 300;

let fw: FuzzWorld;
let seat: Seat;
/** The server's handler and its runtime's refusal (src/runtime/intake.ts), as the patches see them. */
type Patchable = { onEnvelope: (env: unknown, peer: string, ...rest: unknown[]) => void };
type Refuser = { refuse: (peer: string, bytes: Uint8Array, error: unknown, received?: unknown) => void };
let server: Patchable;
let intake: Refuser;

test.before(async () => {
  fw = await fuzzWorld();
  server = fw.world.system.server as unknown as Patchable;
  intake = (fw.world.system.server as unknown as { runtime: { intake: Refuser } }).runtime.intake;
  seat = terminalSeat(fw.world, 'checker', { commands: ['login.begin', 'login.proof'], refusalMayTouch: { 'login.proof': ['users'] } });
});

test.after(async () => {
  await fw.cleanup();
});

test.after.each(() => {
  delete (server as Partial<Patchable>).onEnvelope;
  delete (intake as Partial<Refuser>).refuse;
});

async function fuzzFails(): Promise<string> {
  try {
    await fuzzParty({ world: fw.world, seats: [{ seat, target: targetFor(fw, seat) }], runs: RUNS, seed: 42 });
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('the fuzzer passed a broken server');
}

test('an unbroken server passes (the baseline the breaks are measured against)', async () => {
  await fuzzParty({ world: fw.world, seats: [{ seat, target: targetFor(fw, seat) }], runs: RUNS, seed: 42 });
});

test('a server that writes a record while refusing is caught: "state changed"', async () => {
  const handle = server.onEnvelope.bind(server);
  let n = 0;
  server.onEnvelope = (env, peer, ...rest) => {
    storeOf(fw.world.system.server).meta.putSync('checker', ++n);
    handle(env, peer, ...rest);
  };
  assert.match(await fuzzFails(), /state changed: meta\["checker"\]/);
});

test('a server that refuses without a word is caught: "expected one error envelope"', async () => {
  intake.refuse = () => {};
  assert.match(await fuzzFails(), /expected one error envelope .*got nothing/);
});

test('a server whose refusals say nothing useful is caught: "too short to act on"', async () => {
  const refuse = intake.refuse.bind(intake);
  intake.refuse = (peer, bytes, error, received) => refuse(peer, bytes, new ProtocolError((error as ProtocolError).code ?? 'INTERNAL', 'no'), received);
  assert.match(await fuzzFails(), /too short to act on/);
});

test('a server that throws out of a handler is caught: "server stopped" (this one stops the server)', async () => {
  server.onEnvelope = () => {
    throw new Error('checker: a handler bug');
  };
  assert.match(await fuzzFails(), /server stopped|unhandled rejection: Error: checker: a handler bug/);
});

test.run();
