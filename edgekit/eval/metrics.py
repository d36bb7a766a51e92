"""Detection metrics with pycocotools (COCO's reference implementation), in ultralytics' conventions.

mAP50-95 and mAP50 come from ``COCOeval`` (101-point interpolated precision, IoU 0.50:0.95) with up to
``max_det`` detections per image (ultralytics keeps 300, COCO's default is 100). Precision and recall are
reported as ultralytics reports them: at the confidence that maximizes the mean F1 over classes, IoU 0.5.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from edgekit.lazy import lazy_import

GroundTruth = Tuple[int, int, int, np.ndarray, np.ndarray, np.ndarray]  # id, w, h, xyxy, classes, iscrowd
Prediction = Tuple[int, np.ndarray, np.ndarray, np.ndarray]  # id, xyxy, scores, classes


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1)


def _coco_objects(gts: Sequence[GroundTruth], preds: Sequence[Prediction], names: Mapping[int, str]):
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
    gt = coco_mod.COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": k + 1, "name": v} for k, v in sorted(names.items())]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else None
    return gt, dt


def _smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """ultralytics' box filter over the F1 curve (fraction ``f`` of the points)."""
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def precision_recall(evaluator, class_ids: List[int]) -> Tuple[np.ndarray, np.ndarray, float]:
    """Per-class P and R at the confidence maximizing mean F1 (IoU 0.5), from COCOeval's matches."""
    px = np.linspace(0, 1, 1000)
    p_curve, r_curve = np.zeros((len(class_ids), px.size)), np.zeros((len(class_ids), px.size))
    area_all = evaluator.params.areaRng[0]
    for k, cid in enumerate(class_ids):
        scores, tps, npos = [], [], 0
        for e in evaluator.evalImgs:
            if e is None or e["category_id"] != cid or e["aRng"] != area_all:
                continue
            npos += int(np.sum(np.logical_not(e["gtIgnore"])))
            keep = np.logical_not(e["dtIgnore"][0])
            scores.append(np.asarray(e["dtScores"])[keep])
            tps.append(e["dtMatches"][0][keep] > 0)
        if not scores or npos == 0:
            continue
        s, tp = np.concatenate(scores), np.concatenate(tps).astype(np.float64)
        order = np.argsort(-s, kind="mergesort")
        s, tp = s[order], tp[order]
        tpc, fpc = np.cumsum(tp), np.cumsum(1 - tp)
        r_curve[k] = np.interp(-px, -s, tpc / (npos + 1e-16), left=0)
        p_curve[k] = np.interp(-px, -s, tpc / (tpc + fpc), left=1)
    f1 = 2 * p_curve * r_curve / (p_curve + r_curve + 1e-16)
    i = int(_smooth(f1.mean(0), 0.1).argmax()) if len(class_ids) else 0
    return p_curve[:, i], r_curve[:, i], float(px[i])


def detection_metrics(gts: Sequence[GroundTruth], preds: Sequence[Prediction], names: Mapping[int, str],
                      max_det: int = 300) -> Dict[str, Any]:
    """mAP50-95, mAP50, precision, recall overall and per class.

    The overall figures are means over the classes present in the ground truth (as ultralytics reports them);
    ``per_class`` has a row for every class of the dataset, in id order: a class with no instances in the split
    has ``instances`` 0 and None for its metrics; a class nothing was detected for has zeros.
    """
    cocoeval_mod = lazy_import("pycocotools.cocoeval")
    present = sorted({int(c) for g in gts for c in g[4]})
    counts = {c: int(sum(int(np.sum(g[4] == c)) for g in gts)) for c in present}
    zeros = {c: (0.0, 0.0, 0.0, 0.0) for c in present}  # map50_95, map50, precision, recall
    result = {"map50_95": 0.0, "map50": 0.0, "precision": 0.0, "recall": 0.0, "conf_at_max_f1": None,
              "images": len(gts), "instances": int(sum(counts.values()))}
    gt, dt = _coco_objects(gts, preds, names)
    if dt is None or not present:
        result["per_class"] = _per_class(names, present, counts, zeros)
        return result
    ev = cocoeval_mod.COCOeval(gt, dt, "bbox")
    ev.params.maxDets = [1, 10, max_det]
    ev.params.catIds = [c + 1 for c in present]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # [iou, recall, class] at area=all, maxDets=max_det

    def ap(x: np.ndarray) -> float:
        x = x[x > -1]
        return float(x.mean()) if x.size else 0.0

    p, r, conf = precision_recall(ev, [c + 1 for c in present])
    figures = {c: (ap(prec[:, :, k]), ap(prec[0, :, k]), float(p[k]), float(r[k])) for k, c in enumerate(present)}
    result.update(map50_95=round(float(np.mean([f[0] for f in figures.values()])), 5),
                  map50=round(float(np.mean([f[1] for f in figures.values()])), 5),
                  precision=round(float(p.mean()), 5), recall=round(float(r.mean()), 5),
                  conf_at_max_f1=round(conf, 4), per_class=_per_class(names, present, counts, figures))
    return result


def _per_class(names: Mapping[int, str], present: List[int], counts: Mapping[int, int],
               figures: Mapping[int, Tuple[float, float, float, float]]) -> List[Dict[str, Any]]:
    rows = []
    for c in sorted(set(names) | set(present)):
        f = figures.get(c)
        rows.append({"class_id": c, "name": names.get(c, str(c)), "instances": counts.get(c, 0),
                     **dict(zip(("map50_95", "map50", "precision", "recall"),
                                (round(v, 5) for v in f) if f else (None,) * 4))})
    return rows
