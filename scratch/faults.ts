import { FAST_TIMING } from '../src/timing.ts';
import { driveMigration } from '../test/helpers/driver.ts';
import { buildWorld } from '../test/helpers/world.ts';
const policy = JSON.parse(process.argv[2] ?? '{"drop":0.3}');
const world = await buildWorld({ items: 2, system: { timing: FAST_TIMING } });
world.system.setFaults(policy);
try {
  const r = await driveMigration(world, { timeoutMs: Number(process.env.T ?? 15000) });
  console.log('done', r.state, r.ms, r.context.reason);
} catch (e) {
  console.log((e as Error).message);
  const s = world.system;
  console.log('server', JSON.stringify(s.server.states()));
  console.log('ctx', JSON.stringify({ ...s.server.migration(s.server.migrationIds()[0]!), uploadGrants: undefined, downloadGrants: undefined, receipts: undefined }));
  for (const [p, prov] of s.providers) console.log(p, JSON.stringify(prov.migrationSam.states()));
  console.log('admin', JSON.stringify(s.adminSam.states()).slice(0, 600));
  for (const c of s.chips.values()) console.log(c.serial, JSON.stringify(c.memory.list().map((a) => [a.area, a.state, a.last?.step])), JSON.stringify(c.states()));
  const lines = world.logLines.filter((l) => l.includes('"warn"')).slice(-15);
  for (const l of lines) console.log(l.slice(0, 300));
}
await world.cleanup();
process.exit(0);
