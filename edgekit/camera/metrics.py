"""Prometheus metrics of a camera run: ``GET /metrics`` on ``edgekit camera --serve PORT`` (prometheus_client, on a
registry of its own, as ``edgekit serve`` does).

Nothing runs per frame for them: a scrape reads what the loop keeps anyway (its per-stage samples and counts, the
captures' counters, the power sampler's newest reading), so the loop takes no lock and does no extra work. Each
stage histogram folds in the samples added since the previous scrape; the loop keeps the last 10000 per stage
(``edgekit.camera.stats.WINDOW``), so scrapes fewer frames apart than that (5 minutes at 30 FPS) count every frame.

Series (``stream`` is the source's index, "0" for a single source; a multi-source run's batch stages, which are not
any one stream's, are ``stream="all"``):

- ``edgekit_camera_fps{stream}``: frames per second over the last 2 s (0 when none came for 2 s)
- ``edgekit_camera_frames_total``, ``edgekit_camera_dropped_frames_total``, ``edgekit_camera_reconnects_total``,
  ``edgekit_camera_stalls_total`` ``{stream}``: frames out of the loop, frames the capture replaced before the
  loop took them, source reconnects, waits longer than the capture timeout
- ``edgekit_camera_stage_seconds{stream,stage}``: histogram per stage (capture_wait, preprocess, inference,
  postprocess, track, count, draw, output, e2e, ...)
- ``edgekit_power_watts{rail}`` (``rail="total"`` and each rail) and ``edgekit_temperature_celsius{zone}``, where
  the box has sensors
- ``edgekit_model_info{sha256,name,version,precision,backend} 1``: the model file run (as on serve's /metrics)
"""

from __future__ import annotations

import importlib
import itertools
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from edgekit.runtime.identity import MODEL_LABELS, info_labels

# seconds: 0.5 ms .. 10 s as serve's edgekit_stage_seconds, denser from 2 to 100 ms where a camera's frames live
# (histogram_quantile interpolates inside a bucket: 20 and 50 ms alone put a 12 ms p99 anywhere between)
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5,
                 1.0, 2.0, 5.0, 10.0)
_BOUNDS_MS = np.asarray(STAGE_BUCKETS) * 1e3
MISSING = ("GET /metrics needs prometheus_client: pip install 'edgekit[metrics]' (the camera runs without it; "
           "/stats.json has the same numbers)")


def attach(web, identity: Dict[str, Any], power=None) -> None:
    """Give the web view (``edgekit.video.web.WebStream``) the model run and its /metrics page; without
    prometheus_client /metrics answers 501 with how to install it."""
    web.model = {k: identity.get(k) for k in ("sha256", "name", "version", "path", "precision", "backend")}
    try:
        prom = importlib.import_module("prometheus_client")
    except ImportError:
        web.metrics_missing = MISSING
        return
    web.metrics = CameraMetrics(prom, identity, power)


class _Folded:
    """One histogram: cumulative counts per bucket (the last is +Inf), and which samples are in it already."""

    def __init__(self) -> None:
        self.buckets = np.zeros(len(STAGE_BUCKETS) + 1, np.int64)
        self.sum = 0.0
        self.count = 0
        self.seen = 0  # the StageStats' count for this stage at the last fold
        self.source: Any = None  # that StageStats (a multi-source warm-up replaces it: its counts start again)

    def fold(self, stats, stage: str) -> None:
        count = stats.count.get(stage, 0)
        if self.source is not stats or count < self.seen:
            self.source, self.seen = stats, 0
        new = count - self.seen
        samples = stats.samples.get(stage)
        if new > 0 and samples:
            # the newest ``new`` samples, read backwards in C under the GIL (the loop appends meanwhile)
            try:
                values = np.fromiter(itertools.islice(reversed(samples), new), np.float64)
            except RuntimeError:  # appended to mid-read (CPython holds the GIL through this read): the next scrape
                return
            index = np.searchsorted(_BOUNDS_MS, values, side="left")  # bucket i holds values <= bound i
            self.buckets += np.bincount(index, minlength=len(self.buckets))
            self.sum += float(values.sum()) / 1e3
            self.count += len(values)
        self.seen = count

    def exposition(self, bounds: List[str]) -> List[Tuple[str, float]]:
        return list(zip(bounds, np.cumsum(self.buckets).tolist()))


class CameraMetrics:
    """A prometheus_client collector over a running loop (``watch(loop)``, called by the loop when it starts)."""

    def __init__(self, prom, identity: Dict[str, Any], power=None) -> None:
        self._prom = prom
        self._core = importlib.import_module("prometheus_client.core")
        self.identity, self.power = identity, power
        self.loop: Any = None
        self.registry = prom.CollectorRegistry()
        self.registry.register(self)
        self._hist: Dict[Tuple[str, str], _Folded] = {}
        self._totals: Dict[Tuple[str, str], Tuple[int, int]] = {}  # (metric, stream) -> (last raw, exposed)
        go_float = importlib.import_module("prometheus_client.utils").floatToGoString
        self._bounds = [go_float(b) for b in STAGE_BUCKETS] + ["+Inf"]
        self._lock = threading.Lock()  # scrapes one at a time (the HTTP server has a thread per request)

    def watch(self, loop) -> None:
        self.loop = loop

    @property
    def content_type(self) -> str:
        return self._prom.CONTENT_TYPE_LATEST

    def exposition(self) -> bytes:
        with self._lock:
            return self._prom.generate_latest(self.registry)

    def describe(self) -> List[Any]:
        return []  # series appear with the loop: nothing to check at registration

    # --- read at scrape time ------------------------------------------------------------------------------
    def collect(self) -> Iterator[Any]:
        core = self._core
        info = core.GaugeMetricFamily("edgekit_model_info", "The model this process runs (1): sha256 of its file",
                                      labels=list(MODEL_LABELS))
        labels = info_labels(self.identity)
        info.add_metric([labels[k] for k in MODEL_LABELS], 1)
        yield info
        loop = self.loop
        if loop is not None:
            yield from self._loop_families(loop)
        yield from self._power_families()

    def _loop_families(self, loop) -> Iterator[Any]:
        core = self._core
        fps = core.GaugeMetricFamily("edgekit_camera_fps", "Frames per second out of the loop, last 2 s",
                                     labels=["stream"])
        counters = {name: core.CounterMetricFamily("edgekit_camera_" + name, doc, labels=["stream"]) for name, doc in (
            ("frames", "Frames out of the loop (drawn and sent to the outputs)"),
            ("dropped_frames", "Frames the capture replaced by a newer one before the loop took them"),
            ("reconnects", "Reconnects of the source"),
            ("stalls", "Waits for a frame longer than the capture timeout"))}
        stages = core.HistogramMetricFamily("edgekit_camera_stage_seconds", "Time per frame (a batch's for "
                                            "stream=all) and stage", labels=["stream", "stage"])
        now = time.perf_counter()
        per_stream = set()
        for stream, rate, frames, capture, stalls, stats in _views(loop):
            fps.add_metric([stream], _fps(rate, now))
            raw = {"frames": frames, "stalls": stalls, "dropped_frames": getattr(capture, "dropped", 0),
                   "reconnects": getattr(capture, "reconnects", 0)}
            for name, family in counters.items():
                family.add_metric([stream], self._total(name, stream, raw[name]))
            for stage in list(stats.count):
                per_stream.add(stage)
                folded = self._fold(stream, stats, stage)
                stages.add_metric([stream, stage], folded.exposition(self._bounds), folded.sum)
        if getattr(loop, "streams", None):  # the batch's stages (preprocess, inference, postprocess, ...)
            for stage in [s for s in list(loop.stats.count) if s not in per_stream]:
                folded = self._fold("all", loop.stats, stage)
                stages.add_metric(["all", stage], folded.exposition(self._bounds), folded.sum)
        yield fps
        yield from counters.values()
        yield stages

    def _fold(self, stream: str, stats, stage: str) -> _Folded:
        folded = self._hist.get((stream, stage))
        if folded is None:
            folded = self._hist[(stream, stage)] = _Folded()
        folded.fold(stats, stage)
        return folded

    def _total(self, name: str, stream: str, raw: int) -> int:
        """A counter that never goes back, though the loop's own count starts again after a warm-up."""
        last, total = self._totals.get((name, stream), (0, 0))
        total += raw - last if raw >= last else raw
        self._totals[(name, stream)] = (raw, total)
        return total

    def _power_families(self) -> Iterator[Any]:
        reading = _newest_reading(self.power)
        if not reading:
            return
        rails = dict(reading.get("rails_w") or {})
        if reading.get("total_w") is not None:
            rails["total"] = reading["total_w"]
        if rails:
            yield self._gauge("edgekit_power_watts", "Power now (W): the board's total and each rail", "rail", rails)
        temps = reading.get("temps_c") or {}
        if temps:
            yield self._gauge("edgekit_temperature_celsius", "Temperature now (C) per thermal zone", "zone", temps)

    def _gauge(self, name: str, text: str, label: str, values: Dict[Any, float]):
        """One gauge family with a value per ``label`` (rail, zone), in a stable order."""
        family = self._core.GaugeMetricFamily(name, text, labels=[label])
        for key, value in sorted(values.items()):
            family.add_metric([str(key)], float(value))
        return family


def _views(loop) -> Iterator[Tuple[str, Any, int, Any, int, Any]]:
    """(stream label, rolling rate, frames, capture, stalls, stage stats) per stream of the loop."""
    streams = getattr(loop, "streams", None)
    if streams:
        for s in streams:
            yield str(s.index), s.rate, s.processed, s.capture, s.stalls, s.stats
    else:
        yield "0", loop.rate, loop.processed, loop.capture, loop.stalls, loop.stats


def _fps(rate, now: float) -> float:
    times = rate.times
    try:
        last = times[-1]
    except IndexError:
        return 0.0
    return rate.fps() if now - last <= rate.seconds else 0.0


def _newest_reading(power) -> Optional[Dict[str, Any]]:
    """The power sampler's newest reading (the run's sampler, once the loop started), or None."""
    if power is None or not getattr(power, "samplers", None):
        return None
    try:
        return power.samplers[-1].samples[-1][1]
    except IndexError:
        return None
