/**
 * The abstract safety model of the migration protocol: a second model,
 * written from the protocol, not from the statecharts (docs/testers.md).
 * Its files: types.ts (rules, mistakes, invariants), state.ts (the packed
 * state), parties.ts (the parties' rules), this file (who may do what),
 * invariants.ts, explore.ts (exhaustive BFS), conformance.ts (the real
 * system against the model).
 *
 * From a state, every step the world may take:
 *
 *  - The honest server drives each migration by protocol.md §3: lock (S3),
 *    upload (S4-S8), format (S10), download (S11-S14), commit, activate
 *    (S16), clear (S17); on a cancel: abort, fence, restore, clear, wipe.
 *    It sends the next request from what it has learnt (durable), keeps
 *    every request it sent in its outbox until answered (so a request may
 *    arrive after the server moved on), and ends a migration when its
 *    outcome's last answer is in.
 *  - Faults: a party crashes (the chip sessions it was part of, which live
 *    in RAM, are lost; what it wrote stays), a session fails, an answer is
 *    lost, an answered request is delivered again late, grants expire, the
 *    user cancels at any time.
 *  - A rogue server (a trusted server that misbehaves) asks any party for
 *    anything it can name, at any time, with any grant or receipt a party
 *    ever issued: the parties' own rules are all that stands in its way.
 */
import { Parties } from './parties.ts';
import { type Bits, requestName, type Request } from './requests.ts';
import { SafetyState, Topology } from './state.ts';
import { MISTAKES, RULES, type GrantUse, type RuleName, type SafetyOptions } from './types.ts';

export interface Transition {
  /** The step in words (built only when a path is printed: most steps lead to a state already seen). */
  label: () => string;
  next: SafetyState;
  /** A transfer at a migration SAM, with the grant it used. */
  use?: GrantUse;
}

export type ServerOutcome = 'completed' | 'rolledBack';

type Emit = (x: SafetyState, label: () => string, use?: GrantUse) => void;

type Flags = Required<Omit<SafetyOptions, 'mistakes' | 'items' | 'migrations' | 'spareChips' | 'statesMax'>>;

export class SafetyModel {
  readonly t: Topology;
  readonly rules: Readonly<Record<RuleName, boolean>>;
  readonly parties: Parties;
  readonly bits: Bits;
  readonly flags: Flags;
  private readonly crashParties: Array<{ name: string; masks: number[] }>;

  constructor(options: SafetyOptions = {}) {
    this.t = new Topology(options.migrations ?? 1, options.items ?? 1, options.spareChips ?? 0);
    const rules = Object.fromEntries(Object.keys(RULES).map((r) => [r, true])) as Record<RuleName, boolean>;
    for (const [name, on] of Object.entries(options.mistakes ?? {})) {
      const mistake = MISTAKES[name as keyof typeof MISTAKES];
      if (!mistake) throw new RangeError(`unknown mistake "${name}"; known: ${Object.keys(MISTAKES).join(', ')}`);
      if (on) rules[mistake.breaks] = false;
    }
    this.rules = rules;
    this.parties = new Parties(this.t, rules);
    this.bits = this.parties.bits;
    this.flags = {
      honestServer: options.honestServer ?? true,
      crashes: options.crashes ?? false,
      duplicates: options.duplicates ?? false,
      losses: options.losses ?? false,
      cancels: options.cancels ?? false,
      rogue: options.rogue ?? false,
      expiry: options.expiry ?? false,
    };
    this.crashParties = this.crashMasks();
  }

  initial(): SafetyState {
    return SafetyState.initial(this.t);
  }

  /** What the honest server says about migration m: ended completed, ended rolled back, or not ended. */
  outcome(s: SafetyState, m: number): ServerOutcome | null {
    const b = this.bits;
    const kn = s.knows(m);
    const cleared = (kn & b.every(b.cleared)) === b.every(b.cleared);
    if (kn & b.COMMITTED && kn & b.ACTIVATED && (cleared || !this.rules.serverEndsWhenClean)) return 'completed';
    const fenced = (kn & b.every(b.fencedAt)) === b.every(b.fencedAt);
    if (kn & b.ABORTED && fenced && kn & b.RESTORED && cleared && kn & b.WIPED) return 'rolledBack';
    return null;
  }

  successors(s: SafetyState): Transition[] {
    const out: Transition[] = [];
    const emit: Emit = (x, label, use) => {
      if (!sameBytes(x.b, s.b)) out.push(use ? { label, next: x, use } : { label, next: x });
    };
    for (let m = 0; m < this.t.M; m++) {
      if (this.flags.honestServer) this.honest(s, m, emit);
      if (this.flags.rogue) this.rogue(s, m, emit);
      if (this.flags.expiry && !s.expired(m) && (s.uploadGrantsIssued(m) || s.downloadGrantChips(m) !== 0)) {
        const x = s.clone();
        x.setExpired(m);
        emit(x, () => `clock: the grants of ${this.t.migName(m)} expire`);
      }
    }
    if (this.flags.crashes && this.flags.honestServer) this.crashes(s, emit);
    return out;
  }

  // ---- the honest server ----------------------------------------------------------------------------

  /** The requests (slots) the honest server sends next, from what it knows (protocol.md §3, in order). */
  wanted(s: SafetyState, m: number): number[] {
    const b = this.bits;
    const K = this.t.K;
    const kn = s.knows(m);
    if (this.outcome(s, m)) return [];
    const out: number[] = [];
    if (kn & b.COMMITTED) {
      // S16, then S17 once the activation is acknowledged; the source backup is wiped when the user confirms.
      if (!(kn & b.ACTIVATED)) out.push(b.S_ACTIVATE);
      else {
        for (let i = 0; i < K; i++) if (!(kn & b.cleared(i))) out.push(b.sClear(i));
        if (!(kn & b.SOURCE_WIPED)) out.push(b.S_WIPE_SRC);
      }
    } else if (kn & b.ABORTED) {
      // Rollback in order: fence every migration SAM, restore the source, clear the stores; wipe the destination.
      for (let p = 0; p < K; p++) if (!(kn & b.fencedAt(p))) out.push(b.sFence(p));
      const fenced = (kn & b.every(b.fencedAt)) === b.every(b.fencedAt);
      if (fenced && !(kn & b.RESTORED)) out.push(b.S_RESTORE);
      if (kn & b.RESTORED) for (let i = 0; i < K; i++) if (!(kn & b.cleared(i))) out.push(b.sClear(i));
      if (fenced && !(kn & b.WIPED)) out.push(b.S_WIPE_DST);
    } else if (kn & b.CANCEL) {
      out.push(b.S_ABORT);
    } else if (!(kn & b.LOCKED)) {
      out.push(b.S_LOCK);
    } else {
      for (let i = 0; i < K; i++) if (!(kn & b.uploaded(i))) out.push(b.sUpload(i));
      const uploaded = (kn & b.every(b.uploaded)) === b.every(b.uploaded);
      if (uploaded && !(kn & b.FORMATTED)) out.push(b.S_FORMAT);
      if (kn & b.FORMATTED) for (let i = 0; i < K; i++) if (!(kn & b.receipt(i))) out.push(b.sDownload(i));
      if ((kn & b.every(b.receipt)) === b.every(b.receipt)) out.push(b.S_COMMIT);
    }
    return out;
  }

  private honest(s: SafetyState, m: number, emit: Emit): void {
    const b = this.bits;
    const kn = s.knows(m);
    const sent = s.sent(m);
    const deliverable = new Set(this.wanted(s, m));
    if (!this.flags.rogue) {
      // The outbox: a request sent and not answered is sent again until it is (also after the server moved on).
      for (let slot = 0; slot < b.slots; slot++) if (sent & (1 << slot) && !(kn & b.answeredBy(slot))) deliverable.add(slot);
    }
    for (const slot of deliverable) this.deliverHonest(s, m, slot, '', emit);
    if (this.flags.duplicates && !this.flags.rogue) {
      for (let slot = 0; slot < b.slots; slot++) {
        if (sent & (1 << slot) && kn & b.answeredBy(slot)) this.deliverHonest(s, m, slot, 'late duplicate: ', emit);
      }
    }
    // The chip sessions the server's requests opened.
    const sessions = s.sessions(m);
    for (let slot = 0; slot < b.slots; slot++) {
      if (!(sessions & (1 << slot))) continue;
      const req = b.request(this.t, m, slot, kn);
      for (const step of this.parties.steps(s, req)) {
        const x = s.clone();
        step.apply(x);
        if (!step.ends) {
          emit(x, () => `${requestName(this.t, req)}: ${step.label}`, step.use);
          continue;
        }
        x.setSessions(m, x.sessions(m) & ~(1 << slot));
        if (this.flags.losses) emit(x.clone(), () => `${requestName(this.t, req)}: ${step.label} (answer lost)`, step.use);
        x.setKnows(m, x.knows(m) | step.ends.learn);
        emit(x, () => `${requestName(this.t, req)}: ${step.label} -> server`, step.use);
      }
    }
    if (this.flags.cancels && !this.outcome(s, m) && !(kn & (b.COMMITTED | b.ABORTED | b.CANCEL))) {
      const x = s.clone();
      x.setKnows(m, kn | b.CANCEL);
      emit(x, () => `user cancels ${this.t.migName(m)}`);
    }
  }

  private deliverHonest(s: SafetyState, m: number, slot: number, prefix: string, emit: Emit): void {
    const req = this.bits.request(this.t, m, slot, s.knows(m));
    const x = s.clone();
    // Only tracked without a rogue server: with one, any request may arrive at any time anyway.
    if (!this.flags.rogue) x.setSent(m, x.sent(m) | (1 << slot));
    const d = this.parties.deliver(x, req);
    if (d.kind !== 'refused') this.parties.receive(x, req);
    switch (d.kind) {
      case 'refused':
        return emit(x, () => `${prefix}${requestName(this.t, req)}: refused (${d.reason})`);
      case 'session':
        x.setSessions(m, x.sessions(m) | (1 << slot));
        return emit(x, () => prefix + requestName(this.t, req));
      case 'answered': {
        this.endSessionsOf(x, req);
        if (this.flags.losses) emit(x.clone(), () => `${prefix}${requestName(this.t, req)} (answer lost)`);
        x.setKnows(m, x.knows(m) | d.learn);
        return emit(x, () => `${prefix}${requestName(this.t, req)} -> server`);
      }
    }
  }

  /** A fence or a clear ends the migration SAM's sessions for those items (their work is refused from then on). */
  private endSessionsOf(x: SafetyState, req: Request): void {
    const b = this.bits;
    if (req.kind === 'fence') x.setSessions(req.m, x.sessions(req.m) & ~((1 << b.sUpload(req.provider)) | (1 << b.sDownload(req.provider))));
    if (req.kind === 'clear') x.setSessions(req.m, x.sessions(req.m) & ~((1 << b.sUpload(req.i)) | (1 << b.sDownload(req.i))));
  }

  // ---- the rogue server -------------------------------------------------------------------------------

  /** Everything a rogue server can ask about migration m (it can name any chip, and it holds every grant and receipt issued). */
  private rogueRequests(s: SafetyState, m: number): Request[] {
    const t = this.t;
    const out: Request[] = [
      { kind: 'lock', m },
      { kind: 'abort', m },
    ];
    for (let c = 0; c < t.chips; c++) {
      out.push({ kind: 'format', m, chip: c }, { kind: 'activate', m, chip: c }, { kind: 'restore', m, chip: c });
      out.push({ kind: 'wipe', m, chip: c, role: 'source' }, { kind: 'wipe', m, chip: c, role: 'destination' });
    }
    const grants = s.grants();
    for (let i = 0; i < t.K; i++) {
      out.push({ kind: 'clear', m, i }, { kind: 'fence', m, provider: i });
      for (const grant of grants) out.push({ kind: 'upload', m, i, grant }, { kind: 'download', m, i, grant });
    }
    // Commit with any subset of the receipts signed for m (each item: none, or one of the chips a receipt names).
    let combos: number[][] = [[]];
    for (let i = 0; i < t.K; i++) {
      const choices = [-1];
      for (let c = 0; c < t.chips; c++) if (s.receiptChips(m, i) & (1 << c)) choices.push(c);
      combos = combos.flatMap((prefix) => choices.map((c) => [...prefix, c]));
    }
    for (const receipts of combos) out.push({ kind: 'commit', m, receipts });
    return out;
  }

  private rogue(s: SafetyState, m: number, emit: Emit): void {
    for (const req of this.rogueRequests(s, m)) {
      const d = this.parties.deliver(s, req);
      if (d.kind === 'refused') continue;
      const x = s.clone();
      this.parties.receive(x, req);
      this.endSessionsOf(x, req);
      emit(x, () => `rogue: ${requestName(this.t, req)}${d.kind === 'answered' ? ' -> answered' : ' (delivered)'}`);
      if (d.kind !== 'session') continue;
      // The rogue runs the session it opened one chip command at a time (and may drop it at any point).
      for (const step of this.parties.steps(x, req)) {
        const y = x.clone();
        step.apply(y);
        emit(y, () => `rogue: ${requestName(this.t, req)}: ${step.label}`, step.use);
      }
    }
  }

  // ---- crashes ----------------------------------------------------------------------------------------

  /** Per party that can crash: the sessions it takes down with it, per migration (a mask of slots). */
  private crashMasks(): Array<{ name: string; masks: number[] }> {
    const t = this.t;
    const b = this.bits;
    const mask = (slots: number[]) => slots.reduce((acc, k) => acc | (1 << k), 0);
    const perItem = (slot: (i: number) => number) => Array.from({ length: t.K }, (_, i) => slot.call(b, i));
    const same = (slots: number[]) => Array.from({ length: t.M }, () => mask(slots));
    const out = [
      { name: 'admin SAM', masks: same([b.S_LOCK, b.S_FORMAT, b.S_ACTIVATE, b.S_RESTORE, b.S_WIPE_DST, b.S_WIPE_SRC]) },
      // The server relays every chip session.
      { name: 'server', masks: same(Array.from({ length: b.slots }, (_, k) => k)) },
    ];
    for (let p = 0; p < t.K; p++) {
      out.push({ name: `migration SAM ${p}`, masks: same([b.sUpload(p), b.sDownload(p)]) });
      // A download waits on the provider's normal SAM for the destination's main key.
      out.push({ name: `normal SAM ${p}`, masks: same([b.sDownload(p)]) });
    }
    for (let c = 0; c < t.chips; c++) {
      const masks = Array.from({ length: t.M }, (_, m) =>
        mask([
          ...(c === t.src(m) ? [b.S_LOCK, b.S_RESTORE, b.S_WIPE_SRC, ...perItem(b.sUpload)] : []),
          ...(c === t.dst(m) ? [b.S_FORMAT, b.S_ACTIVATE, b.S_WIPE_DST, ...perItem(b.sDownload)] : []),
        ]),
      );
      out.push({ name: `chip ${t.chipName(c)}`, masks });
    }
    return out;
  }

  private crashes(s: SafetyState, emit: Emit): void {
    const t = this.t;
    const b = this.bits;
    for (const party of this.crashParties) {
      let hit = false;
      for (let m = 0; m < t.M; m++) hit ||= (s.sessions(m) & party.masks[m]!) !== 0;
      if (!hit) continue;
      const x = s.clone();
      for (let m = 0; m < t.M; m++) x.setSessions(m, x.sessions(m) & ~party.masks[m]!);
      emit(x, () => `crash: ${party.name} restarts (its sessions are lost)`);
    }
    // One session fails on its own (a frame lost, a deadline).
    for (let m = 0; m < t.M; m++) {
      const open = s.sessions(m);
      for (let slot = 0; slot < b.slots; slot++) {
        if (!(open & (1 << slot))) continue;
        const x = s.clone();
        x.setSessions(m, open & ~(1 << slot));
        emit(x, () => `session lost: ${requestName(t, b.request(t, m, slot, s.knows(m)))}`);
      }
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}
