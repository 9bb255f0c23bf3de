// valmove inspect: the page. Plain browser JavaScript, no build step, no network beyond
// the inspector that served it. Charts come from /api/chart/NAME.svg, whose state
// elements carry id="NAME:dot.path"; live records come from the /live WebSocket.
'use strict';

const $ = (sel) => document.querySelector(sel);
const actors = new Map(); // "party|actor" -> { party, actor, machine, states, t, event, keys }
const charts = new Map(); // machine -> Promise<svg text>
const migs = [];
let shown = null; // machine whose chart is on screen
let followed = null; // "party|actor" the user clicked, or null to follow the latest mover
const lastMover = new Map(); // machine -> "party|actor" that moved last
let latestMig = null;
let envelopes = 0;
let refreshTimer = null;
let paintQueued = false;
/** Zoom and pan of the chart: the SVG's own viewBox, and the one on screen. */
let view = null;
/** Largest and smallest zoom, relative to the whole chart. */
const ZOOM_MIN = 0.5;
const ZOOM_MAX = 40;

function text(tag, value, attrs = {}) {
  const el = document.createElement(tag);
  el.textContent = value;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

/** A state path without its machine: 'migration.sourcePhase.locking' -> 'sourcePhase.locking'. */
const statePath = (leaf) => leaf.split('.').slice(1).join('.');

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
  fitView();
  highlight();
}

// ---- which actor a chart shows ------------------------------------------------------------

/** The migration the page follows: the one chosen, else the latest. */
const followedMig = () => $('#mig').value || latestMig;

/** The actor whose states the chart shows: the one clicked if it runs this machine, else the followed migration's, else the last to move. */
function subject() {
  const f = followed && actors.get(followed);
  if (f && f.machine === shown) return f;
  if (shown === 'migration' && followedMig()) {
    const m = actors.get(`server|migration:${followedMig()}`);
    if (m) return m;
  }
  const k = lastMover.get(shown);
  return k ? actors.get(k) : null;
}

/** Marks the states of `leaves` in the chart inside `box` (scoped: several charts share state ids); returns their ids. */
function mark(box, leaves) {
  for (const el of box.querySelectorAll('.vm-active, .vm-leaf')) el.classList.remove('vm-active', 'vm-leaf');
  const ids = [];
  for (const leaf of leaves) {
    const [root, ...rest] = leaf.split('.');
    for (let i = 1; i <= rest.length; i++) {
      const id = `${root}:${rest.slice(0, i).join('.')}`;
      const el = box.querySelector(`[id="${CSS.escape(id)}"]`);
      if (el) el.classList.add('vm-active');
      if (i === rest.length && el) el.classList.add('vm-leaf');
      ids.push(id);
    }
  }
  return [...new Set(ids)];
}

function highlight() {
  const box = $('#chart');
  const a = subject();
  box.dataset.active = a ? mark(box, a.states).join(' ') : '';
  if (!a) mark(box, []);
  $('#chart-caption').textContent = a
    ? `${a.party} · ${a.actor}: ${a.states.map(statePath).join(' | ')}${a.keys ? ` · keys: ${a.keys}` : ''}${a.event ? `  (after ${a.event})` : ''}`
    : 'no actor of this machine has reported yet';
  if ($('#track').checked && a) zoomToActive(false);
}

// ---- zoom and pan ---------------------------------------------------------------------------

function chartSvg() {
  return $('#chart svg');
}

function setView(v) {
  const svg = chartSvg();
  if (!svg || !view) return;
  const scale = view.full.w / v.w;
  if (scale < ZOOM_MIN || scale > ZOOM_MAX) return;
  view.now = v;
  svg.setAttribute('viewBox', `${v.x} ${v.y} ${v.w} ${v.h}`);
  $('#chart').dataset.zoom = scale.toFixed(2);
}

/** The whole chart in the box (its own viewBox; the SVG's fixed size gives way to the box's). */
function fitView() {
  const svg = chartSvg();
  if (!svg) return;
  const [x, y, w, h] = (svg.getAttribute('viewBox') ?? `0 0 ${svg.width.baseVal.value} ${svg.height.baseVal.value}`).split(/[\s,]+/).map(Number);
  svg.removeAttribute('width');
  svg.removeAttribute('height');
  svg.setAttribute('preserveAspectRatio', 'xMidYMid meet');
  view = { full: { x, y, w, h }, now: { x, y, w, h } };
  setView(view.full);
}

/** Zooms by `factor` (below 1: in) around a point in chart units (the centre by default). */
function zoom(factor, at) {
  if (!view) return;
  const v = view.now;
  const p = at ?? { x: v.x + v.w / 2, y: v.y + v.h / 2 };
  setView({ x: p.x - (p.x - v.x) * factor, y: p.y - (p.y - v.y) * factor, w: v.w * factor, h: v.h * factor });
}

/** A point of the screen in chart units. */
function chartPoint(svg, clientX, clientY) {
  const m = svg.getScreenCTM();
  if (!m) return undefined;
  const p = new DOMPoint(clientX, clientY).matrixTransform(m.inverse());
  return { x: p.x, y: p.y };
}

/** The box around the highlighted innermost states, in chart units (the viewBox's), or null. */
function activeBox(svg) {
  let box = null;
  const toChart = svg.getScreenCTM()?.inverse();
  for (const el of $('#chart').querySelectorAll('.vm-leaf')) {
    const b = el.getBBox();
    const m = el.getScreenCTM();
    if (!m || !toChart) continue;
    const t = toChart.multiply(m);
    for (const [x, y] of [
      [b.x, b.y],
      [b.x + b.width, b.y + b.height],
    ]) {
      const p = new DOMPoint(x, y).matrixTransform(t);
      box = box ? { x: Math.min(box.x, p.x), y: Math.min(box.y, p.y), r: Math.max(box.r, p.x), b: Math.max(box.b, p.y) } : { x: p.x, y: p.y, r: p.x, b: p.y };
    }
  }
  return box;
}

/** Zooms to the highlighted states with a margin (`closer`), or only moves them to the middle at the zoom on screen. */
function zoomToActive(closer = true) {
  const svg = chartSvg();
  const box = svg && view ? activeBox(svg) : null;
  if (!box) return;
  const cx = (box.x + box.r) / 2;
  const cy = (box.y + box.b) / 2;
  let { w, h } = view.now;
  if (closer) {
    // The states with room around them, no closer than an eighth of the chart.
    const k = Math.max(((box.r - box.x) * 2) / view.full.w, ((box.b - box.y) * 2) / view.full.h, 1 / 8);
    w = view.full.w * k;
    h = view.full.h * k;
  }
  setView({ x: cx - w / 2, y: cy - h / 2, w, h });
}

function wireZoom() {
  const box = $('#chart');
  box.addEventListener(
    'wheel',
    (e) => {
      const svg = chartSvg();
      if (!svg) return;
      e.preventDefault();
      zoom(Math.exp(Math.max(-1, Math.min(1, e.deltaY * 0.002))), chartPoint(svg, e.clientX, e.clientY));
    },
    { passive: false },
  );
  let drag = null;
  box.addEventListener('pointerdown', (e) => {
    const svg = chartSvg();
    if (!svg || !view) return;
    drag = { x: e.clientX, y: e.clientY, from: view.now, per: view.now.w / svg.getBoundingClientRect().width };
    box.classList.add('panning');
    box.setPointerCapture(e.pointerId);
  });
  box.addEventListener('pointermove', (e) => {
    if (!drag) return;
    setView({ ...drag.from, x: drag.from.x - (e.clientX - drag.x) * drag.per, y: drag.from.y - (e.clientY - drag.y) * drag.per });
  });
  const end = () => {
    drag = null;
    box.classList.remove('panning');
  };
  box.addEventListener('pointerup', end);
  box.addEventListener('pointercancel', end);
  for (const b of document.querySelectorAll('#chart-tools [data-zoom]')) {
    const act = { in: () => zoom(0.7), out: () => zoom(1 / 0.7), fit: () => view && setView(view.full), active: () => zoomToActive(true) };
    b.addEventListener('click', act[b.dataset.zoom]);
  }
}

// ---- the chip areas: the area chart once per area, per chip ----------------------------------

/** How an area's key slots read: 'main+temp' when it holds both. */
const keysText = (keys) => (keys === 'both' ? 'main+temp (temp active)' : (keys ?? '?'));

/** Area cards drawn at most (each holds a copy of the area chart); beyond it, the ones that moved last. */
const AREA_CARDS_MAX = 48;

/**
 * The areas whose cards are drawn: with a migration chosen, those of the chips it has
 * moved an area of (each area record names its command's migration), else every chip's;
 * the ones that moved last first, at most AREA_CARDS_MAX.
 */
function areasToDraw() {
  const all = [...actors.values()].filter((a) => a.machine === 'area');
  const mig = $('#mig').value;
  const chips = new Set(all.filter((a) => mig && a.mig === mig).map((a) => a.party));
  const pick = chips.size > 0 ? all.filter((a) => chips.has(a.party)) : all;
  return { all, drawn: pick.sort((x, y) => y.t - x.t).slice(0, AREA_CARDS_MAX) };
}

function areaCard(panel, a, svg) {
  let row = panel.querySelector(`.chip-areas[data-chip="${CSS.escape(a.party)}"]`);
  if (!row) {
    row = text('div', '', { class: 'chip-areas', 'data-chip': a.party });
    row.append(text('h3', a.party));
    panel.append(row);
  }
  const area = a.actor.replace(/^area:/, '');
  let card = row.querySelector(`.area-card[data-area="${CSS.escape(area)}"]`);
  if (!card) {
    card = text('div', '', { class: 'area-card', 'data-area': area, 'data-key': `${a.party}|${a.actor}`, title: `${a.party} ${a.actor}` });
    card.append(text('div', area, { class: 'area-name' }), text('div', '', { class: 'area-keys' }), text('div', '', { class: 'vm-chart' }));
    card.querySelector('.vm-chart').innerHTML = svg;
    card.addEventListener('click', () => follow(`${a.party}|${a.actor}`));
    row.append(card);
  }
  return card;
}

async function paintAreas() {
  const { all, drawn } = areasToDraw();
  if (all.length === 0) return;
  const svg = await chart('area');
  const panel = $('#areas');
  const keep = new Set(drawn.map((a) => `${a.party}|${a.actor}`));
  for (const card of panel.querySelectorAll('.area-card')) if (!keep.has(card.dataset.key)) card.remove();
  for (const row of panel.querySelectorAll('.chip-areas')) if (!row.querySelector('.area-card')) row.remove();
  for (const a of drawn.sort((x, y) => (x.party + x.actor).localeCompare(y.party + y.actor))) {
    const card = areaCard(panel, a, svg);
    const state = a.states.map(statePath).join(' | ');
    card.dataset.state = state;
    card.querySelector('.area-keys').textContent = `${state} · keys: ${keysText(a.keys)}`;
    card.querySelector('.vm-chart').dataset.active = mark(card.querySelector('.vm-chart'), a.states).join(' ');
  }
  const more = all.length - drawn.length;
  panel.querySelector('.empty').textContent = more > 0 ? `${more} more areas not drawn here: each is in the actors table (machine area)` : '';
}

// ---- the actors table, the sequence ------------------------------------------------------------

function follow(key) {
  followed = followed === key ? null : key;
  const a = actors.get(key);
  if (a && a.machine !== shown) show(a.machine);
  else highlight();
  if (a?.machine === 'migration' && a.actor.startsWith('migration:')) selectMig(a.actor.slice('migration:'.length));
  queuePaint();
}

function actorRow(key, a) {
  const tr = document.createElement('tr');
  tr.dataset.key = key;
  tr.classList.toggle('followed', key === followed);
  const states = document.createElement('td');
  for (const s of a.states) states.append(text('div', statePath(s)));
  if (a.keys) states.append(text('div', `keys: ${keysText(a.keys)}`));
  tr.append(text('td', a.party), text('td', a.actor), text('td', a.machine), states, text('td', a.event ?? ''));
  tr.addEventListener('click', () => follow(key));
  return tr;
}

function paint() {
  paintQueued = false;
  const body = $('#actors tbody');
  // In a stable order (party, then actor), so a row stays where the user is about to click it.
  const rows = [...actors].sort(([x], [y]) => x.localeCompare(y)).map(([key, a]) => actorRow(key, a));
  body.replaceChildren(...rows);
  $('#counts').textContent = `${actors.size} actors · ${envelopes} envelopes`;
  highlight();
  paintAreas();
}

function queuePaint() {
  if (!paintQueued) {
    paintQueued = true;
    requestAnimationFrame(paint);
  }
}

function selectMig(mig) {
  if (!migs.includes(mig)) addMig(mig);
  $('#mig').value = mig;
  refreshSequence();
}

function addMig(mig) {
  migs.push(mig);
  $('#mig').append(text('option', mig, { value: mig }));
}

function onRecord(r) {
  if (r.kind === 'state') {
    const key = `${r.party}|${r.actor}`;
    actors.set(key, r);
    lastMover.set(r.machine, key);
    queuePaint();
  } else if (r.kind === 'envelope') {
    envelopes++;
    if (r.mig && !migs.includes(r.mig)) addMig(r.mig);
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
  clearTimeout(refreshTimer);
  refreshTimer = null;
  const mig = followedMig();
  if (!mig) return;
  const q = `?mig=${encodeURIComponent(mig)}`;
  const [seq, svg] = await Promise.all([fetch(`/api/sequence.json${q}`).then((r) => r.json()), fetch(`/api/sequence.svg${q}`).then((r) => r.text())]);
  const steps = $('#steps');
  steps.replaceChildren();
  for (const s of seq.steps) {
    steps.append(text('li', `${s.step} ${s.title} (${s.messages.length})`, { 'data-step': s.step, title: s.title }));
  }
  // The step the migration is in: the last group drawn.
  steps.lastElementChild?.classList.add('current');
  const box = $('#sequence');
  // Growing as it happens: stay at the bottom if the reader was there.
  const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 40;
  box.innerHTML = svg;
  box.dataset.mig = mig;
  $('#sequence-mig').textContent = `migration ${mig}`;
  if (atEnd) box.scrollTop = box.scrollHeight;
  highlight();
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
$('#mig').addEventListener('change', () => {
  // Following a migration: its statechart on screen, its sequence beside it.
  followed = null;
  if (shown !== 'migration') show('migration');
  refreshSequence();
  queuePaint();
});
wireZoom();

loadMachines().then(connect);
