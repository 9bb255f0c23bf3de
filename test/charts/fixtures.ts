/**
 * A small machine with everything the project's protocol machines may not
 * use (`after`, by house rule) and everything a chart must draw: nested and
 * parallel states, final states, guards (named, with params, combined),
 * `always`, `after` (a number and a named delay), `onDone`, history,
 * `reenter`, targetless transitions, and keys that are not safe ids
 * (`timed-out`, `default`, `on`).
 */
import { not, setup } from 'xstate';

export const syntheticMachine = setup({
  guards: { ready: () => true, lateEnough: () => true, above: (_: unknown, _params: { limit: number }) => true },
  actions: { beep: () => {}, log: (_: unknown, _params: { text: string }) => {} },
  delays: { slow: 5_000 },
}).createMachine({
  id: 'synthetic',
  initial: 'default',
  on: { PING: { actions: 'beep' } },
  states: {
    default: {
      description: 'Waiting -- for START, or for a second to pass.',
      entry: [{ type: 'log', params: { text: 'idle "again"' } }],
      on: { START: { target: 'running', guard: 'ready' }, BUMP: { guard: { type: 'above', params: { limit: 3 } }, actions: 'beep' } },
      after: { 1000: 'timed-out' },
    },
    running: {
      type: 'parallel',
      on: {
        STOP: '#synthetic.done',
        ABORT: { target: 'default', guard: not('ready') },
        RESTART: { target: 'running', reenter: true },
        NOTE: { actions: 'beep' },
      },
      states: {
        motor: {
          initial: 'spinning',
          onDone: { target: '#synthetic.checking' },
          states: {
            spinning: { after: { slow: { target: 'stopped', guard: 'lateEnough' } } },
            stopped: { type: 'final' },
          },
        },
        light: {
          initial: 'off',
          states: {
            off: { on: { TOGGLE: 'on' } },
            on: { on: { TOGGLE: 'off' } },
            hist: { type: 'history', target: 'off' },
          },
        },
      },
    },
    checking: { always: [{ guard: 'ready', target: 'done' }, { target: 'default' }] },
    'timed-out': { on: { RETRY: 'default', RESUME: '#synthetic.running.light.hist' } },
    done: { type: 'final' },
  },
});
