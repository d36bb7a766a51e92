"""Live numbers with bounded memory: per-stage samples (last N frames), rolling FPS and jitter, JSONL log."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional

import numpy as np

from edgekit.bench.stats import summarize
from edgekit.errors import EdgekitError

WINDOW = 10000  # frames kept per stage for percentiles; a 10-minute run at 30 FPS keeps the last ~5.5 min
STAGE_ORDER = ("capture", "capture_wait", "mux_wait", "preprocess", "h2d", "compute", "d2h", "inference",
               "postprocess", "track", "count", "draw", "output", "e2e")


class StageStats:
    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self.samples: Dict[str, Deque[float]] = {}
        self.count: Dict[str, int] = {}
        self.smoothed: Dict[str, float] = {}  # exponential moving average, for the overlay

    def add(self, times_ms: Dict[str, float]) -> None:
        for stage, ms in times_ms.items():
            self.samples.setdefault(stage, deque(maxlen=self.window)).append(ms)
            self.count[stage] = self.count.get(stage, 0) + 1
            prev = self.smoothed.get(stage)
            self.smoothed[stage] = ms if prev is None else 0.9 * prev + 0.1 * ms

    def ordered(self) -> List[str]:
        return [s for s in STAGE_ORDER if s in self.samples] + sorted(set(self.samples) - set(STAGE_ORDER))

    def summary(self) -> Dict[str, Dict[str, float]]:
        out = {}
        for stage in self.ordered():
            s = summarize(list(self.samples[stage]))
            s["count"] = self.count[stage]
            out[stage] = s
        return out


# the loop's stages as the bottleneck line names them, and the per-frame timings each one covers
LIMITS = (("capture", ("capture",)), ("preprocess", ("preprocess",)), ("inference", ("inference",)),
          ("postprocess", ("postprocess", "track", "count")), ("output", ("draw", "output")))
SOURCE_SHARE = 0.9  # a loop at >= 90% of a paced source's frame rate is waiting for the source


def bottleneck(summary: Dict[str, Any]) -> Dict[str, Any]:
    """Which stage limits the loop: the source when the loop keeps up with a paced source's frame rate, else
    the stage with the most time per frame (capture, preprocess, inference, postprocess, output = draw +
    outputs). In the pipelined loop each of them runs on its own thread (postprocess and output share the main
    one), so the slowest sets the pace; in the sequential loop it is the largest share of the frame time."""
    stages = summary.get("stages") or {}
    fps, source_fps = summary.get("fps") or 0.0, summary.get("source_fps")
    ms = {name: round(sum(stages[k]["mean"] for k in keys if k in stages), 3) for name, keys in LIMITS}
    frame_ms = 1e3 / fps if fps else None
    # the time a frame needs from the loop: its slowest stage when pipelined, all of them one after another if not
    busy_ms = (max(ms.values()) if summary.get("pipelined", True) else sum(ms.values())) if ms else 0.0
    keeps_up = bool(source_fps) and busy_ms < SOURCE_SHARE * 1e3 / source_fps
    if source_fps and (fps >= SOURCE_SHARE * source_fps or (keeps_up and any(ms.values()))):
        stage = "source"
        line = "limited by the source: %.1f FPS of its %.1f FPS" % (fps, source_fps)
        if summary.get("engine_fps"):
            line += " (the engine alone runs %.1f FPS)" % summary["engine_fps"]
        if fps < SOURCE_SHARE * source_fps:  # a short run: startup and the first frames weigh on the mean
            line += "; the loop needs %.1f ms of the source's %.1f ms per frame, the rest is startup or waiting" % (
                busy_ms, 1e3 / source_fps)
    elif not any(ms.values()):
        stage, line = "unknown", "limited by: no frames timed"
    else:
        stage = max(ms, key=lambda k: ms[k])
        others = ", ".join("%s %.1f" % (k, v) for k, v in ms.items() if k != stage)
        line = "limited by %s: %.1f ms per frame%s (%s ms)" % (
            stage, ms[stage], " of %.1f ms between frames" % frame_ms if frame_ms else "", others)
        if source_fps:
            line += "; source at %.1f FPS" % source_fps
    return {"stage": stage, "stage_ms": ms, "frame_ms": round(frame_ms, 3) if frame_ms else None,
            "source_fps": source_fps, "line": line}


class RollingRate:
    """Frames per second and frame-to-frame jitter over the last ``seconds``."""

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds
        self.times: Deque[float] = deque()

    def tick(self, t: Optional[float] = None) -> None:
        t = time.perf_counter() if t is None else t
        self.times.append(t)
        while self.times and t - self.times[0] > self.seconds:
            self.times.popleft()

    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)

    def jitter_ms(self) -> float:
        if len(self.times) < 3:
            return 0.0
        return float(np.std(np.diff(np.asarray(self.times))) * 1e3)


class JsonlLog:
    """One JSON line per frame, flushed to the OS as it is written: a crash loses nothing logged.

    A write that fails (a full disk) stops the log with one warning and the loop goes on: the file is cut back
    to its last whole line (removed if it has none) and ``failed`` says what happened, for the end of the run.
    """

    def __init__(self, path, on_event=None) -> None:
        self.path = path
        self.on_event = on_event or (lambda msg: None)
        self.lines = 0
        self.failed: Optional[str] = None
        self._good_bytes = 0  # the file's length after the last whole line
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.file = open(path, "w", buffering=1)  # line-buffered
        except OSError as exc:
            raise EdgekitError("cannot write the frame log %s: %s" % (path, exc.strerror or exc)) from exc

    def write(self, record: Dict[str, Any]) -> None:
        if self.file:
            line = json.dumps(record, separators=(",", ":")) + "\n"  # ASCII: one byte per character
            try:
                self.file.write(line)
            except OSError as exc:
                self._fail(exc)
                return
            self.lines += 1
            self._good_bytes += len(line)

    def close(self) -> None:
        if self.file:
            try:
                self.file.flush()
                os.fsync(self.file.fileno())
                self.file.close()
            except OSError as exc:
                self._fail(exc)
            self.file = None

    def _fail(self, exc: OSError) -> None:
        file, self.file = self.file, None
        with contextlib.suppress(OSError):
            file.close()  # tries the lost write once more: it fails again, and the descriptor is closed anyway
        try:
            if self.lines:
                os.truncate(self.path, self._good_bytes)  # keep whole lines only (needs no free space)
            else:
                os.remove(self.path)
        except OSError:
            pass
        reason = exc.strerror or str(exc)
        self.failed = "the frame log %s (%s after %d frames%s)" % (
            self.path, reason, self.lines, ", which it keeps" if self.lines else "; removed")
        self.on_event("the frame log %s stopped after %d frames: %s; the loop goes on without it" % (
            self.path, self.lines, reason))


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0
