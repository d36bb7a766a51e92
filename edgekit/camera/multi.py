"""Several sources through one engine: capture per source -> mux -> preprocess -> inference (one batch) -> per
frame: postprocess, track, count, draw, outputs; every number kept per stream and for the run.

The driving (threads, one-slot queues, stop on a signal, --duration/--frames) is the single-source loop's
(``CameraLoop``); what differs is a job: a batch of one frame per live source (``edgekit.camera.mux``) instead of
one frame. A model with a static batch B takes B frames each time: a batch with fewer is padded (counted and
shown); a dynamic-batch model gets the real number.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from edgekit.camera.analytics import StreamAnalytics, count_line, finish_record
from edgekit.camera.loop import _DONE, CameraConfig, CameraLoop
from edgekit.camera.mux import ENDED, FAILED, Batch, Muxer, Stream
from edgekit.camera.stats import JsonlLog, RollingRate, StageStats
from edgekit.errors import EdgekitError
from edgekit.log import info
from edgekit.runtime import Runner
from edgekit.video.outputs import Output
from edgekit.vision.draw import draw_detections, draw_panel

STATS_EVERY = 0.5  # seconds between live numbers for the web page


@dataclass
class BatchJob:
    batch: Batch
    times: Dict[str, float]
    number: int
    waits: Dict[int, float] = field(default_factory=dict)  # per stream: ms its frame waited in the muxer
    blob: Any = None
    boxes: Any = None
    outputs: Any = None


@dataclass
class StreamSinks:
    """What one stream writes to: its recording and frame log, its track/count stages."""

    outputs: List[Output] = field(default_factory=list)
    log: Optional[JsonlLog] = None
    analytics: Optional[StreamAnalytics] = None


def batch_size(runner: Runner, sources: int) -> Optional[int]:
    """The batch every inference gets: the model's static batch (checked against the sources), or None (dynamic)."""
    static = runner.static_batch
    if static is not None and sources > static:
        raise EdgekitError("%s has static batch %d and %d sources were given: export with --batch %d (or --dynamic) "
                           "to run them through one engine" % (runner.path.name, static, sources, sources))
    return static


class MultiLoop(CameraLoop):
    def __init__(self, runner: Runner, streams: List[Stream], sinks: List[StreamSinks], shared: List[Output],
                 config: CameraConfig, mux_timeout: float, on_event=None) -> None:
        super().__init__(runner, None, shared, config, None, on_event)
        self.streams, self.sinks = streams, sinks
        self.mux = Muxer(streams, mux_timeout, config.capture_timeout, self.on_event)
        self.batch = batch_size(runner, len(streams))
        self.mosaic = next((o for o in shared if hasattr(o, "update_tile")), None)
        self.batches = 0  # formed (preprocessed): numbers the jobs
        self.frames_in = Counter()  # real frames per batch -> batches through the main thread
        self._stats_at = 0.0
        self.measure_from: Optional[float] = None  # perf_counter time: numbers before it are warm-up, not kept
        self.measured_at: Optional[float] = None

    # --- stages --------------------------------------------------------------------------------------
    def next_job(self) -> Any:
        batch, times = self.mux.next_batch(self.stop_event)
        if batch is None:
            return None
        if not batch:
            return _DONE
        waits = times.pop("waits", {})
        t1 = time.perf_counter()
        blob, boxes = self.pipe.preprocess([frame.image for _, frame in batch])
        pad = (self.batch or len(batch)) - len(batch)
        if pad:  # a static batch-B model: the missing frames are zeros, their outputs are not read
            blob = np.concatenate([blob, np.zeros((pad,) + blob.shape[1:], blob.dtype)])
        times["preprocess"] = (time.perf_counter() - t1) * 1e3
        self.batches += 1
        return BatchJob(batch, times, self.batches, waits, blob, boxes)

    def finish(self, job: BatchJob) -> None:
        t0 = time.perf_counter()
        if self.measure_from is not None and t0 >= self.measure_from:
            self.reset_numbers(t0)
        detections = self.pipe.postprocess(job.outputs, job.boxes)
        job.times["postprocess"] = (time.perf_counter() - t0) * 1e3
        self.frames_in[len(job.batch)] += 1
        self.stats.add(job.times)
        for (stream, frame), dets in zip(job.batch, detections):
            self._finish_frame(job, stream, frame, dets)
        if self.mosaic is not None:
            self.mosaic.show()
        now = time.perf_counter()
        if self.web is not None and now - self._stats_at >= STATS_EVERY:  # percentiles per stream: not per frame
            self._stats_at = now
            self.web.update_stats(self.live_stats())
        if any(o.wants_stop for o in self.outputs):
            self.stop("window closed")
        if self.config.frames and self.finished >= self.config.frames:
            self.stop("--frames %d" % self.config.frames)

    def _finish_frame(self, job: BatchJob, stream: Stream, frame, dets) -> None:
        sinks = self.sinks[stream.index]
        image = frame.image
        times = {"capture": frame.read_ms, "mux_wait": job.waits.get(stream.index, 0.0)}
        if sinks.analytics is not None:
            dets, stage = sinks.analytics.apply(dets, image)
            times.update(stage)
        t1 = time.perf_counter()
        draw_detections(image, dets, self.names)
        if sinks.analytics is not None:
            sinks.analytics.draw(image)
        if self.config.overlay:
            draw_panel(image, self.stream_lines(stream, sinks, len(job.batch)))
        t2 = time.perf_counter()
        for out in sinks.outputs:
            out.write(image, frame.index)
        if self.web is not None:
            self.web.write_stream(stream.index, image)
        if self.mosaic is not None:
            self.mosaic.update_tile(stream.index, image)
        t3 = time.perf_counter()
        times.update(draw=(t2 - t1) * 1e3, output=(t3 - t2) * 1e3, e2e=(t3 - frame.t_capture) * 1e3)
        stream.stats.add(times)
        self.stats.add({k: v for k, v in times.items() if k not in ("capture", "mux_wait")})
        stream.rate.tick(t3)
        self.rate.tick(t3)
        stream.first_at = stream.first_at or t3
        stream.last_at = t3
        stream.processed += 1
        stream.detections = len(dets)
        stream.batch_sizes[len(job.batch)] += 1
        self.processed += 1
        if sinks.log:
            record = {"stream": stream.index, "frame": stream.processed, "source_frame": frame.index,
                      "batch": job.number, "batch_frames": len(job.batch),
                      "ms": {k: round(v, 3) for k, v in {**job.times, **times}.items()}, "detections": len(dets),
                      "fps": round(stream.rate.fps(), 2), "dropped": stream.capture.dropped}
            sinks.log.write(finish_record(record, dets, sinks.analytics, stream.processed))

    def reset_numbers(self, now: float) -> None:
        """Forget the warm-up: every count and sample starts again from ``now``."""
        self.measure_from, self.measured_at = None, now
        self.stats, self.rate = StageStats(), RollingRate()
        self.processed = 0
        self.frames_in.clear()
        self.mux.timeouts = 0
        for stream in self.streams:
            stream.stats, stream.rate = StageStats(), RollingRate()
            stream.processed = stream.stalls = 0
            stream.first_at = stream.last_at = 0.0
            stream.batch_sizes.clear()
            stream.dropped_base = stream.capture.dropped

    def stream_lines(self, stream: Stream, sinks: StreamSinks, frames: int) -> List[str]:
        s = stream.stats.smoothed
        lines = ["%s  FPS %.1f  e2e %.1f ms" % (stream.name, stream.rate.fps(), s.get("e2e", 0.0)),
                 "batch %d/%d  inf %.1f ms  %s" % (frames, self.batch or frames,
                                                    self.stats.smoothed.get("inference", 0.0), self.config.label)]
        counts = sinks.analytics.counts() if sinks.analytics is not None else None
        if counts:
            lines.append(count_line(counts))
        return lines

    def stream_numbers(self, stream: Stream) -> Dict[str, Any]:
        e2e = stream.stats.summary().get("e2e") if stream.processed else None
        sinks = self.sinks[stream.index]
        return {"index": stream.index, "name": stream.name, "status": stream.status, "frames": stream.processed,
                "fps": round(stream.rate.fps(), 2), "e2e_p50": round(e2e["median"], 2) if e2e else None,
                "e2e_p99": round(e2e["p99"], 2) if e2e else None,
                "mux_wait": round(stream.stats.smoothed.get("mux_wait", 0.0), 2) if stream.processed else None,
                "dropped": stream.capture.dropped - stream.dropped_base,
                "reconnects": stream.capture.reconnects, "stalls": stream.stalls, "detections": stream.detections,
                "tracks": sinks.analytics.tracks if sinks.analytics is not None else None,
                "counts": sinks.analytics.counts() if sinks.analytics is not None else None}

    def live_stats(self, detections: int = 0) -> Dict[str, Any]:
        s = self.stats.smoothed
        return {"label": self.config.label, "fps": round(self.rate.fps(), 2), "frames": self.processed,
                "e2e": round(s.get("e2e", 0.0), 2), "stages": {k: round(v, 3) for k, v in s.items() if k != "e2e"},
                "batch": self.batch_numbers(), "streams": [self.stream_numbers(st) for st in self.streams]}

    @property
    def finished(self) -> int:
        """Batches through the main thread."""
        return sum(self.frames_in.values())

    def batch_numbers(self) -> Dict[str, Any]:
        real = sum(n * count for n, count in self.frames_in.items())
        padded = sum(((self.batch or n) - n) * count for n, count in self.frames_in.items())
        return {"size": self.batch, "batches": self.finished, "padded": padded,
                "mean_frames": round(real / self.finished, 3) if self.finished else None,
                "frames": {str(n): c for n, c in sorted(self.frames_in.items())},
                "timeouts": self.mux.timeouts, "timeout_ms": round(self.mux.timeout * 1e3, 2)}

    # --- the run's numbers ------------------------------------------------------------------------------
    def summary(self, duration: float) -> Dict[str, Any]:
        out = super().summary(duration)
        streams = []
        for stream in self.streams:
            numbers = self.stream_numbers(stream)
            numbers.update(source_fps=stream.capture.paced_fps, captured=stream.capture.captured,
                           failed=stream.failed, bad_frames=stream.capture.bad_frames,
                           fps=round(steady_fps(stream, duration), 2),
                           batch_frames={str(n): c for n, c in sorted(stream.batch_sizes.items())},
                           stages=stream.stats.summary())
            streams.append(numbers)
        out.update(streams=streams, sources=len(self.streams), batch=self.batch_numbers(),
                   stalls=sum(s.stalls for s in self.streams))
        return out


def steady_fps(stream: Stream, duration: float) -> float:
    """A stream's frames per second while it delivered: from its first to its last frame out of the loop (a stream
    that ended early is not charged the rest of the run, nor a short run its start and stop)."""
    if stream.processed >= 2 and stream.last_at > stream.first_at:
        return (stream.processed - 1) / (stream.last_at - stream.first_at)
    return stream.processed / duration if duration > 0 else 0.0


def multi_bottleneck(summary: Dict[str, Any], share: float = 0.9) -> Dict[str, Any]:
    """Which stage limits the loop, per batch: the sources (every live stream keeps ``share`` of its rate), the
    muxer + preprocess thread, inference, or the main thread (postprocess + per frame track, count, draw, output)."""
    stages = summary.get("stages") or {}
    mean = {k: v["mean"] for k, v in stages.items()}
    per_batch = summary["batch"]["mean_frames"] or 0.0
    ms = {"preprocess": round(mean.get("preprocess", 0.0), 3), "inference": round(mean.get("inference", 0.0), 3),
          "main": round(mean.get("postprocess", 0.0) + per_batch * sum(
              mean.get(k, 0.0) for k in ("track", "count", "draw", "output")), 3)}
    paced = [s for s in summary["streams"] if s.get("source_fps") and s["status"] not in (ENDED, FAILED)]
    if paced and all(s["fps"] >= share * s["source_fps"] for s in paced):
        return {"stage": "source", "stage_ms": ms,
                "line": "limited by the sources: every live stream keeps >= %d%% of its frame rate (%s)" % (
                    round(share * 100), ", ".join(
                    "%.1f/%.1f" % (s["fps"], s["source_fps"]) for s in paced))}
    if not any(ms.values()):
        return {"stage": "unknown", "stage_ms": ms, "line": "limited by: no batches timed"}
    stage = max(ms, key=lambda k: ms[k])
    return {"stage": stage, "stage_ms": ms, "line": "limited by %s: %.1f ms per batch of %.1f frames (%s ms)" % (
        stage, ms[stage], per_batch, ", ".join("%s %.1f" % (k, v) for k, v in ms.items() if k != stage))}


def announce(runner: Runner, streams: List[Stream], batch: Optional[int], timeout: float) -> None:
    info("running %s on %d sources in batches of %s (push after %.1f ms without every source)" % (
        runner.path.name, len(streams), batch if batch else "up to %d" % len(streams), timeout * 1e3))
