/**
 * protocol.md §5, confidentiality honestly: search bytes for every secret in
 * every form it could leak as (raw, hex, base64 and base64url at each of the
 * three byte alignments).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface Needle {
  name: string;
  bytes: Uint8Array;
}

const enc = new TextEncoder();

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  if (needle.length === 0 || needle.length > hay.length) return -1;
  return Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).indexOf(Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength));
}

/** base64 text that depends only on the needle's bytes, whatever bytes surround it. */
function base64Cores(bytes: Uint8Array, url: boolean): string[] {
  const out: string[] = [];
  for (let shift = 0; shift < 3; shift++) {
    const padded = Buffer.concat([Buffer.alloc(shift), Buffer.from(bytes)]);
    let s = padded.toString(url ? 'base64url' : 'base64').replace(/=+$/, '');
    // drop the group that mixes in the prefix, and the last (partial) group
    if (shift > 0) s = s.slice(4);
    s = s.slice(0, Math.max(0, s.length - 4));
    if (s.length >= 8) out.push(s);
  }
  return out;
}

export function forms(n: Needle): Array<{ form: string; bytes: Uint8Array }> {
  const hex = Buffer.from(n.bytes).toString('hex');
  const out = [
    { form: 'raw', bytes: n.bytes },
    { form: 'hex', bytes: enc.encode(hex) },
    { form: 'HEX', bytes: enc.encode(hex.toUpperCase()) },
  ];
  for (const s of base64Cores(n.bytes, false)) out.push({ form: 'base64', bytes: enc.encode(s) });
  for (const s of base64Cores(n.bytes, true)) out.push({ form: 'base64url', bytes: enc.encode(s) });
  return out;
}

export interface Finding {
  needle: string;
  form: string;
  where: string;
}

export function scan(haystacks: Array<{ where: string; bytes: Uint8Array }>, needles: Needle[]): Finding[] {
  const found: Finding[] = [];
  for (const n of needles) {
    const fs = forms(n);
    for (const h of haystacks) {
      for (const f of fs) {
        if (indexOf(h.bytes, f.bytes) >= 0) found.push({ needle: n.name, form: f.form, where: h.where });
      }
    }
  }
  return found;
}

/** Every file under a folder, as haystacks (LMDB data files included). */
export function filesUnder(dir: string): Array<{ where: string; bytes: Uint8Array }> {
  const out: Array<{ where: string; bytes: Uint8Array }> = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push({ where: p, bytes: new Uint8Array(readFileSync(p)) });
  }
  return out;
}
