/**
 * Recorded runs and their message sequence (`valmove trace`, the live page).
 *
 *   records.ts   the record format (run files, the live feed)
 *   recorder.ts  runtime hooks -> records; sinks.ts: JSON Lines file, WebSocket feed
 *   wiring.ts    the --record / --inspect flags
 *   load.ts      run files back, checked line by line
 *   sequence.ts  records -> steps S1..S17 with their messages (pure)
 *   mermaid.ts, svg.ts, json.ts  the drawings
 */
export type { EnvelopeRecord, RunRecord, RunStartRecord, StateRecord } from './records.ts';
export { createRecorder, envelopeRecord, leafPaths, stateRecord, type Recorder, type RecordSink } from './recorder.ts';
export { feedSink, fileSink } from './sinks.ts';
export { partyFileName, processRecording, recordsToOneFile, systemRecorder } from './wiring.ts';
export { checkRecord, loadRun, parseRunText, TraceInputError, type LoadedRun } from './load.ts';
export {
  mergeSegments,
  orderParticipants,
  segmentsOf,
  sequenceOf,
  stepHeading,
  stepTitle,
  STEP_TITLES,
  type RunSegment,
  type SeqMessage,
  type SeqStep,
  type Sequence,
} from './sequence.ts';
export { toMermaid } from './mermaid.ts';
export { escapeXml, toSvg } from './svg.ts';
export { toJson, type SequenceJson } from './json.ts';
