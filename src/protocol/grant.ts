/**
 * The two signed records the migration machine carries between steps, as the
 * protocol table declares them (their wire schemas, with every field's bound,
 * are in transport/messages.ts, which checks that they describe these types;
 * crypto/grant.ts signs, seals and verifies them).
 *
 *  - A grant (S3 upload, S10 download): the admin SAM's order to one
 *    migration SAM, sealed to it, for one item of one migration on one chip.
 *  - A receipt (S15): a migration SAM's signed word that one item reached the
 *    destination, with the new main key's check value that S16 must see.
 */
export interface Grant {
  mig: string;
  item: number;
  area: string;
  serial: string;
  purpose: 'upload' | 'download';
  provider: string;
  recipient: string;
  expiresAt: number;
  /** The sealed box's ephemeral public key, base64url. */
  ephPub: string;
  /** The temp key, sealed to the recipient migration SAM, base64url. */
  sealed: string;
  /**
   * The grants the admin SAM issued together (one lock's, one format's), each
   * as the SHA-256 of what it binds (every field above), base64url; this
   * grant's is among them.
   */
  set: string[];
  /** The admin SAM's signature over `set`: one signature covers every grant of the set, base64url. */
  sig: string;
}

export interface Receipt {
  mig: string;
  item: number;
  serial: string;
  area: string;
  provider: string;
  /** The check value of the main key the destination answered, base64url. */
  kcv: string;
  /** The migration SAM's signature, base64url. */
  sig: string;
}
