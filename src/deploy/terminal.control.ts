/**
 * A terminal process's control API: what the phone's UI asks of it, and what
 * `valmove terminal <command>` sends. Bound to the terminal's own address and
 * guarded by the control token in its key file.
 */
import { z } from 'zod';
import type { MigrationResult, TerminalRuntime } from '../actors/terminal.actor.ts';
import { ProtocolError, RemoteError } from '../protocol/errors.ts';
import { bearer, HttpError, type Auth, type Handler } from './http.ts';

/** Progress lines a terminal keeps for `status`. */
export const PROGRESS_LINES_MAX = 500;

const name = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:/@+#-]+$/);
const schemas = {
  login: z.strictObject({ user: name, password: z.string().min(1).max(1024) }),
  migrateOut: z.strictObject({
    destination: name.optional(),
    deadlineMs: z.number().int().positive().optional(),
    only: z.array(name).max(64).optional(),
    leaveBehind: z.enum(['unavailable']).optional(),
  }),
  migrateIn: z.strictObject({ mig: name.optional() }),
  issue: z.strictObject({
    orders: z
      .array(
        z
          .string()
          .min(1)
          .max(2048)
          .regex(/^[A-Za-z0-9._-]+$/),
      )
      .min(1)
      .max(16),
  }),
  cancel: z.strictObject({ mig: name }),
  recover: z.strictObject({ lost: name, code: z.string().min(1).max(64) }),
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

/** Every route carries its token check as `auth`: the HTTP layer runs it before the body is read. */
export function controlRoutes(terminal: TerminalRuntime, token: string): Array<{ method: 'GET' | 'POST'; path: string; handler: Handler; auth: Auth }> {
  // The user's receipt, opened with the device key: the sealed parts stay in the terminal, the file goes to its user.
  const opened = (r: MigrationResult) => {
    const { receipt: _sealed, ...rest } = r;
    const receipt = terminal.receiptOf(r);
    return receipt ? { ...rest, receipt } : rest;
  };
  const progress: unknown[] = [];
  terminal.onProgress((p) => {
    progress.push({ ...p, at: new Date().toISOString() });
    if (progress.length > PROGRESS_LINES_MAX) progress.shift();
  });
  const auth = bearer(token, { what: 'the control API', token: 'controlToken', where: "the terminal's key file" });
  const route = (method: 'GET' | 'POST', path: string, handler: Handler) => ({ method, path, handler, auth });
  // A job asked of a terminal with no user would be an UNEXPECTED event in its machine: say what to do instead.
  const loggedIn = <T>(fn: () => Promise<T>) => {
    const account = (terminal.state() as { account?: unknown } | undefined)?.account;
    if (account === 'loggedOut') throw new HttpError(409, 'UNAUTHENTICATED', 'no user is logged in on this terminal; log in first (valmove terminal login)');
    return attempt(fn);
  };
  const areaOf = async (provider: string, area?: string) => {
    if (area) return area;
    const info = await terminal.selectChip();
    const found = info.areas.find((a) => a.provider === provider);
    if (!found) throw new HttpError(409, 'AREA_ABSENT', `the chip holds no area of provider ${provider}`);
    return found.area;
  };
  return [
    route('GET', '/control/status', async () => ({ status: 200, json: { id: terminal.id, state: terminal.state(), progress } })),
    route('GET', '/control/chip', async () => attempt(() => terminal.selectChip())),
    route('POST', '/control/login', async (_req, body) => {
      const b = parse(schemas.login, body);
      return attempt(async () => {
        await terminal.login(b.user, b.password);
        return { user: b.user };
      });
    }),
    route('POST', '/control/logout', async () => attempt(() => terminal.logout())),
    route('POST', '/control/register', async () => loggedIn(() => terminal.register())),
    route('POST', '/control/migrate-out', async (_r, body) => loggedIn(() => terminal.migrateOut(parse(schemas.migrateOut, body)).then(opened))),
    route('POST', '/control/migrate-in', async (_r, body) => loggedIn(() => terminal.migrateIn(parse(schemas.migrateIn, body)).then(opened))),
    route('POST', '/control/issue', async (_r, body) => loggedIn(() => terminal.issue(parse(schemas.issue, body).orders).then(opened))),
    route('POST', '/control/recover', async (_r, body) => {
      const b = parse(schemas.recover, body);
      // The re-issue's receipt is opened here, as a migration's is: the device key stays in this process.
      return loggedIn(() => terminal.recover(b.lost, b.code).then((r) => ({ ...r, issuance: r.issuance && opened(r.issuance) })));
    }),
    route('POST', '/control/cancel', async (_r, body) => loggedIn(() => terminal.cancel(parse(schemas.cancel, body).mig))),
    route('POST', '/control/end-backup', async (_r, body) => loggedIn(() => terminal.endBackup(parse(schemas.cancel, body).mig))),
    route('POST', '/control/normal', async (_r, body) => {
      const b = parse(schemas.normal, body);
      return attempt(async () => terminal.normalUse(b.provider, b.op, await areaOf(b.provider, b.area), b.amount, b.voucher));
    }),
  ];
}
