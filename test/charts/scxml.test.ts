/**
 * The SCXML export is W3C SCXML 1.0: every chart validates against the W3C
 * schema (vendored in ./scxml-xsd, checked by libxml2 compiled to wasm, no
 * network), every IDREF (transition targets, initial, cancel's sendid)
 * names an element of the document (XSD validation in libxml2 does not check
 * that), and every state of the machine is there with its kind.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateXML } from 'xmllint-wasm';
import type { AnyStateMachine } from 'xstate';
import { exportMachineChart } from '../../src/charts/index.ts';
import { chartOf } from '../../src/charts/graph.ts';
import { scxmlIds } from '../../src/charts/scxml.ts';
import { MODEL_NAMES, MODELS } from '../../src/model/models.ts';
import { parseDom, type DomElement } from './dom.ts';
import { syntheticMachine } from './fixtures.ts';

const XSD_DIR = join(import.meta.dirname, 'scxml-xsd');
const schema = { fileName: 'scxml.xsd', contents: readFileSync(join(XSD_DIR, 'scxml.xsd'), 'utf8') };
const preload = readdirSync(XSD_DIR)
  .filter((f) => f.endsWith('.xsd') && f !== 'scxml.xsd')
  .map((f) => ({ fileName: f, contents: readFileSync(join(XSD_DIR, f), 'utf8') }));

async function validate(name: string, xml: string) {
  return validateXML({ xml: [{ fileName: `${name}.scxml`, contents: xml }], schema: [schema], preload });
}

const xmlDocument = (xml: string) => parseDom(xml, 'application/xml');

const machines: Array<[string, AnyStateMachine]> = [
  ...MODEL_NAMES.map((n): [string, AnyStateMachine] => [n, MODELS[n]!.machine]),
  ['synthetic', syntheticMachine],
];

for (const [name, machine] of machines) {
  test(`scxml of ${name} is valid against the W3C SCXML schema, and every IDREF resolves`, async () => {
    const xml = await exportMachineChart(machine, 'scxml');
    const result = await validate(name, xml);
    assert.ok(result.valid, `${name}: ${result.errors.map((e) => e.rawMessage).join('\n')}`);

    const doc = await xmlDocument(xml);
    assert.is(doc.documentElement.localName, 'scxml');
    assert.is(doc.documentElement.namespaceURI, 'http://www.w3.org/2005/07/scxml');
    const all = Array.from(doc.getElementsByTagName('*'));
    const ids = new Map<string, DomElement>();
    for (const el of all) {
      const id = el.getAttribute('id');
      if (id === null) continue;
      assert.not.ok(ids.has(id), `${name}: id ${id} is unique`);
      ids.set(id, el);
    }
    const refs: string[] = [];
    for (const el of all) {
      for (const attr of ['target', 'initial']) for (const r of (el.getAttribute(attr) ?? '').split(/\s+/)) if (r) refs.push(r);
      if (el.localName === 'cancel') refs.push(el.getAttribute('sendid')!);
    }
    assert.ok(refs.length > 0);
    for (const r of refs) assert.ok(ids.has(r), `${name}: IDREF ${r} resolves`);

    const chart = chartOf(machine);
    const sid = scxmlIds(chart);
    const tagOf = { atomic: 'state', compound: 'state', parallel: 'parallel', final: 'final', history: 'history' } as const;
    for (const s of chart.states.values()) {
      const el = ids.get(sid.get(s.path)!);
      assert.ok(el, `${name}: state ${s.path || '(root)'} is in the document`);
      assert.is(el!.localName, tagOf[s.kind], `${name}: ${s.path} is a <${tagOf[s.kind]}>`);
    }
    const transitions = all.filter((el) => el.localName === 'transition').length;
    const historyDefaults = [...chart.states.values()].filter((s) => s.kind === 'history').length;
    assert.is(transitions, chart.transitions.length + historyDefaults, `${name}: one <transition> per transition`);
  });
}

test('scxml writes after as a delayed send, always without event, guards as cond, parallel and final elements', async () => {
  const xml = await exportMachineChart(syntheticMachine, 'scxml');
  for (const part of [
    '<send event="xstate.after.1000.synthetic.default" delay="1000ms" id="synthetic.default.after.1000"/>',
    '<cancel sendid="synthetic.default.after.1000"/>',
    '<transition event="xstate.after.1000.synthetic.default" target="synthetic.timed-out"/>',
    'delayexpr="slow"',
    '<transition cond="ready" target="synthetic.done"/>',
    '<transition event="ABORT" cond="not(ready)" target="synthetic.default"/>',
    '<parallel id="synthetic.running">',
    '<final id="synthetic.done"/>',
    '<history id="synthetic.running.light.hist" type="shallow">',
    '<transition event="done.state.synthetic.running.motor" target="synthetic.checking"/>',
  ]) {
    assert.ok(xml.includes(part), `has: ${part}`);
  }
});

test('scxml of the migration keeps its always transitions with their guards', async () => {
  const xml = await exportMachineChart(MODELS.migration!.machine, 'scxml');
  assert.match(xml, /<transition cond="allUploaded" target="migration\.sourcePhase\.releasingChannel"/);
});

test('the schema check is not vacuous: an unknown element and a missing version are refused', async () => {
  const bogus = await validate('bogus', '<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"><state id="a"><bogus/></state></scxml>');
  assert.not.ok(bogus.valid);
  const noVersion = await validate('noversion', '<scxml xmlns="http://www.w3.org/2005/07/scxml"><state id="a"/></scxml>');
  assert.not.ok(noVersion.valid);
});

test.run();
