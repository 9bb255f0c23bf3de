/**
 * `valmove ARGS` as a user runs it: a real process of bin/valmove.js from the
 * repository's root, its exit code and whole output (a refusal exits 1, a
 * usage error 2; -1 when it was killed, e.g. past its timeout). Not a test file.
 */
import { execFile } from 'node:child_process';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Longest a command may run before it is killed (and reported as code -1). */
export const CLI_TIMEOUT_MS = 60_000;

export function runValmove(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliRun> {
  const env = opts.env ? { ...process.env, ...opts.env } : process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/valmove.js', ...args], { timeout: opts.timeoutMs ?? CLI_TIMEOUT_MS, env }, (e, stdout, stderr) => {
      const code = e ? (typeof e.code === 'number' ? e.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
