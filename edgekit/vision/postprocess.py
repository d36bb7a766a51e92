"""Decode YOLOv8's raw ``[B, 4+nc, N]`` output and run class-aware NMS, like ultralytics'
``non_max_suppression`` (single label per box, ``max_wh`` class offsets), with OpenCV's C++ NMS.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from edgekit.vision.detections import Detections
from edgekit.vision.preprocess import Letterbox

MAX_WH = 7680  # per-class box offset so one NMS call keeps classes apart (ultralytics' value)
MAX_NMS = 30000  # boxes kept for NMS, by confidence


def decode(pred: np.ndarray, conf: float, multi_label: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's ``[4+nc, N]`` prediction -> xyxy boxes, scores, class ids above ``conf``.

    ``multi_label``: every (box, class) pair above ``conf`` is a candidate, as ultralytics' validator does
    for mAP; otherwise each box keeps its best class (prediction).
    """
    scores_all = pred[4:]
    if multi_label:
        class_id, anchor = np.nonzero(scores_all > conf)
        scores = scores_all[class_id, anchor]
        xywh = pred[:4, anchor].T
        class_id = class_id.astype(np.int32)
    else:
        # best score per anchor first (a fast reduction), the argmax only for the few anchors above conf: the
        # same boxes as an argmax over every anchor, 6-20x faster at 8400/2100 anchors
        best = scores_all.max(0)
        keep = best > conf
        scores = best[keep]
        class_id = scores_all[:, keep].argmax(0).astype(np.int32)
        xywh = pred[:4, keep].T
    half = xywh[:, 2:] / 2
    xyxy = np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)
    return xyxy.astype(np.float32), scores.astype(np.float32), class_id


def nms(xyxy: np.ndarray, scores: np.ndarray, class_id: np.ndarray, iou: float, agnostic: bool = False):
    """Indices kept by greedy class-aware NMS, highest score first (torchvision.ops.batched_nms order)."""
    if len(scores) == 0:
        return np.zeros((0,), np.int64)
    offset = 0.0 if agnostic else class_id.astype(np.float64)[:, None] * MAX_WH
    boxes = xyxy.astype(np.float64) + offset
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    # scores are > conf >= 0 after decode; OpenCV asserts score_threshold >= 0 and keeps score > threshold
    keep = cv2.dnn.NMSBoxes(xywh, scores.astype(np.float32), 0.0, iou)
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def scale_boxes(xyxy: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Map boxes from the letterboxed input back to the original frame, clipped to it."""
    out = xyxy.copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - lb.pad[0]) / lb.gain[0]
    out[:, [1, 3]] = (out[:, [1, 3]] - lb.pad[1]) / lb.gain[1]
    h, w = lb.shape
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def postprocess(
    output: np.ndarray,
    letterboxes: Sequence[Letterbox],
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    agnostic: bool = False,
    multi_label: bool = False,
    candidates: Optional[List[int]] = None,
) -> List[Detections]:
    """Raw ``[B, 4+nc, N]`` output -> one :class:`Detections` per frame, in original frame coordinates.

    ``candidates``: a list to which the number of boxes entering NMS (above ``conf``, at most ``MAX_NMS``) is
    appended per frame; NMS time grows with it, and a fine-tuned or pruned model can pass far more than another.
    """
    if output.ndim != 3 or output.shape[1] < 5:
        raise ValueError("expected YOLOv8 output [B, 4+nc, N], got %s" % (output.shape,))
    results = []
    for pred, lb in zip(output, letterboxes):
        xyxy, scores, class_id = decode(pred, conf, multi_label)
        if len(scores) > MAX_NMS:
            top = np.argsort(-scores, kind="stable")[:MAX_NMS]
            xyxy, scores, class_id = xyxy[top], scores[top], class_id[top]
        if candidates is not None:
            candidates.append(len(scores))
        keep = nms(xyxy, scores, class_id, iou, agnostic)[:max_det]
        dets = Detections(xyxy[keep], scores[keep], class_id[keep])
        dets.xyxy = scale_boxes(dets.xyxy, lb)
        results.append(dets)
    return results
