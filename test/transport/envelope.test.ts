import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { decodeEnvelope, encodeEnvelope, ENVELOPE_BYTES_MAX } from '../../src/transport/envelope.ts';

const enc = new TextEncoder();
const ok = { v: 1, id: 'terminal/t#1', from: 'terminal/t', to: 'server', type: 'login.begin', body: { user: 'alice' } };

function codeOf(raw: unknown): string {
  try {
    decodeEnvelope(typeof raw === 'string' ? enc.encode(raw) : (raw as Uint8Array));
  } catch (e) {
    assert.instance(e, ProtocolError);
    assert.ok((e as Error).message.length > 10, 'the error says what was wrong');
    return (e as ProtocolError).code;
  }
  return 'ACCEPTED';
}

test('a valid envelope round-trips through the codec', () => {
  assert.equal(decodeEnvelope(encodeEnvelope(ok as never)), ok);
});

test('non-JSON is refused with BAD_JSON', () => {
  assert.is(codeOf('{not json'), 'BAD_JSON');
  assert.is(codeOf(new Uint8Array([0xff, 0xfe, 0x00])), 'BAD_JSON');
});

test('missing or mistyped header fields are refused with BAD_ENVELOPE, naming the field', () => {
  const { id: _id, ...noId } = ok;
  assert.is(codeOf(JSON.stringify(noId)), 'BAD_ENVELOPE');
  assert.is(codeOf(JSON.stringify({ ...ok, v: 2 })), 'BAD_ENVELOPE');
  assert.is(codeOf(JSON.stringify({ ...ok, item: 'one' })), 'BAD_ENVELOPE');
  assert.is(codeOf(JSON.stringify({ ...ok, extra: true })), 'BAD_ENVELOPE');
  try {
    decodeEnvelope(enc.encode(JSON.stringify({ ...ok, from: 42 })));
  } catch (e) {
    assert.match((e as Error).message, /from/);
  }
});

test('an unknown type is refused with UNKNOWN_TYPE', () => {
  assert.is(codeOf(JSON.stringify({ ...ok, type: 'please.give.money' })), 'UNKNOWN_TYPE');
});

test('a body of the wrong shape is refused with BAD_BODY, naming the field', () => {
  assert.is(codeOf(JSON.stringify({ ...ok, body: { user: 7 } })), 'BAD_BODY');
  assert.is(codeOf(JSON.stringify({ ...ok, body: {} })), 'BAD_BODY');
  assert.is(codeOf(JSON.stringify({ ...ok, body: { user: 'alice', admin: true } })), 'BAD_BODY');
  try {
    decodeEnvelope(enc.encode(JSON.stringify({ ...ok, body: { user: 7 } })));
  } catch (e) {
    assert.match((e as Error).message, /body\.user/);
  }
});

test('an oversized message is refused with TOO_LARGE before it is parsed', () => {
  const big = enc.encode(JSON.stringify({ ...ok, body: { user: 'x'.repeat(ENVELOPE_BYTES_MAX) } }));
  assert.is(codeOf(big), 'TOO_LARGE');
});

test.run();
