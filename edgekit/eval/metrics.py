"""Detection metrics with pycocotools (COCO's reference implementation), in ultralytics' conventions.

mAP50-95 and mAP50 come from ``COCOeval`` (101-point interpolated precision, IoU 0.50:0.95) with up to
``max_det`` detections per image (ultralytics keeps 300, COCO's default is 100). Precision and recall are
reported as ultralytics reports them: at the confidence that maximizes the mean F1 over classes, IoU 0.5.
A class of the ground truth that the model never detects has AP, precision and recall 0 (it counts in the means).

By object size, in the same ``COCOeval`` run (its area ranges, in pixels of the original image, box width x
height): small below 32², medium 32² to 96², large from 96² (an object of exactly 32² or 96² counts in both
neighbouring ranges, as in pycocotools; crowd boxes are ignored). For each size: ``instances`` (the boxes of that
size), mAP50-95 and mAP50 (pycocotools' APs/APm/APl: ``stats[3:6]`` for mAP50-95), and recall at the same
operating point as the overall recall (the confidence of maximum mean F1 over all sizes, IoU 0.5), from COCOeval's
matches for that range, so "recall small" reads against "recall". Means are over the classes that have objects of
that size; a size with no object in the split has None. Note: a COCO json's own ``area`` (the mask area in COCO's
files) is not used; boxes give the area, so COCO val2017's APs/APm/APl can differ a little from the official ones.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgekit.lazy import lazy_import

GroundTruth = Tuple[int, int, int, np.ndarray, np.ndarray, np.ndarray]  # id, w, h, xyxy, classes, iscrowd
Prediction = Tuple[int, np.ndarray, np.ndarray, np.ndarray]  # id, xyxy, scores, classes
SIZES = ("small", "medium", "large")  # COCOeval's area ranges 1, 2, 3 (0 is "all")
PX = np.linspace(0, 1, 1000)  # the confidences the P/R curves are sampled at (ultralytics')


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1)


def _coco_objects(gts: Sequence[GroundTruth], preds: Sequence[Prediction], names: Mapping[int, str]):
    """Ground truth and detections as pycocotools objects (an empty detection set when nothing was found)."""
    coco_mod = lazy_import("pycocotools.coco")
    images, anns, dets = [], [], []
    for img_id, w, h, xyxy, classes, crowd in gts:
        images.append({"id": img_id, "width": w, "height": h})
        for box, c, z in zip(_xywh(xyxy), classes, crowd):
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(c) + 1, "bbox": box.tolist(),
                         "area": float(box[2] * box[3]), "iscrowd": int(z)})
    for img_id, xyxy, scores, classes in preds:
        for box, s, c in zip(_xywh(xyxy), scores, classes):
            dets.append({"image_id": img_id, "category_id": int(c) + 1, "bbox": [float(v) for v in box],
                         "score": float(s)})
    categories = [{"id": k + 1, "name": v} for k, v in sorted(names.items())]
    gt = coco_mod.COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if dets:
            dt = gt.loadRes(dets)
        else:  # loadRes cannot take an empty list; COCOeval takes an empty set (AP 0 for every class)
            dt = coco_mod.COCO()
            dt.dataset = {"images": images, "annotations": [], "categories": categories}
            dt.createIndex()
    return gt, dt


def _smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """ultralytics' box filter over the F1 curve (fraction ``f`` of the points)."""
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def _matches(evaluator) -> Dict[Tuple[int, int], List[dict]]:
    """COCOeval's per-image results grouped by (category id, area range index), in one pass."""
    areas = {tuple(a): i for i, a in enumerate(evaluator.params.areaRng)}
    groups: Dict[Tuple[int, int], List[dict]] = {}
    for e in evaluator.evalImgs:
        if e is not None:
            groups.setdefault((e["category_id"], areas[tuple(e["aRng"])]), []).append(e)
    return groups


def _curves(evals: List[dict]) -> Tuple[np.ndarray, np.ndarray, int]:
    """Precision and recall against confidence (``PX``) at IoU 0.5 for one class and area range, and the number
    of its ground-truth boxes that count. A class with no detection has both curves 0 (not an error)."""
    scores, tps, npos = [], [], 0
    for e in evals:
        npos += int(np.count_nonzero(np.logical_not(e["gtIgnore"])))
        keep = np.logical_not(e["dtIgnore"][0])
        scores.append(np.asarray(e["dtScores"], np.float64)[keep])
        tps.append(np.asarray(e["dtMatches"][0])[keep] > 0)
    s = np.concatenate(scores) if scores else np.zeros(0)
    if npos == 0 or s.size == 0:
        return np.zeros(PX.size), np.zeros(PX.size), npos
    tp = np.concatenate(tps).astype(np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, tp = s[order], tp[order]
    tpc, fpc = np.cumsum(tp), np.cumsum(1 - tp)
    return (np.interp(-PX, -s, tpc / (tpc + fpc), left=1),
            np.interp(-PX, -s, tpc / (npos + 1e-16), left=0), npos)


def precision_recall(evaluator, class_ids: List[int]) -> Tuple[np.ndarray, np.ndarray, float, Dict[str, Any]]:
    """Per-class P and R at the confidence maximizing mean F1 (IoU 0.5), from COCOeval's matches; and, at that
    same confidence, per-class recall and box count for each size: ``{"small": (recall, instances), ...}``."""
    groups = _matches(evaluator)
    p_curve, r_curve = np.zeros((len(class_ids), PX.size)), np.zeros((len(class_ids), PX.size))
    for k, cid in enumerate(class_ids):
        p_curve[k], r_curve[k], _ = _curves(groups.get((cid, 0), []))
    f1 = 2 * p_curve * r_curve / (p_curve + r_curve + 1e-16)
    i = int(_smooth(f1.mean(0), 0.1).argmax()) if len(class_ids) else 0
    by_size = {}
    for a, size in enumerate(SIZES, 1):
        curves = [_curves(groups.get((cid, a), [])) for cid in class_ids]
        by_size[size] = (np.array([c[1][i] for c in curves]), np.array([c[2] for c in curves], np.int64))
    return p_curve[:, i], r_curve[:, i], float(PX[i]), by_size


def detection_metrics(gts: Sequence[GroundTruth], preds: Sequence[Prediction], names: Mapping[int, str],
                      max_det: int = 300) -> Dict[str, Any]:
    """mAP50-95, mAP50, precision, recall overall and per class, and by object size (``sizes``).

    The overall figures are means over the classes present in the ground truth (as ultralytics reports them);
    ``per_class`` has a row for every class of the dataset, in id order: a class with no instances in the split
    has ``instances`` 0 and None for its metrics; a class nothing was detected for has zeros.
    """
    cocoeval_mod = lazy_import("pycocotools.cocoeval")
    present = sorted({int(c) for g in gts for c in g[4]})
    counts = {c: int(sum(int(np.sum(g[4] == c)) for g in gts)) for c in present}
    result = {"map50_95": 0.0, "map50": 0.0, "precision": 0.0, "recall": 0.0, "conf_at_max_f1": None,
              "images": len(gts), "instances": int(sum(counts.values()))}
    if not present:  # nothing to find: no figure means anything
        result.update(sizes=_sizes({}), per_class=_per_class(names, present, counts, {}, {}))
        return result
    gt, dt = _coco_objects(gts, preds, names)
    ev = cocoeval_mod.COCOeval(gt, dt, "bbox")
    ev.params.maxDets = [1, 10, max_det]
    ev.params.catIds = [c + 1 for c in present]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][..., -1]  # [iou, recall, class, area] at maxDets=max_det; -1: no such objects

    def ap(x: np.ndarray) -> Optional[float]:
        x = x[x > -1]
        return float(x.mean()) if x.size else None

    p, r, conf, by_size = precision_recall(ev, [c + 1 for c in present])
    figures = {c: (ap(prec[:, :, k, 0]) or 0.0, ap(prec[0, :, k, 0]) or 0.0, float(p[k]), float(r[k]))
               for k, c in enumerate(present)}
    sizes = {c: {size: {"instances": int(by_size[size][1][k]), "map50_95": ap(prec[:, :, k, a]),
                        "map50": ap(prec[0, :, k, a]),
                        "recall": float(by_size[size][0][k]) if by_size[size][1][k] else None}
                 for a, size in enumerate(SIZES, 1)} for k, c in enumerate(present)}
    result.update(map50_95=round(float(np.mean([f[0] for f in figures.values()])), 5),
                  map50=round(float(np.mean([f[1] for f in figures.values()])), 5),
                  precision=round(float(p.mean()), 5), recall=round(float(r.mean()), 5),
                  conf_at_max_f1=round(conf, 4) if any(len(x[2]) for x in preds) else None,
                  sizes=_sizes(sizes), per_class=_per_class(names, present, counts, figures, sizes))
    return result


def _mean(values: List[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 5) if values else None


def _sizes(per_class: Mapping[int, Dict[str, Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """The ``sizes`` of the overall figures: instances summed, figures averaged over classes that have them."""
    out = {}
    for size in SIZES:
        rows = [s[size] for s in per_class.values()]
        out[size] = {"instances": int(sum(row["instances"] for row in rows)),
                     **{k: _mean([row[k] for row in rows]) for k in ("map50_95", "map50", "recall")}}
    return out


def _per_class(names: Mapping[int, str], present: List[int], counts: Mapping[int, int],
               figures: Mapping[int, Tuple[float, float, float, float]],
               sizes: Mapping[int, Dict[str, Dict[str, Any]]]) -> List[Dict[str, Any]]:
    rows = []
    for c in sorted(set(names) | set(present)):
        f = figures.get(c)
        rows.append({"class_id": c, "name": names.get(c, str(c)), "instances": counts.get(c, 0),
                     **dict(zip(("map50_95", "map50", "precision", "recall"),
                                (round(v, 5) for v in f) if f else (None,) * 4)),
                     "sizes": _sizes({c: sizes[c]}) if c in sizes else _sizes({})})
    return rows


def size_figures(metrics: Mapping[str, Any]) -> Dict[str, Optional[float]]:
    """mAP50-95 and recall by size, flat, for tables and reports: ``map50_95_small``, ``recall_small``, ...
    ``_medium``, ``_large``; None where a size has no objects, and all None for results without ``sizes`` (files
    written before edgekit measured them). Takes the overall ``metrics`` or one of its ``per_class`` rows."""
    sizes = metrics.get("sizes") or {}
    out: Dict[str, Optional[float]] = {}
    for size in SIZES:
        figures = sizes.get(size) or {}
        out["map50_95_" + size] = figures.get("map50_95")
        out["recall_" + size] = figures.get("recall")
    return out
