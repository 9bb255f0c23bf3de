/**
 * The Stately option of `valmove inspect`: the same live records, re-sent as
 * Stately inspection events to Stately's own inspector (`@statelyai/inspect`),
 * for users who prefer its UI. Its bridge page embeds stately.ai, so this
 * needs a network and is never the default. Only what the page shows goes
 * there too: actor names, machine definitions, state values and event types —
 * no context, no payloads.
 */
import { createWebSocketInspector } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import type { StateValue } from 'xstate';
import { MODELS } from '../model/models.ts';
import type { RunRecord } from '../trace/records.ts';

/** Rebuilds a state value from active leaf paths ('migration.a.b', 'migration.a.c' -> { a: { b: {}, c: {} } } -> leaves as strings). */
export function stateValueOf(leaves: readonly string[]): StateValue {
  const tree: Record<string, unknown> = {};
  for (const leaf of leaves) {
    let node = tree;
    for (const part of leaf.split('.').slice(1)) node = (node[part] ??= {}) as Record<string, unknown>;
  }
  const fold = (n: Record<string, unknown>): StateValue => {
    const keys = Object.keys(n);
    if (keys.length === 1 && Object.keys(n[keys[0]!] as object).length === 0) return keys[0]!;
    return Object.fromEntries(keys.map((k) => [k, fold(n[k] as Record<string, unknown>)])) as StateValue;
  };
  return fold(tree);
}

export interface StatelyBridge {
  url: string;
  forward(record: RunRecord): void;
  stop(): void;
}

/** Starts Stately's bridge page on `port` (loopback) and returns a forwarder for live records. */
export function startStatelyBridge(port: number): StatelyBridge {
  const server = createInspectorServer({ port, autoOpen: false });
  const inspector = createWebSocketInspector({ url: `ws://127.0.0.1:${port}` });
  const known = new Set<string>();
  return {
    url: `http://localhost:${port}`,
    forward(r) {
      if (r.kind !== 'state') return;
      const id = `${r.party}|${r.actor}`;
      const snapshot = { status: 'active' as const, value: stateValueOf(r.states), context: {} };
      if (!known.has(id)) {
        known.add(id);
        const machine = MODELS[r.machine]?.machine;
        inspector.actor(id, snapshot, { definition: machine ? JSON.stringify(machine.toJSON()) : undefined });
      }
      if (r.event) inspector.event(id, { type: r.event });
      inspector.snapshot(id, snapshot, r.event ? { event: { type: r.event } } : undefined);
    },
    stop() {
      inspector.stop();
      server.stop();
    },
  };
}
