/**
 * The one error registry (src/protocol/errors.ts, issue 18 point 4): every code has a
 * sentence, a retry flag and a family; every code a party, the chip or
 * src/crypto can send is registered (a source scan, so an unregistered code
 * fails here even where the compiler can not see it); the retry flag is what
 * the server's retry decision reads; a refusal travels as { code, message }
 * end to end; and every key check value is compared in constant time.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor } from 'xstate';
import { equalBytes, fromB64, KCV_BYTES, keyCheckValue, randomSecret, sameKcv, seededRng, toB64, type CryptoErrorCode } from '../src/crypto/index.ts';
import { ERROR_CODES, ERRORS, isErrorCode, mayRetry, RemoteError, type ErrorCode, type ErrorFamily } from '../src/protocol/errors.ts';
import { PRE_LOCK_ATTEMPTS_MAX, retryBeforeLock } from '../src/machines/migration.logic.ts';
import { migrationMachine } from '../src/machines/migration.machine.ts';
import { registrationMachine, type RegistrationIntent } from '../src/machines/registration.machine.ts';
import { buildWorld } from './helpers/world.ts';
import { tsFilesUnder } from './helpers/sourceFiles.ts';

const SRC = join(import.meta.dirname, '..', 'src');
const FAMILIES: readonly ErrorFamily[] = ['transport', 'store', 'authority', 'chip', 'crypto', 'migration'];

const rel = (p: string) => p.slice(SRC.length + 1);

// ---- the registry itself ------------------------------------------------------------------------

test('registry: every code has a one-line sentence, a retry flag and a family', () => {
  assert.ok(ERROR_CODES.length >= 60, `only ${ERROR_CODES.length} codes`);
  assert.equal([...ERROR_CODES], Object.keys(ERRORS), 'ERROR_CODES lists the registry, in its order');
  for (const code of ERROR_CODES) {
    const spec = ERRORS[code] as { sentence?: unknown; retry?: unknown; family?: unknown };
    assert.match(code, /^[A-Z][A-Z0-9_]+$/, `${code}: a code is UPPER_SNAKE`);
    assert.type(spec.sentence, 'string', `${code} has a sentence`);
    const sentence = spec.sentence as string;
    assert.ok(sentence.length >= 15 && sentence.length <= 160, `${code}: a sentence of one line (15..160 chars), got ${sentence.length}`);
    assert.not.match(sentence, /\n/, `${code}: one line`);
    assert.match(sentence, /^[A-Z].*\.$/, `${code}: a sentence starts with a capital and ends with a full stop: ${sentence}`);
    assert.not.ok(sentence.includes(code), `${code}: the sentence says what it means, it does not repeat the code`);
    assert.type(spec.retry, 'boolean', `${code} has a retry flag`);
    assert.ok(FAMILIES.includes(spec.family as ErrorFamily), `${code}: family ${String(spec.family)} is one of ${FAMILIES.join(', ')}`);
  }
  for (const family of FAMILIES)
    assert.ok(
      ERROR_CODES.some((c) => ERRORS[c].family === family),
      `family ${family} has codes`,
    );
});

test('registry: isErrorCode knows exactly the registry (no prototype keys, no near-misses)', () => {
  for (const code of ERROR_CODES) assert.ok(isErrorCode(code), code);
  for (const x of ['', 'busy', 'BUSY ', 'toString', 'constructor', '__proto__', 'hasOwnProperty', 'HTTP_500', 1, null, undefined]) {
    assert.not.ok(isErrorCode(x), `${String(x)} is not a code`);
  }
});

test('registry: crypto codes are registry codes (CryptoError is typed by the registry)', () => {
  // Compile-time: a CryptoErrorCode is an ErrorCode (tsc fails here otherwise).
  const asRegistry = (c: CryptoErrorCode): ErrorCode => c;
  for (const c of ['BAD_ENCODING', 'BAD_KEY', 'FRAME_TAMPERED', 'GRANT_EXPIRED', 'AUTH_FAILED', 'BUSY'] as const) assert.ok(isErrorCode(asRegistry(c)));
  // Every crypto-family code exists, and src/crypto throws no code outside that family but AUTH_FAILED and BUSY.
  const thrown = new Set<string>();
  for (const f of tsFilesUnder(join(SRC, 'crypto'))) {
    for (const m of readFileSync(f, 'utf8').matchAll(/new CryptoError\(\s*'([^']*)'/g)) thrown.add(m[1]!);
  }
  assert.ok(thrown.size >= 10, `the scan found ${thrown.size} codes thrown in src/crypto`);
  for (const c of thrown) {
    assert.ok(isErrorCode(c) && (ERRORS[c].family === 'crypto' || c === 'AUTH_FAILED' || c === 'BUSY'), `src/crypto throws ${c}`);
  }
});

test('registry: the module imports nothing from other project folders (the import goes downward only)', () => {
  const imports = (file: string) => [...readFileSync(join(SRC, file), 'utf8').matchAll(/^import\s[^;]*?from\s+'([^']+)'/gm)].map((m) => m[1]);
  assert.equal(imports('protocol/errors.ts'), ['../limits.ts']);
  assert.equal(imports('limits.ts'), []);
  // The message catalog reads the text limit from there, not the other way round.
  assert.ok(imports('transport/messages.ts').includes('../limits.ts'));
});

// ---- every code a party can send is registered -----------------------------------------------------

/** Where a party names a code in src/: thrown errors, refusal objects, chip err frames and refusals, fallbacks. */
const CODE_SITES: ReadonlyArray<[string, RegExp]> = [
  ['new ProtocolError / CryptoError', /new (?:ProtocolError|CryptoError)\(\s*'([^']*)'/g],
  ['code: literal (refusals, err frames, STEP_FAILED, failures)', /\bcode: '([^']*)'/g],
  ['chip refusal()', /\brefusal\('([^']*)'/g],
  ['channel refuse()', /\.refuse\('([^']*)'/g],
  ['code ?? fallback', /\bcode \?\? '([^']*)'/g],
  ['codeOf(e, fallback)', /\bcodeOf\([^,()]+, '([^']*)'\)/g],
];
/** The folders whose code speaks for a party (cli, charts, trace and bench tools keep their own codes). */
const PARTY_DIRS = ['actors', 'machines', 'crypto', 'transport', 'store', 'model', 'sim', 'deploy'];

test('every code a party, the chip or crypto can send or throw in src/ is a registry key', () => {
  const unregistered: string[] = [];
  const perSite = new Map<string, number>();
  for (const dir of PARTY_DIRS) {
    for (const file of tsFilesUnder(join(SRC, dir))) {
      const text = readFileSync(file, 'utf8');
      for (const [site, re] of CODE_SITES) {
        for (const m of text.matchAll(re)) {
          perSite.set(site, (perSite.get(site) ?? 0) + 1);
          if (!isErrorCode(m[1])) unregistered.push(`${rel(file)}: ${m[0]}`);
        }
      }
    }
  }
  assert.equal(unregistered, [], 'codes missing from src/protocol/errors.ts');
  // The scan is not vacuous: each kind of site is found where we know it is.
  for (const [site] of CODE_SITES) assert.ok((perSite.get(site) ?? 0) > 0, `no ${site} found: the scan's pattern is stale`);
  assert.ok([...perSite.values()].reduce((a, b) => a + b, 0) > 200, 'the scan found the codes of every party');
});

// ---- the retry flag drives the server's retry decision ---------------------------------------------

test('retry: the server retries a failed step before the lock exactly as the registry flag says', () => {
  // Past the attempt budget only the flag decides.
  for (const code of ERROR_CODES) assert.is(retryBeforeLock(code, PRE_LOCK_ATTEMPTS_MAX), ERRORS[code].retry, code);
  // Within it, every code is tried again (a changed state may let it pass).
  for (const code of ERROR_CODES) assert.ok(retryBeforeLock(code, 0), code);
  assert.is(mayRetry('NOT_A_CODE'), false, 'a code this build does not know is not retried for ever');
});

test('retry: the retryable codes are the transient ones of before the registry, plus channel-only codes', () => {
  // Before the registry, migration.logic.ts kept TRANSIENT_CODES; STORE_FULL was not one of them and stays final.
  const retryable = ERROR_CODES.filter((c) => ERRORS[c].retry).sort();
  assert.equal(retryable, [
    'BUSY',
    'CHANNEL_REPLAY',
    'CHANNEL_RESERVED',
    'CHANNEL_TAMPERED',
    'FRAME_REJECTED',
    'FRAME_REORDER',
    'FRAME_REPLAY',
    'FRAME_TAMPERED',
    'HANDSHAKE_TIMEOUT',
    'SESSION_FAILED',
    'STALE_COUNTER',
    'UNREACHABLE',
  ]);
  for (const c of ['NOT_TRUSTED', 'GRANT_REFUSED', 'AUTH_FAILED', 'STORE_FULL'] as const) assert.not.ok(mayRetry(c), `${c} is final`);
});

/** The server's migration machine at S1, failing the channel reservation `times` times with `code`. */
function failReservation(code: ErrorCode, times: number): string {
  const actor = createActor(migrationMachine, {
    input: { mig: 'm-retry', user: 'alice', terminal: 'terminal/old', request: 'r1', timing: { retryBaseMs: 200, retryCapMs: 30_000, preflightMs: 30_000 } },
  }).start();
  for (let i = 0; i < times; i++) {
    assert.ok(actor.getSnapshot().matches({ sourcePhase: 'reservingChannel' }), `attempt ${i + 1} runs: ${JSON.stringify(actor.getSnapshot().value)}`);
    actor.send({ type: 'STEP_FAILED', code, message: 'steered', now: 0 });
    if (actor.getSnapshot().matches({ sourcePhase: 'reserveRetry' })) actor.send({ type: 'RETRY_DUE' });
  }
  const value = actor.getSnapshot().value;
  actor.stop();
  return typeof value === 'string' ? value : JSON.stringify(value);
}

test('retry: BUSY (retry: true) keeps the migration trying; AUTH_FAILED (retry: false) refuses it after the attempt budget', () => {
  assert.is(failReservation('BUSY', PRE_LOCK_ATTEMPTS_MAX + 2), JSON.stringify({ sourcePhase: 'reservingChannel' }));
  assert.is(failReservation('AUTH_FAILED', PRE_LOCK_ATTEMPTS_MAX), 'refused');
});

// ---- a refusal is two fields end to end ------------------------------------------------------------

test('registration: a refusal keeps code and message as two fields, a ": " in the message included', () => {
  const actor = createActor(registrationMachine, { input: { reg: 'r', user: 'alice', terminal: 'terminal/old', request: 'q1' } });
  const out: RegistrationIntent[] = [];
  actor.on('*', (e) => out.push(e as RegistrationIntent));
  actor.start();
  actor.send({ type: 'STEP_FAILED', code: 'BUSY', message: 'the chip is in use: a reader session; try again' });
  const answer = out.find((i) => i.type === 'answer');
  assert.equal(answer, {
    type: 'answer',
    terminal: 'terminal/old',
    request: 'q1',
    serial: null,
    user: 'alice',
    refusal: { code: 'BUSY', message: 'the chip is in use: a reader session; try again' },
  });
  actor.stop();
});

test('registration: a chip registered to another user reaches the terminal as { NOT_OWNER, sentence }', async () => {
  const world = await buildWorld({ items: 1 });
  try {
    await world.system.server.createUser('bob', 'bobs-password');
    const bobs = await world.system.addTerminal('bob');
    world.system.insertChip(bobs, world.source);
    world.system.connectToServer(bobs);
    await bobs.login('bob', 'bobs-password');
    const err = await bobs.register().then(
      () => assert.unreachable("bob registered alice's chip"),
      (e: unknown) => e,
    );
    assert.instance(err, RemoteError);
    assert.is((err as RemoteError).code, 'NOT_OWNER');
    assert.is((err as RemoteError).message, `chip ${world.source.serial} is registered to another user`);
  } finally {
    await world.cleanup();
  }
});

test('no party splits a "CODE: message" string back into its fields', () => {
  const splits: string[] = [];
  for (const dir of ['actors', 'machines', 'transport', 'crypto', 'store']) {
    for (const file of tsFilesUnder(join(SRC, dir))) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/\.(split|indexOf|lastIndexOf)\(\s*(': '|": "|\/:\\s)/.test(line)) splits.push(`${rel(file)}:${i + 1}: ${line.trim()}`);
        });
    }
  }
  assert.equal(splits, []);
});

// ---- key check values: constant time, everywhere --------------------------------------------------

test('sameKcv: same answer as === for check values as they travel; absent, short, long or bad base64 is simply not equal', () => {
  const rng = seededRng('errors-kcv');
  const key = randomSecret(rng);
  const a = keyCheckValue(key, 'SRC-1', 'emoney');
  const b = keyCheckValue(key, 'SRC-1', 'transit');
  assert.is(a.length, KCV_BYTES);
  const cases: Array<[string, string | Uint8Array | null | undefined, string | Uint8Array | null | undefined, boolean]> = [
    ['equal, base64', toB64(a), toB64(a), true],
    ['equal, bytes and base64', a, toB64(a), true],
    ['equal, bytes', a, new Uint8Array(a), true],
    ['unequal', toB64(a), toB64(b), false],
    ['last byte differs', toB64(a), toB64(Uint8Array.from(a, (x, i) => (i === a.length - 1 ? x ^ 1 : x))), false],
    ['shorter', toB64(a), toB64(a.subarray(0, KCV_BYTES - 1)), false],
    ['longer', toB64(a), toB64(Uint8Array.of(...a, 0)), false],
    ['both the same wrong length', toB64(a.subarray(0, 3)), toB64(a.subarray(0, 3)), false],
    ['bad base64 (padding)', `${toB64(a)}=`, toB64(a), false],
    ['bad base64 (alphabet)', toB64(a).replace(/^./, '+'), toB64(a), false],
    ['the same bad base64 twice', '!!!!', '!!!!', false],
    ['non-canonical trailing bits', toB64(a).replace(/.$/, (c) => String.fromCharCode(c.charCodeAt(0) + 1)), toB64(a), false],
    ['absent', undefined, toB64(a), false],
    ['both absent', null, null, false],
  ];
  for (const [what, x, y, want] of cases) {
    assert.is(sameKcv(x, y), want, what);
    assert.is(sameKcv(y, x), want, `${what} (swapped)`);
    // For well-formed check values the answer is exactly what === on their base64 gave before.
    const wellFormed = (v: unknown) => typeof v === 'string' && /^[A-Za-z0-9_-]+$/.test(v) && safeLength(v) === KCV_BYTES;
    if (wellFormed(x) && wellFormed(y)) assert.is(sameKcv(x, y), x === y, `${what}: as ===`);
  }
});

function safeLength(v: string): number {
  try {
    return fromB64(v).length;
  } catch {
    return -1;
  }
}

test('sameKcv is constant time by construction: it decodes, then compares with equalBytes (as verifyProof), no early exit', () => {
  const body = sameKcv.toString();
  assert.match(body, /equalBytes/, 'the compare is equalBytes');
  assert.not.match(body.replace(/[!=]==\s*null/g, ''), /[!=]==/, 'no === or !== on the values themselves');
  // equalBytes reads every byte: the same verdict whichever byte differs.
  const x = new Uint8Array(KCV_BYTES);
  for (let i = 0; i < KCV_BYTES; i++) {
    const y = new Uint8Array(KCV_BYTES);
    y[i] = 1;
    assert.not.ok(equalBytes(x, y), `byte ${i}`);
  }
});

test('every key check value comparison in src/ goes through sameKcv (no === or !== on a kcv)', () => {
  const operand = String.raw`[\w.?!\]\)]*[kK]cv[\w.?!\(\)\[\]]*`;
  const compare = new RegExp(String.raw`${operand}\s*[!=]==\s*(?!null\b|undefined\b)\S|[!=]==\s*${operand}`);
  const found: string[] = [];
  for (const file of tsFilesUnder(SRC)) {
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (compare.test(line)) found.push(`${rel(file)}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.equal(found, []);
  // And the helper is used where the check values are compared.
  // The migration SAM's chip-session frames (the download's check value) moved to migrationSamFrames.ts.
  for (const file of ['actors/adminSam.actor.ts', 'actors/migrationSamFrames.ts']) {
    assert.match(readFileSync(join(SRC, file), 'utf8'), /sameKcv\(/, `${file} compares check values with sameKcv`);
  }
});

test.run();
