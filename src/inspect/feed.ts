/**
 * The live feed's input check. Producers (a demo, `up`, each party process of
 * a deployment) push run records (src/trace/records.ts) to `/feed`; they are
 * other processes, so every record crosses the same schema a run file's
 * lines do (src/trace/load.ts) before a page sees it. A record that fails
 * gets an error naming the field, and is dropped.
 */
import { checkRecord } from '../trace/load.ts';
import type { RunRecord } from '../trace/records.ts';

/** Largest feed message, bytes: a record is metadata, well under 1 KiB; the limit keeps a bad producer from filling memory. */
export const FEED_MESSAGE_BYTES_MAX = 16 * 1024;

/** Parses one feed message; throws an Error whose message says what was wrong. */
export function parseFeedMessage(text: string): RunRecord {
  if (text.length > FEED_MESSAGE_BYTES_MAX) throw new Error(`feed message is ${text.length} characters; the limit is ${FEED_MESSAGE_BYTES_MAX}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('feed message is not JSON');
  }
  const r = checkRecord(value);
  if (!r.ok) throw new Error(`feed record refused at ${r.why}`);
  return r.record;
}
