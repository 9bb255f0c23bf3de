import { EmbeddedSystem } from '../src/actors/system.ts';
import { createLogger } from '../src/log.ts';
import { rmSync } from 'node:fs';
rmSync('/tmp/vm-use', { recursive: true, force: true });
const log = createLogger({ level: 'debug', sink: { write: (l) => process.stderr.write(l) } });
const sys = await EmbeddedSystem.start({ dataDir: '/tmp/vm-use', providers: ['emoney'], log, scrypt: { N: 1024, r: 8, p: 1 },
  envelopeTap: (party, dir, peer, bytes) => { if (dir==='in') { const s = new TextDecoder().decode(bytes); console.log(party, '<-', peer, s.slice(0, 200)); } } });
const src = await sys.addChip('SRC');
const t1 = await sys.addTerminal('t1');
sys.insertChip(t1, src);
await sys.issue(src, [{ area: 'emoney', provider: 'emoney', value: { kind: 'emoney', currency: 'JPY', balance: 1000, ref: 'a'.repeat(32) } }]);
sys.connectReader(t1, 'emoney');
const keep = setInterval(() => {}, 1000);
const timer = setTimeout(() => { console.log('TIMEOUT', t1.state()); process.exit(1); }, 5000);
console.log(await t1.normalUse('emoney', 'pay', 'emoney', 300));
clearTimeout(timer); clearInterval(keep);
await sys.stop();
