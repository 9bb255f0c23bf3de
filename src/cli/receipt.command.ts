/**
 * `valmove receipt verify FILE`: checks a migration's receipt offline
 * against a deployment's public keys (protocol.md §3, "The receipt"). The
 * keys: `--trust FILE` (a deployment's trust.json), or the trust file the
 * demo wrote beside the receipt (FILE.trust.json).
 */
import { existsSync, readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import { trustPathBeside, writeReceipt } from '../actors/terminalReceipt.ts';
import type { MigrationResult } from '../deploy/control.client.ts';
import { parseReceiptFiles, verifyReceiptFile } from './receipt.verify.ts';

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${what} ${path} could not be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export function addReceiptCommand(program: Command, out: (line: string) => void): void {
  const receipt = program.command('receipt').description("a migration's signed receipt (items, amounts, providers, outcome, times)");
  receipt
    .command('verify')
    .description("check a receipt offline against the deployment's public keys: exit 0 if every signature and digest checks, 1 with the first that fails")
    .argument('<file>', 'the receipt file (terminal migrate-in --receipt-out, or the one the demo printed)')
    .option('--trust <file>', "the deployment's trust.json (default: FILE.trust.json beside the receipt, as the demo writes it)")
    .action((file: string, o: { trust?: string }) => {
      const trust = o.trust ?? trustPathBeside(file);
      if (!o.trust && !existsSync(trust)) {
        throw new InvalidArgumentError(`no trust file beside the receipt (${trust}); name the deployment's trust.json with --trust FILE`);
      }
      const { receipt: parsed, keys } = parseReceiptFiles(readText(file, 'the receipt'), readText(trust, 'the trust file'));
      const verdict = verifyReceiptFile(parsed, keys);
      if (!verdict.ok) throw new Error(`receipt refused: ${verdict.problem}`);
      out(`receipt verified: ${verdict.summary}`);
      for (const s of parsed.statements) {
        const amount = s.value.balance !== undefined ? `balance ${s.value.balance}` : (s.value.state ?? s.value.kind);
        out(`  item ${s.item} ${s.provider} (${s.value.kind}) ${s.direction === 'in' ? `into ${s.serial}` : `out of ${s.serial}`}: ${amount}`);
      }
    });
}

/** `--receipt-out FILE` on the terminal's migration commands. */
export function receiptOutOption(c: Command): Command {
  return c.option('--receipt-out <file>', 'at the end (completed, rolled back), write the signed receipt there');
}

/** Writes the result's receipt to `path` (when asked and there is one); the result, with where it went. */
export function saveReceiptOut(r: MigrationResult, path: unknown): MigrationResult & { receiptOut?: string } {
  if (typeof path !== 'string' || !r.receipt) return r;
  writeReceipt(path, r.receipt);
  return { ...r, receiptOut: path };
}
