/**
 * A provider's operator signs an issue order (src/crypto/issueOrder.ts) from
 * the provider's own config and key file: the provider's authority to create
 * one new item on one chip. `valmove provider issue` and `valmove up` use it.
 */
import { encodeValue, type ValueItem } from '../actors/value.ts';
import { systemClock } from '../clock.ts';
import { createIssueOrder, encodeIssueOrder, systemRng, type IssueOrder } from '../crypto/index.ts';
import { loadConfig, type ProviderConfig } from './config.ts';
import { identityOf, readKeyFile } from './keyfiles.ts';

export function signIssueOrder(
  configFile: string,
  o: { serial: string; area?: string; item: ValueItem; ttlHours: number },
): { token: string; order: IssueOrder } {
  const cfg = loadConfig(configFile, 'provider') as ProviderConfig;
  const keys = readKeyFile(cfg.keyFile, 'provider');
  const expiresAt = systemClock.now() + o.ttlHours * 3_600_000;
  const order = createIssueOrder(
    { provider: cfg.provider, serial: o.serial, area: o.area ?? cfg.provider, expiresAt, item: encodeValue(o.item) },
    identityOf(keys.migration),
    systemRng,
  );
  return { token: encodeIssueOrder(order), order };
}
