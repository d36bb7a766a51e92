"""The ``--serve`` pages: one HTML string each, no external assets (boxes in the field have no internet).

``PAGE`` is the one-stream page. ``MULTI_PAGE`` is the mosaic of a multi-source run; ``__CONFIG__`` is replaced
by :func:`multi_page`'s JSON (names, columns, mosaic layout). Its tiles each show ``/stream/<i>.mjpg``, or, beyond
a few streams, are cut from one ``/mosaic.mjpg`` drawn onto a canvas per tile: a browser opens at most 6 HTTP/1.1
connections per host, and every MJPEG stream holds one open. ``?mosaic=1`` / ``?mosaic=0`` on the page's address
force either way. Names reach the page through ``textContent`` only, never as markup.
"""

from __future__ import annotations

import json
from typing import List

from edgekit.video.mosaic import GAP, grid

HEAD = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgekit camera</title>
<style>
 body{margin:0;background:#111;color:#eee;font:14px system-ui,sans-serif}
 header{padding:8px 12px;background:#222}
 main{display:grid;grid-template-columns:minmax(0,1fr) 280px;gap:12px;padding:12px;align-items:start}
 @media (max-width:700px){main{grid-template-columns:1fr}}
"""  # both pages: the document head and the layout

PAGE = HEAD + """ img{width:100%;height:auto;background:#000}
 table{border-collapse:collapse;min-width:260px} td{padding:2px 10px;border-bottom:1px solid #333}
 td.v{text-align:right;font-variant-numeric:tabular-nums}
</style></head>
<body><header><b>edgekit camera</b> <span id="model"></span></header>
<main><img id="stream" src="/stream.mjpg" alt="live stream">
<table id="stats"><tbody>
 <tr><td>FPS</td><td class="v" id="fps">-</td></tr>
 <tr><td>end to end (ms)</td><td class="v" id="e2e">-</td></tr>
 <tr><td>frames</td><td class="v" id="frames">-</td></tr>
 <tr><td>dropped</td><td class="v" id="dropped">-</td></tr>
 <tr><td>detections</td><td class="v" id="detections">-</td></tr>
</tbody><tbody id="stages"></tbody></table></main>
<script>
async function poll(){
  try{
    const s = await (await fetch('/stats.json', {cache:'no-store'})).json();
    for (const k of ['fps','e2e','frames','dropped','detections']) {
      const v = s[k];
      document.getElementById(k).textContent = (typeof v === 'number' && !Number.isInteger(v)) ? v.toFixed(1) : v;
    }
    document.getElementById('model').textContent = s.label || '';
    document.getElementById('stages').innerHTML = Object.entries(s.stages || {}).map(
      ([k, v]) => '<tr><td>' + k + ' (ms)</td><td class="v">' + v.toFixed(2) + '</td></tr>').join('');
  } catch (e) {}
  setTimeout(poll, 500);
}
poll();
</script></body></html>
"""

MULTI_PAGE = HEAD + """ #tiles{display:grid;gap:8px;grid-template-columns:repeat(auto-fill,
   minmax(max(min(100%,300px),calc((100% - (var(--cols) - 1) * 8px) / var(--cols))),1fr))}
 figure{margin:0;background:#1b1b1b;min-width:0}
 .view{display:block;width:100%;height:auto;background:#000}
 figcaption{padding:4px 6px;font-size:12px;line-height:1.5}
 .name{font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
 .st{border-radius:3px;padding:0 5px;margin-right:6px;font-weight:400;background:#444}
 .st.live{background:#1f6f3a} .st.stalled{background:#8a6d00} .st.failed{background:#8b1e1e}
 .nums{font-variant-numeric:tabular-nums} .counts{color:#aaa}
 table{border-collapse:collapse;min-width:260px} td{padding:2px 10px;border-bottom:1px solid #333}
 td.v{text-align:right;font-variant-numeric:tabular-nums}
 #feed{position:absolute;left:-10000px;top:0}
</style></head>
<body><header><b>edgekit camera</b> <span id="model"></span></header>
<main><section id="tiles" class="mosaic"></section>
<table id="stats"><tbody>
 <tr><td>streams</td><td class="v" id="nstreams">-</td></tr>
 <tr><td>FPS (all streams)</td><td class="v" id="fps">-</td></tr>
 <tr><td>frames</td><td class="v" id="frames">-</td></tr>
 <tr><td>end to end (ms)</td><td class="v" id="e2e">-</td></tr>
 <tr><td>batch size</td><td class="v" id="bsize">-</td></tr>
 <tr><td>batch padding</td><td class="v" id="bpadded">-</td></tr>
 <tr><td>frames per batch</td><td class="v" id="bmean">-</td></tr>
 <tr><td>view</td><td class="v" id="view">-</td></tr>
</tbody><tbody id="stages"></tbody></table></main>
<script>
const C = __CONFIG__;
const q = new URLSearchParams(location.search).get('mosaic');
const useMosaic = q === null ? C.mosaic : q === '1';
const fmt = v => (typeof v === 'number' && !Number.isInteger(v)) ? v.toFixed(1) : (v == null ? '-' : String(v));
const tiles = document.getElementById('tiles');
tiles.style.setProperty('--cols', C.columns);
const els = C.names.map((name, i) => {
  const fig = document.createElement('figure');
  fig.id = 'tile-' + i;
  const view = document.createElement(useMosaic ? 'canvas' : 'img');
  view.className = 'view';
  if (useMosaic) { view.width = 320; view.height = 180; } else { view.src = '/stream/' + i + '.mjpg'; view.alt = name; }
  const cap = document.createElement('figcaption');
  cap.innerHTML = '<div class="name"><span class="st">-</span><span class="nm"></span></div>' +
    '<div class="nums"></div><div class="counts"></div>';
  cap.querySelector('.nm').textContent = i + ': ' + name;
  cap.title = name;
  fig.append(view, cap);
  tiles.append(fig);
  return {view, st: cap.querySelector('.st'), nums: cap.querySelector('.nums'), counts: cap.querySelector('.counts')};
});
document.getElementById('nstreams').textContent = C.names.length;
document.getElementById('view').textContent = useMosaic ? 'one mosaic stream' : 'a stream per tile';
if (useMosaic) {  // one connection for all tiles: each canvas shows its cell of /mosaic.mjpg
  const feed = new Image();
  feed.id = 'feed';
  feed.alt = '';
  feed.src = '/mosaic.mjpg';
  document.body.append(feed);
  setInterval(() => {
    if (!feed.naturalWidth) return;
    const cw = feed.naturalWidth / C.mosaicColumns, ch = feed.naturalHeight / C.mosaicRows;
    const w = Math.round(cw - C.gap), h = Math.round(ch - C.gap);
    els.forEach((e, i) => {
      if (e.view.width !== w || e.view.height !== h) { e.view.width = w; e.view.height = h; }
      e.view.getContext('2d').drawImage(feed, (i % C.mosaicColumns) * cw, Math.floor(i / C.mosaicColumns) * ch,
                                        w, h, 0, 0, w, h);
    });
  }, 1000 / C.mosaicFps);
}
function streamLine(st) {
  return fmt(st.fps) + ' FPS \\u00b7 e2e ' + fmt(st.e2e_p50) + ' / ' + fmt(st.e2e_p99) + ' ms (p50/p99) \\u00b7 ' +
    'dropped ' + fmt(st.dropped) + ' \\u00b7 reconnects ' + fmt(st.reconnects) + ' \\u00b7 stalls ' + fmt(st.stalls);
}
async function poll(){
  try{
    const s = await (await fetch('/stats.json', {cache:'no-store'})).json();
    for (const k of ['fps','frames','e2e']) document.getElementById(k).textContent = fmt(s[k]);
    const b = s.batch || {};
    document.getElementById('bsize').textContent = fmt(b.size);
    document.getElementById('bpadded').textContent = fmt(b.padded);
    document.getElementById('bmean').textContent = fmt(b.mean_frames);
    document.getElementById('model').textContent = s.label || '';
    const stages = document.getElementById('stages');
    stages.replaceChildren(...Object.entries(s.stages || {}).map(([k, v]) => {
      const tr = document.createElement('tr');
      tr.innerHTML = '<td></td><td class="v"></td>';
      tr.cells[0].textContent = k + ' (ms)';
      tr.cells[1].textContent = typeof v === 'number' ? v.toFixed(2) : fmt(v);
      return tr;
    }));
    for (const st of s.streams || []) {
      const e = els[st.index];
      if (!e) continue;
      e.st.textContent = st.status || '-';
      e.st.className = 'st ' + (st.status || '');
      e.nums.textContent = streamLine(st);
      const parts = ['detections ' + fmt(st.detections)];
      if (st.counts) parts.push(...Object.entries(st.counts).map(([k, v]) => k + ' ' + fmt(v)));
      if (st.tracks != null) parts.push('tracks ' + fmt(st.tracks));
      e.counts.textContent = parts.join(' \\u00b7 ');
    }
  } catch (e) {}
  setTimeout(poll, 500);
}
poll();
</script></body></html>
"""


def multi_page(names: List[str], max_direct: int, mosaic_fps: float) -> bytes:
    """``MULTI_PAGE`` for streams ``names``: tiles from ``/mosaic.mjpg`` beyond ``max_direct`` streams.

    The JSON is made safe inside ``<script>``: no ``<`` (so no ``</script>``) and ASCII only.
    """
    cols, rows = grid(len(names))
    config = {"names": names, "columns": cols, "mosaic": len(names) > max_direct, "mosaicColumns": cols,
              "mosaicRows": rows, "gap": GAP, "mosaicFps": mosaic_fps}
    data = json.dumps(config, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")
    return MULTI_PAGE.replace("__CONFIG__", data).encode()
