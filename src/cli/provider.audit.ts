/**
 * `valmove provider audit`: a provider's audit record of what moved in and
 * out through its migration SAM (protocol.md §3, "The receipt"): each
 * statement the SAM signed — migration, item, chip, direction, the item's
 * public state, when — read from its store, oldest first. No secret is in it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { loadConfig, type ProviderConfig } from '../deploy/config.ts';
import { MigrationSamRecords } from '../store/migrationSam.store.ts';
import { PartyStore } from '../store/party.store.ts';

/** The migration SAM's store folder: from a provider's config, or named directly (the demo's data/provider-P/migration-sam). */
function storeDir(o: { config?: string; data?: string }): string {
  if (o.config && o.data) throw new InvalidArgumentError('give --config or --data, not both');
  if (o.data) return o.data;
  if (o.config) return join((loadConfig(o.config, 'provider') as ProviderConfig).dataDir, 'migration-sam');
  throw new InvalidArgumentError("give --config (the provider's config) or --data (its migration SAM's store folder)");
}

export function addAuditCommand(provider: Command, out: (line: string) => void): void {
  provider
    .command('audit')
    .description("what moved in and out through the provider's migration SAM: each statement it signed, oldest first")
    .option('--config <file>', "the provider's config")
    .option('--data <dir>', "the migration SAM's store folder (e.g. a demo's data/provider-emoney/migration-sam)")
    .option('--json', 'print the statements as JSON', false)
    .action(async (o: { config?: string; data?: string; json: boolean }) => {
      const dir = storeDir(o);
      if (!existsSync(dir)) throw new Error(`no migration SAM store at ${dir}`);
      const store = PartyStore.open(dir);
      try {
        const records = new MigrationSamRecords(store).auditRecords();
        if (o.json) return out(JSON.stringify(records, null, 2));
        out(`${records.length} audit record(s)`);
        for (const s of records) {
          const what = s.value.balance !== undefined ? `balance ${s.value.balance}` : (s.value.state ?? s.value.kind);
          out(`${new Date(s.at).toISOString()}  ${s.mig} item ${s.item}  ${s.direction === 'in' ? 'in to ' : 'out of'} ${s.serial}  ${s.area}: ${what}`);
        }
      } finally {
        await store.close();
      }
    });
}
