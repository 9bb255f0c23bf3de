/**
 * The end of a seed (simulation.md, liveness phase): once every migration ended, its outcome is the one its
 * user allowed, each item is spendable exactly where that outcome puts it, every area a migration touched is
 * in its end state, value is conserved, and the SAMs keep nothing of the migrations that ended.
 */
import { decodeValue } from '../actors/value.ts';
import { spendableWorth } from './invariants.ts';
import { FOUND_END_STATE, LOST_END_STATE, revokedHere } from './recovery.ts';
import type { SeedRun } from './seedRun.ts';
import type { SimUsers } from './users.ts';

/** Where each area a migration touched must be, by the migration's outcome: on its source chip and on its destination. */
const END_STATE: Record<string, { source: string; destination: string }> = {
  completed: { source: 'locked', destination: 'mainActive' },
  rolledBack: { source: 'mainActive', destination: 'absent' },
  refused: { source: 'mainActive', destination: 'absent' },
};

/** Every migration ended: a user whose migration did not (after `livenessMs` without faults) is a liveness violation. */
export function checkEnded(run: SeedRun, users: SimUsers, livenessMs: number): void {
  const stuck = users.list.filter((u) => !users.ended(u));
  if (stuck.length === 0) return;
  const states = stuck.map((u) => `${u.name}: ${users.latest(u) ? users.stateOf(users.latest(u)!) : 'no migration'}`).join('; ');
  run.fail({ invariant: 'liveness', message: `${states} after ${livenessMs} virtual ms without faults` });
}

/** Counts the outcomes; each must be one the user allowed, with every item spendable on the one chip it puts it on. */
export function checkOutcomes(run: SeedRun, users: SimUsers): void {
  const { system } = run;
  const where = new Map<string, string[]>();
  for (const chip of system.chips.values()) {
    for (const a of chip.memory.list()) {
      if (a.state === 'mainActive' && a.data && !revokedHere(system, a.provider, chip.serial)) {
        const ref = decodeValue(a.data).ref;
        where.set(ref, [...(where.get(ref) ?? []), chip.serial]);
      }
    }
  }
  users.selection.tally(users.list, run.outcomes);
  users.recovery?.tally(users.list, run.outcomes);
  for (const u of users.list) {
    const s = users.stateOf(users.latest(u)!);
    run.outcomes[s] = (run.outcomes[s] ?? 0) + 1;
    if (u.defective && s === 'completed') {
      run.fail({
        invariant: 'rogue',
        message:
          `check download-kcv did not hold: ${u.name}'s migration completed onto ${u.destination}, ` +
          "whose chip wrote another main key than the provider derived (its key check value was not that key's)",
      });
      break;
    }
    if (s !== 'completed' && !u.cancelled && !u.deadlineMs && !u.defective) {
      run.fail({
        invariant: 'outcome',
        message:
          `${u.name}'s migration ended ${s}, though nobody cancelled it and it had no deadline ` +
          `(${system.server.migration(users.latest(u)!)?.reason ?? 'no reason recorded'})`,
      });
      break;
    }
    // An item moved by a completed migration of the user ends on the destination; one not chosen or left behind
    // (selection.ts), or whose migration did not complete, is spendable on the source.
    const moved = users.selection.movedAreas(u);
    for (const [k, it] of u.items.entries()) {
      const home = moved.has(run.providers[k]!) ? u.destination : u.source;
      const at = where.get(it.ref) ?? [];
      if (at.length !== 1 || at[0] !== home) {
        run.fail({ invariant: 'outcome', message: `${u.name}'s migration ended ${s}, but item ${it.ref} is spendable on [${at.join(', ')}], not on ${home}` });
        break;
      }
    }
  }
}

/**
 * Issue 17: the end state of every area a migration touched, on both chips, not only where its value is spendable
 * (a rollback that answers "wiped" without wiping leaves a loaded area on the destination, spendable nowhere).
 */
export function checkEndStates(run: SeedRun, users: SimUsers): void {
  const chipBySerial = run.system.chips; // keyed by serial
  const areaState = (serial: string, area: string) => chipBySerial.get(serial)?.memory.get(area)?.state ?? 'absent';
  for (const u of users.list) {
    const s = users.stateOf(users.latest(u)!);
    if (run.violation || !END_STATE[s]) continue;
    // A lost phone's items were re-issued (its own end state); a seed with a short retention waited for each completed
    // migration's backup to end: its source areas are wiped.
    const lost = users.recovery?.isLoser(u) === true && s === 'completed';
    const lostEnd = users.recovery?.foundAndWiped(u) ? FOUND_END_STATE : LOST_END_STATE;
    const completed = lost ? lostEnd : run.backupRetentionMs !== undefined ? { ...END_STATE.completed!, source: 'absent' } : END_STATE.completed!;
    const moved = users.selection.movedAreas(u);
    for (const k of u.items.keys()) {
      const area = run.providers[k]!;
      // Moved by a completed migration: the completed end state; else (not chosen, left behind, rolled back, refused) untouched.
      const want = lost || moved.has(area) ? completed : END_STATE.refused!;
      const got = { source: areaState(u.source, area), destination: areaState(u.destination, area) };
      if (got.source !== want.source || got.destination !== want.destination) {
        run.fail({
          invariant: 'end-state',
          message:
            `${u.name}'s migration ended ${s}: area ${area} is ${got.source} on the source ${u.source} ` +
            `and ${got.destination} on the destination ${u.destination}; it must be ${want.source} and ${want.destination}`,
        });
        break;
      }
    }
  }
}

/** Without payments, the balances sum to what they summed to when the world was built. */
export function checkConservation(run: SeedRun, totalWorth: number, paying: boolean): void {
  const after = spendableWorth(run.system);
  if (!run.violation && !paying && after !== totalWorth) run.fail({ invariant: 'conservation', message: `balances sum to ${after}, not ${totalWorth}` });
}

/** The SAMs keep nothing of a migration that ended: no item held by a migration SAM, no temp key in the admin SAM. */
export function checkSamsEmpty(run: SeedRun, users: SimUsers): void {
  const { system } = run;
  for (const [p, prov] of system.providers) {
    const held = prov.migrationSam.held().length;
    if (!run.violation && held > 0)
      run.fail({ invariant: 'sam-stores-empty', message: `migration SAM ${p} still holds ${held} item(s) after every migration ended` });
  }
  // Issue 16: a temp key ends with its migration (the admin SAM deletes it when it answers the activation or the
  // source's restore), read from the admin SAM's store like every check here. The message names no key.
  for (const { value } of system.adminSam.records.tempKeys.getRange()) {
    const s = users.stateOf(value.mig);
    // An issuance (a lost phone's re-issue too) has no source, so no backup whose end removes the record.
    const backedUp = !system.server.migration(value.mig)?.issuance;
    if (!run.violation && s === 'completed' && run.backupRetentionMs !== undefined && backedUp) {
      run.fail({
        invariant: 'temp-keys-ended',
        message: `the admin SAM keeps a temp-key record of ${value.mig} item ${value.item} after its backup was wiped`,
      });
    }
    if (run.violation || value.key === null || (s !== 'completed' && s !== 'rolledBack')) continue;
    run.fail({
      invariant: 'temp-keys-ended',
      message: `the admin SAM still holds the temp key of ${value.mig} item ${value.item} after its migration ended ${s}`,
    });
  }
}
