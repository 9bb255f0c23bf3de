/**
 * The command-line flags of a selective migration (protocol.md §3, "Only some
 * providers"), shared by `terminal migrate-out`, `demo` and `up`: `--only
 * p1,p2` (the providers whose items move) and `--leave-behind unavailable`
 * (a provider that refuses the preflight or does not answer it stays behind
 * instead of refusing the migration).
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { MigrateOutOptions } from '../machines/terminal.machine.ts';

const NAME = /^[A-Za-z0-9._:/@+#-]{1,128}$/;

/** "a,b" -> ["a", "b"]; an empty value chooses nothing (the migration is then refused, with its reason). */
export function providerList(value: string): string[] {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const bad = names.find((n) => !NAME.test(n));
  if (bad !== undefined) throw new InvalidArgumentError(`"${bad}" is not a provider name (letters, digits and ._:/@+#- only)`);
  if (names.length > 64) throw new InvalidArgumentError(`at most 64 providers, got ${names.length}`);
  return [...new Set(names)];
}

function leaveBehindChoice(value: string): 'unavailable' {
  if (value !== 'unavailable') throw new InvalidArgumentError(`"${value}": the one choice is "unavailable" (a provider down or refusing at the preflight)`);
  return value;
}

/** Adds --only and --leave-behind to a command. */
export function withSelection(c: Command): Command {
  return c
    .option('--only <providers>', "move only these providers' items (comma-separated); the others stay spendable on the source", providerList)
    .option('--leave-behind <what>', 'unavailable: leave a provider that is down or refuses the preflight behind, instead of refusing', leaveBehindChoice);
}

/** The migrate-out options the flags give. */
export function selectionOf(o: { only?: unknown; leaveBehind?: unknown }): Pick<MigrateOutOptions, 'only' | 'leaveBehind'> {
  return {
    ...(Array.isArray(o.only) ? { only: o.only as string[] } : {}),
    ...(o.leaveBehind === 'unavailable' ? { leaveBehind: 'unavailable' as const } : {}),
  };
}
