"""Capture in its own thread; the consumer always gets the newest frame (no growing queue).

Live sources (cameras, streams, synthetic) overwrite a one-frame slot and count what the consumer never
took as dropped. Files and image folders are lossless by default: capture waits for the consumer.
A source that fails or stalls is reopened with exponential backoff while the loop goes on; a source that
cannot be opened at start is a one-line error.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.video.sources import FrameSource, SourceError


@dataclass
class Frame:
    image: np.ndarray
    index: int  # sequence number of frames delivered by the source
    t_capture: float  # time.perf_counter() when it was read
    read_ms: float = 0.0  # the capture thread's work for this frame: read/decode/convert, not the source's pacing


class EndOfStream(Exception):
    """A finite source (file, folder) has no more frames."""


def as_bgr(image: np.ndarray) -> Optional[np.ndarray]:
    """Gray or BGRA frames become BGR; anything else that is not HxWx3 uint8 is rejected (None)."""
    if image.dtype != np.uint8 or image.size == 0:
        return None
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    return None


class Capture:
    def __init__(self, source: FrameSource, live: bool, loop: bool = False, max_backoff: float = 8.0,
                 on_event: Optional[Callable[[str], None]] = None) -> None:
        self.source = source
        self.live = live
        self.loop = loop
        self.max_backoff = max_backoff
        self.on_event = on_event or (lambda msg: None)
        self.captured = 0
        self.dropped = 0
        self.bad_frames = 0
        self.failures = 0
        self.reconnects = 0
        self.events: List[str] = []
        self._latest: Optional[Frame] = None
        self._ended = False
        self._opened = False
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="edgekit-capture", daemon=True)

    # --- consumer side ------------------------------------------------------------------------------
    def open(self) -> Capture:
        """Open the source now: a source that cannot be opened is a one-line error."""
        if not self._opened:
            try:
                self.source.open()
            except SourceError as exc:
                raise EdgekitError(str(exc)) from exc
            self._opened = True
        return self

    def start(self) -> Capture:
        """Open (if not yet) and start capturing in the background."""
        self.open()
        self._thread.start()
        return self

    @property
    def paced_fps(self) -> Optional[float]:
        """The frame rate a live (or --realtime) source delivers at, when it says; None for sources read as fast
        as the loop takes them (files, folders, synthetic://?fps=0)."""
        fps = self.source.fps
        return float(fps) if self.live and fps and fps > 0 else None

    def read(self, timeout: float) -> Optional[Frame]:
        """The newest frame not yet taken; None after ``timeout`` seconds; EndOfStream when a file ended."""
        deadline = time.perf_counter() + timeout
        with self._cond:
            while self._latest is None:
                if self._ended:
                    raise EndOfStream(self.source.name)
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._cond.wait(remaining)
            frame, self._latest = self._latest, None
            self._cond.notify_all()
            return frame

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.source.close()

    # --- capture thread -----------------------------------------------------------------------------
    def _event(self, msg: str) -> None:
        self.events.append(msg)
        self.on_event(msg)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                image = self.source.read()
            except Exception as exc:  # a backend error mid-stream counts as a failure, not a crash
                self._event("%s: read error: %s" % (self.source.name, exc))
                image = None
            if image is None:
                if self._stop.is_set():
                    break
                if self.source.ended and not self.loop:
                    with self._cond:
                        self._ended = True
                        self._cond.notify_all()
                    return
                if not self.source.ended:
                    self.failures += 1
                    self._event("%s stopped delivering frames; reopening" % self.source.name)
                self._reopen()
                continue
            image = as_bgr(image)
            if image is None:
                self.bad_frames += 1
                continue
            self._publish(image, (time.perf_counter() - t0 - self.source.last_wait) * 1e3)

    def _publish(self, image: np.ndarray, read_ms: float = 0.0) -> None:
        with self._cond:
            if not self.live:  # lossless: wait until the consumer took the previous frame
                while self._latest is not None and not self._stop.is_set():
                    self._cond.wait(0.1)
            if self._latest is not None:
                self.dropped += 1
            self._latest = Frame(image, self.captured, time.perf_counter(), max(read_ms, 0.0))
            self.captured += 1
            self._cond.notify_all()

    def _reopen(self) -> None:
        """Reopen (a looped file's restart, or recovery after a failure) with exponential backoff."""
        backoff = 0.0 if self.source.ended else 0.25
        while not self._stop.is_set():
            if backoff and self._stop.wait(backoff):
                return
            try:
                self.source.open()
                if backoff:
                    self.reconnects += 1
                    self._event("%s reopened" % self.source.name)
                return
            except Exception as exc:  # SourceError, or a backend error while reopening
                backoff = min(max(backoff, 0.25) * 2, self.max_backoff)
                self._event("%s: reopen failed (%s); retrying in %.1f s" % (self.source.name, exc, backoff))
