"""``--serve PORT``: the live annotated stream (MJPEG) and live numbers on a small web page.

For headless boxes in the field, watched from a laptop or phone: ``/`` is the page, ``/stream.mjpg``
the stream, ``/stats.json`` the numbers (polled by the page), ``/snapshot.jpg`` one frame. Read-only: other
methods than GET and HEAD get 405 with a JSON body and an Allow header.
Frames are JPEG-encoded only while someone watches the stream.
"""

from __future__ import annotations

import errno
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.video.outputs import Output

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgekit camera</title>
<style>
 body{margin:0;background:#111;color:#eee;font:14px system-ui,sans-serif}
 header{padding:8px 12px;background:#222}
 main{display:grid;grid-template-columns:minmax(0,1fr) 280px;gap:12px;padding:12px;align-items:start}
 @media (max-width:700px){main{grid-template-columns:1fr}}
 img{width:100%;height:auto;background:#000}
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
    document.getElementById('model').textContent = s.model || '';
    document.getElementById('stages').innerHTML = Object.entries(s.stages || {}).map(
      ([k, v]) => '<tr><td>' + k + ' (ms)</td><td class="v">' + v.toFixed(2) + '</td></tr>').join('');
  } catch (e) {}
  setTimeout(poll, 500);
}
poll();
</script></body></html>
"""


class WebStream(Output):
    name = "web"

    def __init__(self, port: int, host: str = "127.0.0.1", quality: int = 80) -> None:
        self.quality = quality
        self.clients = 0
        self._frame: Optional[np.ndarray] = None
        self._jpeg: Optional[bytes] = None
        self._seq = 0
        self._stats: Dict[str, Any] = {}
        self._closed = False
        self._cond = threading.Condition()
        try:
            self.server = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EdgekitError("port %d is in use: pick another with --serve PORT" % port) from exc
            raise EdgekitError("cannot serve on %s:%d: %s" % (host, port, exc.strerror or exc)) from exc
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="edgekit-web", daemon=True)
        self._thread.start()

    def write(self, frame: np.ndarray, index: Optional[int] = None) -> None:
        jpeg = self._encode(frame) if self.clients else None
        with self._cond:
            self._frame, self._jpeg = frame, jpeg
            self._seq += 1
            self._cond.notify_all()

    def update_stats(self, stats: Dict[str, Any]) -> None:
        with self._cond:
            self._stats = stats

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # --- used by the request handler ----------------------------------------------------------------
    def _encode(self, frame: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return buf.tobytes() if ok else b""

    def next_jpeg(self, after: int, timeout: float = 1.0):
        """(seq, jpeg) of a frame newer than ``after``, or (after, None) on timeout/close."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after or self._closed, timeout)
            if self._closed or self._seq <= after or self._frame is None:
                return after, None
            if self._jpeg is None:
                self._jpeg = self._encode(self._frame)
            return self._seq, self._jpeg

    def add_client(self, delta: int) -> None:
        with self._cond:
            self.clients += delta

    def snapshot(self) -> Optional[bytes]:
        with self._cond:
            return self._encode(self._frame) if self._frame is not None else None

    def stats_json(self) -> bytes:
        with self._cond:
            return json.dumps(self._stats).encode()


ALLOWED = "GET, HEAD"


def _handler(stream: WebStream):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the terminal for the loop's own output
            pass

        def _send(self, body: bytes, ctype: str, status: int = 200, headers=()) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self.do_GET()

        def __getattr__(self, name: str):
            """Any other method (POST, PUT, DELETE, OPTIONS, ...): 405 with Allow, not http.server's HTML 501."""
            if name.startswith("do_"):
                return self._not_allowed
            raise AttributeError(name)

        def _not_allowed(self) -> None:
            body = json.dumps({"error": "method %s not allowed: this page is read-only (GET, HEAD)" % self.command,
                               "status": 405}).encode()
            self._send(body, "application/json", 405, [("Allow", ALLOWED)])

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            try:
                if path in ("/", "/index.html"):
                    self._send(PAGE.encode(), "text/html; charset=utf-8")
                elif path == "/stats.json":
                    self._send(stream.stats_json(), "application/json")
                elif path == "/snapshot.jpg":
                    jpeg = stream.snapshot()
                    self._send(jpeg or b"no frame yet", "image/jpeg" if jpeg else "text/plain", 200 if jpeg else 503)
                elif path == "/stream.mjpg":
                    self._stream()
                else:
                    self._send(b"not found", "text/plain", 404)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the viewer went away

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command == "HEAD":
                return
            stream.add_client(+1)
            try:
                seq = 0
                while not stream._closed:
                    seq, jpeg = stream.next_jpeg(seq)
                    if jpeg:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpeg) + jpeg + b"\r\n")
            finally:
                stream.add_client(-1)

    return Handler
