import { EmbeddedSystem } from '../src/actors/system.ts';
import { createLogger } from '../src/log.ts';
import { rmSync } from 'node:fs';
rmSync('/tmp/vm-mig', { recursive: true, force: true });
const log = createLogger({ level: 'warn', sink: { write: (l) => process.stderr.write(l) } });
const verbose = process.argv.includes('-v');
const sys = await EmbeddedSystem.start({ dataDir: '/tmp/vm-mig', providers: ['emoney', 'transit'], log, scrypt: { N: 1024, r: 8, p: 1 },
  envelopeTap: verbose ? (party, dir, peer, bytes) => { if (dir==='in') { const s = new TextDecoder().decode(bytes); console.log(party, '<-', peer, s.slice(0, 160)); } } : undefined });
await sys.server.createUser('alice', 'pw');
const src = await sys.addChip('SRC'); const dst = await sys.addChip('DST');
const t1 = await sys.addTerminal('t1'); const t2 = await sys.addTerminal('t2');
sys.insertChip(t1, src); sys.insertChip(t2, dst);
await sys.issue(src, [
  { area: 'emoney', provider: 'emoney', value: { kind: 'emoney', currency: 'JPY', balance: 1000, ref: 'a'.repeat(32) } },
  { area: 'transit', provider: 'transit', value: { kind: 'transit', line: 'x', balance: 700, ref: 'b'.repeat(32) } },
]);
for (const t of [t1, t2]) { sys.connectToServer(t); await t.login('alice', 'pw'); await t.register(); }
const dump = () => { console.log('server', JSON.stringify(sys.server.states())); console.log('admin', JSON.stringify(sys.adminSam.states())); for (const [p, x] of sys.providers) console.log(p, JSON.stringify(x.migrationSam.states())); console.log('t1', JSON.stringify(t1.state()), 't2', JSON.stringify(t2.state())); };
const keep = setInterval(() => {}, 1000);
const timer = setTimeout(() => { console.log('TIMEOUT'); dump(); process.exit(1); }, 8000);
const out = await t1.migrateOut({ destination: 'DST' });
console.log('out', out);
const done = await t2.migrateIn();
console.log('in', done);
dump();
clearTimeout(timer); clearInterval(keep);
await sys.stop();
