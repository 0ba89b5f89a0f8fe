"""The HTML report's frame, style and script (no network: everything is inline).

The script reads the timeline's JSON from `#timeline-data` and draws it as SVG: one
`rect.bar` per connection (`data-conn` = its key), `path.marker` per fault that fired,
`line.gap` per reconnect, and the legend; the tables are plain HTML from `html.py`.
"""

from __future__ import annotations

__all__ = ["PAGE", "SCRIPT", "STYLE"]

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style></head>
<body><header><h1>{title}</h1><p>{subtitle}</p></header>
<main>
{body}
</main>
<script type="application/json" id="timeline-data">{data}</script>
<script>{script}</script>
</body></html>
"""

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#23313f;color:#fff;padding:12px 24px}header h1{font-size:18px;margin:0}
header p{margin:2px 0 0;color:#c8d3de}main{padding:8px 24px 40px;max-width:1400px}
h2{font-size:16px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}
h3{font-size:14px;margin:14px 0 6px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:8px 14px;min-width:96px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
table{border-collapse:collapse;background:#fff;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #e4e4e4;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.small{font-size:12px}
.hist{position:relative;min-width:70px;height:16px}
.hist span{position:absolute;left:0;top:2px;bottom:2px;background:#9bb7d4}
.hist b{position:relative;font-weight:400;padding-left:4px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;
border:1px solid rgba(0,0,0,.2)}
.hint{color:#666;font-size:12px;margin:4px 0}.para{max-width:1000px}
li.cut b{color:#c0392b}li.ok b{color:#2e7d32}li.unknown b{color:#777}
#legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px;margin:6px 0}
#timeline-box{background:#fff;border:1px solid #e2e2e2;overflow-x:auto}
svg text{font:11px system-ui,sans-serif;fill:#333}
.bar{stroke:rgba(0,0,0,.25);stroke-width:.5}.bar.failed{stroke:#7a0000;stroke-width:1.2}
.bar.open{stroke:#888;stroke-dasharray:3 2}
.gap{stroke:#666;stroke-width:1;stroke-dasharray:2 2}.gap.lost{stroke:#d62728;stroke-width:1.6}
.gap.replayed{stroke:#ff7f0e;stroke-width:1.6}.marker{fill:#222}
summary{cursor:pointer;font-weight:600;margin:10px 0}.grid{stroke:#eee}
ul.summary{background:#fff;border:1px solid #e2e2e2;border-left:4px solid #23313f;
margin:4px 0 8px;padding:8px 12px 8px 30px;max-width:1100px}ul.summary li{margin:2px 0}
.rowbg{fill:#f7f9fb}
"""

SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('timeline-data').textContent);
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.getElementById('timeline');
  const box = document.getElementById('timeline-box');
  const rowH = 20, labelW = 230, top = 26, pad = 16;
  const plotW = Math.max(480, (box.clientWidth || 1200) - labelW - pad - 4);
  const t0 = Math.min(0, ...data.bars.map(b => b.start));
  const t1 = Math.max(data.end, t0 + 1, ...data.bars.map(b => b.end));
  const width = labelW + plotW + pad, height = top + data.rows.length * rowH + 12;
  svg.setAttribute('width', width); svg.setAttribute('height', height);
  svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  const x = t => labelW + (t - t0) / (t1 - t0) * plotW;
  const y = row => top + row * rowH;
  function el(name, attrs, parent, text) {
    const node = document.createElementNS(NS, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    (parent || svg).appendChild(node);
    return node;
  }
  function tip(node, text) { el('title', {}, node, text); }
  function dur(s) {
    if (s < 1) return Math.round(s * 1000) + ' ms';
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + ' s';
    const m = Math.floor(s / 60), r = Math.round(s % 60);
    return m + ' min' + (r ? ' ' + String(r).padStart(2, '0') + ' s' : '');
  }
  let client = -1;  // a client's lanes share its background shade
  data.rows.forEach((row, i) => {
    if (!row.lane) client++;
    if (client % 2 === 0) el('rect', {class: 'rowbg', x: 0, y: y(i), width: width, height: rowH});
    el('text', {x: 6, y: y(i) + rowH * 0.68}, svg, row.label.length > 40 ?
       row.label.slice(0, 39) + '\u2026' : row.label);
  });
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400];
  const step = steps.find(s => (t1 - t0) / s <= 14) || 86400;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    el('line', {class: 'grid', x1: x(t), x2: x(t), y1: top - 4, y2: height - 8});
    el('text', {x: x(t), y: top - 9, 'text-anchor': 'middle'}, svg,
       t === 0 ? '0' : step >= 60 ? (t / 60) + ' min' : t + ' s');
  }
  data.gaps.forEach(g => {
    const cls = 'gap' + (g.lost ? ' lost' : g.replayed ? ' replayed' : '');
    const mid = y(g.row) + rowH / 2;
    const line = el('line', {class: cls, x1: x(g.start), x2: Math.max(x(g.end), x(g.start) + 1),
                             y1: mid, y2: mid});
    let text = 'reconnect ' + g.previous + ' \u2192 ' + g.next + ' after ' + dur(g.end - g.start);
    if (g.verdict) text += '; resume: ' + g.verdict;
    if (g.lost) text += ', ' + g.lost + ' events lost';
    if (g.replayed) text += ', ' + g.replayed + ' events replayed';
    tip(line, text);
    if (g.lost || g.replayed) {
      const label = el('text', {x: x(g.end) - 3, y: y(g.row) + rowH / 2 - 2,
        'text-anchor': 'end', fill: g.lost ? '#d62728' : '#d66a00', 'font-weight': 'bold'}, svg,
        g.lost ? '\u2212' + g.lost : '\u21ba' + g.replayed);
      tip(label, text);
    }
  });
  const plain = b => b.kind === 'request' || b.kind === 'no-request';
  data.bars.forEach(b => {
    const x0 = x(b.start), w = Math.max(2, x(b.end) - x0);
    let rect;
    if (plain(b)) {  // a plain request beside the streams: a small grey tick
      rect = el('rect', {class: 'bar request', x: x0, y: y(b.row) + rowH - 5, width: w,
        height: 3, fill: '#9a9a9a', 'data-conn': b.conn});
    } else {
      const cls = 'bar' + (b.kind === 'failed' ? ' failed' : '') + (b.open ? ' open' : '');
      rect = el('rect', {class: cls, x: x0, y: y(b.row) + 4, width: w, height: rowH - 8,
        rx: 2, fill: data.colours[b.cause] || '#ccc', 'data-conn': b.conn});
    }
    let text = b.conn + ' ' + (b.path || '') + (b.status ? ' (' + b.status + ')' : '') +
      '\n' + dur(b.end - b.start) + (b.open ? ', still open' : ', ' + b.cause);
    if (b.detail) text += ': ' + b.detail;
    if (b.events !== null) text += '\nevents ' + b.events +
      (b.first_id !== null ? ', ids ' + b.first_id + '..' + b.last_id : '');
    tip(rect, text);
  });
  data.markers.forEach(m => {
    const mx = x(m.t), my = y(m.row) + 3;
    const p = el('path', {class: 'marker', d: 'M' + (mx - 4) + ' ' + (my - 3) + 'h8l-4 6z'});
    tip(p, 'fault ' + m.fault + ' (' + m.action + ') on ' + m.conn + ': ' + m.detail);
  });
  const legend = document.getElementById('legend');
  const counts = {};
  data.bars.forEach(b => { if (!plain(b)) counts[b.cause] = (counts[b.cause] || 0) + 1; });
  Object.keys(data.colours).filter(cause => counts[cause]).forEach(cause => {
    const item = document.createElement('span');
    const sw = document.createElement('i');
    sw.className = 'sw'; sw.style.background = data.colours[cause];
    item.appendChild(sw);
    item.appendChild(document.createTextNode(' ' + cause + ' (' + (counts[cause] || 0) + ')'));
    legend.appendChild(item);
  });
})();
"""
