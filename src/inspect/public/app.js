// valmove inspect: the page. Plain browser JavaScript, no build step, no network beyond
// the inspector that served it. Charts come from /api/chart/NAME.svg, whose state
// elements carry id="NAME:dot.path"; live records come from the /live WebSocket.
'use strict';

const $ = (sel) => document.querySelector(sel);
const actors = new Map(); // "party|actor" -> { party, actor, machine, states, t, event }
const charts = new Map(); // machine -> Promise<svg text>
const migs = [];
let shown = null; // machine whose chart is on screen
let followed = null; // "party|actor" the user clicked, or null to follow the latest mover
let lastMover = new Map(); // machine -> "party|actor" that moved last
let latestMig = null;
let envelopes = 0;
let refreshTimer = null;
let paintQueued = false;

function text(tag, value, attrs = {}) {
  const el = document.createElement(tag);
  el.textContent = value;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

async function loadMachines() {
  const res = await fetch('/api/machines');
  const { machines, demo } = await res.json();
  const nav = $('#machines');
  for (const m of machines) {
    const b = text('button', m, { type: 'button', 'data-machine': m });
    b.addEventListener('click', () => show(m));
    nav.append(b);
  }
  setDemoStatus(demo);
  await show(machines.includes('migration') ? 'migration' : machines[0]);
}

function chart(machine) {
  if (!charts.has(machine)) charts.set(machine, fetch(`/api/chart/${machine}.svg`).then((r) => r.text()));
  return charts.get(machine);
}

async function show(machine) {
  shown = machine;
  for (const b of document.querySelectorAll('#machines button')) b.classList.toggle('shown', b.dataset.machine === machine);
  const svg = await chart(machine);
  if (shown !== machine) return;
  const box = $('#chart');
  box.innerHTML = svg;
  box.dataset.machine = machine;
  highlight();
}

/** The actor whose states the chart shows: the followed one if it runs this machine, else the last to move. */
function subject() {
  const f = followed && actors.get(followed);
  if (f && f.machine === shown) return f;
  const k = lastMover.get(shown);
  return k ? actors.get(k) : null;
}

function highlight() {
  const box = $('#chart');
  for (const el of box.querySelectorAll('.vm-active, .vm-leaf')) el.classList.remove('vm-active', 'vm-leaf');
  const a = subject();
  const ids = [];
  if (a) {
    for (const leaf of a.states) {
      const [root, ...rest] = leaf.split('.');
      for (let i = 1; i <= rest.length; i++) {
        const id = `${root}:${rest.slice(0, i).join('.')}`;
        const el = document.getElementById(id);
        if (el) el.classList.add('vm-active');
        if (i === rest.length && el) el.classList.add('vm-leaf');
        ids.push(id);
      }
    }
  }
  box.dataset.active = [...new Set(ids)].join(' ');
  $('#chart-caption').textContent = a
    ? `${a.party} · ${a.actor}: ${a.states.map((s) => s.split('.').slice(1).join('.')).join(' | ')}${a.event ? `  (after ${a.event})` : ''}`
    : 'no actor of this machine has reported yet';
}

function paint() {
  paintQueued = false;
  const body = $('#actors tbody');
  body.replaceChildren();
  for (const [key, a] of [...actors].sort((x, y) => y[1].t - x[1].t)) {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    tr.classList.toggle('followed', key === followed);
    tr.append(text('td', a.party), text('td', a.actor), text('td', a.machine), text('td', a.states.map((s) => s.split('.').slice(1).join('.')).join(' | ')));
    tr.addEventListener('click', () => {
      followed = followed === key ? null : key;
      if (a.machine !== shown) show(a.machine);
      else highlight();
      paint();
    });
    body.append(tr);
  }
  $('#counts').textContent = `${actors.size} actors · ${envelopes} envelopes`;
  highlight();
}

function queuePaint() {
  if (!paintQueued) {
    paintQueued = true;
    requestAnimationFrame(paint);
  }
}

function onRecord(r) {
  if (r.kind === 'state') {
    const key = `${r.party}|${r.actor}`;
    actors.set(key, r);
    lastMover.set(r.machine, key);
    queuePaint();
  } else if (r.kind === 'envelope') {
    if (r.direction === 'out' || r.direction === 'in') envelopes++;
    if (r.mig && !migs.includes(r.mig)) {
      migs.push(r.mig);
      $('#mig').append(text('option', r.mig, { value: r.mig }));
    }
    if (r.mig) latestMig = r.mig;
    scheduleSequence();
    queuePaint();
  }
}

function scheduleSequence() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(refreshSequence, 400);
}

async function refreshSequence() {
  refreshTimer = null;
  const mig = $('#mig').value || latestMig;
  if (!mig) return;
  const q = `?mig=${encodeURIComponent(mig)}`;
  const [seq, svg] = await Promise.all([fetch(`/api/sequence.json${q}`).then((r) => r.json()), fetch(`/api/sequence.svg${q}`).then((r) => r.text())]);
  const steps = $('#steps');
  steps.replaceChildren();
  for (const s of seq.steps) {
    steps.append(text('li', `${s.step} ${s.title} (${s.messages.length})`, { 'data-step': s.step, title: s.title }));
  }
  $('#sequence').innerHTML = svg;
  $('#sequence').dataset.mig = mig;
}

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/live`);
  const badge = $('#connection');
  ws.onopen = () => {
    badge.textContent = 'live';
    badge.className = 'badge on';
  };
  ws.onmessage = (m) => onRecord(JSON.parse(m.data));
  ws.onclose = () => {
    badge.textContent = 'disconnected — retrying';
    badge.className = 'badge off';
    actors.clear();
    envelopes = 0;
    setTimeout(connect, 1000);
  };
}

function setDemoStatus(status) {
  $('#demo-status').textContent = status === 'unavailable' ? '' : `demo: ${status}`;
  $('#run-demo').hidden = status === 'unavailable';
  $('#run-demo').disabled = status === 'running';
}

async function pollDemo() {
  const { demo } = await (await fetch('/api/machines')).json();
  setDemoStatus(demo);
  if (demo === 'running') setTimeout(pollDemo, 1000);
}

$('#run-demo').addEventListener('click', async () => {
  const res = await fetch('/api/demo', { method: 'POST' });
  const body = await res.json();
  if (!res.ok) $('#demo-status').textContent = `demo: ${body.error}`;
  else pollDemo();
});
$('#mig').addEventListener('change', refreshSequence);

loadMachines().then(connect);
