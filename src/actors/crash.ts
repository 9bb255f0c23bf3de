/**
 * `--crash-at PARTY:STEP:POINT`: crash one party at one point of the first
 * turn it handles for a protocol step (fault injection, to see recovery).
 * POINT is before-persist (the turn's commit is lost), after-persist
 * (committed, nothing sent) or after-send.
 */
import { STEPS, type Step } from '../protocol/steps.ts';
import { CrashSignal, type RuntimeDeps, type TurnPoint } from './runtime.ts';

export const TURN_POINTS: TurnPoint[] = ['before-persist', 'after-persist', 'after-send'];

export interface CrashAt {
  party: string;
  step: Step;
  point: TurnPoint;
}

export function parseCrashAt(spec: string): CrashAt {
  const parts = spec.split(':');
  const point = parts.pop() as TurnPoint;
  const step = parts.pop() as Step;
  const party = parts.join(':');
  if (!party) throw new Error(`--crash-at "${spec}": want PARTY:STEP:POINT, e.g. server:S7:after-persist`);
  if (!(STEPS as readonly string[]).includes(step)) throw new Error(`--crash-at: unknown step "${step}" (one of ${STEPS.join(', ')})`);
  if (!TURN_POINTS.includes(point)) throw new Error(`--crash-at: unknown point "${point}" (one of ${TURN_POINTS.join(', ')})`);
  return { party, step, point };
}

/** A turn-point hook that crashes `at.party` once, then calls `crashed` (which restarts it, or kills the process). */
export function crashHook(at: CrashAt, crashed: (party: string) => void): NonNullable<RuntimeDeps['onTurnPoint']> {
  let fired = false;
  return (party, point, info) => {
    if (fired || party !== at.party || point !== at.point || info.step !== at.step) return;
    fired = true;
    crashed(party);
    throw new CrashSignal(`${party} at ${at.step} ${at.point}`);
  };
}
