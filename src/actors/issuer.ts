/**
 * Issuance: how a value item first gets onto a chip, at a provider's counter.
 * It walks the area lifecycle through the chip's real command path, with
 * real sessions (nothing else changes an area, protocol.md §2):
 *
 *   admin session (K_chip)      format(temp)         absent -> provisioned
 *   temp-key session            download(data, main) provisioned -> loaded
 *   admin session (K_chip)      activate             loaded -> mainActive
 *
 * The issuing desk holds the issuer master (to derive K_chip) and the
 * provider master (to derive K_main) for the duration: it stands for the
 * admin SAM and the provider's SAM at issuance, in one place, and is used by
 * the demo and tests to set chips up.
 */
import { deriveChipKey, deriveMainKey, randomSecret, toB64, type Rng, type Secret } from '../crypto/index.ts';
import type { ChipCommand } from '../transport/chip.frames.ts';
import type { ChipRuntime } from './chip.actor.ts';
import { ChipConsole } from './chipConsole.ts';
import { SamSessions } from './samSession.ts';
import { encodeValue, type ValueItem } from './value.ts';

export const DESK = 'terminal/issuing-desk';

async function runSession(
  desk: ChipConsole,
  sessions: SamSessions,
  spec: { session: string; area: string; mig: string; purpose: 'admin' | 'download' },
  key: Secret,
  commands: ChipCommand[],
): Promise<void> {
  const answer = await desk.exchange(spec.session, sessions.begin(spec));
  const a = sessions.answer(spec.session, answer, () => key);
  if (a.kind !== 'answered' || !a.proofOk)
    throw new Error(`issuing desk: the chip refused the ${spec.purpose} session (${a.kind === 'refused' ? a.code : 'bad proof'})`);
  for (const cmd of commands) {
    const r = sessions.reply(spec.session, await desk.exchange(spec.session, sessions.command(spec.session, cmd)));
    if (r.kind !== 'reply' || !r.reply.ok) {
      throw new Error(
        `issuing desk: ${cmd.op} failed: ${r.kind === 'reply' && !r.reply.ok ? `${r.reply.code} ${r.reply.message}` : r.kind === 'refused' ? r.code : ''}`,
      );
    }
  }
  sessions.end(spec.session);
}

export interface IssueRequest {
  area: string;
  provider: string;
  value: ValueItem;
  /** Stop after the format: an area left provisioned (an issuance that never finished; tests use it). */
  formatOnly?: boolean;
}

/** Issues value items onto a chip through its real command path, over a console linked to it. */
export async function issueThrough(
  desk: ChipConsole,
  serial: string,
  keys: { issuerMaster: Secret; providerMasters: Record<string, Secret> },
  items: IssueRequest[],
  rng: Rng,
): Promise<void> {
  const sessions = new SamSessions(rng);
  const kChip = deriveChipKey(keys.issuerMaster, serial);
  for (const it of items) {
    const mig = `issue-${it.area}`;
    const temp = randomSecret(rng);
    const master = keys.providerMasters[it.provider];
    if (!master) throw new Error(`issuing desk: no master key for provider ${it.provider}`);
    const main = deriveMainKey(master, serial, it.area);
    const tag = toB64(rng.bytes(4));
    await runSession(desk, sessions, { session: `issue:${tag}:format`, area: '*', mig, purpose: 'admin' }, kChip, [
      { op: 'format', area: it.area, provider: it.provider, key: toB64(temp.reveal()), mig, step: 'issue' },
    ]);
    if (it.formatOnly) continue;
    await runSession(desk, sessions, { session: `issue:${tag}:load`, area: it.area, mig, purpose: 'download' }, temp, [
      { op: 'download', data: toB64(encodeValue(it.value)), key: toB64(main.reveal()), mig, step: 'issue' },
    ]);
    await runSession(desk, sessions, { session: `issue:${tag}:activate`, area: '*', mig, purpose: 'admin' }, kChip, [
      { op: 'activate', area: it.area, mig, step: 'issue' },
    ]);
  }
}

/** Issues value items onto a chip in this process. */
export async function issueItems(
  chip: ChipRuntime,
  keys: { issuerMaster: Secret; providerMasters: Record<string, Secret> },
  items: IssueRequest[],
  rng: Rng,
): Promise<void> {
  const desk = ChipConsole.open(chip, DESK);
  try {
    await issueThrough(desk, chip.serial, keys, items, rng);
  } finally {
    desk.close();
  }
}
