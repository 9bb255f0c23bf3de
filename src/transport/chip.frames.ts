/**
 * Session frames between a SAM and a chip: the bytes inside a `frame`
 * envelope's `data`, opaque to the server and the terminal that relay them.
 *
 *   SAM  -> chip   auth1  { area, mig, purpose, r }            challenge (clear)
 *   chip -> SAM    auth2  { serial, r, proof }                 our challenge + proof under the area's active key
 *   SAM  -> chip   auth3  { proof, box }                       SAM proof + the first sealed command
 *   SAM  -> chip   cmd    { box }                              further sealed commands (an admin session's one command is a batch)
 *   chip -> SAM    resp   { box }                              sealed reply to each command
 *   chip -> SAM    err    { code, message }                    clear refusal (auth refused, frame rejected)
 *   SAM  -> chip   close  { box }                              sealed end of session (optional: valmove's SAMs never send it)
 *
 * Commands and replies are JSON inside the AEAD boxes; keys and item values
 * travel only there. Both sides parse frames through these schemas.
 */
import { z } from 'zod';
import { ERROR_CODES, ProtocolError } from '../protocol/errors.ts';
import { TEXT_CHARS_MAX } from '../limits.ts';
import { B64URL } from './messages.ts';

/** A chip frame's encoded JSON is bounded (one 16 KiB plaintext command, sealed, in base64). */
export const CHIP_FRAME_BYTES_MAX = 24 * 1024;

// Canonical, as in envelopes: the chip and the SAMs read these fields with fromB64, which refuses any other spelling.
const b64 = (max: number) => z.string().max(max).regex(B64URL, 'canonical base64url without padding');
const name = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:/@+*-]+$/);
/** A refusal's code: one of the registry's (src/protocol/errors.ts), so a chip and a SAM read it the same way. */
const code = z.enum(ERROR_CODES);

export const chipFrameSchema = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('auth1'), area: name, mig: name, purpose: z.enum(['admin', 'upload', 'download', 'normal']), r: b64(64) }),
  z.strictObject({ t: z.literal('auth2'), serial: name, r: b64(64), proof: b64(64) }),
  z.strictObject({ t: z.literal('auth3'), proof: b64(64), box: b64(CHIP_FRAME_BYTES_MAX) }),
  z.strictObject({ t: z.literal('cmd'), box: b64(CHIP_FRAME_BYTES_MAX) }),
  z.strictObject({ t: z.literal('resp'), box: b64(CHIP_FRAME_BYTES_MAX) }),
  z.strictObject({ t: z.literal('err'), code, message: z.string().max(TEXT_CHARS_MAX) }),
  z.strictObject({ t: z.literal('close'), box: b64(CHIP_FRAME_BYTES_MAX) }),
]);
export type ChipFrame = z.infer<typeof chipFrameSchema>;

const keyB64 = b64(64);
const step = name;

/** Admin commands on one area (K_chip sessions). */
const areaCommands = [
  z.strictObject({ op: z.literal('format'), area: name, provider: name, key: keyB64, mig: name, step }),
  z.strictObject({ op: z.literal('lock'), area: name, key: keyB64, mig: name, step }),
  z.strictObject({ op: z.literal('activate'), area: name, mig: name, step }),
  z.strictObject({ op: z.literal('restore'), area: name, mig: name, step }),
  z.strictObject({ op: z.literal('wipe'), area: name, mig: name, step }),
  z.strictObject({ op: z.literal('wipeRevoked'), area: name, mig: name, step }),
] as const;

/** Area commands one batch carries at most: one per area a chip may hold (area.machine.ts, CHIP_AREAS_MAX). */
export const BATCH_COMMANDS_MAX = 64;

/** Commands a SAM may send inside a session (validated by the chip after decryption). */
export const chipCommandSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('list') }),
  ...areaCommands,
  // Several area commands in one: applied in one transaction, all or none (issue 19: one command per admin session).
  z.strictObject({
    op: z.literal('batch'),
    cmds: z
      .array(z.discriminatedUnion('op', [...areaCommands]))
      .min(1)
      .max(BATCH_COMMANDS_MAX),
  }),
  z.strictObject({ op: z.literal('read') }),
  z.strictObject({ op: z.literal('download'), data: b64(8192), key: keyB64, mig: name, step }),
  z.strictObject({ op: z.literal('write'), data: b64(8192), counter: z.number().int().min(0) }),
  z.strictObject({ op: z.literal('close') }),
]);
export type ChipCommand = z.infer<typeof chipCommandSchema>;

const okFields = {
  ok: z.literal(true),
  kcv: b64(32).optional(),
  prevKcv: b64(32).optional(),
  data: b64(8192).optional(),
  counter: z.number().int().min(0).optional(),
  areas: z
    .array(z.strictObject({ area: name, provider: name, state: z.enum(['absent', 'provisioned', 'loaded', 'mainActive', 'locked']) }))
    .max(64)
    .optional(),
};

/** A chip's reply inside a session; a batch's success carries each command's reply, in order, in `replies`. */
export const chipReplySchema = z.union([
  z.strictObject({ ...okFields, replies: z.array(z.strictObject(okFields)).max(BATCH_COMMANDS_MAX).optional() }),
  z.strictObject({ ok: z.literal(false), code, message: z.string().max(TEXT_CHARS_MAX) }),
]);
export type ChipReply = z.infer<typeof chipReplySchema>;

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function encodeJson(value: unknown): Uint8Array {
  return enc.encode(JSON.stringify(value));
}

function parseWith<T>(schema: z.ZodType<T>, bytes: Uint8Array, what: string): T {
  if (bytes.length > CHIP_FRAME_BYTES_MAX) throw new ProtocolError('TOO_LARGE', `${what} is ${bytes.length} bytes; the limit is ${CHIP_FRAME_BYTES_MAX}`);
  let raw: unknown;
  try {
    raw = JSON.parse(dec.decode(bytes));
  } catch {
    throw new ProtocolError('FRAME_REJECTED', `${what} is not valid JSON`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ProtocolError('FRAME_REJECTED', `${what} is malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

export const decodeChipFrame = (b: Uint8Array): ChipFrame => parseWith(chipFrameSchema, b, 'session frame');
export const decodeChipCommand = (b: Uint8Array): ChipCommand => parseWith(chipCommandSchema, b, 'session command');
export const decodeChipReply = (b: Uint8Array): ChipReply => parseWith(chipReplySchema, b, 'session reply');
