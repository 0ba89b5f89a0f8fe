// sseproxy demo page: EventSource clients through the proxy, the control API under /api,
// and a live timeline drawn from the journal (GET /api/journal, Server-Sent Events).
// Plain JavaScript, no build step, nothing loaded from the network.
'use strict';

const NS = 'http://www.w3.org/2000/svg';
const PALETTES = {  // as the report's timeline (sseproxy/report/timeline.py)
  'client': ['#4e79a7', '#7aa6d6', '#2b4f75', '#a0c4e8'],
  'server': ['#59a14f', '#8cd17d', '#3b7a33'],
  'intermediary (fault)': ['#e15759', '#f28e2b', '#b6392d', '#ffa95e', '#c9485b'],
  'client (fault)': ['#9c6fb6', '#c29fd6', '#6f4a87'],
  'proxy shutdown': ['#8c8c8c'],
  'proxy': ['#5d5552', '#7b706c'],
};
const OPEN_COLOUR = '#d9d9d9';
const STATES = ['CONNECTING', 'OPEN', 'CLOSED'];

const $ = (id) => document.getElementById(id);
const wall = () => performance.now() / 1000;

const demo = {
  catalog: null,
  offset: null,          // wall() - journal time
  clients: [],
  stream: '',
  conns: new Map(),      // journal connection id -> what the journal said about it
  rows: [],
  rowOf: new Map(),
  faultTypes: new Map(), // fault name -> type (names stay known after a fault is removed)
  colours: new Map(),
  counts: new Map(),     // closes by cause ("by/reason"), for the legend
  used: new Map(),
  bytes: new Map(),      // connection id -> bytes_down (polled from /api/connections)
  closes: 0,
  step: null,
  refreshing: false,
  timeScale: null,       // the proxy's time scale (GET /api/time-scale, then the journal)
};
window.sseproxyDemo = demo;  // for tests and the curious

// -- the control API ------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body, type) {
  const options = {method, headers: {}};
  if (body !== undefined) {
    options.body = typeof body === 'string' ? body : JSON.stringify(body);
    options.headers['Content-Type'] = typeof body === 'string' ? (type || 'text/plain') :
      'application/json';
  }
  const response = await fetch('/api' + path, options);
  let data = null;
  try { data = await response.json(); } catch (error) { data = null; }
  if (!response.ok) {
    const message = data && (data.errors ? data.errors.join('\n') : data.error);
    throw new ApiError(response.status, message || response.status + ' ' + response.statusText);
  }
  return data;
}

function journalNow() {
  return demo.offset === null ? 0 : wall() - demo.offset;
}

function seconds(s) {
  if (s === null || s === undefined) return '–';
  if (s < 1) return Math.round(s * 1000) + ' ms';
  if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + ' s';
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  return m + ' min' + (r ? ' ' + String(r).padStart(2, '0') + ' s' : '');
}

function el(name, attrs, parent, text) {
  const node = name.startsWith('svg:') ? document.createElementNS(NS, name.slice(4)) :
    document.createElement(name);
  for (const key in attrs || {}) node.setAttribute(key, attrs[key]);
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

// -- clients ----------------------------------------------------------------------------

class Client {
  constructor(n) {
    this.n = n;
    this.events = 0;
    this.lastId = null;
    this.lost = 0;
    this.duplicated = 0;
    this.reconnects = 0;
    this.lastDelay = null;
    this.errorAt = null;
    this.idAtError = null;
    this.lastEventAt = null;
    this.lastByteAt = null;
    this.conn = null;
    this.sent = undefined;    // the Last-Event-ID of its latest request, as the proxy saw it
    this.sentOk = null;
    this.born = journalNow();  // requests from before (an earlier page) are not its own
    this.card = el('div', {class: 'client', 'data-client': n}, $('clients'));
    this.open();
  }

  open() {
    const query = demo.stream ? '?' + demo.stream : '';
    // on the streams door: the browser's six connections to the page's address are kept
    // for the journal and the API
    this.source = new EventSource(demo.catalog.streams + '/client/' + this.n + '/events' + query);
    this.source.onopen = () => {
      const now = wall();
      if (this.errorAt !== null) {
        this.reconnects += 1;
        this.lastDelay = now - this.errorAt;
        this.errorAt = null;
      }
      this.lastByteAt = now;
    };
    const received = (event) => this.received(event);
    this.source.onmessage = received;
    this.source.addEventListener('heartbeat', received);
    this.source.onerror = () => {
      if (this.errorAt === null) {
        this.errorAt = wall();
        this.idAtError = this.lastId;
      }
    };
  }

  received(event) {
    const now = wall();
    this.events += 1;
    this.lastEventAt = this.lastByteAt = now;
    if (event.type !== 'message' || !/^[0-9]+$/.test(event.lastEventId)) return;
    const id = Number(event.lastEventId);
    if (this.lastId !== null) {
      if (id > this.lastId + 1) this.lost += id - this.lastId - 1;
      else if (id <= this.lastId) this.duplicated += 1;
    }
    this.lastId = this.lastId === null ? id : Math.max(this.lastId, id);
  }

  requested(record) {  // the journal's `request` record of one of its connections
    if (record.t < this.born - 0.25) return;
    this.conn = record.conn;
    this.sent = record.last_event_id === undefined ? null : record.last_event_id;
    const expected = this.idAtError === null ? null : String(this.idAtError);
    this.sentOk = this.sent === expected;
  }

  close() {
    this.source.close();
    this.card.remove();
  }

  render() {
    const state = STATES[this.source.readyState];
    const now = wall();
    const bad = this.lost > 0 || this.duplicated > 0;
    this.card.className = 'client' + (bad ? ' bad' : '');
    this.card.dataset.state = state;
    this.card.replaceChildren();
    const title = el('h3', {}, this.card);
    el('span', {}, title, 'client ' + this.n + (this.conn ? ' · ' + this.conn : ''));
    el('span', {class: 'state ' + state, 'data-field': 'state'}, title, state);
    const list = el('dl', {}, this.card);
    const row = (label, field, value, cls) => {
      el('dt', {}, list, label);
      el('dd', {'data-field': field, class: cls || ''}, list, String(value));
    };
    row('events', 'events', this.events);
    row('last id', 'last-id', this.lastId === null ? '–' : this.lastId);
    row('ids lost', 'lost', this.lost, this.lost ? 'bad' : '');
    row('duplicated', 'duplicated', this.duplicated, this.duplicated ? 'bad' : '');
    row('reconnects', 'reconnects', this.reconnects);
    row('last wait', 'delay', this.lastDelay === null ? '–' : seconds(this.lastDelay));
    const sent = this.sent === undefined ? '–' : this.sent === null ? 'none' : this.sent;
    const mark = this.sent === undefined || this.sentOk === null ? '' :
      this.sentOk ? ' ✓' : ' ✗ (last id seen: ' + this.idAtError + ')';
    row('Last-Event-ID', 'last-event-id', sent + mark, this.sentOk === false ? 'bad' : '');
    row('since byte', 'since-byte', this.lastByteAt === null ? '–' : seconds(now - this.lastByteAt));
    row('since event', 'since-event',
        this.lastEventAt === null ? '–' : seconds(now - this.lastEventAt));
    if (state === 'CLOSED') {
      const again = el('button', {type: 'button'}, this.card, 'reopen (the browser gave up)');
      again.onclick = () => { this.source.close(); this.open(); };
    }
  }
}

function setClientCount(count) {
  count = Math.max(1, Math.min(6, count || 1));
  while (demo.clients.length > count) demo.clients.pop().close();
  while (demo.clients.length < count) demo.clients.push(new Client(demo.clients.length + 1));
  $('client-count').value = count;
}

async function reconnectAll() {
  // New clients start once the journal has the old streams closed (at most 1.5 s later),
  // so that on the timeline the new streams follow the old ones instead of overlapping.
  const count = Number($('client-count').value) || 3;
  const old = demo.clients.splice(0).map((client) => { client.close(); return client.conn; });
  const open = () => old.some((id) => id !== null && demo.conns.get(id)?.closed === null);
  for (const deadline = wall() + 1.5; open() && wall() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  setClientCount(count);
}

async function pollBytes() {
  try {
    const data = await api('GET', '/connections');
    const now = wall();
    for (const info of data.connections) {
      if (demo.bytes.get(info.id) !== info.bytes_down) {
        demo.bytes.set(info.id, info.bytes_down);
        for (const client of demo.clients) if (client.conn === info.id) client.lastByteAt = now;
      }
    }
  } catch (error) { /* the page shows the API's state elsewhere */ }
}

// -- the journal, live ------------------------------------------------------------------

function followJournal() {
  const journal = new EventSource('/api/journal?after=0');
  journal.onopen = () => { $('api-state').textContent = 'journal: live'; };
  journal.onerror = () => { $('api-state').textContent = 'journal: reconnecting…'; };
  journal.onmessage = (message) => record(JSON.parse(message.data));
}

function record(rec) {
  const late = wall() - rec.t;  // records arrive after they happen: the smallest lag wins
  if (demo.offset === null || late < demo.offset) demo.offset = late;
  if (rec.kind === 'scenario' && !demo.refreshing) {  // one refresh for a burst of changes
    demo.refreshing = true;
    setTimeout(() => { demo.refreshing = false; refreshFaults(); }, 100);
  }
  if (rec.kind === 'time-scale') showTimeScale(rec.factor);
  if (rec.conn === '-' || rec.conn === undefined) return;
  let conn = demo.conns.get(rec.conn);
  if (conn === undefined) {
    conn = {id: rec.conn, opened: rec.t, closed: null, faults: [], row: null, lane: null,
            events: null, path: '', session: null, client: rec.client || ''};
    demo.conns.set(rec.conn, conn);
  }
  if (rec.kind === 'opened') {
    conn.opened = rec.t;
    conn.client = rec.client || '';
  } else if (rec.kind === 'request') {
    conn.path = rec.path + (rec.query ? '?' + rec.query : '');
    conn.session = rec.session || null;
    conn.lastEventId = rec.last_event_id;
    conn.agent = rec.user_agent || '';
    if (conn.row === null) place(conn);
    const match = /^client-([0-9]+)$/.exec(conn.session || '');
    const client = match ? demo.clients[Number(match[1]) - 1] : undefined;
    if (client) client.requested(rec);
  } else if (rec.kind === 'fault') {
    conn.faults.push(rec);
  } else if (rec.kind === 'closed') {
    Object.assign(conn, {closed: rec.t, by: rec.by, reason: rec.reason, detail: rec.detail,
                         events: rec.events_down, firstId: rec.first_id, lastId: rec.last_id});
    if (conn.row === null) place(conn);
    const cause = conn.by + '/' + conn.reason;
    demo.counts.set(cause, (demo.counts.get(cause) || 0) + 1);
    listClose(conn);
  }
}

function agentName(agent) {
  const found = /(curl|Wget|python-httpx|python-requests|aiohttp|HeadlessChrome|Firefox|Chrome|Safari)\/?[0-9.]*/.exec(agent || '');
  return found ? found[0] : (agent || '').slice(0, 24);
}

function place(conn) {  // its row: the page's client (its session), else address and agent
  const host = conn.client.replace(/:[0-9]+$/, '');
  const key = conn.session ? 'session ' + conn.session : host + ' ' + agentName(conn.agent);
  const label = conn.session && conn.session.startsWith('client-') ?
    'client ' + conn.session.slice(7) + ' (this page)' : key;
  let index = demo.rowOf.get(key);
  if (index === undefined) {
    index = demo.rows.length;
    demo.rowOf.set(key, index);
    demo.rows.push({key, label, conns: [], lanes: 1});
  }
  conn.row = index;
  demo.rows[index].conns.push(conn);
}

function forget(row, before) {  // streams closed long before the window: no longer drawn
  row.conns = row.conns.filter((conn) => {
    const keep = conn.closed === null || conn.closed >= before;
    if (!keep) demo.conns.delete(conn.id);
    return keep;
  });
}

function layout(row) {
  // Lanes: each stream takes the first lane free at its opening, so streams open at the
  // same time never share one. Gaps: a stream follows the one of its row that closed last
  // before it opened (the reconnect). Done afresh at each drawing, as records may arrive
  // in any order.
  const conns = [...row.conns].sort((a, b) => a.opened - b.opened);
  const ends = [];
  const followed = new Set();
  for (const conn of conns) {
    let lane = ends.findIndex((end) => end <= conn.opened);
    if (lane < 0) lane = ends.length;
    ends[lane] = conn.closed === null ? Infinity : conn.closed;
    conn.lane = lane;
    let previous = null;
    for (const other of conns) {
      if (other === conn || other.closed === null || other.closed > conn.opened) continue;
      if (followed.has(other) || conn.opened - other.closed >= 120) continue;
      if (previous === null || other.closed > previous.closed) previous = other;
    }
    conn.gapFrom = previous;
    if (previous) followed.add(previous);
  }
  row.lanes = Math.max(1, ends.length);
}

function sideOf(conn) {
  if (conn.by === 'client') return 'client';
  if (conn.by === 'upstream') return 'server';
  const type = demo.faultTypes.get(conn.reason) ||
    (conn.faults.some((f) => f.fault === conn.reason) ? conn.reason : null);
  if (type !== null) return type.startsWith('client-') ? 'client (fault)' : 'intermediary (fault)';
  return conn.reason === 'shutdown' ? 'proxy shutdown' : 'proxy';
}

function colourOf(conn) {
  if (conn.closed === null) return OPEN_COLOUR;
  const cause = conn.by + '/' + conn.reason;
  if (!demo.colours.has(cause)) {
    const palette = PALETTES[sideOf(conn)];
    const n = demo.used.get(palette[0]) || 0;
    demo.used.set(palette[0], n + 1);
    demo.colours.set(cause, palette[n % palette.length]);
  }
  return demo.colours.get(cause);
}

function explain(conn) {
  const words = demo.catalog.explanations[conn.reason];
  if (words) return words;
  const type = demo.faultTypes.get(conn.reason) || conn.reason;
  const fault = demo.catalog.faults.find((f) => f.type === type);
  return fault ? 'fault ' + conn.reason + ' (' + type + '): ' + fault.summary : conn.reason;
}

function closeLabel(conn) {
  return conn.by + ' · ' + conn.reason;
}

function listClose(conn) {
  demo.closes += 1;
  const item = el('li', {'data-conn': conn.id});
  const who = conn.session && conn.session.startsWith('client-') ?
    'client ' + conn.session.slice(7) : conn.client;
  el('b', {}, item, closeLabel(conn));
  const ids = !conn.firstId ? '' : conn.firstId === conn.lastId ? ', id ' + conn.firstId :
    ', ids ' + conn.firstId + '..' + conn.lastId;
  const events = conn.events === null || conn.events === undefined ? '' :
    ', ' + conn.events + (conn.events === 1 ? ' event' : ' events');
  item.append(' at ' + seconds(conn.closed) + ': ' + conn.id + ' (' + who + ', ' +
    (conn.path || 'no request') + ') after ' + seconds(conn.closed - conn.opened) + events +
    ids + '. ' + (conn.detail ? conn.detail + ' — ' : '') + explain(conn));
  const list = $('closes');
  list.prepend(item);
  while (list.children.length > 40) list.lastChild.remove();
}

// -- the timeline -----------------------------------------------------------------------

function drawTimeline() {
  const svg = $('timeline');
  const box = $('timeline-box');
  // a lane: the close label on top, the bar (and the dashed wait before it) below
  const laneH = 28, barY = 12, barH = 12, labelW = 170, top = 24, pad = 150;
  const plotW = Math.max(360, (box.clientWidth || 900) - labelW - pad - 4);
  const now = journalNow();
  const t1 = Math.max(now, 20), t0 = Math.max(0, t1 - 90);
  const x = (t) => labelW + (Math.max(t, t0) - t0) / (t1 - t0) * plotW;
  const tops = [];
  let y = top;
  for (const row of demo.rows) {
    forget(row, t0 - 150);
    layout(row);
    tops.push(y);
    y += row.lanes * laneH + 6;
  }
  const width = labelW + plotW + pad, height = y + 8;
  svg.replaceChildren();
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  demo.rows.forEach((row, i) => {
    const h = row.lanes * laneH + 6;
    if (i % 2 === 0) el('svg:rect', {class: 'rowbg', x: 0, y: tops[i] - 3, width, height: h}, svg);
    el('svg:text', {x: 6, y: tops[i] + barY + barH - 2}, svg, row.label);
  });
  const steps = [1, 2, 5, 10, 15, 30, 60];
  const step = steps.find((s) => (t1 - t0) / s <= 12) || 60;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    el('svg:line', {class: 'grid', x1: x(t), x2: x(t), y1: top - 4, y2: height - 6}, svg);
    el('svg:text', {x: x(t), y: top - 9, 'text-anchor': 'middle'}, svg, t + ' s');
  }
  el('svg:line', {class: 'now', x1: x(now), x2: x(now), y1: top - 4, y2: height - 6}, svg);
  const laneY = (conn) => tops[conn.row] + conn.lane * laneH;
  const labels = [];  // drawn last, over the bars: who closed it and why
  for (const conn of demo.conns.values()) {
    if (conn.row === null) continue;
    const end = conn.closed === null ? now : conn.closed;
    if (end < t0) continue;
    const y0 = laneY(conn);
    if (conn.gapFrom && conn.gapFrom.closed >= t0) {
      const gap = el('svg:line', {class: 'gap', x1: x(conn.gapFrom.closed), x2: x(conn.opened),
        y1: y0 + barY + barH / 2, y2: y0 + barY + barH / 2, 'data-conn': conn.id}, svg);
      el('svg:title', {}, gap, 'reconnect ' + conn.gapFrom.id + ' → ' + conn.id + ' after ' +
        seconds(conn.opened - conn.gapFrom.closed) + '; Last-Event-ID ' +
        (conn.lastEventId || 'none'));
    }
    const x0 = x(conn.opened);
    const bar = el('svg:rect', {class: 'bar' + (conn.closed === null ? ' open' : ''), x: x0,
      y: y0 + barY, width: Math.max(2, x(end) - x0), height: barH, rx: 2,
      fill: colourOf(conn), 'data-conn': conn.id}, svg);
    let tip = conn.id + ' ' + conn.path + '\n' + seconds(end - conn.opened);
    tip += conn.closed === null ? ', still open' : ', ' + closeLabel(conn) +
      (conn.detail ? ': ' + conn.detail : '') + '\n' + explain(conn);
    if (conn.lastEventId) tip += '\nLast-Event-ID sent: ' + conn.lastEventId;
    el('svg:title', {}, bar, tip);
    if (conn.closed !== null) labels.push([conn, x(end) + 1, y0 + barY - 3]);
    for (const fired of conn.faults) {
      if (fired.t < t0) continue;
      const mx = x(fired.t), my = y0 + barY - 1;
      const mark = el('svg:path', {class: 'marker', d: 'M' + (mx - 4) + ' ' + (my - 3) + 'h8l-4 6z',
        'data-conn': conn.id}, svg);
      el('svg:title', {}, mark, 'fault ' + fired.fault + ' (' + fired.action + '): ' +
        (fired.detail || ''));
    }
  }
  for (const [conn, lx, ly] of labels) {
    const label = el('svg:text', {class: 'close-label', x: lx, y: ly, fill: colourOf(conn),
      'data-conn': conn.id}, svg, closeLabel(conn));
    el('svg:title', {}, label, explain(conn));
  }
  const legend = $('legend');
  legend.replaceChildren();
  for (const [cause, colour] of demo.colours) {
    const item = el('span', {}, legend);
    el('i', {class: 'sw', style: 'background:' + colour}, item);
    item.append(' ' + cause.replace('/', ' · ') + ' (' + (demo.counts.get(cause) || 0) + ')');
  }
}

// -- controls ---------------------------------------------------------------------------

function showError(id, error) {
  $(id).textContent = error ? String(error.message || error) : '';
}

async function refreshFaults() {
  try {
    const scenario = await api('GET', '/scenario');
    $('scenario-name').textContent = scenario.name;
    const list = $('faults');
    list.replaceChildren();
    for (const fault of scenario.faults) {
      demo.faultTypes.set(fault.name, fault.type);
      const item = el('li', {'data-fault': fault.name}, list);
      const text = el('span', {}, item);
      el('b', {}, text, fault.name);
      const rest = Object.entries(fault).filter(([k]) => k !== 'name' && k !== 'type')
        .map(([k, v]) => k + '=' + (typeof v === 'object' ? JSON.stringify(v) : v)).join(' ');
      el('code', {}, text, ' ' + (fault.name !== fault.type ? fault.type + ' ' : '') + rest);
      const remove = el('button', {type: 'button', title: 'remove ' + fault.name}, item, '✕');
      remove.onclick = () => api('DELETE', '/faults/' + encodeURIComponent(fault.name))
        .catch((error) => showError('fault-error', error));
    }
    if (!scenario.faults.length) el('li', {class: 'hint'}, list, 'no fault: a clean relay');
    $('faults-line').textContent = scenario.faults.length ?
      'faults: ' + scenario.faults.map((f) => f.name).join(', ') : 'no faults';
  } catch (error) {
    showError('fault-error', error);
  }
}

async function loadScenario(name, toml) {
  await api('PUT', '/scenario?file=' + encodeURIComponent(name), toml, 'application/toml');
}

function buildPresets() {
  const select = $('preset');
  for (const preset of demo.catalog.presets) {
    el('option', {value: preset.name}, select, preset.name);
  }
  const describe = () => {
    const preset = demo.catalog.presets.find((p) => p.name === select.value);
    $('preset-description').textContent = preset ? preset.description : '';
  };
  select.onchange = describe;
  describe();
  $('load-preset').onclick = async () => {
    const preset = demo.catalog.presets.find((p) => p.name === select.value);
    try { await loadScenario(preset.name, preset.toml); showError('fault-error', null); } catch (error) { showError('fault-error', error); }
  };
}

function buildStory() {
  const list = $('steps');
  demo.catalog.story.forEach((step, i) => {
    const item = el('li', {}, list);
    const button = el('button', {type: 'button', 'data-step': i}, item, step.title);
    button.onclick = () => playStep(i);
  });
  document.addEventListener('keydown', (event) => {
    if (event.target.closest('input, select, textarea')) return;
    const next = demo.step === null ? 0 : demo.step + 1;
    if ((event.key === 'ArrowRight' || event.key === 'n') && next < demo.catalog.story.length) playStep(next);
    if ((event.key === 'ArrowLeft' || event.key === 'p') && demo.step > 0) playStep(demo.step - 1);
  });
}

function stepStream(step) {  // its server's times at the time scale too (catalog.py)
  const factor = demo.timeScale || 1;
  if (factor === 1) return step.stream;
  const params = new URLSearchParams(step.stream);
  for (const [name, seconds] of Object.entries(step.times)) {
    if (seconds > 0) params.set(name, String(Math.max(0.001, +(seconds * factor).toFixed(3))));
  }
  return params.toString();
}

async function playStep(i) {
  const step = demo.catalog.story[i];
  demo.step = i;
  [...$('steps').children].forEach((item, j) => item.classList.toggle('current', j === i));
  $('step-text').textContent = step.text;
  try {
    await loadScenario(step.scenario, step.toml);
    showError('fault-error', null);
  } catch (error) {
    showError('fault-error', error);
  }
  $('preset').value = step.scenario;
  $('preset').onchange();
  const stream = stepStream(step);
  if (stream !== demo.stream) {
    demo.stream = stream;
    $('stream-query').value = stream;
    reconnectAll();
  }
}

function buildQuick() {
  for (const quick of demo.catalog.quick) {
    const button = el('button', {type: 'button', title: JSON.stringify(quick.fault)},
      $('quick'), '+ ' + quick.label);
    button.onclick = () => api('POST', '/faults', quick.fault)
      .then(() => showError('fault-error', null))
      .catch((error) => showError('fault-error', error));
  }
}

function buildFaultForm() {
  const select = $('fault-type');
  for (const fault of demo.catalog.faults) el('option', {value: fault.type}, select, fault.type);
  select.value = 'idle-timeout';
  const fields = $('fault-fields');
  const build = () => {
    const fault = demo.catalog.faults.find((f) => f.type === select.value);
    $('fault-summary').textContent = fault.summary;
    fields.replaceChildren();
    for (const param of [...fault.params, ...demo.catalog.common]) {
      const label = el('label', {title: param.help + ' (' + param.allowed + ')'}, fields);
      el('span', {}, label, param.name + (param.required ? ' *' : ''));
      let input;
      if (param.kind === 'choice' || param.kind === 'bool') {
        input = el('select', {name: param.name, 'data-kind': param.kind}, label);
        el('option', {value: ''}, input, param.default === null ? '(none)' :
          '(default ' + param.default + ')');
        for (const choice of param.kind === 'bool' ? ['true', 'false'] : param.choices) {
          el('option', {value: choice}, input, choice);
        }
      } else {
        input = el('input', {name: param.name, 'data-kind': param.kind, spellcheck: 'false',
          placeholder: param.default !== null ? String(param.default) :
            param.required ? 'required' : param.allowed}, label);
      }
      if (param.required) input.required = true;
    }
  };
  select.onchange = build;
  build();
  $('add-fault').onsubmit = async (event) => {
    event.preventDefault();
    const table = {type: select.value};
    try {
      for (const input of fields.querySelectorAll('input, select')) {
        const text = input.value.trim();
        if (text === '') continue;
        const kind = input.dataset.kind;
        table[input.name] = kind === 'int' ? Number.parseInt(text, 10) :
          kind === 'float' ? Number(text) : kind === 'bool' ? text === 'true' :
          ['headers', 'names', 'table'].includes(kind) ? JSON.parse(text) : text;
      }
      await api('POST', '/faults', table);
      showError('fault-error', null);
    } catch (error) {
      showError('fault-error', error);
    }
  };
}

function showTimeScale(factor) {  // on load, when set here, and when set elsewhere (ctl)
  demo.timeScale = factor;
  $('time-scale').value = factor;
  $('time-scale-line').textContent = factor === 1 ? '' :
    'time scale ' + factor + ': every duration multiplied by ' + factor;
}

function buildStreams() {
  const kill = (how) => async () => {
    try {
      const result = await api('DELETE', '/connections?how=' + how);
      $('streams-result').textContent = result.killed.length ?
        (how === 'reset' ? 'reset ' : 'closed ') + result.killed.join(', ') : 'no open stream';
    } catch (error) {
      $('streams-result').textContent = error.message;
    }
  };
  $('close-all').onclick = kill('close');
  $('reset-all').onclick = kill('reset');
  $('set-time-scale').onclick = async () => {
    const result = $('time-scale-result');
    try {
      const answer = await api('PUT', '/time-scale', {factor: Number($('time-scale').value)});
      showTimeScale(answer.factor);
      result.className = 'hint';
      result.textContent = 'time scale ' + answer.factor;
    } catch (error) {
      result.className = 'error';
      result.textContent = error.message;
    }
  };
  $('client-count').onchange = () => setClientCount(Number($('client-count').value));
  $('apply-stream').onclick = () => {
    demo.stream = $('stream-query').value.trim().replace(/^\?/, '');
    reconnectAll();
  };
}

async function start() {
  demo.catalog = await (await fetch('/catalog.json')).json();
  demo.stream = demo.catalog.stream;
  $('stream-query').value = demo.stream;
  try {
    const status = await api('GET', '/status');
    demo.offset = wall() - status.uptime;
    showTimeScale((await api('GET', '/time-scale')).factor);
    $('curl-line').textContent = 'or: curl -N http://' + status.listen + '/events';
  } catch (error) {
    $('api-state').textContent = 'control API: ' + error.message;
  }
  buildPresets();
  buildStory();
  buildQuick();
  buildFaultForm();
  buildStreams();
  followJournal();
  await refreshFaults();
  const starting = $('scenario-name').textContent;  // `sseproxy demo --scenario NAME`
  if (demo.catalog.presets.some((preset) => preset.name === starting)) {
    $('preset').value = starting;
    $('preset').onchange();
  }
  setClientCount(Number(new URLSearchParams(location.search).get('clients')) || 3);
  setInterval(() => {
    for (const client of demo.clients) client.render();
    drawTimeline();
  }, 250);
  setInterval(pollBytes, 1000);
}

start();
