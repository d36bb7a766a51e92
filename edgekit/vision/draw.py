"""Drawing detections and text panels onto BGR frames (kept apart from detection logic)."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import cv2
import numpy as np

from edgekit.vision.detections import Detections

# ultralytics' palette (BGR), so boxes look the same as in ultralytics' plots
_HEX = (
    "FF3838 FF9D97 FF701F FFB21D CFD231 48F90A 92CC17 3DDB86 1A9334 00D4BB "
    "2C99A8 00C2FF 344593 6473FF 0018EC 8438FF 520085 CB38FF FF95C8 FF37C7"
).split()
PALETTE = [(int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _HEX]


def color(class_id: int):
    return PALETTE[int(class_id) % len(PALETTE)]


def draw_detections(
    frame: np.ndarray, dets: Detections, names: Optional[Mapping[int, str]] = None, thickness: int = 2
) -> np.ndarray:
    """Draw boxes and labels in place; returns ``frame``. Tracked detections are labelled ``#id class conf``."""
    names = names or {}
    tids = dets.tracker_id.tolist() if dets.tracker_id is not None else [None] * len(dets)
    for (x1, y1, x2, y2), conf, cid, tid in zip(dets.xyxy.astype(int), dets.confidence, dets.class_id, tids):
        c = color(cid)
        cv2.rectangle(frame, (x1, y1), (x2, y2), c, thickness, cv2.LINE_AA)
        label = "%s %.2f" % (names.get(int(cid), str(int(cid))), conf)
        if tid is not None:
            label = "#%d %s" % (tid, label)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        y_text = max(y1, th + 4)
        cv2.rectangle(frame, (x1, y_text - th - 4), (x1 + tw + 2, y_text), c, -1)
        cv2.putText(frame, label, (x1 + 1, y_text - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def draw_panel(frame: np.ndarray, lines: Sequence[str], origin=(8, 8)) -> np.ndarray:
    """A translucent text panel (FPS, per-stage ms, model) in the top-left corner; in place."""
    if not lines:
        return frame
    scale, pad, lh = 0.5, 6, 18
    width = max(cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for s in lines) + 2 * pad
    x0, y0 = origin
    x1, y1 = min(x0 + width, frame.shape[1]), min(y0 + lh * len(lines) + pad, frame.shape[0])
    roi = frame[y0:y1, x0:x1]
    roi[:] = (roi * 0.4).astype(frame.dtype)
    for i, s in enumerate(lines):
        y = y0 + pad + lh * i + 10
        cv2.putText(frame, s, (x0 + pad, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return frame
