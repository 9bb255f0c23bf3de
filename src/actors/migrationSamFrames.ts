/**
 * A migration SAM's chip-session frames (S6–S7 upload, S13–S14 download):
 * the chip's answer to the frame the SAM sent becomes the event its item's
 * machine takes. Moved out of migrationSam.actor.ts (its 400-line limit).
 */
import type { Working } from './migrationSamTransfers.ts';
import { fromB64, keyCheckValue, sameKcv } from '../crypto/index.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { decodeChipFrame } from '../transport/chip.frames.ts';
import type { TurnContext } from './runtime.ts';
import type { SamSessions } from './samSession.ts';

export interface FrameView {
  /** The item's machine key, its actor and working state (undefined when the session is not ours). */
  key: string | undefined;
  actor: { getSnapshot(): { matches(state: unknown): boolean } } | undefined;
  w: Working | undefined;
  sessions: SamSessions;
}

/** One frame of an item session, from the chip through the server. */
export function onSamFrame(turn: TurnContext, view: FrameView, session: string, data: string): void {
  const { key, actor, w, sessions } = view;
  if (!key || !actor || !w || !sessions.has(session)) throw new ProtocolError('NOT_FOUND', `no open item session ${session.slice(0, 64)}`);
  if (sessions.repeat(session, data)) return; // the chip's answer again, to a frame we sent again (resends.ts): taken once
  const frame = decodeChipFrame(fromB64(data));
  const snap = actor.getSnapshot();
  if (snap.matches({ uploading: 'authenticating' }) || snap.matches({ downloading: 'authenticating' })) {
    // The temp key is used only for the serial its grant names.
    turn.dispatch(
      key,
      sessions.answerEvent(session, frame, (serial) => (serial === w.grant.serial ? w.tempKey : null)),
    );
    return;
  }
  const r = sessions.reply(session, frame);
  if (r.kind === 'refused') return turn.dispatch(key, { type: 'CHIP_REFUSED', code: r.code, message: r.message });
  const reply = r.reply;
  if (!reply.ok) return turn.dispatch(key, { type: 'CHIP_REPLIED', ok: false, verified: false, code: reply.code, message: reply.message });
  if (snap.matches({ uploading: 'reading' })) {
    if (reply.data === undefined || reply.counter === undefined) {
      return turn.dispatch(key, { type: 'CHIP_REPLIED', ok: false, verified: false, code: 'BAD_BODY', message: 'the chip returned no item' });
    }
    w.readData = { data: fromB64(reply.data), counter: reply.counter };
    return turn.dispatch(key, { type: 'CHIP_REPLIED', ok: true, verified: true });
  }
  // Download: the key check value must be that of the main key our normal SAM derived for this chip.
  const expected = keyCheckValue(w.mainKey!, w.grant.serial, w.grant.area);
  w.kcv = reply.kcv;
  turn.dispatch(key, { type: 'CHIP_REPLIED', ok: true, verified: sameKcv(reply.kcv, expected) });
}
