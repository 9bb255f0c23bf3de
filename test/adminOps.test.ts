/**
 * The admin operation table (src/protocol/adminOps.ts, issue 18 "one step,
 * one place") agrees with what it names elsewhere: the message catalog, the
 * step table, the chip command schemas, the decision record's events and the
 * server machines' events. A declaration that names something that does not
 * exist fails here, not in a run.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decisionMachine } from '../src/machines/decision.machine.ts';
import { migrationMachine } from '../src/machines/migration.machine.ts';
import { registrationMachine } from '../src/machines/registration.machine.ts';
import { ADMIN_OP_TABLE, ADMIN_OPS, adminOpOfReply, adminOpOfRequest, adminStepOf, usesTempKey, type AdminPurpose } from '../src/protocol/adminOps.ts';
import { stepOf } from '../src/protocol/steps.ts';
import { chipCommandSchema } from '../src/transport/chip.frames.ts';
import { isMessageType, kindOf } from '../src/transport/messages.ts';

/** Every event a machine's states take (its `on` keys, nested states included). */
function eventsOf(machine: { config: unknown }): Set<string> {
  const out = new Set<string>();
  const walk = (node: { on?: Record<string, unknown>; states?: Record<string, unknown> }) => {
    for (const e of Object.keys(node.on ?? {})) out.add(e);
    for (const s of Object.values(node.states ?? {})) walk(s as typeof node);
  };
  walk(machine.config as Parameters<typeof walk>[0]);
  return out;
}

test('each operation once, found by its request and by its reply', () => {
  const ops = ADMIN_OP_TABLE.map((d) => d.op);
  assert.equal(ops, ['identify', 'lock', 'format', 'activate', 'restore', 'wipe', 'wipeLost']);
  for (const d of ADMIN_OP_TABLE) {
    assert.is(ADMIN_OPS[d.op], d);
    assert.is(adminOpOfRequest(d.request), d, d.request);
    assert.is(adminOpOfReply(d.reply), d, d.reply);
  }
  assert.is(adminOpOfRequest('admin.commit'), undefined, 'commit and abort are no sessions');
  assert.is(adminOpOfReply('admin.decision'), undefined);
});

test('requests and replies are in the message catalog, as requests and replies', () => {
  for (const d of ADMIN_OP_TABLE) {
    assert.ok(isMessageType(d.request) && kindOf(d.request) === 'request', `${d.op}: ${d.request}`);
    assert.ok(isMessageType(d.reply) && kindOf(d.reply) === 'reply', `${d.op}: ${d.reply}`);
  }
});

test("each operation's step is in the step table, which lists its request", () => {
  for (const d of ADMIN_OP_TABLE) {
    const steps = typeof d.step === 'string' ? [d.step] : Object.values(d.step);
    for (const id of steps) {
      const step = stepOf(id);
      assert.ok(step, `${d.op}: step ${id}`);
      assert.ok(step!.requests.includes(d.request), `${d.op}: step ${id} does not list ${d.request}`);
    }
  }
  const purposes: AdminPurpose[] = ['register', 'source', 'destination'];
  assert.equal(
    purposes.map((p) => adminStepOf('identify', p)),
    ['register', 'S1', 'S9'],
  );
  assert.is(adminStepOf('identify'), 'S1', "an identify session's own answer carries the source's step");
  assert.equal(
    ['lock', 'format', 'activate', 'restore', 'wipe'].map((op) => adminStepOf(op as 'lock')),
    ['S3', 'S10', 'S16', 'rollback', 'rollback'],
  );
});

test('each chip command, with what the table says it carries, is a command the chip accepts', () => {
  for (const d of ADMIN_OP_TABLE) {
    const carries: readonly string[] = d.carries;
    const cmd =
      d.chipCommand === 'list'
        ? { op: 'list' }
        : {
            op: d.chipCommand,
            area: 'e-money',
            ...(carries.includes('provider') ? { provider: 'acme' } : {}),
            ...(carries.includes('tempKey') ? { key: 'A'.repeat(43) } : {}),
            mig: 'm-1',
            step: adminStepOf(d.op),
          };
    const parsed = chipCommandSchema.safeParse(cmd);
    assert.ok(parsed.success, `${d.op}: ${JSON.stringify(cmd)}: ${parsed.error?.message}`);
  }
});

test('only the operations that install the temp key carry it, issue grants, and are checked against it', () => {
  for (const d of ADMIN_OP_TABLE) {
    const temp = usesTempKey(d.op);
    assert.is(temp, d.grants !== null, `${d.op}: grants`);
    assert.is(temp, d.keyCheck === 'tempKey' || d.keyCheck === 'tempKeyAndSetAsideMain', `${d.op}: key check`);
  }
  assert.equal(
    ADMIN_OP_TABLE.filter((d) => d.endsTempKeys !== null).map((d) => [d.op, d.endsTempKeys]),
    [
      ['activate', 'committed'],
      ['restore', 'aborted'],
      ['wipe', 'committed'],
    ],
  );
});

test('every gate is an event of the decision record; every operation that changes keys has one', () => {
  const events = eventsOf(decisionMachine);
  for (const d of ADMIN_OP_TABLE) {
    if (d.chipCommand === 'list') {
      assert.is(d.gate, null, 'identify changes nothing');
      continue;
    }
    if (d.op === 'wipeLost') {
      // No decision record: its authority is each area's signed revocation (adminLostWipe.ts; test/recovery.test.ts).
      assert.is(d.gate, null);
      continue;
    }
    assert.ok(d.gate, `${d.op} has no gate`);
    assert.ok(events.has(d.gate!.event), `${d.op}: ${d.gate!.event}`);
    assert.ok(d.gate!.refusal.length > 0);
  }
});

test("every answer becomes an event the server's machines take (identify's, the registration's too)", () => {
  const migration = eventsOf(migrationMachine);
  for (const d of ADMIN_OP_TABLE) assert.ok(migration.has(d.answers), `${d.op}: ${d.answers}`);
  assert.ok(eventsOf(registrationMachine).has(ADMIN_OPS.identify.answers));
});

test.run();
