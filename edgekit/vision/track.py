"""Multi-object tracking with supervision's ByteTrack, on edgekit :class:`Detections`.

supervision is an optional dependency (``pip install 'edgekit[track]'``), imported only when tracking is asked
for. Its ByteTrack is used as it is: class-agnostic IoU matching with a Kalman filter, high-confidence boxes
first, then low-confidence ones (0.1 .. 0.25) to keep existing tracks alive. ByteTrack was removed from
supervision in 0.31 (it moved to Roboflow's ``trackers`` package, Python >= 3.10) and supervision 0.30's LineZone
forgets a track missed for 2 frames, so the extra pins ``supervision>=0.25,<0.30``: the same counts on a
Jetson (0.25.1, the newest for Python 3.8) and a PC (0.29.1). Counting lines and zones are in
:mod:`edgekit.vision.count`.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from types import ModuleType
from typing import List, Mapping, Optional, Sequence

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.vision.detections import Detections

SUPERVISION = "supervision>=0.25,<0.30"
# supervision requires opencv-python, which on a Jetson would shadow JetPack's OpenCV (GStreamer, CSI cameras):
# there it goes in without its dependencies, plus those that `import supervision` needs (checked on 0.25.1 with
# Python 3.8: scipy for ByteTrack's assignment; matplotlib, pillow, pyyaml, defusedxml for its other modules).
JETSON_INSTALL = "pip install --no-deps 'supervision==0.25.1' && pip install scipy 'matplotlib<3.8' pillow pyyaml " \
                 "defusedxml"
INSTALL_HINT = "pip install 'edgekit[track]' (on a Jetson, to keep JetPack's OpenCV: %s)" % JETSON_INSTALL


def supervision() -> ModuleType:
    """The supervision module, or an :class:`EdgekitError` with the install line (also when its ByteTrack is
    gone: supervision >= 0.31)."""
    try:
        sv = importlib.import_module("supervision")
    except ImportError as exc:
        raise EdgekitError("tracking and counting need supervision (%s): %s" % (exc, INSTALL_HINT)) from exc
    if not hasattr(sv, "ByteTrack"):
        raise EdgekitError("supervision %s has no ByteTrack (removed in 0.31): pip install '%s'"
                           % (getattr(sv, "__version__", "?"), SUPERVISION))
    return sv


def check_tracking_available() -> None:
    """Raise the one-line install hint when supervision is missing; call it before anything slow starts."""
    supervision()


def tracking_problem(names: Mapping[int, str], classes: Optional[Sequence[str]] = None) -> Optional[str]:
    """Why tracking/counting cannot run with a model whose class names are ``names`` and the requested class
    names ``classes`` (``--track-classes``; None: all classes), as one line; None when it can."""
    if not names:
        return ("the model carries no class names (no edgekit manifest beside it and no 'names' in its ONNX "
                "metadata): counts are reported per class name; export it with edgekit export")
    if classes is None:
        return None
    if not classes:
        return "no class names given to track: give one or more of the model's classes, comma-separated"
    known = list(dict.fromkeys(names.values()))
    unknown = [c for c in classes if c not in known]
    if not unknown:
        return None
    near: List[str] = []
    for c in unknown:
        near += [n for n in difflib.get_close_matches(c, known, n=3, cutoff=0.5) if n not in near]
        near += [n for n in known if n.lower() == c.lower() and n not in near]
    listed = ", ".join(known[:8]) + (", ... (%d in all)" % len(known) if len(known) > 8 else "")
    return "%s %s not among the model's classes (%s%s)" % (
        ", ".join(repr(c) for c in unknown), "is" if len(unknown) == 1 else "are",
        "did you mean %s? " % ", ".join(near[:3]) if near else "", listed)


def class_ids(names: Mapping[int, str], classes: Sequence[str]) -> List[int]:
    """The class ids of the class names ``classes`` (checked with :func:`tracking_problem` first)."""
    wanted = set(classes)
    return sorted(int(i) for i, n in names.items() if n in wanted)


def to_supervision(dets: Detections, sv: ModuleType):
    """edgekit Detections -> ``supervision.Detections`` (tracker ids carried over when set)."""
    return sv.Detections(
        xyxy=dets.xyxy.astype(np.float32, copy=False).reshape(-1, 4),
        confidence=dets.confidence.astype(np.float32, copy=False),
        class_id=dets.class_id.astype(np.int64, copy=False),
        tracker_id=None if dets.tracker_id is None else dets.tracker_id.astype(np.int64, copy=False),
    )


def from_supervision(svd) -> Detections:
    """``supervision.Detections`` -> edgekit Detections."""
    n = len(svd)
    conf = svd.confidence if svd.confidence is not None else np.ones(n, np.float32)
    cid = svd.class_id if svd.class_id is not None else np.zeros(n, np.int32)
    tid = None if svd.tracker_id is None else np.asarray(svd.tracker_id, np.int64).reshape(-1)
    return Detections(np.asarray(svd.xyxy, np.float32).reshape(-1, 4), np.asarray(conf, np.float32).reshape(-1),
                      np.asarray(cid, np.int32).reshape(-1), tid)


class Tracker:
    """ByteTrack over the detections of consecutive frames of one video stream.

    ``frame_rate``: the stream's frames per second; a lost track is kept for one second of frames (ByteTrack's
    ``lost_track_buffer`` of 30 at 30 FPS) and then its id is retired (ids are never reused).
    ``classes``: class ids to track; detections of other classes are dropped before tracking, so they are
    neither tracked nor returned (like ultralytics' ``classes=``). None tracks every class.

    :meth:`update` returns the detections that belong to a confirmed track, with ``tracker_id`` set, in
    ByteTrack's order. As in supervision's ByteTrack, detections are dropped when they match no track: boxes at
    or below 0.1 confidence, low-confidence boxes (0.1 .. 0.25) that continue no track, and boxes below 0.35
    (the activation threshold 0.25 + 0.1) that would start a new one; a new track appears from its first frame
    on the stream's first frame and from its second frame later on. A detector run at ``--conf 0.1`` feeds
    ByteTrack the low-confidence boxes that carry tracks through partial occlusion.
    """

    def __init__(self, frame_rate: float, classes: Optional[Sequence[int]] = None) -> None:
        if not frame_rate > 0:
            raise ValueError("frame_rate must be above 0, got %r" % (frame_rate,))
        self._sv = supervision()
        self.frame_rate = float(frame_rate)
        self.classes = None if classes is None else np.asarray(sorted(set(int(c) for c in classes)), np.int32)
        with warnings.catch_warnings():  # 0.28-0.30 warn that ByteTrack moves to `trackers`; the pin accounts for it
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            self._byte_track = self._sv.ByteTrack(frame_rate=self.frame_rate)

    def update(self, dets: Detections) -> Detections:
        """Track one frame's detections (every frame, also those without detections, so lost tracks age)."""
        if self.classes is not None and len(dets):
            dets = dets[np.isin(dets.class_id, self.classes)]
        tracked = self._byte_track.update_with_detections(to_supervision(dets, self._sv))
        out = from_supervision(tracked)
        if out.tracker_id is None:
            out.tracker_id = np.zeros((len(out),), np.int64)
        return out

    def reset(self) -> None:
        """Forget every track (a new video); ids start again from 1."""
        self._byte_track.reset()
