import { buildWorld } from '../helpers/world.ts';
let hold = true;
const t0 = Date.now();
const world = await buildWorld({ items: 1, system: { steer: { beforeRequest: (party, env) => (hold && env.type === 'msam.upload' ? { holdMs: 20 } : undefined) } } });
try {
  world.oldPhone.onProgress((p) => { console.log('progress', p.step, p.text); if (p.step === 'S5') void world.oldPhone.cancel(p.mig).then((c) => console.log('cancel', c)); });
  const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
  console.log('out', out.outcome, out.reason, Date.now() - t0);
  console.log('source', world.source.memory.list().map((a) => a.state));
  hold = false;
  await new Promise((r) => setTimeout(r, 1500));
  for (const [p, prov] of world.system.providers) console.log(p, prov.migrationSam.held().map((h) => ({ ...h, uploadGrant: 0 })), prov.migrationSam.states());
  console.log('server', world.system.server.migrationState(out.mig));
} finally { await world.cleanup(); }
