/**
 * What a refused call said: `CODE: message` of the RemoteError it rejected
 * with; throws when the call was not refused. Not a test file.
 */
import type { RemoteError } from '../../src/protocol/errors.ts';

export async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return `${(e as RemoteError).code}: ${(e as Error).message}`;
  }
  throw new Error('expected a refusal');
}
