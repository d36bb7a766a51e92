"""``--serve PORT``: the live annotated stream(s) (MJPEG) and live numbers on a small web page.

For headless boxes in the field, watched from a laptop or phone: ``/`` is the page, ``/stream.mjpg`` the stream,
``/stats.json`` the numbers (polled by the page), ``/snapshot.jpg`` one frame, ``/metrics`` the numbers for
Prometheus (:mod:`edgekit.camera.metrics`). A multi-source run (``streams`` given) adds ``/stream/<i>.mjpg`` and
``/snapshot.jpg?stream=<i>`` per stream (``/stream.mjpg`` is stream 0), ``/mosaic.mjpg`` (all streams tiled in one
image, at most ``mosaic_fps``), and the page is a mosaic of tiles.
Beyond ``max_tiles_direct`` streams the page cuts its tiles from ``/mosaic.mjpg``: a browser opens at most 6
HTTP/1.1 connections per host and each MJPEG stream holds one (see :mod:`edgekit.video.pages`).

Nothing is encoded for a stream nobody watches: ``write_stream`` only keeps a reference to the frame (hand frames
that are not drawn into afterwards). A viewer's thread encodes the newest frame when it is ready for one, once per
frame however many watch it: never in the loop's thread, never faster than viewers take frames. Read-only: other
methods than GET and HEAD get 405 (JSON body, Allow header); an unknown path or stream index is a JSON 404.
"""

from __future__ import annotations

import errno
import json
import math
import re
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.video.mosaic import tile
from edgekit.video.outputs import Output
from edgekit.video.pages import PAGE, multi_page

ALLOWED = "GET, HEAD"
STREAM_PATH = re.compile(r"^/stream/([^/]+)\.mjpg$")


class _Slot:
    """One stream's newest frame, and its JPEG once a viewer asked for it."""

    def __init__(self, lock: threading.Lock) -> None:
        self.frame: Optional[np.ndarray] = None
        self.jpeg: Optional[bytes] = None  # of ``frame``, once encoded
        self.seq = 0
        self.clients = 0
        self.encodes = 0
        self.cond = threading.Condition(lock)  # one lock for all slots; each slot wakes only its own viewers
        self.encoding = threading.Lock()  # viewers of one stream share one encode per frame


class WebStream(Output):
    name = "web"
    max_tiles_direct = 4  # streams the page shows as one MJPEG each; beyond, tiles come from /mosaic.mjpg
    mosaic_width = 1280
    mosaic_fps = 10.0

    def __init__(self, port: int, host: str = "127.0.0.1", quality: int = 80,
                 streams: Optional[Sequence[str]] = None) -> None:
        self.quality = quality
        self.names: Optional[List[str]] = [str(s) for s in streams] if streams else None
        self._lock = threading.Lock()
        self._slots = [_Slot(self._lock) for _ in range(len(self.names) if self.names else 1)]
        self._mosaic = _Slot(self._lock)  # seq: frames written to any stream; jpeg: of mosaic frame ``_mosaic_seq``
        self._mosaic_seq = 0
        self._mosaic_at = 0.0
        self._mosaic_buf: Optional[np.ndarray] = None
        self._stats: Dict[str, Any] = {}
        self._closed = False
        # set by the camera session: the model run (edgekit.runtime.identity, in every /stats.json) and the
        # /metrics page (edgekit.camera.metrics: exposition() and content_type), or why there is none
        self.model: Optional[Dict[str, Any]] = None
        self.metrics: Any = None
        self.metrics_missing = "this run has no metrics"
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

    # --- fed by the loop ----------------------------------------------------------------------------
    def write(self, frame: np.ndarray, index: Optional[int] = None) -> None:
        self.write_stream(0, frame)

    def write_stream(self, i: int, frame: np.ndarray) -> None:
        """Stream ``i``'s newest annotated frame: kept by reference, encoded only if and when a viewer takes it."""
        slot = self._slots[i]
        with self._lock:
            slot.frame, slot.jpeg = frame, None
            slot.seq += 1
            self._mosaic.seq += 1
            if slot.clients:
                slot.cond.notify_all()
            if self._mosaic.clients:
                self._mosaic.cond.notify_all()

    def update_stats(self, stats: Dict[str, Any]) -> None:
        with self._lock:
            self._stats = stats

    def close(self) -> None:
        if self._closed:
            return
        with self._lock:
            self._closed = True
            for slot in self._slots + [self._mosaic]:
                slot.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # --- counts -------------------------------------------------------------------------------------
    @property
    def streams(self) -> int:
        return len(self._slots)

    @property
    def clients(self) -> int:
        """Viewers of any stream or the mosaic now."""
        return sum(s.clients for s in self._slots) + self._mosaic.clients

    @property
    def encodes(self) -> int:
        """JPEG encodes so far, all streams, the mosaic and snapshots together."""
        return sum(s.encodes for s in self._slots) + self._mosaic.encodes

    def stream_encodes(self, i: int) -> int:
        return self._slots[i].encodes

    @property
    def mosaic_encodes(self) -> int:
        return self._mosaic.encodes

    # --- used by the request handler ----------------------------------------------------------------
    def stream_index(self, text: Optional[str]) -> Optional[int]:
        """The stream ``text`` names (a decimal index below the count), else None; no text is stream 0."""
        if text is None:
            return 0
        return int(text) if text.isdigit() and int(text) < len(self._slots) else None

    def _encode(self, frame: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return buf.tobytes() if ok else b""

    def next_jpeg(self, after: int, timeout: float = 1.0, stream: int = 0) -> Tuple[int, Optional[bytes]]:
        """(seq, jpeg) of stream ``stream``'s frame newer than ``after``, or (after, None) on timeout/close."""
        slot = self._slots[stream]
        with self._lock:
            slot.cond.wait_for(lambda: slot.seq > after or self._closed, timeout)
            if self._closed or slot.seq <= after or slot.frame is None:
                return after, None
            seq, frame, jpeg = slot.seq, slot.frame, slot.jpeg
        if jpeg is not None:
            return seq, jpeg
        with slot.encoding:  # a second viewer of this frame waits here, then takes the first one's JPEG
            with self._lock:
                if slot.seq == seq and slot.jpeg is not None:
                    return seq, slot.jpeg
            jpeg = self._encode(frame)
            with self._lock:
                slot.encodes += 1
                if slot.seq == seq:
                    slot.jpeg = jpeg
        return seq, jpeg

    def next_mosaic(self, after: int, timeout: float = 1.0) -> Tuple[int, Optional[bytes]]:
        """(seq, jpeg) of the tiled streams newer than ``after`` (at most ``mosaic_fps`` a second), or
        (after, None) on timeout/close."""
        m = self._mosaic
        with self._lock:
            m.cond.wait_for(lambda: m.seq > after or self._closed, timeout)
            if self._closed or m.seq <= after:
                return after, None
        with m.encoding:  # one tiling and encode per mosaic frame, shared by its viewers
            wait = self._mosaic_at + 1.0 / self.mosaic_fps - time.monotonic()
            if self._mosaic_seq > after and m.jpeg is not None and wait > 0:
                return self._mosaic_seq, m.jpeg  # another viewer's, fresh enough
            if wait > 0:
                time.sleep(wait)
            with self._lock:
                frames = [s.frame for s in self._slots]
                seq = m.seq
            self._mosaic_buf = tile(frames, self.mosaic_width, out=self._mosaic_buf)
            jpeg = self._encode(self._mosaic_buf)
            with self._lock:
                m.jpeg, m.encodes = jpeg, m.encodes + 1
                self._mosaic_seq, self._mosaic_at = seq, time.monotonic()
        return seq, jpeg

    def add_client(self, delta: int, stream: Optional[int] = 0) -> None:
        """A viewer came (+1) or went (-1) on stream ``stream``; None is the mosaic."""
        with self._lock:
            slot = self._mosaic if stream is None else self._slots[stream]
            slot.clients += delta

    def snapshot(self, stream: int = 0) -> Optional[bytes]:
        slot = self._slots[stream]
        with self._lock:
            frame, jpeg = slot.frame, slot.jpeg
        if frame is None or jpeg is not None:
            return jpeg
        jpeg = self._encode(frame)
        with self._lock:
            slot.encodes += 1
        return jpeg

    def stats_json(self) -> bytes:
        with self._lock:
            stats = self._stats
        if self.model is not None:  # from the start, before the first frame's numbers
            stats = dict(stats, model=self.model)
        try:
            return json.dumps(stats, allow_nan=False).encode()
        except ValueError:  # NaN or infinity (a stream with no frame yet): JSON null, which browsers can parse
            return json.dumps(_finite(stats)).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _handler(web: WebStream):
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

        def _json_error(self, status: int, message: str, headers=()) -> None:
            self._send(json.dumps({"error": message, "status": status}).encode(), "application/json", status, headers)

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self.do_GET()

        def __getattr__(self, name: str):
            """Any other method (POST, PUT, DELETE, OPTIONS, ...): 405 with Allow, not http.server's HTML 501."""
            if name.startswith("do_"):
                return self._not_allowed
            raise AttributeError(name)

        def _not_allowed(self) -> None:
            self._json_error(405, "method %s not allowed: this page is read-only (GET, HEAD)" % self.command,
                             [("Allow", ALLOWED)])

        def _no_stream(self, text: str) -> None:
            n = web.streams
            self._json_error(404, "no stream %s: this run has %d stream%s (0 to %d)"
                             % (text[:40], n, "" if n == 1 else "s", n - 1))

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlsplit(self.path)
            path, query = url.path, parse_qs(url.query)
            match = STREAM_PATH.match(path)
            try:
                if path in ("/", "/index.html"):
                    page = multi_page(web.names, web.max_tiles_direct, web.mosaic_fps) if web.names else PAGE.encode()
                    self._send(page, "text/html; charset=utf-8")
                elif path == "/stats.json":
                    self._send(web.stats_json(), "application/json")
                elif path == "/metrics":
                    if web.metrics is None:
                        return self._json_error(501, web.metrics_missing)
                    self._send(web.metrics.exposition(), web.metrics.content_type)
                elif path == "/snapshot.jpg":
                    text = query.get("stream", [None])[0]
                    index = web.stream_index(text)
                    if index is None:
                        return self._no_stream(str(text))
                    jpeg = web.snapshot(index)
                    self._send(jpeg or b"no frame yet", "image/jpeg" if jpeg else "text/plain", 200 if jpeg else 503)
                elif path == "/stream.mjpg" or match:
                    index = web.stream_index(match.group(1) if match else None)
                    if index is None:
                        return self._no_stream(match.group(1))
                    self._stream(index)
                elif path == "/mosaic.mjpg":
                    self._stream(None)
                else:
                    self._json_error(404, "not found: %s (try /, /stream.mjpg, /stats.json, /snapshot.jpg, /metrics)"
                                     % path[:80])
            except (BrokenPipeError, ConnectionResetError):
                pass  # the viewer went away

        def _stream(self, index: Optional[int]) -> None:
            """MJPEG of stream ``index``, or of the mosaic (None), until the viewer goes or the server closes."""
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command == "HEAD":
                return
            web.add_client(+1, index)
            try:
                seq = 0
                while not web._closed and not self._gone():
                    seq, jpeg = web.next_mosaic(seq) if index is None else web.next_jpeg(seq, stream=index)
                    if jpeg:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpeg) + jpeg + b"\r\n")
            finally:
                web.add_client(-1, index)

        def _gone(self) -> bool:
            """The viewer closed the connection (readable, nothing to read): not counted until a write fails."""
            try:
                readable = select.select([self.connection], [], [], 0)[0]
                return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                return True

    return Handler
