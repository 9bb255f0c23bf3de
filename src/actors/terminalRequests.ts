/**
 * What a terminal sends for its machine's request intents (terminal.actor.ts):
 * the user's jobs to the server, the chip-control channel's answers, and the
 * frames it relays between the chip, the server and a reader's normal SAM.
 * Each is one message, built from the intent alone.
 */
import type { TerminalIntent } from '../machines/terminal.machine.ts';
import type { TurnContext } from './runtime.ts';

export const SERVER_PEER = 'server';
export const CHIP_PEER = 'chip';

/** What the user asks the server for, the chip-control channel's answers, and the frames this terminal relays. */
export function requestIntent(
  turn: TurnContext,
  intent: Exclude<
    TerminalIntent,
    { type: 'beginLogin' | 'proveLogin' | 'loginFinished' | 'beginReader' | 'readerRefused' | 'readerFinished' | 'showProgress' | 'jobFinished' }
  >,
): void {
  switch (intent.type) {
    case 'requestRegister':
      turn.send(SERVER_PEER, 'chip.register', {});
      return;
    case 'requestMigrateOut':
      turn.send(SERVER_PEER, 'migrate.out', {
        ...(intent.destination ? { destination: intent.destination } : {}),
        ...(intent.deadlineMs !== undefined ? { deadlineMs: intent.deadlineMs } : {}),
        ...(intent.only ? { only: intent.only } : {}),
        ...(intent.leaveBehind ? { leaveBehind: intent.leaveBehind } : {}),
      });
      return;
    case 'requestMigrateIn':
      turn.send(SERVER_PEER, 'migrate.in', { ...(intent.mig ? { mig: intent.mig } : {}), ...(intent.orders ? { orders: intent.orders } : {}) });
      return;
    case 'requestCancel':
      turn.send(SERVER_PEER, 'migrate.cancel', { mig: intent.mig });
      return;
    case 'requestEndBackup':
      turn.send(SERVER_PEER, 'backup.end', { mig: intent.mig });
      return;
    case 'confirmChannel':
      turn.send(SERVER_PEER, 'channel.reserved', {}, { corr: intent.request });
      return;
    case 'refuseChannel':
      turn.send(SERVER_PEER, 'error', { code: intent.code, message: intent.message }, { corr: intent.request });
      return;
    case 'confirmRelease':
      turn.send(SERVER_PEER, 'channel.released', {}, { corr: intent.request });
      return;
    case 'relayToChip':
      turn.send(CHIP_PEER, 'frame', { session: intent.session, data: intent.data });
      return;
    case 'relayToServer':
      turn.send(SERVER_PEER, 'frame', { session: intent.session, data: intent.data });
      return;
    case 'relayToReaderSam':
      turn.send(`normal-sam/${intent.provider}`, 'frame', { session: intent.session, data: intent.data });
      return;
  }
}
