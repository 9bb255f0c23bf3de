/**
 * The server's migration: seed Fig. 2–4, steps S1–S17, as one statechart
 * (protocol.md §3). One actor per migration, hosted by the server.
 *
 *   sourcePhase       S1 reserve channel + prove serial, S2 record items,
 *                     preflight, S3 lock, S4–S8 upload loop (one item per
 *                     provider's migration SAM, relayed through the server)
 *   awaitingDestination   the source is the backup; a deadline may cancel
 *   destinationPhase  S9 reserve + prove serial, S10 format, S11–S15 download loop
 *   committing        the admin SAM's decision record: pending -> committed
 *   activating        S16, only after `committed`
 *   clearing          S17, each migration SAM drops its copy
 *   rollingBack       decision `aborted`: fence SAMs, restore the source when
 *                     it connects, clear SAM stores, wipe the destination
 *
 * An issuance is a migration without a source: the provider's issue orders
 * stand where the source phase would have put the items (in the migration
 * SAMs), so it starts at S9 with its destination, the phone that asked,
 * named by the orders. Its rollback restores nothing and clears the SAMs'
 * copies of the orders' items (the orders are spent; the provider issues new
 * ones).
 *
 * The server relays chip sessions it can not read: in every state where a
 * session runs, SAM_FRAME goes to the chip's terminal and CHIP_FRAME to the
 * SAM, and only for the session this state opened (the relay protocol).
 * Every request of a step is retried with backoff after a failure; before
 * S3 a failure refuses the migration, leaving the source untouched.
 */
import { DESTINATION_DEADLINE_MS_DEFAULT, migrationSetup } from './migration.logic.ts';
import { EVERY_ITEM } from './selection.ts';

export * from './migration.logic.ts';

/**
 * The relay protocol: in a state where a chip session runs, frames of that
 * session (and only that one) pass SAM -> chip's terminal and back.
 */
const RELAY = {
  SAM_FRAME: { guard: 'samFrameOfSession', actions: 'relayToChip' },
  CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
} as const;

/** A failed request: wait out the backoff in `retryState` (a timer kept in the context). */
const backOffTo = (retryState: string) => ({ target: retryState, actions: ['armRetry', 'countAttempt'] }) as const;

/**
 * A step and its backoff state, as two sibling states. The step's request
 * fails (STEP_FAILED): `failFirst` transitions are tried first (e.g. an
 * issuance whose order is refused aborts), then, if `retryWhile` holds (or
 * always without it), the step waits out its backoff in `retry`; RETRY_DUE
 * enters the step again, which sends its request again. Without the guard
 * holding, `otherwise` is taken (before the lock: refuse). `whileWaiting`
 * are the backoff state's other transitions: the phase's cancel policy.
 */
function withRetry<const N extends string, const R extends string, const C extends { on?: object }>(
  name: N,
  retry: R,
  step: C,
  o: { failFirst?: readonly object[]; retryWhile?: string; otherwise?: object; whileWaiting?: object } = {},
) {
  const backOff = o.retryWhile ? { guard: o.retryWhile, ...backOffTo(retry) } : backOffTo(retry);
  const failed = [...(o.failFirst ?? []), backOff, ...(o.otherwise ? [o.otherwise] : [])];
  return {
    [name]: { ...step, on: { ...step.on, STEP_FAILED: failed.length === 1 ? failed[0] : failed } },
    [retry]: { on: { RETRY_DUE: { target: name, actions: 'disarmTimer' }, ...o.whileWaiting } },
  } as { [K in N]: C & { on: object } } & { [K in R]: { on: object } };
}

/**
 * The cancel policy, stated once per phase (protocol.md §3). Before the lock
 * nothing has changed: the cancel is answered at once and the migration is
 * refused. After the lock it is a decision for the admin SAM (`aborting`;
 * phases that wait for more say so themselves). After the commit nothing can
 * be undone: the answer is "committed". After the abort: "aborted".
 */
const CANCEL = {
  beforeLock: { CANCEL_REQUESTED: { target: 'refusing', actions: ['noteCancel', { type: 'answerCancelNow', params: { decision: 'aborted' } }] } },
  afterLock: { CANCEL_REQUESTED: { target: 'aborting', actions: 'noteCancel' } },
  afterCommit: { CANCEL_REQUESTED: { actions: { type: 'answerCancelNow', params: { decision: 'committed' } } } },
  afterAbort: { CANCEL_REQUESTED: { actions: { type: 'answerCancelNow', params: { decision: 'aborted' } } } },
} as const;

export const migrationMachine = migrationSetup.createMachine({
  id: 'migration',
  context: ({ input }) => ({
    mig: input.mig,
    user: input.user,
    source: input.issuance ? { terminal: null, serial: null, request: null } : { terminal: input.terminal, serial: null, request: input.request },
    destination: input.issuance
      ? { terminal: input.terminal, serial: null, request: input.request, named: input.issuance.serial }
      : { terminal: null, serial: null, request: null, named: input.destination ?? null },
    destinationProblem: input.destinationProblem ?? null,
    destinationAreas: input.destinationAreas ?? null,
    sourceCheck: null,
    items: input.issuance?.items ?? [],
    selection: input.selection ?? EVERY_ITEM,
    skipped: [],
    cursor: 0,
    providers: input.issuance ? [...new Set(input.issuance.items.map((i) => i.provider))] : [],
    answered: [],
    uploadGrants: [],
    downloadGrants: [],
    receipts: [],
    session: null,
    sessions: 0,
    attempts: 0,
    deadlineMs: input.deadlineMs ?? DESTINATION_DEADLINE_MS_DEFAULT,
    timer: null,
    decision: null,
    outcome: null,
    reason: null,
    destinationFormatted: false,
    cancel: null,
    sourceRestored: false,
    destinationWiped: false,
    offline: [],
    issuance: input.issuance ? { orders: input.issuance.orders } : null,
    timing: input.timing,
  }),
  initial: 'starting',
  on: {
    // Connections come and go; the forward path simply waits (its requests are sent again when they are back).
    TERMINAL_LOST: { actions: 'markOffline' },
    TERMINAL_BACK: { actions: 'markOnline' },
  },
  states: {
    starting: {
      description: 'A migration starts at its source (S1); an issuance, which has none, at its destination (S9).',
      always: [
        {
          guard: 'isIssuance',
          target: 'destinationPhase',
          actions: {
            type: 'progressCount',
            params: { step: 'issue', text: 'item(s) ordered by their providers: no source, the destination phase puts them on the chip' },
          },
        },
        { target: 'sourcePhase' },
      ],
    },
    sourcePhase: {
      initial: 'reservingChannel',
      on: CANCEL.afterLock,
      states: {
        // The terminal's chip is busy (a reader session): try again, a few times, before refusing.
        ...withRetry(
          'reservingChannel',
          'reserveRetry',
          {
            description: 'S1: the user is logged in; ask the source terminal to reserve its chip-control channel (¶0084).',
            entry: [
              { type: 'progress', params: { step: 'S1', text: 'user authenticated; reserving the chip-control channel' } },
              { type: 'reserveChannel', params: { chip: 'source' } },
            ],
            on: { CHANNEL_RESERVED: { guard: 'forSource', target: 'identifying' }, ...CANCEL.beforeLock },
          },
          { retryWhile: 'preLockRetry', otherwise: { target: '#migration.refused', actions: 'refuseForFailure' }, whileWaiting: CANCEL.beforeLock },
        ),
        ...withRetry(
          'identifying',
          'identifyRetry',
          {
            description: 'S1: the admin SAM opens an admin session (K_chip) through us: the chip proves its serial, and lists its areas.',
            entry: [
              { type: 'progress', params: { step: 'S1', text: 'channel reserved; the chip proves its serial to the admin SAM (K_chip)' } },
              { type: 'openAdminSession', params: { chip: 'source', step: 'S1' } },
              'identifyChip',
            ],
            exit: 'closeSession',
            on: {
              ...RELAY,
              CHIP_IDENTIFIED: { guard: 'forSource', target: 'recordingItems', actions: ['bindSource', 'recordItems'] },
              ...CANCEL.beforeLock,
            },
          },
          { retryWhile: 'preLockRetry', otherwise: { target: 'refusing', actions: 'refuseForFailure' }, whileWaiting: CANCEL.beforeLock },
        ),
        recordingItems: {
          description: 'S2: every value item found on the chip is recorded in the migration database.',
          entry: [
            { type: 'progressCount', params: { step: 'S2', text: 'value items found on the chip and recorded in the migration database' } },
            'progressChoice',
          ],
          always: 'preflight',
        },
        preflight: {
          description: 'Before anything changes: areas all mainActive, a named destination fits, every provider answers and trusts us.',
          initial: 'checkingChip',
          states: {
            checkingChip: {
              always: [
                { guard: 'sourceNotOwned', target: '#migration.sourcePhase.refusing', actions: 'refuseForOwner' },
                { guard: 'selectionUnknown', target: '#migration.sourcePhase.refusing', actions: 'refuseForUnknown' },
                { guard: 'sourceEmpty', target: '#migration.sourcePhase.refusing', actions: 'refuseForEmpty' },
                { guard: 'sourceAreaNotMainActive', target: '#migration.sourcePhase.refusing', actions: 'refuseForAreas' },
                { guard: 'destinationNamedBadly', target: '#migration.sourcePhase.refusing', actions: 'refuseForDestination' },
                { guard: 'destinationLacksRoom', target: '#migration.sourcePhase.refusing', actions: 'refuseForRoom' },
                { target: 'askingProviders' },
              ],
            },
            askingProviders: {
              entry: ['resetAnswers', 'armPreflightDeadline', 'askProviders'],
              exit: 'disarmTimer',
              on: {
                // A provider down or refusing: the user may have chosen to leave it behind (selection.ts); else the migration is refused.
                DEADLINE_PASSED: [
                  { guard: 'leavingSilentBehind', target: '#migration.sourcePhase.lockingSource', actions: 'leaveSilentBehind' },
                  { target: '#migration.sourcePhase.refusing', actions: 'refuseForSilence' },
                ],
                PROVIDER_READY: [
                  { guard: 'lastProviderAnswered', target: '#migration.sourcePhase.lockingSource', actions: 'noteProviderAnswered' },
                  { actions: 'noteProviderAnswered' },
                ],
                PROVIDER_REFUSED: [
                  { guard: 'leavingBehindLast', target: '#migration.sourcePhase.lockingSource', actions: 'leaveRefuserBehind' },
                  { guard: 'leavingBehind', actions: 'leaveRefuserBehind' },
                  { target: '#migration.sourcePhase.refusing', actions: 'refuseForProvider' },
                ],
              },
            },
          },
          entry: { type: 'progress', params: { step: 'preflight', text: 'checking ownership, areas, destination and providers' } },
          on: CANCEL.beforeLock,
        },
        ...withRetry('lockingSource', 'lockRetry', {
          description: 'S3: the admin SAM generates a temp key per item, installs it and switches every area to it; it returns the upload grants.',
          entry: [
            'resetAttempts',
            { type: 'progress', params: { step: 'S3', text: 'locking the source: main key -> temp key' } },
            { type: 'openAdminSession', params: { chip: 'source', step: 'S3' } },
            'lockSource',
          ],
          exit: 'closeSession',
          on: {
            ...RELAY,
            SOURCE_LOCKED: { target: 'uploading', actions: 'keepUploadGrants' },
          },
        }),
        uploading: {
          initial: 'selectingItem',
          entry: 'resetCursor',
          states: {
            selectingItem: {
              description: 'S4 (and S8, the loop): take the next item and its provider.',
              always: [{ guard: 'allUploaded', target: '#migration.sourcePhase.releasingChannel' }, { target: 'transferring' }],
            },
            ...withRetry('transferring', 'backingOff', {
              description: "S5–S7: the provider's migration SAM authenticates to the area with the temp key through us and copies the item into its store.",
              entry: [
                { type: 'progressItem', params: { step: 'S4', text: "next provider taken from the chip's items" } },
                { type: 'progressItem', params: { step: 'S5', text: "the source chip is linked to its provider's migration SAM" } },
                { type: 'openItemSession', params: { chip: 'source', step: 'S7' } },
                'requestUpload',
              ],
              exit: 'closeSession',
              initial: 'linking',
              states: {
                linking: {
                  description: "Upload requested; the migration SAM's challenge is the first frame we relay.",
                  on: {
                    SAM_FRAME: {
                      guard: 'samFrameOfSession',
                      target: 'authenticating',
                      actions: [
                        'relayToChip',
                        { type: 'progressItem', params: { step: 'S6', text: 'chip and migration SAM authenticate each other with the temp key' } },
                      ],
                    },
                  },
                },
                authenticating: {
                  description: "The chip's answer goes back; the SAM's proof comes with the first sealed command.",
                  tags: ['relay'],
                  on: {
                    CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
                    SAM_FRAME: {
                      guard: 'samFrameOfSession',
                      target: 'copying',
                      actions: [
                        'relayToChip',
                        { type: 'progressItem', params: { step: 'S7', text: 'uploading the item into the migration SAM (encrypted end to end)' } },
                      ],
                    },
                  },
                },
                copying: {
                  tags: ['relay'],
                  on: {
                    ...RELAY,
                  },
                },
              },
              on: {
                ITEM_UPLOADED: {
                  guard: 'isCurrentItem',
                  target: 'selectingItem',
                  actions: [{ type: 'progressItem', params: { step: 'S8', text: 'uploaded' } }, 'advanceCursor'],
                },
              },
            }),
          },
        },
        releasingChannel: {
          entry: { type: 'releaseChannel', params: { chip: 'source' } },
          on: {
            CHANNEL_RELEASED: {
              guard: 'forSource',
              target: '#migration.awaitingDestination',
              actions: [{ type: 'answerSource', params: { outcome: 'uploaded' } }, 'detachSource', 'armDeadline'],
            },
          },
        },
        refusing: {
          description: 'Preflight failed: nothing was changed; release the channel and tell the user why.',
          entry: { type: 'releaseChannel', params: { chip: 'source' } },
          on: {
            // Nothing was changed and nothing will be: a cancel now is answered at once, the refusal stands.
            CANCEL_REQUESTED: { actions: ['noteCancel', { type: 'answerCancelNow', params: { decision: 'aborted' } }] },
            CHANNEL_RELEASED: {
              guard: 'forSource',
              target: '#migration.refused',
            },
          },
        },
      },
    },
    awaitingDestination: {
      description: "Every item is held by its provider's migration SAM; the locked source is the backup. Waits, possibly long, for the destination.",
      on: {
        DESTINATION_ARRIVED: { target: 'destinationPhase', actions: ['disarmTimer', 'attachDestination'] },
        CANCEL_REQUESTED: { target: 'aborting', actions: ['disarmTimer', 'noteCancel'] },
        DEADLINE_PASSED: { target: 'aborting', actions: ['disarmTimer', 'noteCancel'] },
      },
    },
    destinationPhase: {
      initial: 'reservingChannel',
      on: CANCEL.afterLock,
      states: {
        reservingChannel: {
          description: 'S9: the user logged in on the destination terminal; reserve its chip-control channel.',
          entry: [
            { type: 'progress', params: { step: 'S9', text: "user authenticated; reserving the destination's chip-control channel" } },
            { type: 'reserveChannel', params: { chip: 'destination' } },
          ],
          on: {
            CHANNEL_RESERVED: { guard: 'forDestination', target: 'identifying' },
            // The destination's chip is busy: tell that terminal, keep waiting for a destination.
            STEP_FAILED: {
              target: '#migration.awaitingDestination',
              actions: ['refuseForFailure', { type: 'answerDestination', params: { outcome: 'refused' } }, 'detachDestination', 'armDeadline'],
            },
          },
        },
        ...withRetry('identifying', 'identifyRetry', {
          description: "S9: the destination proves its serial in an admin session; it must be the user's, not the source, and the only destination.",
          entry: [
            { type: 'progress', params: { step: 'S9', text: 'channel reserved; the destination proves its serial to the admin SAM (K_chip)' } },
            { type: 'openAdminSession', params: { chip: 'destination', step: 'S9' } },
            'identifyChip',
          ],
          exit: 'closeSession',
          on: {
            ...RELAY,
            CHIP_IDENTIFIED: [
              { guard: 'destinationAcceptable', target: 'formatting', actions: 'bindDestination' },
              { target: 'rejecting', actions: 'refuseDestinationChip' },
            ],
          },
        }),
        rejecting: {
          description: 'Not an acceptable destination: release it and keep waiting for the right one.',
          entry: { type: 'releaseChannel', params: { chip: 'destination' } },
          on: {
            CHANNEL_RELEASED: {
              guard: 'forDestination',
              target: '#migration.awaitingDestination',
              actions: [{ type: 'answerDestination', params: { outcome: 'refused' } }, 'detachDestination', 'armDeadline'],
            },
          },
        },
        ...withRetry('formatting', 'formatRetry', {
          description: "S10: the admin SAM formats each destination area with the item's temp key only, and returns the download grants.",
          entry: [
            'resetAttempts',
            'markFormatting',
            { type: 'progress', params: { step: 'S10', text: 'formatting the destination with temp keys' } },
            { type: 'openAdminSession', params: { chip: 'destination', step: 'S10' } },
            'formatDestination',
          ],
          exit: 'closeSession',
          on: {
            ...RELAY,
            DESTINATION_FORMATTED: { target: 'downloading', actions: 'keepDownloadGrants' },
          },
        }),
        downloading: {
          initial: 'selectingItem',
          entry: 'resetCursor',
          states: {
            selectingItem: {
              description: 'S11 (and S15, the loop): take the next item and its provider.',
              always: [{ guard: 'allDownloaded', target: '#migration.committing' }, { target: 'transferring' }],
            },
            // An issuance whose order its migration SAM refuses (forged, spent, expired) never completes: abort it.
            ...withRetry(
              'transferring',
              'backingOff',
              {
                description:
                  'S12–S14: the migration SAM authenticates to the destination area with the temp key, ' +
                  "downloads the item and the destination's main key, and signs a receipt.",
                entry: [
                  { type: 'progressItem', params: { step: 'S11', text: 'next provider taken from the migration database' } },
                  { type: 'progressItem', params: { step: 'S12', text: "the destination chip is linked to its provider's migration SAM" } },
                  { type: 'openItemSession', params: { chip: 'destination', step: 'S14' } },
                  'requestDownload',
                ],
                exit: 'closeSession',
                initial: 'linking',
                states: {
                  linking: {
                    description: "Download requested; the migration SAM fetches the destination's main key from its normal SAM, then challenges the chip.",
                    on: {
                      SAM_FRAME: {
                        guard: 'samFrameOfSession',
                        target: 'authenticating',
                        actions: [
                          'relayToChip',
                          { type: 'progressItem', params: { step: 'S13', text: 'chip and migration SAM authenticate each other with the temp key' } },
                        ],
                      },
                    },
                  },
                  authenticating: {
                    tags: ['relay'],
                    on: {
                      CHIP_FRAME: { guard: 'chipFrameOfSession', actions: 'relayToSam' },
                      SAM_FRAME: {
                        guard: 'samFrameOfSession',
                        target: 'copying',
                        actions: [
                          'relayToChip',
                          { type: 'progressItem', params: { step: 'S14', text: "downloading the item and the destination's main key" } },
                        ],
                      },
                    },
                  },
                  copying: {
                    tags: ['relay'],
                    on: {
                      ...RELAY,
                    },
                  },
                },
                on: {
                  ITEM_DOWNLOADED: {
                    guard: 'isCurrentItem',
                    target: 'selectingItem',
                    actions: ['keepReceipt', { type: 'progressItem', params: { step: 'S15', text: 'downloaded, receipt kept' } }, 'advanceCursor'],
                  },
                },
              },
              { failFirst: [{ guard: 'orderRefused', target: '#migration.aborting', actions: 'refuseForFailure' }] },
            ),
          },
        },
      },
    },
    ...withRetry(
      'committing',
      'commitRetry',
      {
        description:
          'Commit point (protocol.md §4.3): the admin SAM sets its decision record pending -> committed by compare-and-set, ' +
          'only with a valid receipt for every item.',
        entry: [{ type: 'progress', params: { step: 'commit', text: 'all items downloaded; asking the admin SAM to commit' } }, 'commit'],
        on: {
          DECIDED: [
            { guard: 'committed', target: 'activating', actions: ['recordDecision', 'answerCancel'] },
            { target: 'rollingBack', actions: ['recordDecision', 'answerCancel'] },
          ],
          // Whichever reaches the admin SAM's record first wins; the answer to both is the decision that stands.
          CANCEL_REQUESTED: { actions: ['noteCancel', 'abort'] },
        },
      },
      { whileWaiting: CANCEL.afterLock },
    ),
    ...withRetry(
      'activating',
      'activateRetry',
      {
        description: 'S16: under the committed record only, the admin SAM switches every destination area from temp key to main key.',
        entry: [
          'resetAttempts',
          { type: 'progress', params: { step: 'S16', text: 'committed; activating the destination: temp key -> main key' } },
          { type: 'openAdminSession', params: { chip: 'destination', step: 'S16' } },
          'activateDestination',
        ],
        exit: 'closeSession',
        on: {
          ...RELAY,
          DESTINATION_ACTIVATED: 'clearing',
          ...CANCEL.afterCommit,
        },
      },
      { whileWaiting: CANCEL.afterCommit },
    ),
    ...withRetry(
      'clearing',
      'clearRetry',
      {
        description: 'S17: each migration SAM clears the item from its store and drops the grants.',
        entry: ['resetAnswers', { type: 'progress', params: { step: 'S17', text: "clearing the migration SAMs' stores" } }, 'clearAll'],
        on: {
          ITEM_CLEARED: [
            { guard: 'lastItemCleared', target: 'releasingDestination', actions: 'noteItemCleared' },
            { guard: 'newItemCleared', actions: 'noteItemCleared' },
          ],
          ...CANCEL.afterCommit,
        },
      },
      { whileWaiting: CANCEL.afterCommit },
    ),
    releasingDestination: {
      entry: { type: 'releaseChannel', params: { chip: 'destination' } },
      on: {
        CHANNEL_RELEASED: { guard: 'forDestination', target: 'completed' },
        ...CANCEL.afterCommit,
      },
    },
    completed: {
      type: 'final',
      description: 'Destination spendable, source locked (the backup), SAM stores empty.',
      entry: [
        { type: 'setOutcome', params: { outcome: 'completed' } },
        { type: 'answerDestination', params: { outcome: 'completed' } },
      ],
    },
    refused: {
      type: 'final',
      description: 'Preflight failed; the source was never touched.',
      entry: [
        { type: 'setOutcome', params: { outcome: 'refused' } },
        { type: 'answerSource', params: { outcome: 'refused' } },
      ],
    },
    ...withRetry('aborting', 'abortRetry', {
      description: 'A cancel or the deadline: ask the admin SAM to set its record pending -> aborted. If the commit won the race, roll forward.',
      entry: ['abort'],
      on: {
        DECIDED: [
          { guard: 'committed', target: 'activating', actions: ['recordDecision', 'answerCancel'] },
          { target: 'rollingBack', actions: ['recordDecision', 'answerCancel'] },
        ],
      },
    }),
    rollingBack: {
      description:
        'protocol.md §3 rollback, in its order: the admin SAM decided `aborted`; every migration SAM is fenced; ' +
        'the source gets its main keys back when it is here; the SAM stores are cleared once it has; ' +
        'the destination, never active, is wiped when it is here.',
      initial: 'fencing',
      on: {
        ...CANCEL.afterAbort,
        // A chip that comes back while the SAMs are being fenced is kept: it is served as soon as the fence holds.
        SOURCE_ARRIVED: { guard: 'sourceAwaited', actions: 'attachSource' },
        DESTINATION_ARRIVED: { guard: 'destinationAwaited', actions: 'attachDestination' },
        // Whoever went away is waited for again (answered now, so it learns when it comes back), and the rest goes on.
        TERMINAL_LOST: [
          {
            guard: 'lostDestination',
            target: '.deciding',
            actions: ['markOffline', 'noteTerminalLost', { type: 'answerDestination', params: { outcome: 'failed' } }, 'detachDestination', 'closeSession'],
          },
          {
            guard: 'lostSource',
            target: '.deciding',
            actions: ['markOffline', 'noteTerminalLost', { type: 'answerSource', params: { outcome: 'failed' } }, 'detachSource', 'closeSession'],
          },
        ],
      },
      states: {
        ...withRetry('fencing', 'fenceRetry', {
          entry: ['resetAnswers', 'fenceAll'],
          on: {
            PROVIDER_FENCED: [{ guard: 'lastProviderFenced', target: 'deciding', actions: 'noteProviderAnswered' }, { actions: 'noteProviderAnswered' }],
          },
        }),
        deciding: {
          description: 'Whoever is here now is served first; the rest is waited for.',
          entry: 'answerAbsentees',
          always: [
            { guard: 'issuanceToClear', target: 'clearingOrders' },
            { guard: 'destinationHere', target: 'destination' },
            { guard: 'sourceHereToRestore', target: 'source' },
            { guard: 'sourceNotRestored', target: 'awaitingSource' },
            { guard: 'destinationNeedsWipe', target: 'awaitingDestinationWipe' },
            { target: '#migration.rolledBack' },
          ],
        },
        ...withRetry('clearingOrders', 'clearOrdersRetry', {
          description: "An aborted issuance: each migration SAM (fenced) drops its copy of the order's item; nothing was restored, nothing needed to be.",
          entry: [
            'resetAnswers',
            { type: 'progress', params: { step: 'rollback', text: "issuance aborted; clearing the migration SAMs' copies of the ordered items" } },
            'clearAll',
          ],
          on: {
            ITEM_CLEARED: [
              { guard: 'lastItemCleared', target: 'deciding', actions: ['noteItemCleared', 'markSourceRestored'] },
              { guard: 'newItemCleared', actions: 'noteItemCleared' },
            ],
          },
        }),
        awaitingSource: {
          description: 'Liveness waits for the source chip to come back; the items stay safe in the SAMs and the source stays locked.',
          on: {
            SOURCE_ARRIVED: { target: 'source', actions: 'attachSource' },
            DESTINATION_ARRIVED: { guard: 'destinationNeedsWipe', target: 'destination', actions: 'attachDestination' },
          },
        },
        awaitingDestinationWipe: {
          description: 'The source is restored; the formatted destination is wiped when it next connects.',
          on: { DESTINATION_ARRIVED: { target: 'destination', actions: 'attachDestination' } },
        },
        source: {
          initial: 'reserving',
          entry: 'resetAttempts',
          states: {
            // Past its attempts, the source's terminal keeps refusing (its user's request ended: it holds no job for us):
            // wait for the user to bring the source back instead of asking that terminal forever.
            ...withRetry(
              'reserving',
              'reserveRetry',
              {
                entry: { type: 'reserveChannel', params: { chip: 'source' } },
                on: {
                  CHANNEL_RESERVED: { guard: 'forSource', target: 'restoring' },
                },
              },
              {
                retryWhile: 'preLockRetry',
                otherwise: {
                  target: '#migration.rollingBack.awaitingSource',
                  actions: [{ type: 'answerSource', params: { outcome: 'failed' } }, 'detachSource'],
                },
              },
            ),
            ...withRetry('restoring', 'restoreRetry', {
              description: 'Under the aborted record only, the admin SAM switches every source area back to its main key.',
              entry: [
                { type: 'progress', params: { step: 'rollback', text: 'restoring the source: temp key -> main key' } },
                { type: 'openAdminSession', params: { chip: 'source', step: 'rollback' } },
                'restoreSource',
              ],
              exit: 'closeSession',
              on: {
                ...RELAY,
                SOURCE_RESTORED: 'clearingStores',
              },
            }),
            ...withRetry('clearingStores', 'clearRetry', {
              description: 'The source has its main keys back: each migration SAM may now drop its copy.',
              entry: [
                'resetAnswers',
                { type: 'progress', params: { step: 'rollback', text: "source restored; clearing the migration SAMs' stores" } },
                'clearAll',
              ],
              on: {
                ITEM_CLEARED: [
                  { guard: 'lastItemCleared', target: 'releasing', actions: 'noteItemCleared' },
                  { guard: 'newItemCleared', actions: 'noteItemCleared' },
                ],
              },
            }),
            releasing: {
              entry: { type: 'releaseChannel', params: { chip: 'source' } },
              on: {
                CHANNEL_RELEASED: {
                  guard: 'forSource',
                  target: '#migration.rollingBack.deciding',
                  actions: [{ type: 'answerSource', params: { outcome: 'rolledBack' } }, 'detachSource', 'markSourceRestored'],
                },
              },
            },
          },
        },
        destination: {
          initial: 'checking',
          states: {
            checking: {
              always: [{ guard: 'destinationNeedsWipe', target: 'reserving' }, { target: 'releasing' }],
            },
            ...withRetry('reserving', 'reserveRetry', {
              entry: { type: 'reserveChannel', params: { chip: 'destination' } },
              on: {
                CHANNEL_RESERVED: { guard: 'forDestination', target: 'wiping' },
              },
            }),
            ...withRetry('wiping', 'wipeRetry', {
              description: 'Destination areas were never active: they are wiped (under the aborted record only).',
              entry: [
                { type: 'progress', params: { step: 'rollback', text: "wiping the destination's never-activated areas" } },
                { type: 'openAdminSession', params: { chip: 'destination', step: 'rollback' } },
                'wipeDestination',
              ],
              exit: 'closeSession',
              on: {
                ...RELAY,
                DESTINATION_WIPED: { target: 'releasing', actions: 'markDestinationWiped' },
              },
            }),
            releasing: {
              entry: { type: 'releaseChannel', params: { chip: 'destination' } },
              on: {
                CHANNEL_RELEASED: {
                  guard: 'forDestination',
                  target: '#migration.rollingBack.deciding',
                  actions: [{ type: 'answerDestination', params: { outcome: 'rolledBack' } }, 'detachDestination'],
                },
              },
            },
          },
        },
      },
    },
    rolledBack: {
      type: 'final',
      description: 'Source spendable again, destination wiped, SAM stores empty.',
      entry: { type: 'setOutcome', params: { outcome: 'rolledBack' } },
    },
  },
});
