/**
 * What a provider's operator does (issue 16: value is created only under
 * its provider's authority): sign top-up vouchers, and enrol or revoke the
 * readers its normal SAM serves. Both work from the provider's own config
 * and key file, on this host; the provider process may be running.
 */
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { NormalSamRuntime, READER_RIGHTS, type ReaderRight } from '../actors/normalSam.actor.ts';
import { systemClock } from '../clock.ts';
import { encodeVoucher, issueVoucher, systemRng, toHex } from '../crypto/index.ts';
import { signIssueOrder } from '../deploy/orders.ts';
import { valueSchema, type ValueItem, type ValueKind } from '../actors/value.ts';
import { loadConfig, type ProviderConfig } from '../deploy/config.ts';
import { identityOf, readKeyFile } from '../deploy/keyfiles.ts';
import { PartyStore } from '../store/party.store.ts';
import { addAuditCommand } from './provider.audit.ts';

type Out = (line: string) => void;

/** A voucher's lifetime unless told otherwise; it is single use either way. */
export const VOUCHER_TTL_HOURS_DEFAULT = 24;
/** The longest lifetime a voucher may be given (a used-voucher record is kept until its expiry). */
export const VOUCHER_TTL_HOURS_MAX = 24 * 90;

const KEY = /^[A-Za-z0-9_-]{43}$/;
const TERMINAL = /^terminal\/[A-Za-z0-9._-]{1,64}$/;

function positive(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('not a whole number above 0');
  return n;
}

const ITEM_KINDS: readonly ValueKind[] = ['emoney', 'transit', 'ticket', 'points'];

function kind(v: string): ValueKind {
  if (!(ITEM_KINDS as readonly string[]).includes(v)) throw new InvalidArgumentError(`one of ${ITEM_KINDS.join(', ')}`);
  return v as ValueKind;
}

function whole(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('not a whole number of 0 or more');
  return n;
}

/** A new value item of a kind; `ref` is the provider's own reference for it (random here). */
export function newItem(kind: ValueKind, balance: number, label: string | undefined, seat: string, ref: string): ValueItem {
  const item: ValueItem =
    kind === 'emoney'
      ? { kind, currency: label ?? 'JPY', balance, ref }
      : kind === 'transit'
        ? { kind, line: label ?? 'any line', balance, ref }
        : kind === 'points'
          ? { kind, program: label ?? 'points', balance, ref }
          : { kind, event: label ?? 'an event', seat, used: false, ref };
  const ok = valueSchema.safeParse(item);
  if (!ok.success) throw new InvalidArgumentError(`the item is not valid: ${ok.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return ok.data;
}

function rights(v: string): ReaderRight[] {
  const list = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const r of list)
    if (!(READER_RIGHTS as readonly string[]).includes(r)) throw new InvalidArgumentError(`unknown right "${r}"; rights are ${READER_RIGHTS.join(', ')}`);
  if (list.length === 0) throw new InvalidArgumentError('give at least one right');
  return list as ReaderRight[];
}

function providerConfig(file: string): ProviderConfig {
  return loadConfig(file, 'provider') as ProviderConfig;
}

export function addProviderCommands(program: Command, out: Out): void {
  const provider = program.command('provider').description("a provider's operator: issue orders, top-up vouchers and the readers its normal SAM serves");
  addVoucherCommand(provider, out);
  addIssueCommand(provider, out);
  addAuditCommand(provider, out);
  addEnrollCommand(provider, out);
}

/** `valmove provider voucher`: a signed single-use top-up voucher. */
function addVoucherCommand(provider: Command, out: Out): void {
  provider
    .command('voucher')
    .description("sign a single-use top-up voucher for one chip, area and amount (the provider's authority to create that value)")
    .requiredOption('--config <file>', "the provider's config")
    .requiredOption('--serial <serial>', 'the chip the value goes to')
    .option('--area <area>', "the area on the chip (default: the provider's name)")
    .requiredOption('--amount <n>', 'amount to add', positive)
    .option('--ttl-hours <n>', `hours until it expires (at most ${VOUCHER_TTL_HOURS_MAX})`, positive, VOUCHER_TTL_HOURS_DEFAULT)
    .option('--json', 'print the voucher and its fields as JSON', false)
    .action((o: { config: string; serial: string; area?: string; amount: number; ttlHours: number; json: boolean }) => {
      if (o.ttlHours > VOUCHER_TTL_HOURS_MAX) throw new InvalidArgumentError(`--ttl-hours is at most ${VOUCHER_TTL_HOURS_MAX}`);
      const cfg = providerConfig(o.config);
      const keys = readKeyFile(cfg.keyFile, 'provider');
      const expiresAt = systemClock.now() + o.ttlHours * 3_600_000;
      const voucher = issueVoucher(
        { provider: cfg.provider, serial: o.serial, area: o.area ?? cfg.provider, amount: o.amount, expiresAt },
        identityOf(keys.normal),
        systemRng,
      );
      const token = encodeVoucher(voucher);
      if (o.json) {
        const { sig: _sig, ...fields } = voucher;
        out(JSON.stringify({ voucher: token, ...fields, expires: new Date(expiresAt).toISOString() }, null, 2));
        return;
      }
      out(token);
    });
}

/** `valmove provider issue`: a signed single-use issue order for a new item. */
function addIssueCommand(provider: Command, out: Out): void {
  provider
    .command('issue')
    .description(
      "sign a single-use issue order: a new value item for one chip and area (the provider's authority to create it); " +
        'the phone receives it with `valmove terminal issue --order`',
    )
    .requiredOption('--config <file>', "the provider's config")
    .requiredOption('--serial <serial>', 'the chip the item goes to')
    .option('--area <area>', "the area on the chip (default: the provider's name)")
    .requiredOption('--kind <kind>', `what the item is: ${ITEM_KINDS.join(', ')}`, kind)
    .option('--balance <n>', 'starting balance (emoney, transit, points)', whole, 0)
    .option('--label <text>', 'currency (emoney), line (transit), programme (points) or event (ticket)')
    .option('--seat <seat>', "a ticket's seat", 'free')
    .option('--ttl-hours <n>', `hours until it expires (at most ${VOUCHER_TTL_HOURS_MAX})`, positive, VOUCHER_TTL_HOURS_DEFAULT)
    .option('--json', 'print the order and its fields as JSON', false)
    .action(
      (o: {
        config: string;
        serial: string;
        area?: string;
        kind: ValueKind;
        balance: number;
        label?: string;
        seat: string;
        ttlHours: number;
        json: boolean;
      }) => {
        if (o.ttlHours > VOUCHER_TTL_HOURS_MAX) throw new InvalidArgumentError(`--ttl-hours is at most ${VOUCHER_TTL_HOURS_MAX}`);
        const item = newItem(o.kind, o.balance, o.label, o.seat, toHex(systemRng.bytes(16)));
        const { token, order } = signIssueOrder(o.config, { serial: o.serial, area: o.area, item, ttlHours: o.ttlHours });
        if (o.json) {
          out(
            JSON.stringify(
              {
                order: token,
                id: order.id,
                provider: order.provider,
                serial: order.serial,
                area: order.area,
                kind: item.kind,
                expires: new Date(order.expiresAt).toISOString(),
              },
              null,
              2,
            ),
          );
          return;
        }
        out(token);
      },
    );
}

/** `valmove provider enroll`: enrol or revoke a reader of the provider's normal SAM. */
function addEnrollCommand(provider: Command, out: Out): void {
  provider
    .command('enroll')
    .description("enrol a reader (a phone's terminal, a shop's reader) by its device key, with its rights; or revoke one")
    .requiredOption('--config <file>', "the provider's config")
    .requiredOption('--reader <key>', "the reader's Ed25519 public key (base64url, from its keygen summary or trust.json)")
    .option('--name <terminal>', 'the name the reader connects with, terminal/<name>')
    .option('--rights <list>', `comma-separated: ${READER_RIGHTS.join(', ')} (charge: top up without a voucher)`, rights, ['spend'] as ReaderRight[])
    .option('--revoke', 'remove this reader instead', false)
    .action(async (o: { config: string; reader: string; name?: string; rights: ReaderRight[]; revoke: boolean }) => {
      if (!KEY.test(o.reader)) throw new InvalidArgumentError('--reader is a 32-byte key in base64url (43 characters)');
      const cfg = providerConfig(o.config);
      const store = PartyStore.open(join(cfg.dataDir, 'normal-sam'));
      try {
        const readers = NormalSamRuntime.readersDb(store);
        if (o.revoke) {
          const had = readers.get(o.reader);
          await store.commit(() => readers.remove(o.reader));
          const inConfig = cfg.readers?.[o.reader] ? ' (it is also in the config\'s "readers": remove it there too)' : '';
          out(had ? `reader ${had.name} revoked${inConfig}` : `no reader with that key was enrolled in the store${inConfig}`);
          return;
        }
        if (!o.name || !TERMINAL.test(o.name)) throw new InvalidArgumentError('--name is terminal/<name> (letters, digits, ".", "_", "-")');
        await store.commit(() => readers.put(o.reader, { name: o.name!, rights: o.rights }));
        out(`reader ${o.name} enrolled by ${cfg.provider} with ${o.rights.join(', ')}`);
      } finally {
        await store.close();
      }
    });
}
