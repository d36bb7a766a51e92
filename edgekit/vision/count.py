"""Counting tracked objects that cross a line or are inside a polygon, with supervision's LineZone and
PolygonZone, on tracked edgekit :class:`Detections` (:class:`edgekit.vision.track.Tracker`'s output); parsing the
line and polygon options and drawing them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from edgekit.vision.detections import Detections
from edgekit.vision.track import supervision, to_supervision

Point = Tuple[float, float]

# a track id not seen for this many updates is forgotten (ByteTrack retires a lost id after frame_rate frames
# and never reuses it), so a camera that runs for days keeps its memory flat
FORGET_AFTER = 600
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _numbers(text: str, what: str) -> List[float]:
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError("%s %r: give comma-separated pixel coordinates x1,y1,x2,y2,... (numbers only)"
                         % (what, text)) from None
    if not all(np.isfinite(values)):
        raise ValueError("%s %r: coordinates must be finite numbers" % (what, text))
    return values


def parse_line(text: str) -> Tuple[Point, Point]:
    """``"x1,y1,x2,y2"`` (pixels of the frame, ints or floats) -> ``((x1, y1), (x2, y2))``; ValueError with one
    line when it is not exactly four numbers or the two points are the same."""
    v = _numbers(text, "counting line")
    if len(v) != 4:
        raise ValueError("counting line %r has %d numbers: give exactly four, x1,y1,x2,y2" % (text, len(v)))
    start, end = (v[0], v[1]), (v[2], v[3])
    if start == end:
        raise ValueError("counting line %r starts and ends at the same point: give two different points" % text)
    return start, end


def parse_polygon(text: str) -> List[Point]:
    """``"x1,y1,x2,y2,x3,y3,..."`` -> ``[(x1, y1), ...]`` (at least 3 points); ValueError with one line."""
    v = _numbers(text, "counting zone")
    if len(v) % 2:
        raise ValueError("counting zone %r has %d numbers, an odd count: give x,y pairs" % (text, len(v)))
    points = list(zip(v[0::2], v[1::2]))
    if len(set(points)) < 3:
        raise ValueError("counting zone %r has %d distinct points: give at least 3 (x1,y1,x2,y2,x3,y3)"
                         % (text, len(set(points))))
    return points


def outside_frame(points: Sequence[Point], width: int, height: int) -> Optional[str]:
    """One line naming the first point outside the ``width`` x ``height`` frame (0..width, 0..height), or None."""
    for x, y in points:
        if not (0 <= x <= width and 0 <= y <= height):
            return "point %g,%g is outside the %dx%d frame (x 0..%d, y 0..%d)" % (x, y, width, height, width, height)
    return None


def _need_tracks(dets: Detections, who: str) -> None:
    if dets.tracker_id is None:
        raise ValueError("%s.update needs tracked detections (Tracker.update's output)" % who)


def _by_name(per_class: Mapping[Any, int], names: Mapping[int, str]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for cid, n in sorted(per_class.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        name = names.get(int(cid), str(int(cid))) if cid is not None else "?"
        out[name] = out.get(name, 0) + int(n)
    return out


def _label(image: np.ndarray, text: str, org: Tuple[int, int], color: Tuple[int, int, int]) -> None:
    (tw, th), _ = cv2.getTextSize(text, _FONT, 0.6, 1)
    x = int(min(max(org[0], 0), max(image.shape[1] - tw - 4, 0)))
    y = int(min(max(org[1], th + 4), image.shape[0] - 2))
    cv2.rectangle(image, (x, y - th - 4), (x + tw + 4, y + 2), color, -1)
    cv2.putText(image, text, (x + 2, y - 2), _FONT, 0.6, (255, 255, 255), 1, cv2.LINE_AA)


def _per_class_text(counts: Mapping[str, int]) -> str:
    return " ".join("%s %d" % kv for kv in counts.items())


class _Forget:
    """When each track id was last seen, to forget the ids ByteTrack has retired."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.frame = 0
        self.last_seen: Dict[int, int] = {}

    def seen(self, ids: Sequence[int]) -> List[int]:
        """Note ``ids`` as seen this frame; returns the ids to forget now (checked every ``after`` frames)."""
        self.frame += 1
        for tid in ids:
            self.last_seen[tid] = self.frame
        if self.frame % self.after:
            return []
        gone = [t for t, f in self.last_seen.items() if self.frame - f > self.after]
        for t in gone:
            del self.last_seen[t]
        return gone


class LineCounter:
    """Objects crossing the segment ``start`` -> ``end``, per class and direction (supervision's LineZone).

    As supervision defines it: a track counts when all four corners of its box have gone from one side of the
    line to the other, within the band between the perpendiculars through the two ends; a box on the line
    (corners on both sides) changes nothing, so a box wobbling on the line counts once, when it leaves it.
    "in" is a crossing to the left of the line as seen walking from ``start`` to ``end`` on the image (y grows
    downwards): for a line drawn left to right, moving up is "in" and moving down is "out"; swap the points to
    swap them. Each crossing counts, a track that goes back and forth counts each time, under the class its box
    has on the frame it crossed (counted here from LineZone's crossing masks: LineZone itself keys its state by
    track and class from supervision 0.26 on, so a class that flickers mid-crossing would lose the crossing).
    A track missed for a few frames keeps its side while ByteTrack keeps its id (supervision 0.30 forgot it
    after 2 missed frames, one reason the track extra stays below 0.30).
    """

    def __init__(self, start: Point, end: Point, forget_after: int = FORGET_AFTER) -> None:
        self._sv = supervision()
        self.start, self.end = (float(start[0]), float(start[1])), (float(end[0]), float(end[1]))
        self._zone = self._sv.LineZone(start=self._sv.Point(*self.start), end=self._sv.Point(*self.end))
        self._in: Counter = Counter()
        self._out: Counter = Counter()
        self._forget = _Forget(forget_after)

    def update(self, dets: Detections) -> Tuple[np.ndarray, np.ndarray]:
        """Count one frame's tracked detections; returns boolean masks of those that crossed in, and out."""
        _need_tracks(dets, "LineCounter")
        svd = to_supervision(dets, self._sv)
        svd.class_id = np.zeros(len(dets), np.int64)  # LineZone's state per track alone, in every version
        crossed_in, crossed_out = (np.asarray(m, bool) for m in self._zone.trigger(svd))  # also when empty
        self._in.update(dets.class_id[crossed_in].tolist())
        self._out.update(dets.class_id[crossed_out].tolist())
        history = self._zone.crossing_state_history  # supervision < 0.30 never drops a track's entry
        for tid in self._forget.seen(dets.tracker_id.tolist()):
            history.pop(tid, None)  # 0.25: keyed by track id
            history.pop((tid, 0), None)  # 0.26-0.29: by (track id, class id)
        return crossed_in, crossed_out

    def counts(self, names: Mapping[int, str]) -> Dict[str, Any]:
        """``{"in": {class: n}, "out": {class: n}, "total_in": n, "total_out": n}``."""
        return {"in": _by_name(self._in, names), "out": _by_name(self._out, names),
                "total_in": int(sum(self._in.values())), "total_out": int(sum(self._out.values()))}

    def draw(self, image: np.ndarray, names: Mapping[int, str], color=(0, 215, 255)) -> np.ndarray:
        """The line, an arrow to its "in" side and the counts, in place; returns ``image``."""
        c = self.counts(names)
        (x1, y1), (x2, y2) = self.start, self.end
        cv2.line(image, (int(x1), int(y1)), (int(x2), int(y2)), color, 2, cv2.LINE_AA)
        dx, dy = x2 - x1, y2 - y1
        norm = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        tip = (int(mx + 30 * dy / norm), int(my - 30 * dx / norm))  # left of start -> end on screen: "in"
        cv2.arrowedLine(image, (int(mx), int(my)), tip, color, 2, cv2.LINE_AA, tipLength=0.3)
        _label(image, "in %d  out %d" % (c["total_in"], c["total_out"]), (int(mx) + 8, int(my) - 8), (40, 40, 40))
        detail = "  ".join(s for s in ("in: " + _per_class_text(c["in"]) if c["in"] else "",
                                        "out: " + _per_class_text(c["out"]) if c["out"] else "") if s)
        if detail:
            _label(image, detail, (int(mx) + 8, int(my) + 18), (40, 40, 40))
        return image


class ZoneCounter:
    """Objects inside a polygon now, and the distinct tracks that were ever inside, per class (supervision's
    PolygonZone, on the bottom-centre of each box: where a person or vehicle stands).

    A track's class for "entered" is its class on the frame it first was inside.
    """

    def __init__(self, polygon: Sequence[Point], forget_after: int = FORGET_AFTER) -> None:
        self._sv = supervision()
        self.polygon = np.round(np.asarray(polygon, np.float64)).astype(np.int64).reshape(-1, 2)
        self._zone = self._sv.PolygonZone(polygon=self.polygon)
        self._inside: Counter = Counter()
        self._entered: Counter = Counter()
        self._ever_inside: Dict[int, int] = {}  # track id -> class id when it entered
        self._forget = _Forget(forget_after)

    def update(self, dets: Detections) -> np.ndarray:
        """Count one frame's tracked detections; returns the boolean mask of those inside."""
        _need_tracks(dets, "ZoneCounter")
        inside = np.zeros(len(dets), bool)
        if len(dets):
            # supervision 0.25 clips boxes to the zone's bounding box before taking the anchor, which moves the
            # bottom-centre of a box sticking out of it; a zero-size box at the anchor is the same in every version
            x, y = (dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2, dets.xyxy[:, 3]
            points = Detections(np.stack([x, y, x, y], 1), dets.confidence, dets.class_id, dets.tracker_id)
            inside = np.asarray(self._zone.trigger(to_supervision(points, self._sv)), bool)
        self._inside = Counter(dets.class_id[inside].tolist())
        for tid, cid in zip(dets.tracker_id[inside].tolist(), dets.class_id[inside].tolist()):
            if tid not in self._ever_inside:
                self._ever_inside[tid] = cid
                self._entered[cid] += 1
        for tid in self._forget.seen(dets.tracker_id.tolist()):
            self._ever_inside.pop(tid, None)
        return inside

    def counts(self, names: Mapping[int, str]) -> Dict[str, Any]:
        """``{"inside": {class: n} (now), "entered": {class: n}, "total_inside": n, "total_entered": n}``."""
        return {"inside": _by_name(self._inside, names), "entered": _by_name(self._entered, names),
                "total_inside": int(sum(self._inside.values())), "total_entered": int(sum(self._entered.values()))}

    def draw(self, image: np.ndarray, names: Mapping[int, str], color=(255, 191, 0)) -> np.ndarray:
        """The polygon's outline and its counts, in place; returns ``image``."""
        c = self.counts(names)
        cv2.polylines(image, [self.polygon.astype(np.int32).reshape(-1, 1, 2)], True, color, 2, cv2.LINE_AA)
        x, y = int(self.polygon[:, 0].min()), int(self.polygon[:, 1].min())
        _label(image, "inside %d  entered %d" % (c["total_inside"], c["total_entered"]), (x + 4, y - 8), (40, 40, 40))
        if c["inside"]:
            _label(image, _per_class_text(c["inside"]), (x + 4, y + 18), (40, 40, 40))
        return image
