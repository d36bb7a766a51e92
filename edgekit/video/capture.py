"""Capture in its own thread; the consumer always gets the newest frame (no growing queue).

Live sources (cameras, streams, synthetic) overwrite a one-frame slot and count what the consumer never
took as dropped. Files and image folders are lossless by default: capture waits for the consumer.
A source that fails or stalls is reopened with exponential backoff (0.5 s doubling up to 8 s) while the loop
goes on, and given up after ``max_retries`` failures in a row without a frame (``failed`` then says why and the
consumer sees the end of the stream); a source that cannot be opened at start is a one-line error. Files a
source could not decode are counted as bad frames and named (``bad_files``).
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


DEFAULT_RETRIES = 10  # 0.5 + 1 + 2 + 4 + 8 x 6 s: about a minute of retrying before giving up


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
                 on_event: Optional[Callable[[str], None]] = None, max_retries: int = DEFAULT_RETRIES) -> None:
        self.source = source
        self.live = live
        self.loop = loop
        self.max_backoff = max_backoff
        self.max_retries = max_retries
        self.on_event = on_event or (lambda msg: None)
        self.captured = 0
        self.dropped = 0
        self.bad_frames = 0
        self.bad_files: List[str] = []  # files the source could not decode (image folders)
        self.failures = 0
        self.reconnects = 0
        self.failed: Optional[str] = None  # set when the source was given up
        self._streak = 0  # failures (read or reopen) since the last good frame
        self._delivered = False  # a frame since the source was (re)opened
        self.events: List[str] = []
        self._latest: Optional[Frame] = None
        self._ended = False
        self._opened = False
        self._stop = threading.Event()
        self._cond = threading.Condition()
        # called (from the capture thread) after each new frame and at the end: a muxer of several captures waits
        # on one event instead of polling each (edgekit.camera.mux)
        self.on_frame: Optional[Callable[[], None]] = None
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
            self._note_bad_files()
            if image is None:
                if self._stop.is_set():
                    break
                if self.source.ended and not self.loop:
                    self._end()
                    return
                if not self.source.ended or not self._delivered:  # a looped file with no usable frame fails too
                    self.failures += 1
                    self._streak += 1
                    self._event("%s %s; reopening" % (self.source.name, "stopped delivering frames"
                                                      if not self.source.ended else "ended without a usable frame"))
                    self.source.ended = False
                self._delivered = False
                if not self._reopen():
                    return
                continue
            image = as_bgr(image)
            if image is None:
                self.bad_frames += 1
                continue
            self._streak = 0
            self._delivered = True
            self._publish(image, (time.perf_counter() - t0 - self.source.last_wait) * 1e3)

    def _note_bad_files(self) -> None:
        """Name each file the source skipped because it could not be decoded (once per file)."""
        skipped = getattr(self.source, "undecodable", ())
        for name in skipped[len(self.bad_files):]:
            self.bad_files.append(name)
            self.bad_frames += 1
            self._event("%s cannot be decoded as an image; skipped" % name)

    def _end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        if self.on_frame:
            self.on_frame()

    def _publish(self, image: np.ndarray, read_ms: float = 0.0) -> None:
        with self._cond:
            if not self.live:  # lossless: wait until the consumer took the previous frame
                while self._latest is not None and not self._stop.is_set():
                    self._cond.wait(0.1)
            if self._stop.is_set():
                return  # the loop stopped: this frame was never offered, so it is not dropped
            if self._latest is not None:
                self.dropped += 1
            self._latest = Frame(image, self.captured, time.perf_counter(), max(read_ms, 0.0))
            self.captured += 1
            self._cond.notify_all()
        if self.on_frame:
            self.on_frame()

    def _backoff(self) -> float:
        """Seconds before the next reopen: 0.5 s doubling per failure in a row, at most ``max_backoff``."""
        return min(0.5 * 2 ** (self._streak - 1), self.max_backoff)

    def _reopen(self) -> bool:
        """Reopen: a looped file restarts at once; after a failure, wait 0.5 s doubling up to ``max_backoff``
        per failure in a row, and give up (False) after ``max_retries`` of them without a frame in between."""
        restart = self.source.ended
        while not self._stop.is_set():
            if not restart:
                if self._streak > self.max_retries:
                    self.failed = "%s failed %d times in a row without delivering a frame; gave up (%s)" % (
                        self.source.name, self._streak, "--max-retries %d" % self.max_retries)
                    self._event(self.failed)
                    self._end()
                    return False
                if self._stop.wait(self._backoff()):
                    return True
            try:
                self.source.open()
                if not restart:
                    self.reconnects += 1
                    self._event("%s reopened" % self.source.name)
                return True
            except Exception as exc:  # SourceError, or a backend error while reopening
                restart = False
                self.failures += 1
                self._streak += 1
                self._event("%s: reopen failed (%s); retrying in %.1f s" % (
                    self.source.name, exc, self._backoff()))
        return True
