"""``edgekit compare A B``: how far two models' outputs are apart on the same frames.

Raw tensors: max/mean absolute error, error relative to the output's range, cosine similarity.
Detections (at deployment settings): boxes matched greedily by IoU, class agreement of matched boxes,
mean IoU, and boxes only one model found. The tool to run after building an INT8 engine, or pruning.
Models exported at different sizes, or with different outputs (YOLO26's host-NMS export against its end-to-end one,
``[B, 4+nc, N]`` vs ``[B, K, 6]``), are compared on detections only (in frame coordinates).
With a dataset, ``accuracy`` evaluates both on its whole split as ``edgekit eval`` does and gives B's change.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime import Runner
from edgekit.vision import Detections
from edgekit.vision.pipeline import Pipeline, has_trt_nms


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes (len(a) x len(b))."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def match(a: Detections, b: Detections, iou_threshold: float) -> List[Tuple[int, int, float]]:
    """Greedy one-to-one matches (i, j, iou), best IoU first, regardless of class."""
    if not len(a) or not len(b):
        return []
    iou = box_iou(a.xyxy, b.xyxy)
    pairs = np.argwhere(iou >= iou_threshold)
    order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_a, used_b, out = set(), set(), []
    for i, j in pairs[order]:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((int(i), int(j), float(iou[i, j])))
    return out


def compare(a: Runner, b: Runner, frames: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.7,
            match_iou: float = 0.5) -> Dict[str, Any]:
    """Raw-output and detection agreement of two models on the same frames.

    Models of different input sizes (``best-160.onnx`` vs ``best-320.onnx``) are compared on detections only:
    each model letterboxes the frame to its own size and its boxes are mapped back to the frame, so they are
    comparable; their raw tensors are not (``raw`` is None and ``raw_skipped`` says why).
    """
    for r in (a, b):
        if has_trt_nms(r):
            raise EdgekitError("%s returns EfficientNMS_TRT detections, not the raw output compare measures: "
                               "compare the engines built without --trt-nms" % r.path.name)
    if not frames:
        raise EdgekitError("no frames to compare on: give --data, --source or neither (synthetic frames)")
    pipes = [Pipeline(r, conf=conf, iou=iou) for r in (a, b)]
    hw_a, hw_b = pipes[0].hw, pipes[1].hw
    # raw tensors are comparable element by element for two raw outputs of one input size; an end-to-end head's
    # rows are sorted by score, so row i of one model need not be row i of the other: detections only
    same_format = pipes[0].output == pipes[1].output == "raw"
    same_size = tuple(hw_a) == tuple(hw_b) and same_format
    max_abs, mean_abs, rel, cos = [], [], [], []
    n_a = n_b = matched = same_class = 0
    ious: List[float] = []
    count_diff = []
    identical = True  # the same output tensors on every frame (any output format)
    for frame in frames:
        outs, dets = [], []
        for r, pipe in zip((a, b), pipes):
            blob, boxes = pipe.preprocess([frame])
            out = r.infer(blob)[0].astype(np.float32)
            outs.append(out)
            dets.append(pipe.postprocess([out], boxes)[0])  # boxes in frame coordinates (letterbox undone)
        if pipes[0].output == pipes[1].output == "raw" and (
                outs[0].shape[:2] != outs[1].shape[:2] or (same_size and outs[0].shape != outs[1].shape)):
            raise EdgekitError("outputs differ in shape: %s vs %s (models with different classes?)"
                               % (outs[0].shape, outs[1].shape))
        same_size = same_size and outs[0].shape == outs[1].shape
        identical = identical and outs[0].shape == outs[1].shape and np.array_equal(outs[0], outs[1])
        if same_size:
            _raw_errors(outs[0], outs[1], max_abs, mean_abs, rel, cos)
        da, db = dets
        pairs = match(da, db, match_iou)
        n_a, n_b, matched = n_a + len(da), n_b + len(db), matched + len(pairs)
        same_class += sum(int(da.class_id[i] == db.class_id[j]) for i, j, _ in pairs)
        ious += [p[2] for p in pairs]
        count_diff.append(len(db) - len(da))
    raw = {"max_abs": max(max_abs), "mean_abs": float(np.mean(mean_abs)), "max_rel": max(rel),
           "min_cosine": min(cos)} if same_size else None
    return {
        "a": str(a.path), "b": str(b.path), "frames": len(frames),
        "input_hw": {"a": list(hw_a), "b": list(hw_b)},
        "settings": {"conf": conf, "iou": iou, "match_iou": match_iou},
        "raw": raw,
        "raw_skipped": None if raw else _raw_skipped(pipes[0], pipes[1], outs[0].shape, outs[1].shape),
        "output_format": {"a": pipes[0].output, "b": pipes[1].output},
        "detections": {
            "a": n_a, "b": n_b, "matched": matched,
            "only_a": n_a - matched, "only_b": n_b - matched,
            # None when neither model found anything: there is nothing to agree on, not "100% agreement"
            "match_rate": round(matched / max(n_a, n_b), 5) if max(n_a, n_b) else None,
            "class_agreement": round(same_class / matched, 5) if matched else None,
            "mean_iou": round(float(np.mean(ious)), 5) if ious else None,
            "frames_with_count_difference": int(sum(1 for c in count_diff if c)),
            "max_count_difference": int(max((abs(c) for c in count_diff), default=0)),
        },
        "identical": identical,
    }


def _raw_skipped(pa: Pipeline, pb: Pipeline, shape_a, shape_b) -> str:
    if pa.output != pb.output:
        why = "different outputs (%s %s vs %s %s)" % (pa.output, list(shape_a), pb.output, list(shape_b))
    elif pa.output == "end2end":
        why = "end-to-end outputs (rows sorted by score: row i of one is not row i of the other)"
    elif tuple(pa.hw) != tuple(pb.hw):
        why = "different input sizes (%dx%d vs %dx%d)" % (pa.hw[0], pa.hw[1], pb.hw[0], pb.hw[1])
    else:
        why = "different output shapes (%s vs %s)" % (list(shape_a), list(shape_b))
    return why + ": detections compared in frame coordinates only"


def _raw_errors(oa: np.ndarray, ob: np.ndarray, max_abs: List[float], mean_abs: List[float], rel: List[float],
                cos: List[float]) -> None:
    d = np.abs(oa - ob)
    max_abs.append(float(d.max()))
    mean_abs.append(float(d.mean()))
    rel.append(float(d.max() / (np.abs(oa).max() + 1e-9)))
    fa, fb = oa.ravel().astype(np.float64), ob.ravel().astype(np.float64)
    cos.append(float(fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb) + 1e-12)))


def accuracy(a: Runner, b: Runner, dataset) -> Dict[str, Any]:
    """Both models evaluated on the whole ``dataset`` (an ``edgekit.eval.dataset.Dataset``) with eval's settings,
    each image read once: ``{"dataset", "split", "settings", "problems", "a": metrics, "b": metrics, "change"}``,
    where ``a``/``b`` are eval's ``metrics`` and ``change`` is B minus A for every figure of ``accuracy_figures``
    (in the metrics' units: -0.054 is 5.4 points lost; None where either model has no figure)."""
    from edgekit.eval.evaluate import evaluate_many

    ra, rb = evaluate_many([a, b], dataset)
    fa, fb = accuracy_figures(ra["metrics"]), accuracy_figures(rb["metrics"])
    return {"dataset": dataset.source, "split": dataset.split, "settings": ra["settings"],
            "problems": ra["problems"], "a": ra["metrics"], "b": rb["metrics"],
            "change": {k: _change(fa[k], fb[k]) for k in fa}}


def accuracy_figures(metrics: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """The figures compare sets side by side: overall mAP50-95, mAP50, P, R, then mAP50-95 and R by size."""
    from edgekit.eval.metrics import size_figures

    return {**{k: metrics[k] for k in ("map50_95", "map50", "precision", "recall")}, **size_figures(metrics)}


def _change(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else round(b - a, 5)
