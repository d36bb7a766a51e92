"""Outputs of the live loop: a window, a recording. Each takes annotated BGR frames; ``close()`` is safe twice.

A recording that runs out of disk stops recording (finalized, playable) and the loop goes on; a recording that
could not be written says so (``failed``), never claims a file that is not there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.outputs import RECORD_MIN_FREE_MB


class Output:
    name = "output"

    def write(self, frame: np.ndarray, index: Optional[int] = None) -> None:
        """One annotated frame; ``index`` is its number at the source (gaps: frames the loop dropped)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def wants_stop(self) -> bool:
        """True when the user asked to quit through this output (e.g. 'q' in the window)."""
        return False


class Window(Output):
    name = "window"

    def __init__(self, title: str = "edgekit") -> None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            raise EdgekitError("--display needs a screen (DISPLAY is not set): use --serve PORT or --headless")
        self.title = title
        self._quit = False
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise EdgekitError("this OpenCV cannot open windows (%s): use --serve PORT or --headless"
                               % str(exc).strip().splitlines()[-1][:120]) from exc

    def write(self, frame: np.ndarray, index: Optional[int] = None) -> None:
        cv2.imshow(self.title, frame)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self._quit = True

    @property
    def wants_stop(self) -> bool:
        return self._quit

    def close(self) -> None:
        cv2.destroyAllWindows()


class Recorder(Output):
    """MP4 (mp4v) or AVI (MJPG) recording that plays at the source's speed; frames of another size are resized.

    ``fps`` is the rate the frames stand for (a file's own rate, a live source's nominal rate, --fps for
    images); None measures it: the first ``measure_s`` seconds of frames are held, the source's rate is taken
    from them (the median time per source frame, dropped ones included), then they are written (cv2.VideoWriter fixes
    its rate when it opens, so the rate is measured before, not rewritten after). Source frames the loop did not
    take (a live source's drops, told by the gap in ``index``) repeat the frame before them, so a loop slower
    than its camera still records real time. ``frames`` counts what went into the file, repeats included.
    """

    name = "record"
    check_every = 30  # frames between free-space checks
    measure_s = 1.0
    measure_max = 90  # frames held while measuring, at most
    fallback_fps = 30.0  # a recording too short to measure

    def __init__(self, path, fps: Optional[float], rate_note: str = "", min_free_mb: float = RECORD_MIN_FREE_MB,
                 free_mb: Optional[Callable[[Path], float]] = None, on_event=None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = writer_rate(float(fps)) if fps and fps > 0 else None
        self.rate_note = rate_note or ("measured" if self.fps is None else "the source's rate")
        self.min_free_mb = min_free_mb
        self.free_mb = free_mb or _free_mb
        self.on_event = on_event or (lambda msg: None)
        self.clock = clock
        self.writer = None
        self.size = None
        self.frames = 0  # frames in the file, repeats included
        self.repeated = 0
        self.stopped_reason: Optional[str] = None
        self.failed: Optional[str] = None  # set when no playable file could be written
        self._next_check = 0
        self._held: List[Tuple[np.ndarray, int, float]] = []  # (frame, index, time) while measuring the rate
        self._last: Optional[np.ndarray] = None
        self._t0: Optional[float] = None  # with a measured rate, frames keep to this clock from its first frame
        self._last_index: Optional[int] = None

    def write(self, frame: np.ndarray, index: Optional[int] = None) -> None:
        if self.stopped_reason:
            return
        if index is None:  # no source numbers: every frame is the next one
            previous = self._held[-1][1] if self._held else self._last_index
            index = 0 if previous is None else previous + 1
        if self.fps is None:
            self._held.append((frame, index, self.clock()))
            first, last = self._held[0], self._held[-1]
            if last[2] - first[2] >= self.measure_s or len(self._held) >= self.measure_max:
                self._settle()
            return
        self._put(frame, index, self.clock() if self._t0 is not None else None)

    def _settle(self) -> None:
        """Fix the measured rate from the held frames and write them."""
        held, self._held = self._held, []
        # seconds per source frame between consecutive frames; the median, as a stream's first frames can come
        # in a burst (buffered while the model loaded)
        steps = sorted((b[2] - a[2]) / (b[1] - a[1]) for a, b in zip(held, held[1:]) if b[1] > a[1])
        if steps and steps[len(steps) // 2] > 0:
            self.fps = writer_rate(min(max(1.0 / steps[len(steps) // 2], 0.1), 1000.0))
        else:
            self.fps = self.fallback_fps
            self.rate_note = "too short to measure the rate"
        self._t0 = held[0][2]
        for frame, index, t in held:
            self._put(frame, index, t)
            if self.stopped_reason:
                return

    def _put(self, frame: np.ndarray, index: int, t: Optional[float] = None) -> None:
        if t is not None and self._t0 is not None:  # a measured rate: keep to the clock (the loop may slow down)
            missing = int(round((t - self._t0) * (self.fps or 1.0))) - self.frames
        else:  # a known rate: the source's frame numbers say what the loop dropped
            missing = index - self._last_index - 1 if self._last_index is not None else 0
        for _ in range(min(max(missing, 0), int((self.fps or 1.0) * 10))):  # hold the frame before over the gap
            if not self._write_one(self._last):
                return
            self.repeated += 1
        if self._write_one(frame):
            self._last, self._last_index = frame, index

    def _write_one(self, frame) -> bool:
        if self.frames >= self._next_check:
            self._next_check = self.frames + self.check_every
            if self.free_mb(self.path.parent) < self.min_free_mb:
                self.stop("less than %d MB free on %s" % (self.min_free_mb, self.path.parent))
                return False
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                self.writer = None
                raise EdgekitError("cannot record to %s: OpenCV's writer refused %dx%d at %g FPS; check the "
                                   "extension (.mp4 or .avi) and that the folder is writable"
                                   % (self.path, self.size[0], self.size[1], self.fps))
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)
        self.frames += 1
        return True

    def stop(self, reason: str) -> None:
        self.stopped_reason = reason
        self._held = []
        if self.writer is None:
            self.failed = "the recording %s was not started: %s; no file was written" % (self.path, reason)
            self.on_event(self.failed)
            return
        self.close()
        if not self.failed:
            self.on_event("recording stopped after %d frames: %s (%s is finalized)" % (self.frames, reason,
                                                                                       self.path))

    def close(self) -> None:
        if self._held and not self.stopped_reason:
            try:
                self._settle()
            except EdgekitError as exc:
                self.failed = str(exc)
        if self.writer is not None:
            self.writer.release()  # writes the container index: the file plays
            self.writer = None
            if not self.path.is_file() or self.path.stat().st_size == 0:  # the writer does not report errors
                self.failed = "the recording %s could not be written (%d frames lost): is the disk full?" % (
                    self.path, self.frames)
                self.on_event(self.failed)
                with contextlib.suppress(OSError):
                    self.path.unlink()

    def describe(self) -> str:
        """The line for the summary: what the file holds and at which rate, or why there is none."""
        if self.failed:
            return self.failed
        if not self.frames:
            return "no recording written to %s: no frame reached it" % self.path
        repeats = "; %d repeat the frame before, %s" % (self.repeated, "to keep to the clock" if self._t0 is not None
                                                         else "where the loop dropped source frames") \
            if self.repeated else ""
        return "wrote %s (%d frames at %.1f FPS, %s%s)" % (self.path, self.frames, self.fps or 0.0,
                                                          self.rate_note, repeats)


def writer_rate(fps: float) -> float:
    """``fps`` as the writer can take it: FFmpeg's MPEG-4 refuses a time base denominator over 65535, and OpenCV
    passes the rate as thousandths (141.843 -> 1000/141843), so a rate keeps the decimals that fit."""
    for digits in (3, 2, 1):
        rate = round(fps, digits)
        if Fraction(int(round(rate * 1000)), 1000).numerator <= 65535:
            return rate
    return float(max(round(fps), 1))


def _free_mb(folder: Path) -> float:
    return shutil.disk_usage(str(folder)).free / 1e6
