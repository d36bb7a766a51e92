"""Tracking (supervision's ByteTrack) and line/zone counting on synthetic objects moving through a frame."""

import importlib.util
import sys

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.vision.count import LineCounter, ZoneCounter, outside_frame, parse_line, parse_polygon
from edgekit.vision.detections import Detections
from edgekit.vision.draw import draw_detections
from edgekit.vision.track import Tracker, check_tracking_available, class_ids, tracking_problem

needs_supervision = pytest.mark.skipif(importlib.util.find_spec("supervision") is None,
                                       reason="supervision not installed: pip install 'edgekit[track]'")
NAMES = {0: "person", 1: "bicycle", 2: "car", 7: "truck"}


def obj(cls, box, velocity=(0, 0), start=0, frames=10 ** 6, conf=0.9, path=None):
    """One synthetic object: a box moving at ``velocity`` px/frame from frame ``start`` for ``frames`` frames,
    or along ``path`` (a list of (dx, dy) offsets per frame)."""
    return dict(cls=cls, box=np.asarray(box, np.float32), v=np.asarray(velocity, np.float32), start=start,
                frames=frames, conf=conf, path=path)


def scene(objects, n_frames):
    """Per frame, the Detections of the objects present, and which object each row is."""
    out = []
    for f in range(n_frames):
        rows, which = [], []
        for i, o in enumerate(objects):
            k = f - o["start"]
            if not 0 <= k < o["frames"] or (o["path"] is not None and k >= len(o["path"])):
                continue
            shift = np.asarray(o["path"][k], np.float32) if o["path"] is not None else o["v"] * k
            rows.append((o["box"] + np.tile(shift, 2), o["conf"], o["cls"]))
            which.append(i)
        dets = Detections(np.array([r[0] for r in rows], np.float32).reshape(-1, 4),
                          np.array([r[1] for r in rows], np.float32), np.array([r[2] for r in rows], np.int32))
        out.append((dets, which))
    return out


def run(objects, n_frames, line=None, zone=None, classes=None):
    tracker = Tracker(30, classes=classes)
    counter = LineCounter(*line) if line else ZoneCounter(zone)
    tracked = []
    for dets, _ in scene(objects, n_frames):
        t = tracker.update(dets)
        counter.update(t)
        tracked.append(t)
    return counter.counts(NAMES), tracked


# a horizontal line across the middle of a 1920x1080 frame, drawn left to right: moving up is "in"
MID = ((0, 540), (1920, 540))
DOWN, UP = (0, 12), (0, -12)
# stops on the line (corners on both sides) and wobbles 10 px for 20 frames, then goes on down
WOBBLE = [(0, 12 * k) for k in range(25)] + [(0, 288 + (10 if k % 2 else -10)) for k in range(20)] + \
         [(0, 288 + 12 * k) for k in range(25)]
# crosses down, then comes back up over the line
BACK_AND_FORTH = [(0, 12 * k) for k in range(40)] + [(0, 480 - 12 * k) for k in range(40)]


@needs_supervision
@pytest.mark.parametrize("objects, n, line, want", [
    ([obj(0, [100, 300, 160, 420], DOWN)], 40, MID,
     {"in": {}, "out": {"person": 1}, "total_in": 0, "total_out": 1}),
    ([obj(2, [900, 700, 1100, 800], UP)], 40, MID,
     {"in": {"car": 1}, "out": {}, "total_in": 1, "total_out": 0}),
    # swapping the line's points swaps the directions
    ([obj(0, [100, 300, 160, 420], DOWN)], 40, (MID[1], MID[0]),
     {"in": {"person": 1}, "out": {}, "total_in": 1, "total_out": 0}),
    # two people down, a car up, a bicycle beside the line that never crosses, a truck crossing beyond the line's
    # end (the segment x 0..1000 here)
    ([obj(0, [100, 300, 160, 420], DOWN), obj(0, [400, 250, 460, 370], DOWN), obj(2, [600, 700, 800, 800], UP),
      obj(1, [850, 300, 900, 400], (3, 0)), obj(7, [1300, 700, 1500, 820], UP)], 50, ((0, 540), (1000, 540)),
     {"in": {"car": 1}, "out": {"person": 2}, "total_in": 1, "total_out": 2}),
    # a vertical line drawn top to bottom: moving right is "in"
    ([obj(0, [300, 400, 360, 520], (15, 0)), obj(2, [1300, 600, 1500, 700], (-15, 0))], 60, ((960, 0), (960, 1080)),
     {"in": {"person": 1}, "out": {"car": 1}, "total_in": 1, "total_out": 1}),
    ([obj(0, [100, 300, 160, 420], path=WOBBLE)], len(WOBBLE), MID,
     {"in": {}, "out": {"person": 1}, "total_in": 0, "total_out": 1}),
    ([obj(0, [100, 300, 160, 420], path=BACK_AND_FORTH)], len(BACK_AND_FORTH), MID,
     {"in": {"person": 1}, "out": {"person": 1}, "total_in": 1, "total_out": 1}),
], ids=["down-out", "up-in", "swapped-line", "mixed-classes", "vertical", "wobble-once", "back-and-forth"])
def test_line_counts_per_class_and_direction(objects, n, line, want):
    counts, _ = run(objects, n, line=line)
    assert counts == want


@needs_supervision
@pytest.mark.parametrize("edit, want", [
    # the detector calls it a truck for 8 frames while it is on the line, then a car again: one crossing, under
    # the class it has on the frame it crossed
    (lambda f, d: Detections(d.xyxy, d.confidence, np.full(len(d), 7 if 12 <= f < 20 else 2, np.int32)),
     {"in": {}, "out": {"car": 1}, "total_in": 0, "total_out": 1}),
    (lambda f, d: Detections(d.xyxy, d.confidence, np.full(len(d), 7 if f >= 12 else 2, np.int32)),
     {"in": {}, "out": {"truck": 1}, "total_in": 0, "total_out": 1}),
    # missed by the detector for 8 frames while it crosses: ByteTrack keeps its id, the line its side
    (lambda f, d: Detections.empty() if 14 <= f < 22 else d,
     {"in": {}, "out": {"car": 1}, "total_in": 0, "total_out": 1}),
], ids=["class-flicker-on-the-line", "class-changes-for-good", "missed-while-crossing"])
def test_line_counts_survive_class_flicker_and_missed_frames(edit, want):
    tracker, line = Tracker(30), LineCounter(*MID)
    for f, (dets, _) in enumerate(scene([obj(2, [100, 300, 300, 420], DOWN)], 40)):
        t = tracker.update(edit(f, dets))
        line.update(t)
        assert t.tracker_id.tolist() in ([], [1])
    assert line.counts(NAMES) == want


@needs_supervision
def test_track_ids_are_stable_and_distinct():
    objects = [obj(0, [100 + 150 * i, 200, 160 + 150 * i, 320], (4, 6)) for i in range(8)] + \
              [obj(2, [300, 800, 500, 900], (10, -3), start=15)]  # joins later
    tracker = Tracker(30)
    ids = {}
    for f, (dets, which) in enumerate(scene(objects, 60)):
        t = tracker.update(dets)
        assert len(t) == len(dets) - (1 if f == 15 else 0)  # a new track after the first frame shows from its 2nd
        for box, tid in zip(t.xyxy, t.tracker_id.tolist()):
            i = which[int(np.argmin(np.abs(dets.xyxy - box).sum(1)))]
            assert ids.setdefault(i, tid) == tid, "object %d changed id on frame %d" % (i, f)
    assert sorted(ids.values()) == list(range(1, 10))
    assert t.tracker_id.dtype == np.int64 and t.xyxy.dtype == np.float32 and t.class_id.dtype == np.int32


@needs_supervision
def test_tracker_keeps_only_the_classes_asked_for_and_ages_tracks_on_empty_frames():
    objects = [obj(0, [100, 300, 160, 420], DOWN), obj(2, [900, 700, 1100, 800], UP)]
    tracker = Tracker(30, classes=class_ids(NAMES, ["car"]))
    for dets, _ in scene(objects, 5):
        t = tracker.update(dets)
        assert t.class_id.tolist() == [2] and t.tracker_id.tolist() == [1]
    for _ in range(3):
        assert len(tracker.update(Detections.empty())) == 0
    dets, _ = scene(objects, 8)[7]
    assert tracker.update(dets).tracker_id.tolist() == [1]  # lost for 3 frames, found again with its id
    tracker.reset()
    assert tracker.update(dets).tracker_id.tolist() == [1]
    with pytest.raises(ValueError):
        Tracker(0)


@needs_supervision
def test_low_confidence_boxes_start_no_track():
    objects = [obj(0, [100, 300, 160, 420], DOWN, conf=0.3), obj(2, [900, 700, 1100, 800], UP, conf=0.9)]
    _, tracked = run(objects, 10, line=MID)
    assert [t.class_id.tolist() for t in tracked] == [[2]] * 10


@needs_supervision
def test_zone_counts_inside_now_and_distinct_tracks_entered():
    zone = [(800, 300), (1200, 300), (1200, 700), (800, 700)]
    objects = [
        obj(0, [500, 400, 560, 520], (20, 0)),  # walks right through the zone (bottom-centre y 520)
        obj(0, [900, 350, 960, 470]),  # stands inside
        obj(2, [100, 850, 300, 950], (30, 0)),  # drives below the zone
        obj(7, [1000, 200, 1300, 500], start=10),  # sticks out of the zone's bounding box; its bottom-centre is in
        obj(1, [1150, 400, 1400, 500]),  # overlaps the zone, but its bottom-centre (1275, 500) is outside
    ]
    tracker, counter = Tracker(30), ZoneCounter(zone)
    history = []
    for dets, _ in scene(objects, 60):
        inside = counter.update(tracker.update(dets))
        history.append((int(inside.sum()), counter.counts(NAMES)))
    assert history[0][1] == {"inside": {"person": 1}, "entered": {"person": 1}, "total_inside": 1, "total_entered": 1}
    assert history[20][1] == {"inside": {"person": 2, "truck": 1}, "entered": {"person": 2, "truck": 1},
                              "total_inside": 3, "total_entered": 3}
    assert history[-1] == (2, {"inside": {"person": 1, "truck": 1}, "entered": {"person": 2, "truck": 1},
                               "total_inside": 2, "total_entered": 3})


@needs_supervision
def test_counters_forget_retired_tracks_but_keep_their_counts():
    # 300 people walk down across the line one after another in 10 lanes: the per-track state stays small
    objects = [obj(0, [100 + 150 * (i % 10), 200, 160 + 150 * (i % 10), 320], (0, 40), start=4 * i, frames=12)
               for i in range(300)]
    tracker, line, zone = Tracker(30), LineCounter(*MID, forget_after=20), ZoneCounter(
        [(0, 0), (1920, 0), (1920, 1080), (0, 1080)], forget_after=20)
    for dets, _ in scene(objects, 4 * 300 + 20):
        t = tracker.update(dets)
        line.update(t)
        zone.update(t)
    assert line.counts(NAMES)["total_out"] == 300 and zone.counts(NAMES)["total_entered"] == 300
    assert len(line._zone.crossing_state_history) < 30 and len(zone._ever_inside) < 30


@needs_supervision
def test_counters_need_tracked_detections():
    dets = Detections(np.array([[0, 0, 10, 10]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int32))
    with pytest.raises(ValueError, match="tracked"):
        LineCounter(*MID).update(dets)
    with pytest.raises(ValueError, match="tracked"):
        ZoneCounter([(0, 0), (5, 0), (5, 5)]).update(dets)


@pytest.mark.parametrize("text, want", [
    ("0,540,1920,540", ((0, 540), (1920, 540))),
    (" 10.5, 20 ,30,40.25", ((10.5, 20), (30, 40.25))),
])
def test_parse_line(text, want):
    assert parse_line(text) == want


@pytest.mark.parametrize("text, message", [
    ("0,540,1920", "has 3 numbers: give exactly four"),
    ("0,540,1920,540,5", "has 5 numbers"),
    ("10,10,10,10", "same point"),
    ("a,b,c,d", "numbers only"),
    ("1,2,,4", "numbers only"),
    ("1,2,nan,4", "finite"),
])
def test_parse_line_errors_are_one_line(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_line(text)
    assert "\n" not in str(info.value)


def test_parse_polygon():
    assert parse_polygon("100,100, 500,100, 500,400.5") == [(100, 100), (500, 100), (500, 400.5)]


@pytest.mark.parametrize("text, message", [
    ("1,2,3,4", "2 distinct points: give at least 3"),
    ("1,2,3,4,1,2", "2 distinct points"),
    ("1,2,3,4,5", "odd count"),
    ("1,2,3,x,5,6", "numbers only"),
])
def test_parse_polygon_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_polygon(text)


@pytest.mark.parametrize("points, problem", [
    ([(0, 0), (1920, 1080)], None),
    ([(0, 540), (1921, 540)], "point 1921,540 is outside the 1920x1080 frame (x 0..1920, y 0..1080)"),
    ([(10, -1), (5, 5), (5, 2000)], "point 10,-1 is outside the 1920x1080 frame"),
    ([(100.5, 1080.25)], "point 100.5,1080.25 is outside"),
])
def test_outside_frame(points, problem):
    got = outside_frame(points, 1920, 1080)
    assert got == problem if problem is None else got.startswith(problem)


@pytest.mark.parametrize("names, classes, problem", [
    (NAMES, None, None),
    (NAMES, ["person", "car"], None),
    ({}, None, "the model carries no class names"),
    ({}, ["person"], "the model carries no class names"),
    (NAMES, [], "no class names given"),
    (NAMES, ["persn"], "'persn' is not among the model's classes (did you mean person? person, bicycle, car, truck)"),
    (NAMES, ["Car", "truk", "car"], "'Car', 'truk' are not among the model's classes (did you mean car, truck? "),
    (NAMES, ["zebra"], "'zebra' is not among the model's classes (person, bicycle, car, truck)"),
    ({i: "c%d" % i for i in range(80)}, ["dog"], "'dog' is not among the model's classes (c0, c1, c2, c3, c4, c5, "
                                                 "c6, c7, ... (80 in all))"),
])
def test_tracking_problem(names, classes, problem):
    got = tracking_problem(names, classes)
    assert got == problem if problem is None else got.startswith(problem)
    assert got is None or "\n" not in got


def test_tracking_unavailable_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "supervision", None)  # import supervision -> ImportError
    with pytest.raises(EdgekitError, match=r"pip install 'edgekit\[track\]'.*--no-deps 'supervision==0.25.1'"):
        check_tracking_available()
    monkeypatch.setitem(sys.modules, "supervision", type(sys)("supervision"))  # one without ByteTrack (0.31+)
    with pytest.raises(EdgekitError, match=r"no ByteTrack \(removed in 0.31\): pip install 'supervision>=0.25,<0.30'"):
        Tracker(30)


def test_detections_carry_track_ids_through_filtering_and_json():
    dets = Detections(np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 2, 3, 4]], np.float32),
                      np.array([0.9, 0.3, 0.6], np.float32), np.array([0, 2, 0], np.int32), np.array([7, 8, 9]))
    kept = dets[dets.confidence > 0.5]
    assert kept.tracker_id.tolist() == [7, 9] and dets[1:].tracker_id.tolist() == [8, 9]
    assert dets[np.array([2])].to_list(NAMES) == [
        {"xyxy": [1.0, 2.0, 3.0, 4.0], "confidence": 0.6, "class_id": 0, "class_name": "person", "track_id": 9}]
    assert "track_id" not in Detections(dets.xyxy, dets.confidence, dets.class_id).to_list()[0]
    assert dets[dets.confidence > 5].tracker_id.shape == (0,)


@needs_supervision
def test_drawing_tracks_lines_and_zones_changes_the_frame():
    dets = Detections(np.array([[100, 100, 200, 200]], np.float32), np.array([0.8], np.float32),
                      np.array([2], np.int32))
    plain, tracked = np.zeros((300, 400, 3), np.uint8), np.zeros((300, 400, 3), np.uint8)
    draw_detections(plain, dets, NAMES)
    dets.tracker_id = np.array([42])
    draw_detections(tracked, dets, NAMES)
    assert not np.array_equal(plain, tracked)  # "#42 car 0.80" is wider than "car 0.80"
    frame = np.zeros((300, 400, 3), np.uint8)
    line, zone = LineCounter((20, 150), (380, 150)), ZoneCounter([(50, 50), (350, 50), (350, 250), (50, 250)])
    t = Detections(dets.xyxy, dets.confidence, dets.class_id, np.array([1]))
    line.update(t)
    zone.update(t)
    assert line.draw(frame, NAMES) is frame and frame[150, 30].any()  # the line
    assert zone.draw(frame, NAMES) is frame and frame[150, 50].any() and frame[250, 200].any()  # the outline
