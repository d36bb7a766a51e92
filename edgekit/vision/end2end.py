"""Reading an end-to-end head's output (``edgekit export --end2end``: YOLO26's one-to-one branch, no NMS).

The model returns one tensor ``[B, K, 6]``: x1, y1, x2, y2 in the input's (letterboxed) pixels, score, class index
as a float, highest score first, K (``max_det``) baked in at export, not thresholded. Reading it is what
ultralytics' predict and val do for such models (``non_max_suppression(..., end2end=True)``): keep the rows
above conf, the first ``max_det`` of them, map the boxes back to the frame. No IoU applies and no box is dropped
for overlapping another.

Recognised from the model itself: one output whose last dimension is 6. YOLOv8's raw output ``[B, 4+nc, N]``
has the anchors last (N >= 21 at any input size a stride-32 model takes), so a 2-class raw output ``[B, 6, N]``
is never taken for it. The manifest's ``head`` (``edgekit export``) decides when present.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from edgekit.vision.detections import Detections
from edgekit.vision.postprocess import scale_boxes
from edgekit.vision.preprocess import Letterbox

COLUMNS = 6  # x1, y1, x2, y2, score, class


def output_shape(runner) -> Optional[List[Any]]:
    """The runner's only output's shape (the backend's own, else the manifest's), or None."""
    names = list(getattr(runner, "output_names", None) or [])
    shapes = list(getattr(runner, "output_shapes", None) or [])
    if len(names) != 1:
        return None
    if len(shapes) == 1 and shapes[0] is not None:
        return list(shapes[0])
    outputs = runner.info.get("outputs") if runner.info is not None else None
    if isinstance(outputs, list) and len(outputs) == 1 and isinstance(outputs[0], dict):
        return list(outputs[0].get("shape") or []) or None
    return None


def end2end_max_det(runner) -> Optional[int]:
    """K, the most boxes the model returns, when its output is an end-to-end head's ``[B, K, 6]``; else None.

    The manifest's ``head`` decides when it names one (``one2many``: never; ``end2end``: its ``max_det``, or the
    output's K); without one (an ultralytics export, an older manifest) the output's shape does. A K that is not
    static (a dynamic export) is 0: known to be end-to-end, size read from each output."""
    info = runner.info
    head = info.get("head") if info is not None else None
    shape = output_shape(runner)
    if head is not None and head != "end2end":
        return None
    if head == "end2end":
        baked = info.get("max_det")
        if isinstance(baked, int):
            return baked
    if shape is None or len(shape) != 3 or shape[2] != COLUMNS:
        return None
    return shape[1] if isinstance(shape[1], int) and shape[1] > 0 else 0


def read_end2end(outputs: Sequence[np.ndarray], letterboxes: Sequence[Letterbox], conf: float = 0.25,
                 max_det: int = 300) -> List[Detections]:
    """``[B, K, 6]`` (xyxy in input pixels, score, class) -> Detections in frame coordinates: the rows scoring
    above ``conf``, at most ``max_det`` of them, in the model's order (highest score first)."""
    out = outputs[0]
    if out.ndim != 3 or out.shape[2] != COLUMNS:
        raise ValueError("expected an end-to-end head's output [B, K, 6], got %s" % (out.shape,))
    results = []
    for pred, lb in zip(out, letterboxes):
        keep = np.flatnonzero(pred[:, 4] > conf)[:max_det]
        rows = pred[keep]
        dets = Detections(rows[:, :4].astype(np.float32), rows[:, 4].astype(np.float32),
                          np.rint(rows[:, 5]).astype(np.int32))
        dets.xyxy = scale_boxes(dets.xyxy, lb)
        results.append(dets)
    return results
