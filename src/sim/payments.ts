/**
 * Users paying in simulation (SimOptions.pay): each phone is a reader its providers enrolled, and a user pays
 * (or uses a ticket) now and then, on either phone, before, during and after the migration. The ledger keeps
 * what the phones were told, item by item, so that the end of the seed can tell value spent twice (a payment
 * accepted on both sides of a move) from value lost.
 */
import type { TerminalRuntime } from '../actors/terminal.actor.ts';
import { decodeValue, worth, type ValueItem } from '../actors/value.ts';
import { seededRng, type SeededRng } from '../crypto/index.ts';
import { revokedHere } from './recovery.ts';
import type { SeedRun } from './seedRun.ts';
import type { PaymentCounts, User } from './types.ts';
import { freePhone } from './users.ts';

/** Probability that a user, looking at the phones, first tries to pay with one of them. */
const PAY_RATE = 0.25;
/** A payment's amount: 1 to this many units (a ticket is used whole). */
const PAY_AMOUNT_MAX = 40;
/** Virtual ms a payment of the epilogue (every item, on both phones) may take before the next one is tried. */
const AFTER_PAY_MS = 30_000;

/** What the phones were told of the payments of one item: receipts, and attempts that got none. */
interface PayLedger {
  /** Units spent with a receipt. */
  receipted: number;
  /** Units of attempts with no receipt: refused, failed or never answered (the chip may or may not have written them). */
  unknown: number;
  /** Ticket uses with a receipt. */
  uses: number;
  /** Chips on which a payment of this item got a receipt. */
  on: Set<string>;
}

export class Payments {
  readonly counts: PaymentCounts = { tried: 0, accepted: 0, failed: 0 };
  private readonly ledger = new Map<string, PayLedger>();
  private readonly rng: SeededRng;

  constructor(private readonly run: SeedRun) {
    this.rng = seededRng(`${run.o.seed}/payments`);
  }

  /** Each phone becomes a reader its providers enrolled (a phone spends; it tops up only with a voucher). */
  enroll(phoneIds: string[], items: ValueItem[]): void {
    const { system, providers } = this.run;
    for (const id of phoneIds) for (let k = 0; k < items.length; k++) system.connectReader(system.party<TerminalRuntime>(id), providers[k]!);
    for (const it of items) this.ledger.set(it.ref, { receipted: 0, unknown: 0, uses: 0, on: new Set() });
  }

  /** Now and then (PAY_RATE) a user looking at the phones pays with one of them first: true when a payment started. */
  atRandom(u: User): boolean {
    const { rng } = this;
    if (rng.nextFloat() >= PAY_RATE) return false;
    const phoneId = rng.nextFloat() < 0.5 ? u.oldPhone : u.newPhone;
    return this.pay(u, phoneId, Math.floor(rng.nextFloat() * u.items.length)) !== undefined;
  }

  /** The user pays with one phone (or uses a ticket), for one of the items, as a reader of its provider. */
  pay(u: User, phoneId: string, k: number): Promise<void> | undefined {
    const { run } = this;
    const t = freePhone(run, u, phoneId);
    if (!t) return undefined;
    const item = u.items[k]!;
    const provider = run.providers[k]!;
    const ticket = item.kind === 'ticket';
    const amount = ticket ? undefined : 1 + Math.floor(this.rng.nextFloat() * PAY_AMOUNT_MAX);
    const serial = phoneId === u.oldPhone ? u.source : u.destination;
    const mine = { runtime: t, since: run.clock.now() };
    u.inFlight.set(phoneId, mine);
    u.lastAction = run.clock.now();
    this.counts.tried++;
    run.line(`USER ${u.name} ${ticket ? 'uses' : `pays ${amount} of`} item ${k} on ${phoneId}`);
    const l = this.ledger.get(item.ref)!;
    // Unknown until a receipt comes: a phone that crashes mid-payment never hears (its promise never settles).
    if (!ticket) l.unknown += amount!;
    return t
      .normalUse(provider, ticket ? 'use' : 'pay', provider, amount)
      .then(
        () => {
          this.counts.accepted++;
          l.on.add(serial);
          if (ticket) l.uses++;
          else {
            l.receipted += amount!;
            l.unknown -= amount!;
          }
          run.line(`PAID ${u.name} item ${k} on ${serial}`);
        },
        (e: unknown) => {
          this.counts.failed++;
          run.line(`PAY REFUSED ${u.name} item ${k} on ${serial}: ${(e as { code?: string }).code ?? (e as Error).message}`);
        },
      )
      .finally(() => u.inFlight.get(phoneId) === mine && u.inFlight.delete(phoneId));
  }

  /** After every migration ended: every user pays once more with each item, on both phones; only the side the item ended on may accept. */
  async everywhere(users: readonly User[]): Promise<void> {
    const { run } = this;
    run.line('AFTER every user pays with every item on both phones');
    for (const u of users) {
      for (const [k] of u.items.entries()) {
        for (const phoneId of [u.oldPhone, u.newPhone]) {
          u.inFlight.delete(phoneId);
          if (this.pay(u, phoneId, k)) {
            await run.pump(() => !u.inFlight.has(phoneId), run.clock.now() + AFTER_PAY_MS, true);
          }
        }
      }
    }
  }

  /**
   * Each item: what it holds at the end, plus what the phones were given receipts for, is what it started
   * with, less at most the attempts that got no receipt (the chip may have written them). More is value
   * spent twice (a payment accepted on both sides of the move); less is value lost.
   */
  check(users: readonly User[]): void {
    const { run } = this;
    const final = new Map<string, ValueItem>();
    for (const chip of run.system.chips.values()) {
      for (const a of chip.memory.list()) {
        if (a.state === 'mainActive' && a.data && !revokedHere(run.system, a.provider, chip.serial)) final.set(decodeValue(a.data).ref, decodeValue(a.data));
      }
    }
    for (const u of users) {
      for (const it of u.items) {
        const l = this.ledger.get(it.ref)!;
        const end = final.get(it.ref);
        if (run.violation || !end) continue;
        if (it.kind === 'ticket') this.checkTicket(u, it, end, l);
        else this.checkBalance(u, it, end, l);
      }
    }
  }

  private checkTicket(u: User, it: ValueItem, end: ValueItem, l: PayLedger): void {
    const sides = [...l.on].join(' and ');
    if (l.uses > 1) this.run.fail({ invariant: 'spent-twice', message: `${u.name}'s ticket ${it.ref} was used ${l.uses} times with a receipt (on ${sides})` });
    else if (l.uses === 1 && !(end as { used: boolean }).used)
      this.run.fail({ invariant: 'spent-twice', message: `${u.name}'s ticket ${it.ref} was used (on ${sides}) and is unused again on the chip it ended on` });
  }

  private checkBalance(u: User, it: ValueItem, end: ValueItem, l: PayLedger): void {
    const sides = [...l.on].join(' and ');
    const spent = worth(it) - worth(end);
    if (l.receipted > spent) {
      this.run.fail({
        invariant: 'spent-twice',
        message:
          `${u.name}'s item ${it.ref} started at ${worth(it)} and ends at ${worth(end)}, ` +
          `yet payments of ${l.receipted} got receipts (on ${sides}): ${l.receipted - spent} spent twice`,
      });
    } else if (spent - l.receipted > l.unknown) {
      this.run.fail({
        invariant: 'conservation',
        message:
          `${u.name}'s item ${it.ref} started at ${worth(it)} and ends at ${worth(end)}: ` +
          `${spent - l.receipted - l.unknown} more than every payment tried (${l.receipted} with receipts, ${l.unknown} without) is gone`,
      });
    }
  }
}
