import { buildWorld } from '../helpers/world.ts';
import { decodeEnvelope } from '../../src/transport/envelope.ts';
import { decodeChipFrame } from '../../src/transport/chip.frames.ts';
import { fromB64 } from '../../src/crypto/index.ts';
const t0 = Date.now();
const world = await buildWorld({ items: 1, record: true });
console.log('world', Date.now() - t0);
try {
  const out = await world.oldPhone.migrateOut({ destination: world.destination.serial });
  const done = await world.newPhone.migrateIn({ mig: out.mig });
  console.log(out.outcome, done.outcome, Date.now() - t0);
  for (const r of world.envelopes) {
    if (r.direction !== 'in') continue;
    const e = decodeEnvelope(r.bytes);
    let extra = '';
    if (e.type === 'frame') { const f = decodeChipFrame(fromB64(e.body.data)); extra = `${e.body.session} ${f.t} ${'purpose' in f ? f.purpose + ' ' + f.area + ' ' + f.mig : ''}`; }
    if (e.type === 'msam.upload' || e.type === 'msam.download') extra = JSON.stringify({ s: e.body.session, g: { ...e.body.grant, sealed: 0, sig: 0, ephPub: 0 } });
    console.log(r.party, '<-', r.peer, e.type, e.id, e.corr ?? '', e.mig ?? '', e.step ?? '', e.item ?? '', extra);
  }
} finally { await world.cleanup(); }
