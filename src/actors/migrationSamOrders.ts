/**
 * An issuance at a provider's migration SAM: the provider's issue orders
 * (src/crypto/issueOrder.ts) stand for the upload a migration would have
 * made. An order is used once: its id is kept until it expires.
 */
import {
  CryptoError,
  decodeIssueOrder,
  openIssueOrder,
  ownSignKeys,
  verifyIssueOrder,
  type GrantBinding,
  type Identity,
  type IssueOrderBody,
} from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { MigrationSamRecords, type HeldItem } from '../store/migrationSam.store.ts';
import type { TurnContext } from './runtime.ts';
import { decodeValue } from './value.ts';

/** Expired used-order records removed each time an order is used (their store stays bounded by the live orders). */
export const SPENT_ORDERS_PRUNED_PER_USE = 16;

/** What placing an order reads of the migration SAM. */
export interface OrderDesk {
  /** The SAM's own identity: it signs its provider's orders, and their items are sealed to it (its previous one's too, in a rotation window). */
  identity: Identity;
  provider: string;
  records: MigrationSamRecords;
}

/**
 * An issuance's item: the provider's issue order, signed by this SAM's own
 * identity, bound to this chip and area (the admin SAM's grant names both),
 * unexpired and never used, puts its sealed item in our store, as an upload
 * would have. Everything is checked before anything is written.
 */
export function placeOrder(turn: TurnContext, key: string, token: string, binding: GrantBinding, now: number, sam: OrderDesk): HeldItem {
  const refuse = (why: string) => new ProtocolError('ORDER_REFUSED', why);
  let order: IssueOrderBody;
  let item: Uint8Array;
  try {
    order = verifyIssueOrder(decodeIssueOrder(token), ownSignKeys(sam.identity));
    item = openIssueOrder(order, sam.identity);
    decodeValue(item);
  } catch (e) {
    throw refuse(e instanceof CryptoError ? e.message : "the order's item is not a value item");
  }
  if (order.provider !== sam.provider) throw refuse(`the order is for ${order.provider}, not ${sam.provider}`);
  if (order.serial !== binding.serial) throw refuse(`the order is for chip ${order.serial}, not ${binding.serial}`);
  if (order.area !== binding.area) throw refuse(`the order is for area ${order.area}, not ${binding.area}`);
  if (order.expiresAt <= now) throw refuse(`the order expired at ${new Date(order.expiresAt).toISOString()}`);
  const spent = sam.records.orders.get(order.id);
  if (spent) throw refuse(`the order was used already (migration ${spent.mig})`);
  const held: HeldItem = {
    mig: binding.mig,
    item: binding.item,
    area: binding.area,
    provider: binding.provider,
    uploadGrant: null,
    order: order.id,
    downloadGrant: null,
    data: item,
    counter: 0,
    receipt: null,
  };
  turn.write(() => {
    // Used orders are kept until they expire; past that an order is refused for its age.
    let pruned = 0;
    for (const { key: id, value } of sam.records.orders.getRange()) {
      if (pruned >= SPENT_ORDERS_PRUNED_PER_USE) break;
      if (value.expiresAt <= now) {
        sam.records.orders.remove(id);
        pruned++;
      }
    }
    sam.records.orders.put(order.id, { mig: binding.mig, item: binding.item, expiresAt: order.expiresAt });
    sam.records.items.put(MigrationSamRecords.keyOf(binding.mig, binding.item), held);
  });
  turn.spawn(key, 'migrationSam', { mig: binding.mig, item: binding.item });
  turn.dispatch(key, { type: 'ISSUE_PLACED' });
  return held;
}
