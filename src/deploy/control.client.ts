/** The client side of a terminal's control API, for `valmove terminal <command>` and `valmove up`. */
import type { RecoveryResult } from '../actors/terminalRecovery.ts';
import { loadConfig, type TerminalConfig } from './config.ts';
import { readKeyFile } from './keyfiles.ts';
import { RemoteError } from '../protocol/errors.ts';
import type { MigrationResult as SealedResult, NormalReceipt, ChipInfo } from '../actors/terminal.actor.ts';
import type { ReceiptFile } from '../transport/receipt.schemas.ts';

/** A migration's answer through the control API: at the end, the receipt opened by the terminal (terminal.control.ts). */
export type MigrationResult = Omit<SealedResult, 'receipt'> & { receipt?: ReceiptFile };
import type { MigrateOutOptions } from '../machines/terminal.machine.ts';

/** How long one control call may take (a whole migration phase is one call). */
export const CONTROL_CALL_TIMEOUT_MS = 120_000;

export class TerminalControl {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  static fromConfig(file: string): TerminalControl {
    const cfg = loadConfig(file, 'terminal') as TerminalConfig;
    const keys = readKeyFile(cfg.keyFile, 'terminal');
    const host = cfg.listen.host === '0.0.0.0' ? '127.0.0.1' : cfg.listen.host;
    return new TerminalControl(`${cfg.tls ? 'https' : 'http'}://${host}:${cfg.listen.port}`, keys.controlToken);
  }

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(CONTROL_CALL_TIMEOUT_MS),
      });
    } catch (e) {
      throw new RemoteError('UNREACHABLE', `the terminal at ${this.baseUrl} does not answer (${(e as Error).message}); is it started?`);
    }
    const json = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
    if (!res.ok) throw new RemoteError(json.error?.code ?? `HTTP_${res.status}`, json.error?.message ?? `HTTP ${res.status}`);
    return json as T;
  }

  status() {
    return this.call<{ id: string; state: unknown; progress: Array<{ step: string; text: string; mig: string }> }>('GET', '/control/status');
  }
  chip() {
    return this.call<ChipInfo>('GET', '/control/chip');
  }
  login(user: string, password: string) {
    return this.call<{ user: string }>('POST', '/control/login', { user, password });
  }
  logout() {
    return this.call<{ user: string | null }>('POST', '/control/logout', {});
  }
  register() {
    return this.call<{ serial: string; user: string }>('POST', '/control/register', {});
  }
  migrateOut(opts: MigrateOutOptions = {}) {
    return this.call<MigrationResult>('POST', '/control/migrate-out', opts);
  }
  migrateIn(opts: { mig?: string } = {}) {
    return this.call<MigrationResult>('POST', '/control/migrate-in', opts);
  }

  issue(orders: string[]) {
    return this.call<MigrationResult>('POST', '/control/issue', { orders });
  }
  recover(lost: string, code: string) {
    return this.call<Omit<RecoveryResult, 'issuance'> & { issuance: MigrationResult | null }>('POST', '/control/recover', { lost, code });
  }
  cancel(mig: string) {
    return this.call<{ mig: string; decision: string }>('POST', '/control/cancel', { mig });
  }
  endBackup(mig: string) {
    return this.call<{ mig: string; state: string; until: number; wipedAt?: number }>('POST', '/control/end-backup', { mig });
  }
  normal(provider: string, op: 'balance' | 'pay' | 'topup' | 'use', amount?: number, area?: string, voucher?: string) {
    return this.call<NormalReceipt>('POST', '/control/normal', {
      provider,
      op,
      ...(amount !== undefined ? { amount } : {}),
      ...(area ? { area } : {}),
      ...(voucher ? { voucher } : {}),
    });
  }
}
