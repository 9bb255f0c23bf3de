import { EmbeddedSystem } from '../src/actors/system.ts';
import { createLogger } from '../src/log.ts';
import { rmSync } from 'node:fs';
rmSync('/tmp/vm-dbg', { recursive: true, force: true });
const log = createLogger({ level: 'debug', sink: { write: (l) => process.stderr.write(l) } });
const sys = await EmbeddedSystem.start({ dataDir: '/tmp/vm-dbg', providers: ['emoney'], log, scrypt: { N: 1024, r: 8, p: 1 },
  envelopeTap: (party, dir, peer, bytes) => { const s = new TextDecoder().decode(bytes); console.log(party, dir, peer, s.slice(0, 200)); } });
await sys.server.createUser('alice', 'pw');
const chip = await sys.addChip('S1');
const t = await sys.addTerminal('t1');
sys.insertChip(t, chip);
sys.connectToServer(t);
const timer = setTimeout(() => { console.log('TIMEOUT', t.state()); process.exit(1); }, 5000);
await t.login('alice', 'pw');
console.log('logged in');
const reg = await t.register();
console.log('registered', reg);
clearTimeout(timer);
await sys.stop();
