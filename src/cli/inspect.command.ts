/** `valmove inspect`: the local live page (src/inspect/server.ts). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { InspectServer, type DemoResult } from '../inspect/server.ts';
import { startStatelyBridge, type StatelyBridge } from '../inspect/stately.ts';
import { createLogger } from '../log.ts';
import { DEMO_ITEMS_MAX, runDemo } from './demo.ts';

function demoItems(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > DEMO_ITEMS_MAX) throw new InvalidArgumentError(`from 1 to ${DEMO_ITEMS_MAX}`);
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('not a port number (0-65535)');
  return n;
}

/** One embedded demo migration in this process, its records sent to the page's feed; its data folder is removed after. */
async function demoInto(feedUrl: string, items: number): Promise<DemoResult> {
  const data = mkdtempSync(join(tmpdir(), 'valmove-inspect-demo-'));
  try {
    const report = await runDemo({ items, data, json: true, out: () => undefined, inspect: feedUrl });
    return { outcome: report.outcome, mig: report.mig };
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
}

export function addInspectCommand(program: Command, out: (line: string) => void): void {
  program
    .command('inspect')
    .description('a local web page with every statechart; attach a demo or deployment (--inspect URL) to watch states and messages live')
    .option('--port <p>', 'port of the page on 127.0.0.1 (0: any free port)', port, 4800)
    .option('--host <h>', 'address to listen on (the feed takes records from whoever reaches it: keep it local)', '127.0.0.1')
    .option('--demo-items <n>', `items the page's "Run a demo migration" button moves (1-${DEMO_ITEMS_MAX})`, demoItems, 3)
    .option(
      '--stately <port>',
      "also forward the live actors to Stately's inspector (@statelyai/inspect; its page loads stately.ai, so needs a network) on this port",
      port,
    )
    .action(async (o: { port: number; host: string; demoItems: number; stately?: number }) => {
      const log = createLogger({ level: 'info' });
      let bridge: StatelyBridge | undefined;
      if (o.stately !== undefined) bridge = startStatelyBridge(o.stately);
      const server = await InspectServer.start({
        host: o.host,
        port: o.port,
        log,
        runDemo: (feedUrl) => demoInto(feedUrl, o.demoItems),
        onRecord: bridge ? (r) => bridge.forward(r) : undefined,
      });
      // Ready for a stop before it says it serves: a SIGTERM right after the line is a clean stop.
      const stopped = new Promise<void>((resolve) => {
        // on, not once: a listener that removes itself leaves signal-exit's hook alone on the signal, and it re-raises it.
        process.on('SIGINT', () => resolve());
        process.on('SIGTERM', () => resolve());
      });
      out(`valmove inspect: open ${server.url}`);
      out(`attach a run:    valmove demo --inspect ${server.feedUrl}   (or up / start ... --inspect ${server.feedUrl})`);
      if (bridge) out(`Stately's inspector: open ${bridge.url} (needs a network: it loads stately.ai)`);
      await stopped;
      bridge?.stop();
      await server.close();
    });
}
