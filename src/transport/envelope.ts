/**
 * The one envelope every hop carries (architecture.md, "One migration, as
 * data"): protocol version, sender, receiver, message id, correlation id,
 * type, and where it applies migration id, step and item; then the body.
 *
 * The codec is JSON in UTF-8. decodeEnvelope() is the schema boundary: it
 * throws a ProtocolError with a stable code and a sentence saying what was
 * wrong and where; nothing past it re-checks shapes.
 */
import { z } from 'zod';
import { ProtocolError } from '../protocol/errors.ts';
import { STEPS, type Step } from '../protocol/steps.ts';
import { MESSAGES, NAME_CHARS_MAX, isMessageType, type BodyOf, type MessageType } from './messages.ts';

export const PROTOCOL_VERSION = 1;
/** Largest encoded envelope a party accepts (a 16 KiB frame in base64 fits with room). */
export const ENVELOPE_BYTES_MAX = 64 * 1024;

export interface Envelope<T extends MessageType = MessageType> {
  v: typeof PROTOCOL_VERSION;
  id: string;
  corr?: string;
  from: string;
  to: string;
  type: T;
  mig?: string;
  step?: Step;
  item?: number;
  body: BodyOf<T>;
}

export type AnyEnvelope = { [T in MessageType]: Envelope<T> }[MessageType];

const name = z
  .string()
  .min(1)
  .max(NAME_CHARS_MAX)
  .regex(/^[A-Za-z0-9._:/@+#-]+$/);

const headerSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  id: name,
  corr: name.optional(),
  from: name,
  to: name,
  type: z.string().min(1).max(64),
  mig: name.optional(),
  step: z.enum(STEPS as [Step, ...Step[]]).optional(),
  item: z.number().int().min(0).max(1023).optional(),
  // The body as parsed, every own key kept, for its type's strict schema to judge. (A record schema would copy it
  // and silently drop a "__proto__" key, so an extra key of that one name would pass as no key at all.)
  body: z.custom<Record<string, unknown>>((x) => typeof x === 'object' && x !== null && !Array.isArray(x), 'expected an object'),
});

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeEnvelope(env: AnyEnvelope | Envelope): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(env));
  if (bytes.length > ENVELOPE_BYTES_MAX) {
    throw new ProtocolError('TOO_LARGE', `envelope ${env.type} is ${bytes.length} bytes; the limit is ${ENVELOPE_BYTES_MAX}`);
  }
  return bytes;
}

function describeIssues(error: z.ZodError, prefix: string): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

/** Parses and validates one envelope. Throws ProtocolError; never returns a half-checked value. */
export function decodeEnvelope(bytes: Uint8Array): AnyEnvelope {
  if (bytes.length > ENVELOPE_BYTES_MAX) {
    throw new ProtocolError('TOO_LARGE', `message is ${bytes.length} bytes; the limit is ${ENVELOPE_BYTES_MAX}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new ProtocolError('BAD_JSON', 'message is not valid UTF-8 JSON');
  }
  const header = headerSchema.safeParse(raw);
  if (!header.success) {
    throw new ProtocolError('BAD_ENVELOPE', `envelope is malformed: ${describeIssues(header.error, '')}`);
  }
  const env = header.data;
  if (!isMessageType(env.type)) {
    throw new ProtocolError('UNKNOWN_TYPE', `message type "${env.type.slice(0, 64)}" is not part of protocol v${PROTOCOL_VERSION}`);
  }
  const body = MESSAGES[env.type][1].safeParse(env.body);
  if (!body.success) {
    throw new ProtocolError('BAD_BODY', `${env.type} body is invalid: ${describeIssues(body.error, 'body')}`);
  }
  return { ...env, body: body.data } as AnyEnvelope;
}

/** A best-effort look at who sent a message we could not decode, to address the error reply. */
export function peekHeader(bytes: Uint8Array): { id?: string; from?: string; type?: string } {
  try {
    const raw = JSON.parse(decoder.decode(bytes)) as Record<string, unknown>;
    const pick = (k: string) => (typeof raw[k] === 'string' && name.safeParse(raw[k]).success ? (raw[k] as string) : undefined);
    return { id: pick('id'), from: pick('from'), type: typeof raw.type === 'string' ? raw.type.slice(0, 64) : undefined };
  } catch {
    return {};
  }
}
