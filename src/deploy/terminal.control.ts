/**
 * A terminal process's control API: what the phone's UI asks of it, and what
 * `valmove terminal <command>` sends. Bound to the terminal's own address and
 * guarded by the control token in its key file.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import type { TerminalRuntime } from '../actors/terminal.actor.ts';
import { equalBytes, utf8 } from '../crypto/index.ts';
import { ProtocolError, RemoteError } from '../errors.ts';
import { HttpError, type Handler } from './http.ts';

/** Progress lines a terminal keeps for `status`. */
export const PROGRESS_LINES_MAX = 500;

const name = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:/@+#-]+$/);
const schemas = {
  login: z.strictObject({ user: name, password: z.string().min(1).max(1024) }),
  migrateOut: z.strictObject({ destination: name.optional(), deadlineMs: z.number().int().positive().optional() }),
  migrateIn: z.strictObject({ mig: name.optional() }),
  cancel: z.strictObject({ mig: name }),
  normal: z.strictObject({
    provider: name,
    op: z.enum(['balance', 'pay', 'topup', 'use']),
    area: name.optional(),
    amount: z.number().int().min(0).max(1_000_000_000).optional(),
    /** A provider-signed top-up voucher (`valmove provider voucher`). */
    voucher: z.string().min(1).max(1024).optional(),
  }),
};

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new HttpError(400, 'BAD_BODY', `${i?.path.join('.') || '(body)'}: ${i?.message ?? 'invalid'}`);
  }
  return r.data;
}

async function attempt<T>(fn: () => Promise<T>): Promise<{ status: number; json: unknown }> {
  try {
    return { status: 200, json: await fn() };
  } catch (e) {
    if (e instanceof RemoteError || e instanceof ProtocolError) throw new HttpError(409, e.code, e.message);
    throw e;
  }
}

export function controlRoutes(terminal: TerminalRuntime, token: string): Array<{ method: 'GET' | 'POST'; path: string; handler: Handler }> {
  const progress: unknown[] = [];
  terminal.onProgress((p) => {
    progress.push({ ...p, at: new Date().toISOString() });
    if (progress.length > PROGRESS_LINES_MAX) progress.shift();
  });
  const expected = utf8(`Bearer ${token}`);
  const guard = (h: Handler): Handler => async (req: IncomingMessage, body) => {
    if (!equalBytes(utf8(req.headers.authorization ?? ''), expected)) {
      throw new HttpError(401, 'UNAUTHENTICATED', 'the control API needs "authorization: Bearer <controlToken>" from the terminal\'s key file');
    }
    return h(req, body);
  };
  const areaOf = async (provider: string, area?: string) => {
    if (area) return area;
    const info = await terminal.selectChip();
    const found = info.areas.find((a) => a.provider === provider);
    if (!found) throw new HttpError(409, 'AREA_ABSENT', `the chip holds no area of provider ${provider}`);
    return found.area;
  };
  return [
    { method: 'GET', path: '/control/status', handler: guard(async () => ({ status: 200, json: { id: terminal.id, state: terminal.state(), progress } })) },
    { method: 'GET', path: '/control/chip', handler: guard(async () => attempt(() => terminal.selectChip())) },
    {
      method: 'POST',
      path: '/control/login',
      handler: guard(async (_req, body) => {
        const b = parse(schemas.login, body);
        return attempt(async () => {
          await terminal.login(b.user, b.password);
          return { user: b.user };
        });
      }),
    },
    { method: 'POST', path: '/control/register', handler: guard(async () => attempt(() => terminal.register())) },
    { method: 'POST', path: '/control/migrate-out', handler: guard(async (_r, body) => attempt(() => terminal.migrateOut(parse(schemas.migrateOut, body)))) },
    { method: 'POST', path: '/control/migrate-in', handler: guard(async (_r, body) => attempt(() => terminal.migrateIn(parse(schemas.migrateIn, body)))) },
    { method: 'POST', path: '/control/cancel', handler: guard(async (_r, body) => attempt(() => terminal.cancel(parse(schemas.cancel, body).mig))) },
    {
      method: 'POST',
      path: '/control/normal',
      handler: guard(async (_r, body) => {
        const b = parse(schemas.normal, body);
        return attempt(async () => terminal.normalUse(b.provider, b.op, await areaOf(b.provider, b.area), b.amount, b.voucher));
      }),
    },
  ];
}
