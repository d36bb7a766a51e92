"""Tracking and counting as stages of the camera loop, per stream: ``track`` (ByteTrack ids) and ``count`` (line
crossings per class and direction, objects in a zone), each timed per frame like the other stages."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.vision.detections import Detections

Point = Tuple[float, float]


@dataclass
class AnalyticsConfig:
    track: bool = False
    track_classes: Optional[List[str]] = None  # class names to track (None: all)
    lines: Sequence[Optional[Tuple[Point, Point]]] = ()  # per stream (one for all when a single one is given)
    zones: Sequence[Optional[List[Point]]] = ()

    @property
    def counting(self) -> bool:
        return any(self.lines) or any(self.zones)

    @property
    def enabled(self) -> bool:
        return self.track or self.counting  # counting follows objects: it tracks too

    def for_stream(self, index: int) -> Tuple[Optional[Tuple[Point, Point]], Optional[List[Point]]]:
        def pick(items):
            if not items:
                return None
            return items[0] if len(items) == 1 else items[index]

        return pick(list(self.lines)), pick(list(self.zones))

    def check(self, sources: int) -> Optional[str]:
        """Why the lines/zones cannot be given to this many sources (one for all, or one per source)."""
        for option, items in (("--count-line", self.lines), ("--count-zone", self.zones)):
            if len(items) > 1 and len(items) != sources:
                return ("%s was given %d times for %d sources: give it once (every source) or once per source, "
                        "in the order of the sources" % (option, len(items), sources))
        return None


def check_frame(config: AnalyticsConfig, index: int, name: str, size: Optional[Tuple[int, int]]) -> None:
    """One line when this stream's counting line or zone lies outside its frames (``size`` = (width, height))."""
    from edgekit.vision.count import outside_frame

    if size is None:
        return
    line, zone = config.for_stream(index)
    for option, points in (("--count-line", line), ("--count-zone", zone)):
        problem = outside_frame(list(points), size[0], size[1]) if points else None
        if problem:
            raise EdgekitError("%s for %s: %s" % (option, name, problem))


class StreamAnalytics:
    """The track and count stages of one stream. A source that could not say its frame size when it opened has
    its counting line/zone checked against its first frame."""

    def __init__(self, config: AnalyticsConfig, index: int, names: Mapping[int, str], frame_rate: float,
                 source_name: str, size_known: bool) -> None:
        from edgekit.vision.count import LineCounter, ZoneCounter
        from edgekit.vision.track import Tracker, class_ids

        self.config, self.index, self.source_name = config, index, source_name
        self.unchecked = not size_known
        self.names = dict(names)
        classes = class_ids(self.names, config.track_classes) if config.track_classes else None
        self.tracker = Tracker(frame_rate=frame_rate, classes=classes)
        line, zone = config.for_stream(index)
        self.line = LineCounter(line[0], line[1]) if line else None
        self.zone = ZoneCounter(zone) if zone else None
        self.tracks = 0  # track ids in the last frame

    def apply(self, dets: Detections, image: np.ndarray) -> Tuple[Detections, Dict[str, float]]:
        if self.unchecked:
            check_frame(self.config, self.index, self.source_name, (image.shape[1], image.shape[0]))
            self.unchecked = False
        t0 = time.perf_counter()
        dets = self.tracker.update(dets)
        t1 = time.perf_counter()
        self.tracks = len(dets)
        times = {"track": (t1 - t0) * 1e3}
        if self.line or self.zone:
            for counter in (self.line, self.zone):
                if counter is not None:
                    counter.update(dets)
            times["count"] = (time.perf_counter() - t1) * 1e3
        return dets, times

    def draw(self, image: np.ndarray) -> None:
        for counter in (self.line, self.zone):
            if counter is not None:
                counter.draw(image, self.names)

    def counts(self) -> Optional[Dict[str, Any]]:
        if not (self.line or self.zone):
            return None
        out: Dict[str, Any] = {}
        if self.line:
            out["line"] = self.line.counts(self.names)
        if self.zone:
            out["zone"] = self.zone.counts(self.names)
        return out


def finish_record(record: Dict[str, Any], dets: Detections, analytics: Optional[StreamAnalytics],
                  number: int) -> Dict[str, Any]:
    """A frame log line's common tail: tracks and counts (with tracking), the process RSS every 30th line."""
    from edgekit.camera.stats import rss_mb

    if analytics is not None:
        record["tracks"] = track_records(dets)
        counts = analytics.counts()
        if counts:
            record["counts"] = counts
    if number % 30 == 1:
        record["rss_mb"] = round(rss_mb(), 1)
    return record


def track_records(dets: Detections) -> List[List[float]]:
    """Compact per-frame log of tracked boxes: [track_id, class_id, x1, y1, x2, y2]."""
    ids = getattr(dets, "tracker_id", None)
    if ids is None:
        return []
    return [[int(t), int(c)] + [round(float(v), 1) for v in box] for t, c, box in zip(ids, dets.class_id, dets.xyxy)]


def count_line(counts: Optional[Dict[str, Any]]) -> str:
    """One short line of a stream's counts: ``line in 3 out 1 | zone 2 now, 5 entered``."""
    if not counts:
        return ""
    parts = []
    line = counts.get("line")
    if line:
        parts.append("line in %d out %d" % (line["total_in"], line["total_out"]))
    zone = counts.get("zone")
    if zone:
        parts.append("zone %d now, %d entered" % (zone["total_inside"], zone["total_entered"]))
    return " | ".join(parts)
