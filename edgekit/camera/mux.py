"""One batch from many live sources, as DeepStream's stream muxer (nvstreammux) forms it.

Each source keeps its own capture thread (``edgekit.video.capture.Capture``: newest frame, reconnect with backoff).
The muxer takes one frame per live source and pushes the batch when every live source has given one, or when
``timeout`` seconds (about one frame period of the fastest source: nvstreammux's ``batched-push-timeout``) have
passed since the batch's first frame. A stalled source never holds a batch longer than that, and a source that
ended or was given up (``--max-retries``) leaves the batch for good while the others go on.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from edgekit.camera.stats import RollingRate, StageStats
from edgekit.video.capture import Capture, EndOfStream, Frame

LIVE, STALLED, ENDED, FAILED = "live", "stalled", "ended", "failed"
POLL = 0.1  # seconds: how often a muxer with nothing to do looks at the stop flag


@dataclass
class Stream:
    """One source of a multi-source run and its own numbers."""

    index: int
    name: str
    capture: Capture
    status: str = LIVE
    stats: StageStats = field(default_factory=StageStats)
    rate: RollingRate = field(default_factory=RollingRate)
    processed: int = 0
    stalls: int = 0
    batch_sizes: Counter = field(default_factory=Counter)  # frames in the batches this stream rode in
    last_frame_at: float = 0.0
    detections: int = 0
    failed: Optional[str] = None
    dropped_base: int = 0  # the capture's dropped count when the numbers were last reset (after a warm-up)
    first_at: float = 0.0  # perf_counter time of its first and last frame out of the loop (steady FPS)
    last_at: float = 0.0

    @property
    def alive(self) -> bool:
        return self.status in (LIVE, STALLED)


Batch = List[Tuple[Stream, Frame]]


class Muxer:
    def __init__(self, streams: List[Stream], timeout: float, capture_timeout: float,
                 on_event: Optional[Callable[[str], None]] = None) -> None:
        self.streams = streams
        self.timeout = timeout
        self.capture_timeout = capture_timeout
        self.on_event = on_event or (lambda msg: None)
        self.wake = threading.Event()
        self.timeouts = 0  # batches pushed by the timeout, short of a frame from every live source
        for stream in streams:
            stream.capture.on_frame = self.wake.set

    def start(self) -> None:
        now = time.perf_counter()
        for stream in self.streams:
            stream.last_frame_at = now

    @property
    def alive(self) -> List[Stream]:
        return [s for s in self.streams if s.alive]

    def next_batch(self, stop: threading.Event) -> Tuple[Optional[Batch], Dict[str, float]]:
        """(batch, times): a batch of one frame per source that had one, in source order; (None, {}) when no frame
        came within ``POLL`` s (the caller checks its stop flag and asks again); ([], {}) when every source has
        ended or failed. ``times``: ``capture_wait`` (ms until the batch's first frame), ``mux_wait`` (ms from
        its first frame to the push: the latency batching adds) and ``waits`` (per stream index: ms from taking its
        frame to the push, which the stream's e2e pays)."""
        t0 = time.perf_counter()
        taken: Dict[int, Frame] = {}
        took: Dict[int, float] = {}  # when each frame was taken
        first: Optional[float] = None
        while not stop.is_set():
            self.wake.clear()  # before looking: a frame published after this wakes the wait below
            now = time.perf_counter()
            for stream in self.alive:
                if stream.index not in taken:
                    frame = self._take(stream, now)
                    if frame is not None:
                        taken[stream.index] = frame
                        took[stream.index] = time.perf_counter()
                        first = first if first is not None else took[stream.index]
            alive = self.alive
            if not alive and not taken:
                return [], {}
            now = time.perf_counter()
            complete = all(s.index in taken for s in alive)
            if taken and (complete or now - first >= self.timeout):
                if not complete:
                    self.timeouts += 1
                batch = [(s, taken[s.index]) for s in self.streams if s.index in taken]
                waits = {i: (now - t) * 1e3 for i, t in took.items()}
                return batch, {"capture_wait": (first - t0) * 1e3, "mux_wait": (now - first) * 1e3, "waits": waits}
            if not taken and now - t0 >= POLL:
                return None, {}
            self._note_stalls(now)
            wait = POLL if first is None else max(self.timeout - (now - first), 0.0)
            self.wake.wait(min(wait, POLL))
        return None, {}

    def _take(self, stream: Stream, now: float) -> Optional[Frame]:
        try:
            frame = stream.capture.read(0)
        except EndOfStream:
            stream.failed = stream.capture.failed
            stream.status = FAILED if stream.capture.failed else ENDED
            self.on_event("%s %s; %d other source(s) go on" % (
                stream.name, "was given up" if stream.failed else "ended", len(self.alive)))
            return None
        if frame is not None:
            if stream.status == STALLED:
                self.on_event("%s delivers frames again" % stream.name)
            stream.status = LIVE
            stream.last_frame_at = now
        return frame

    def _note_stalls(self, now: float) -> None:
        for stream in self.alive:
            if stream.status == LIVE and now - stream.last_frame_at > self.capture_timeout:
                stream.status = STALLED
                stream.stalls += 1
                self.on_event("no frame from %s for %.1f s; the other sources go on" % (
                    stream.name, self.capture_timeout))


def default_timeout(captures: List[Capture]) -> float:
    """About one frame period of the fastest paced source (nvstreammux's advice); 1/30 s when none is paced
    (files and synthetic://?fps=0 have a frame whenever asked, so the timeout rarely matters for them)."""
    rates = [c.paced_fps for c in captures if c.paced_fps]
    return 1.0 / max(rates) if rates else 1.0 / 30
