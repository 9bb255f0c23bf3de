/**
 * `valmove up --json` and `up --cancel-at STEP` (issue 22, point 5): the
 * same step list and cancel as the demo's (fixtures/demoFlow.ts), through the
 * running terminals' control API: their progress lines are read from
 * `/control/status` (each line with its time), and the cancel is the user's
 * `terminal cancel` from the other phone.
 */
import { join } from 'node:path';
import { type StepEntry, partyOfStep } from '../fixtures/demoFlow.ts';
import { writeReceipt } from '../actors/terminalReceipt.ts';
import type { MigrationResult, TerminalControl } from './control.client.ts';

type Line = { step: string; text: string; mig: string; terminal?: string; at?: string };

/** Both phones' progress lines of migration `mig`, in time order, as steps. */
export async function stepsOf(phones: TerminalControl[], mig: string): Promise<StepEntry[]> {
  const lines: Line[] = [];
  for (const t of phones) lines.push(...((await t.status()).progress as Line[]).filter((l) => l.mig === mig));
  lines.sort((a, b) => Date.parse(a.at ?? '') - Date.parse(b.at ?? ''));
  return lines.map((l) => ({ id: l.step, text: l.text, party: partyOfStep(l.step), terminal: l.terminal ?? '', at: l.at ?? '' }));
}

/** Polling period of the phones' progress while a cancel waits for its step. */
const POLL_MS = 20;

/**
 * Watches both phones' progress until the returned stop is called; calls
 * `onStep` once for each line that was not there when the watch began (a
 * line is its time, step and text; what is remembered is each phone's
 * window of lines at the last look, as bounded as that window).
 */
export async function watchProgress(
  phones: Array<{ name: string; t: TerminalControl }>,
  onStep: (l: Line & { terminal: string }) => void,
): Promise<() => void> {
  let running = true;
  // The lines each phone showed at the last look: its own window bounds it.
  const seen = new Map<string, Set<string>>();
  const poll = async (report: boolean) => {
    for (const { name, t } of phones) {
      const status = await t.status().catch(() => undefined);
      if (!status) continue;
      const before = seen.get(name) ?? new Set<string>();
      const now = new Set<string>();
      for (const l of status.progress as Line[]) {
        const key = `${l.at}|${l.step}|${l.text}`;
        now.add(key);
        if (report && !before.has(key)) onStep({ ...l, terminal: name });
      }
      seen.set(name, now);
    }
  };
  await poll(false);
  void (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (running) await poll(true);
    }
  })();
  return () => {
    running = false;
  };
}

/** Writes the phone's receipt into the deployment folder, checked against its trust.json. */
export function saveUpReceipt(dir: string, r: MigrationResult): { path: string; trust: string; outcome: string } | undefined {
  if (!r.receipt) return undefined;
  const path = writeReceipt(join(dir, 'receipt.json'), r.receipt).receipt;
  return { path, trust: join(dir, 'trust.json'), outcome: r.receipt.outcome.decision };
}

/** How long `up --lost-source` waits for the found-again chip's wipe (the server takes its phone's channel, then wipes). */
const FOUND_WIPE_WAIT_MS = 30_000;

/**
 * The lost phone is found again and connects: its user registers its chip, which identifies to the server in
 * that admin session, and the server has the admin SAM wipe its revoked areas (protocol.md §3, "Found again:
 * wiped"). Waits (reading the balance, which spends nothing) until the area is gone from the chip, then tries to
 * pay once: `pay` is what that payment was answered, `wiped` whether the area was gone.
 */
export async function foundAgain(
  oldPhone: TerminalControl,
  provider: string,
  pay: (t: TerminalControl, p: string) => Promise<string>,
): Promise<{ pay: string; wiped: boolean }> {
  await oldPhone.register().catch(() => undefined); // its answer does not matter: the identification does
  const gone = () =>
    oldPhone.normal(provider, 'balance').then(
      () => false,
      (e: unknown) => (e as { code?: string }).code === 'AREA_ABSENT',
    );
  let wiped = await gone();
  for (const end = Date.now() + FOUND_WIPE_WAIT_MS; !wiped && Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, 200));
    wiped = await gone();
  }
  return { pay: await pay(oldPhone, provider), wiped };
}
