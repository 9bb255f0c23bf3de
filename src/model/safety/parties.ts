/**
 * The rules at the parties that keep the durable state: the admin SAM (its
 * decision record, temp keys, grants), the migration SAMs (held items,
 * fences, receipts) and the chips (the area lifecycle of §2). Written from
 * protocol.md §2-§3; every guard that a rule names can be switched off
 * (`rules[name] === false`) to seed a mistake.
 *
 * A request is delivered (`deliver`: what the receiver answers, refused or
 * not; `receive`: what an accepted one writes in that turn), then, if it
 * runs a chip session, its session takes steps (`steps`: one chip command
 * each, each one atomic on the chip; the last one answers the server). Each
 * step checks again what the receiver checked on delivery: a session opened
 * under one record may outlive it.
 */
import { Bits, type Request } from './requests.ts';
import type { SafetyState, Topology } from './state.ts';
import type { Grant, GrantUse, RuleName } from './types.ts';

export type Delivery =
  | { kind: 'refused'; reason: string }
  /** Answered at once; `learn`: what the answer tells the server. */
  | { kind: 'answered'; learn: number }
  /** A chip session runs; its steps follow. */
  | { kind: 'session' };

export interface Step {
  /** What the step does, in words (appended to the request's name). */
  label: string;
  apply: (s: SafetyState) => void;
  /** The last step of a session: it answers the server with `learn`. */
  ends?: { learn: number };
  /** A transfer at a migration SAM, and the grant it used. */
  use?: GrantUse;
}

const ok = null;
const SESSION: Delivery = { kind: 'session' };

/** The request of one kind. */
type RequestOf<K extends Request['kind']> = Extract<Request, { kind: K }>;

function refusedOr(reason: string | null, accepted: Delivery): Delivery {
  return reason ? { kind: 'refused', reason } : accepted;
}

export class Parties {
  readonly bits: Bits;

  constructor(
    readonly t: Topology,
    readonly rules: Readonly<Record<RuleName, boolean>>,
  ) {
    this.bits = new Bits(t.K);
  }

  /** What the receiver answers when the request arrives (pure: `receive` makes the writes of an accepted one). */
  deliver(s: SafetyState, r: Request): Delivery {
    const b = this.bits;
    switch (r.kind) {
      case 'lock':
        return refusedOr(this.lockRefusal(s, r.m), SESSION);
      case 'format':
        return refusedOr(this.formatRefusal(s, r.m, r.chip), SESSION);
      case 'upload': {
        const why = this.transferRefusal(s, r.m, r.i, r.grant, 'upload');
        if (why) return { kind: 'refused', reason: why };
        const h = s.held(r.m, r.i);
        if (h === 'held' || h === 'receipted') return { kind: 'answered', learn: b.uploaded(r.i) };
        if (h === 'cleared' && this.rules.clearedIsFinal) return { kind: 'refused', reason: 'the item was cleared (S17): its grants were dropped' };
        return SESSION;
      }
      case 'download': {
        const why = this.transferRefusal(s, r.m, r.i, r.grant, 'download');
        if (why) return { kind: 'refused', reason: why };
        const h = s.held(r.m, r.i);
        // A repeated download answers the receipt it signed.
        if (h === 'receipted') return { kind: 'answered', learn: b.receipt(r.i) };
        if (h !== 'held') return { kind: 'refused', reason: `the migration SAM holds nothing to download (${h})` };
        return SESSION;
      }
      case 'commit':
        return this.commit(s, r.m, r.receipts);
      case 'abort': {
        const d = s.dec(r.m);
        if (d === 'committed' && this.rules.decisionCompareAndSet) return { kind: 'answered', learn: b.COMMITTED };
        return { kind: 'answered', learn: b.ABORTED };
      }
      case 'activate':
        return refusedOr(this.activateRefusal(s, r.m, r.chip), SESSION);
      case 'restore': {
        const why = this.restoreRefusal(s, r.m, r.chip);
        if (why) return { kind: 'refused', reason: why };
        // An abort that overtook the lock made no keys and switched no area: nothing to restore.
        return s.keys(r.m) === 'none' ? { kind: 'answered', learn: b.RESTORED } : SESSION;
      }
      case 'wipe':
        // No destination was ever formatted for an aborted migration: nothing to wipe.
        if (r.role === 'destination' && s.dec(r.m) === 'aborted' && s.dest(r.m) < 0) return { kind: 'answered', learn: b.WIPED };
        return refusedOr(this.wipeRefusal(s, r.m, r.chip, r.role), SESSION);
      case 'fence':
        return { kind: 'answered', learn: b.fencedAt(r.provider) };
      case 'clear':
        return { kind: 'answered', learn: b.cleared(r.i) };
    }
  }

  /** The writes the receiver makes, in the turn it accepts the request (`deliver` did not refuse it). */
  receive(s: SafetyState, r: Request): void {
    switch (r.kind) {
      case 'lock':
        if (s.dec(r.m) === 'none') {
          // The first lock opens the record, pending, and makes the temp keys (one per item, §2), in one turn.
          s.setDec(r.m, 'pending');
          s.setKeys(r.m, 'live');
        }
        return;
      case 'format':
        // S10: the first destination formatted is the migration's only destination.
        if (s.dest(r.m) < 0) s.setDest(r.m, r.chip);
        return;
      case 'upload': {
        // The record an upload writes before the chip answers (its session then reads the item).
        const h = s.held(r.m, r.i);
        if (h === 'none' || h === 'cleared') s.setHeld(r.m, r.i, 'open');
        return;
      }
      case 'commit':
        // Compare-and-set: only a pending record becomes committed.
        if (s.dec(r.m) !== 'pending') return;
        s.setDec(r.m, 'committed');
        if (!this.rules.tempKeysEndWhenSettled) s.setKeys(r.m, 'ended');
        return;
      case 'abort': {
        const d = s.dec(r.m);
        if (d === 'aborted' || (d === 'committed' && this.rules.decisionCompareAndSet)) return;
        // An abort that overtook the lock records the decision with no items (no keys), so a later lock is refused.
        s.setDec(r.m, 'aborted');
        if (!this.rules.tempKeysEndWhenSettled && s.keys(r.m) === 'live') s.setKeys(r.m, 'ended');
        return;
      }
      case 'fence':
        // §3 Rollback (2): durable before anything else; from now on no transfer for this migration here.
        s.setFenced(r.m, r.provider);
        return;
      case 'clear': {
        // S17: the item and its grants leave the SAM. Nothing held (aborted before the upload): already done.
        const h = s.held(r.m, r.i);
        if (h === 'open' || h === 'held' || h === 'receipted') s.setHeld(r.m, r.i, 'cleared');
        return;
      }
      case 'download':
      case 'activate':
      case 'restore':
      case 'wipe':
        return;
    }
  }

  /** The steps the request's session can take now (for a request whose delivery said `session`). */
  steps(s: SafetyState, r: Request): Step[] {
    switch (r.kind) {
      case 'lock':
        return this.lockSteps(s, r);
      case 'format':
        return this.formatSteps(s, r);
      case 'upload':
        return this.uploadSteps(s, r);
      case 'download':
        return this.downloadSteps(s, r);
      case 'activate':
        return this.activateSteps(s, r);
      case 'restore':
        return this.restoreSteps(s, r);
      case 'wipe':
        return this.wipeSteps(s, r);
      case 'commit':
      case 'abort':
      case 'fence':
      case 'clear':
        return [];
    }
  }

  // ---- the chips' sessions, one step per chip command ----------------------------------------------

  private lockSteps(s: SafetyState, r: RequestOf<'lock'>): Step[] {
    const out: Step[] = [];
    const c = this.t.src(r.m);
    const live = s.keys(r.m) === 'live';
    if (live && (this.rules.lockWhilePending ? s.dec(r.m) === 'pending' : s.dec(r.m) !== 'none')) {
      this.each(out, c, (i) => {
        const a = s.area(c, i);
        if (a.st !== 'mainActive' || a.holder >= 0) return null;
        return { label: 'mainActive -> locked', apply: (x) => x.setArea(c, i, { ...a, st: 'locked', holder: r.m }) };
      });
    }
    if (live && this.all((i) => s.areaState(c, i) === 'locked' && s.area(c, i).holder === r.m)) {
      out.push({ label: 'locked; upload grants issued', apply: (x) => x.setUploadGrantsIssued(r.m), ends: { learn: this.bits.LOCKED } });
    }
    return out;
  }

  private formatSteps(s: SafetyState, r: RequestOf<'format'>): Step[] {
    const out: Step[] = [];
    const c = r.chip;
    const live = s.keys(r.m) === 'live';
    if (!this.formatRefusal(s, r.m, c) && (s.dest(r.m) === c || !this.rules.oneDestination)) {
      this.each(out, c, (i) => {
        if (s.areaState(c, i) !== 'absent') return null;
        return { label: 'absent -> provisioned (temp key)', apply: (x) => x.setArea(c, i, { st: 'provisioned', holder: r.m, token: -1 }) };
      });
    }
    if (live && this.all((i) => s.areaState(c, i) === 'provisioned' && s.area(c, i).holder === r.m)) {
      out.push({ label: 'formatted; download grants issued', apply: (x) => x.addDownloadGrantChip(r.m, c), ends: { learn: this.bits.FORMATTED } });
    }
    return out;
  }

  private uploadSteps(s: SafetyState, r: RequestOf<'upload'>): Step[] {
    if (this.transferRefusal(s, r.m, r.i, r.grant, 'upload') || s.held(r.m, r.i) !== 'open') return [];
    // The SAM authenticates with the grant's temp key: only an area locked by that grant's migration answers it.
    const a = s.area(r.grant.chip, r.grant.i);
    if (a.st !== 'locked' || a.holder !== r.grant.m) return [];
    return [
      {
        label: `read from ${this.t.chipName(r.grant.chip)} area ${r.grant.i}; held`,
        apply: (x) => x.setHeld(r.m, r.i, 'held', a.token),
        ends: { learn: this.bits.uploaded(r.i) },
        use: { m: r.m, i: r.i, purpose: 'upload', grant: r.grant },
      },
    ];
  }

  private downloadSteps(s: SafetyState, r: RequestOf<'download'>): Step[] {
    const out: Step[] = [];
    if (this.transferRefusal(s, r.m, r.i, r.grant, 'download') || s.held(r.m, r.i) !== 'held') return out;
    const c = r.grant.chip;
    const a = s.area(c, r.grant.i);
    const token = s.heldToken(r.m, r.i);
    const use: GrantUse = { m: r.m, i: r.i, purpose: 'download', grant: r.grant };
    if (a.st === 'provisioned' && a.holder === r.grant.m) {
      out.push({
        label: `${this.t.chipName(c)} area ${r.grant.i}: provisioned -> loaded (data, main key)`,
        apply: (x) => x.setArea(c, r.grant.i, { ...a, st: 'loaded', token }),
        use,
      });
    }
    if (a.st === 'loaded' && a.holder === r.grant.m && a.token === token) {
      out.push({
        label: `key check of ${this.t.chipName(c)} area ${r.grant.i}; receipt signed`,
        apply: (x) => {
          x.setHeld(r.m, r.i, 'receipted');
          x.addReceiptChip(r.m, r.i, c);
        },
        ends: { learn: this.bits.receipt(r.i) },
        use,
      });
    }
    return out;
  }

  private activateSteps(s: SafetyState, r: RequestOf<'activate'>): Step[] {
    const out: Step[] = [];
    const c = r.chip;
    if (this.activateRefusal(s, r.m, c)) return out;
    this.each(out, c, (i) => {
      const a = s.area(c, i);
      if (a.st !== 'loaded' || a.holder !== r.m) return null;
      return { label: 'loaded -> mainActive', apply: (x) => x.setArea(c, i, { ...a, st: 'mainActive', holder: -1 }) };
    });
    if (this.all((i) => s.areaState(c, i) === 'mainActive')) {
      // Issue 16: the temp keys end in the turn that answers the activation, and only under `committed`.
      const end = this.rules.tempKeysEndWhenSettled && s.dec(r.m) === 'committed' && s.keys(r.m) === 'live';
      out.push({ label: 'activated', apply: (x) => (end ? x.setKeys(r.m, 'ended') : undefined), ends: { learn: this.bits.ACTIVATED } });
    }
    return out;
  }

  private restoreSteps(s: SafetyState, r: RequestOf<'restore'>): Step[] {
    const out: Step[] = [];
    const c = r.chip;
    if (this.restoreRefusal(s, r.m, c)) return out;
    this.each(out, c, (i) => {
      const a = s.area(c, i);
      if (a.st !== 'locked' || a.holder !== r.m) return null;
      return { label: 'locked -> mainActive', apply: (x) => x.setArea(c, i, { ...a, st: 'mainActive', holder: -1 }) };
    });
    if (this.all((i) => !(s.areaState(c, i) === 'locked' && s.area(c, i).holder === r.m))) {
      const end = this.rules.tempKeysEndWhenSettled && s.dec(r.m) === 'aborted' && s.keys(r.m) === 'live';
      out.push({ label: 'restored', apply: (x) => (end ? x.setKeys(r.m, 'ended') : undefined), ends: { learn: this.bits.RESTORED } });
    }
    return out;
  }

  private wipeSteps(s: SafetyState, r: RequestOf<'wipe'>): Step[] {
    const out: Step[] = [];
    const c = r.chip;
    if (this.wipeRefusal(s, r.m, c, r.role)) return out;
    this.each(out, c, (i) => {
      const a = s.area(c, i);
      if (a.holder !== r.m || !(a.st === 'provisioned' || a.st === 'loaded' || a.st === 'locked')) return null;
      return { label: `${a.st} -> absent`, apply: (x) => x.setArea(c, i, { st: 'absent', holder: -1, token: -1 }) };
    });
    if (this.all((i) => s.area(c, i).holder !== r.m)) {
      out.push({ label: 'wiped', apply: () => undefined, ends: { learn: r.role === 'destination' ? this.bits.WIPED : this.bits.SOURCE_WIPED } });
    }
    return out;
  }

  /** Adds the per-area steps `fn` gives for chip `chip`, each labelled with its chip and area. */
  private each(out: Step[], chip: number, fn: (i: number) => Step | null): void {
    for (let i = 0; i < this.t.K; i++) {
      const st = fn(i);
      if (st) {
        st.label = `${this.t.chipName(chip)} area ${i}: ${st.label}`;
        out.push(st);
      }
    }
  }

  private all(pred: (i: number) => boolean): boolean {
    for (let i = 0; i < this.t.K; i++) if (!pred(i)) return false;
    return true;
  }

  // ---- the admin SAM ------------------------------------------------------------------------------

  private lockRefusal(s: SafetyState, m: number): string | null {
    const d = s.dec(m);
    if (this.rules.lockWhilePending && d !== 'none' && d !== 'pending') return `the record is ${d}: the source is locked only while it is pending`;
    if (s.keys(m) === 'ended') return 'the temp keys ended with the migration';
    return ok;
  }

  private formatRefusal(s: SafetyState, m: number, chip: number): string | null {
    const d = s.dec(m);
    if (d === 'none') return 'no record: the source was never locked';
    if (this.rules.formatWhilePending && d !== 'pending') return `the record is ${d}: a destination is formatted only while it is pending`;
    if (s.keys(m) !== 'live') return 'the temp keys ended';
    // Bound as the destination, the source would be wiped by a rollback: the backup gone with the item.
    if (this.rules.destinationIsNotSource && chip === this.t.src(m)) return 'the destination can not be the source chip';
    const dest = s.dest(m);
    if (this.rules.oneDestination && dest >= 0 && dest !== chip) return `the migration's only destination is ${this.t.chipName(dest)}`;
    return ok;
  }

  private commit(s: SafetyState, m: number, receipts: number[]): Delivery {
    const b = this.bits;
    const d = s.dec(m);
    if (d === 'none') return { kind: 'refused', reason: 'no record: the source was never locked' };
    if (d === 'committed') return { kind: 'answered', learn: b.COMMITTED };
    if (d === 'aborted') return { kind: 'answered', learn: b.ABORTED };
    if (this.rules.commitNeedsAllReceipts) {
      const dest = s.dest(m);
      if (dest < 0) return { kind: 'refused', reason: 'no destination was formatted' };
      for (let i = 0; i < this.t.K; i++) {
        const c = receipts[i] ?? -1;
        // A receipt is a signature: it is valid only if the migration SAM signed it, for this item and this destination.
        if (c !== dest || (s.receiptChips(m, i) & (1 << dest)) === 0) return { kind: 'refused', reason: `no valid receipt for item ${i}` };
      }
    }
    return { kind: 'answered', learn: b.COMMITTED };
  }

  private activateRefusal(s: SafetyState, m: number, chip: number): string | null {
    const d = s.dec(m);
    if (!(d === 'committed' || (!this.rules.activateOnlyCommitted && d === 'pending'))) return `the record is ${d}: activation needs committed`;
    const dest = s.dest(m);
    if (dest < 0 || (this.rules.activateOnlyOwnDestination && chip !== dest)) return `activation is for the record's destination only`;
    return ok;
  }

  private restoreRefusal(s: SafetyState, m: number, chip: number): string | null {
    const d = s.dec(m);
    if (d === 'none' || (this.rules.restoreOnlyAborted && d !== 'aborted')) return `the record is ${d}: the source is restored only under aborted`;
    if (chip !== this.t.src(m)) return `${this.t.chipName(chip)} is not the migration's source`;
    return ok;
  }

  private wipeRefusal(s: SafetyState, m: number, chip: number, role: 'source' | 'destination'): string | null {
    const d = s.dec(m);
    if (role === 'destination') {
      if (d === 'none' || (this.rules.wipeDestinationOnlyAborted && d !== 'aborted')) return `the record is ${d}: a destination is wiped only under aborted`;
      if (chip !== s.dest(m)) return `${this.t.chipName(chip)} is not the record's destination`;
      return ok;
    }
    if (d === 'none' || (this.rules.wipeSourceOnlyCommitted && d !== 'committed')) return `the record is ${d}: the source is wiped only after the commit`;
    if (chip !== this.t.src(m)) return `${this.t.chipName(chip)} is not the migration's source`;
    return ok;
  }

  // ---- the migration SAMs -------------------------------------------------------------------------

  private transferRefusal(s: SafetyState, m: number, i: number, g: Grant, purpose: 'upload' | 'download'): string | null {
    if (this.rules.grantBinding && (g.m !== m || g.i !== i || g.purpose !== purpose)) return 'the grant is bound to another migration, item or purpose';
    if (this.rules.grantUnexpired && s.expired(g.m)) return 'the grant expired';
    // Item i belongs to provider i: that provider's migration SAM is the one asked.
    if (this.rules.fenceStopsTransfers && s.fenced(m, i)) return 'the migration SAM fenced this migration';
    return ok;
  }
}
