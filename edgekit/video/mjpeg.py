"""HTTP(S) IP cameras: an MJPEG stream (``multipart/x-mixed-replace``) or a JPEG snapshot URL polled.

The common "IP webcam" setup (phone apps, ESP32-CAM, many network cameras, ``edgekit camera --serve``'s own
``/stream.mjpg``). Read with a plain HTTP client, the multipart parts split by their headers and decoded with
``cv2.imdecode``: it works with any OpenCV build (JetPack's has no FFmpeg-over-HTTP guarantee) and needs no
GStreamer. A dropped connection makes ``read()`` return None; :class:`edgekit.video.capture.Capture` then
reopens it with backoff, as for RTSP. ``http://user:pass@host/...`` sends the credentials as Basic auth.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from typing import Optional
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import numpy as np

from edgekit.video.sources import FrameSource, SourceError

TIMEOUT = 5.0  # seconds to connect, and to wait for the next bytes of a frame
MAX_PART = 32 * 1024 * 1024  # a part larger than this is not a camera frame
HINT = "check the URL (an MJPEG stream such as http://HOST:PORT/video.mjpg, or a JPEG snapshot URL), " \
       "credentials, and that the camera is reachable"


def split_credentials(url: str):
    """(url without user:pass, Authorization header value or None)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    netloc = ("[%s]" % host if ":" in host else host) + (":%d" % parts.port if parts.port else "")
    token = base64.b64encode(("%s:%s" % (unquote(parts.username), unquote(parts.password or ""))).encode())
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), "Basic " + token.decode()


class MjpegSource(FrameSource):
    """Frames from an HTTP MJPEG stream, or from a JPEG snapshot URL fetched once per frame."""

    def __init__(self, name: str, url: str, timeout: float = TIMEOUT) -> None:
        super().__init__(name)  # fps None: an MJPEG stream does not say its rate
        self.url, self.auth = split_credentials(url)
        self.timeout = timeout
        self.response = None
        self.boundary: Optional[bytes] = None  # None: a snapshot URL
        self.pending: Optional[np.ndarray] = None  # the snapshot fetched while opening

    def _get(self):
        request = urllib.request.Request(self.url, headers={"User-Agent": "edgekit"})
        if self.auth:
            request.add_header("Authorization", self.auth)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise SourceError("cannot open %s: the camera answered HTTP %d %s (%s)" % (
                self.name, exc.code, exc.reason, "check the credentials" if exc.code in (401, 403) else HINT)) from exc
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise SourceError("cannot open %s: %s: %s" % (self.name, reason, HINT)) from exc

    def open(self) -> None:
        super().open()
        self.close()
        response = self._get()
        ctype = response.headers.get("Content-Type", "")
        if ctype.lower().startswith("multipart/"):
            boundary = next((p.split("=", 1)[1].strip().strip('"') for p in ctype.split(";")
                             if p.strip().lower().startswith("boundary=")), "")
            if not boundary:
                response.close()
                raise SourceError("cannot open %s: %s has no boundary" % (self.name, ctype))
            self.boundary = boundary.encode() if boundary.startswith("--") else b"--" + boundary.encode()
            self.response = response
            return
        try:
            frame = self._decode(response.read(MAX_PART))
        except OSError as exc:
            raise SourceError("cannot open %s: %s: %s" % (self.name, exc, HINT)) from exc
        finally:
            response.close()
        if frame is None:
            raise SourceError("cannot open %s: it sent %s, not an MJPEG stream (multipart/x-mixed-replace) or a "
                              "JPEG/PNG image: %s" % (self.name, ctype or "no Content-Type", HINT))
        self.boundary, self.pending = None, frame

    @staticmethod
    def _decode(data: bytes) -> Optional[np.ndarray]:
        if not data:
            return None
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    def read(self) -> Optional[np.ndarray]:
        try:
            if self.boundary is None:  # a snapshot URL: one GET per frame
                frame, self.pending = self.pending, None
                if frame is None:
                    with self._get() as response:
                        frame = self._decode(response.read(MAX_PART))
                return frame
            return self._next_part()
        except (OSError, ValueError, SourceError):
            return None  # Capture reopens with backoff

    def _next_part(self) -> Optional[np.ndarray]:
        """The next JPEG part of the stream; None at the end of the stream (or a part that is not an image)."""
        response = self.response
        if response is None:
            return None
        line = b""
        for _ in range(64):  # skip blank lines and preamble up to the boundary
            line = response.readline(4096)
            if not line:
                return None
            if line.strip().startswith(self.boundary):
                break
        else:
            return None
        length = None
        while True:
            header = response.readline(4096)
            if not header:
                return None
            if not header.strip():
                break
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is not None:
            if not 0 < length <= MAX_PART:
                return None
            data = response.read(length)
        else:  # no Content-Length: read to the JPEG end marker
            data = self._read_to_eoi(response)
        return self._decode(data)

    @staticmethod
    def _read_to_eoi(response) -> bytes:
        chunks, total = [], 0
        while total < MAX_PART:
            chunk = response.readline(65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if chunk.rstrip(b"\r\n").endswith(b"\xff\xd9"):
                break
        return b"".join(chunks)

    def close(self) -> None:
        if self.response is not None:
            try:
                self.response.close()
            except OSError:
                pass
            self.response = None

