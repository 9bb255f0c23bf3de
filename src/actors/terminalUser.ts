/**
 * What the terminal's user deals with, apart from its turns: the progress
 * lines, the promises a user's call waits on, and the scrypt proof of the
 * password at login (the password never leaves the terminal: the server gets
 * scrypt(password, salt) and hashes it again to compare).
 */
import { fromB64, stretchPassword, type Bytes } from '../crypto/index.ts';
import { RemoteError } from '../protocol/errors.ts';

/** A progress line the server sent about a migration, as the user sees it. */
export interface ProgressEvent {
  terminal: string;
  mig: string;
  step: string;
  text: string;
}

/** A user's call waiting for the turn that answers it. */
export interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

export function failure(code: string, message: string): RemoteError {
  return new RemoteError(code, message);
}

/**
 * The login proof for the server's challenge, or why this terminal refuses to
 * make one. The cost comes from the server, so it is checked (stretchPassword
 * refuses what no user record can ask for): noble's scrypt throws on an N that
 * is no power of two, and a throw inside a machine's emit would escape the
 * turn and kill the process. Found by test/fuzz.
 */
export function loginProof(password: string, challenge: { salt: string; N: number; r: number; p: number }): Bytes | string {
  try {
    return stretchPassword(password, fromB64(challenge.salt), challenge);
  } catch (e) {
    const why = e instanceof Error ? e.message : "the server's scrypt parameters are unusable";
    return `the server asked for scrypt parameters this terminal refuses: ${why}`;
  }
}
