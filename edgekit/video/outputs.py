"""Outputs of the live loop: a window, a recording. Each takes annotated BGR frames; ``close()`` is safe twice.

A recording that runs out of disk stops recording (finalized, playable) and the loop goes on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from edgekit.errors import EdgekitError


class Output:
    name = "output"

    def write(self, frame: np.ndarray) -> None:
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

    def write(self, frame: np.ndarray) -> None:
        cv2.imshow(self.title, frame)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self._quit = True

    @property
    def wants_stop(self) -> bool:
        return self._quit

    def close(self) -> None:
        cv2.destroyAllWindows()


class Recorder(Output):
    """MP4 (mp4v) or AVI (MJPG) recording at the source's rate; frames of another size are resized."""

    name = "record"
    check_every = 30  # frames between free-space checks

    def __init__(self, path, fps: float, min_free_mb: float = 200.0,
                 free_mb: Optional[Callable[[Path], float]] = None, on_event=None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps if fps and fps > 0 else 30.0
        self.min_free_mb = min_free_mb
        self.free_mb = free_mb or _free_mb
        self.on_event = on_event or (lambda msg: None)
        self.writer = None
        self.size = None
        self.frames = 0
        self.stopped_reason: Optional[str] = None

    def write(self, frame: np.ndarray) -> None:
        if self.stopped_reason:
            return
        if self.frames % self.check_every == 0 and self.free_mb(self.path.parent) < self.min_free_mb:
            self.stop("less than %d MB free on %s" % (self.min_free_mb, self.path.parent))
            return
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                self.writer = None
                raise EdgekitError("cannot record to %s: check the folder exists and is writable, and the "
                                   "extension (.mp4 or .avi)" % self.path)
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)
        self.frames += 1

    def stop(self, reason: str) -> None:
        self.stopped_reason = reason
        self.on_event("recording stopped after %d frames: %s (%s is finalized)" % (self.frames, reason, self.path))
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()  # writes the container index: the file plays
            self.writer = None


def _free_mb(folder: Path) -> float:
    return shutil.disk_usage(str(folder)).free / 1e6
