"""``edgekit eval``: run a model (any backend) over a dataset and compute mAP/P/R, ultralytics-style.

Predictions use the deployment pipeline (letterbox, the runner, decode + NMS) with validation settings:
conf 0.001, IoU 0.7, up to 300 detections, multi-label NMS. Images that fail to decode are skipped and counted.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

import cv2
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edgekit.errors import EdgekitError
from edgekit.eval.dataset import Dataset
from edgekit.eval.metrics import detection_metrics
from edgekit.log import console, warn
from edgekit.runtime import Runner
from edgekit.vision.pipeline import Pipeline


def evaluate(runner: Runner, dataset: Dataset, conf: float = 0.001, iou: float = 0.7, max_det: int = 300,
             show_progress: bool = True) -> Dict[str, Any]:
    pipe = Pipeline(runner, conf=conf, iou=iou, max_det=max_det, multi_label=True)
    gts, preds, infer_ms = [], [], []
    progress = Progress(TextColumn("eval %s" % runner.path.name), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=console, transient=True, disable=not show_progress)
    with progress:
        task = progress.add_task("eval", total=len(dataset.samples))
        for img_id, sample in enumerate(dataset.samples, 1):
            progress.advance(task)
            if not sample.image.is_file():  # named as missing, and OpenCV is not asked (it logs its own warning)
                dataset.problem("missing_images", "%s: not found; skipped" % sample.image)
                continue
            image = cv2.imread(str(sample.image))
            if image is None:
                dataset.problem("unreadable_images", "%s: cannot decode; skipped" % sample.image)
                continue
            h, w = image.shape[:2]
            blob, boxes = pipe.preprocess([image])
            t0 = time.perf_counter()
            outputs = runner.infer(blob)
            infer_ms.append((time.perf_counter() - t0) * 1e3)
            dets = pipe.postprocess(outputs, boxes)[0]
            crowd = sample.iscrowd if sample.iscrowd is not None else np.zeros(len(sample.classes), np.int64)
            gts.append((img_id, w, h, sample.boxes_xyxy(w, h), sample.classes, crowd))
            preds.append((img_id, dets.xyxy, dets.confidence, dets.class_id))
    for kind, count in dataset.problems.items():
        warn("%d %s in %s (first: %s)" % (count, kind.replace("_", " "), dataset.source, dataset.messages[kind][0]))
    if not gts:
        raise EdgekitError("no image of %s could be evaluated (%s): nothing to measure"
                           % (dataset.source, ", ".join("%d %s" % (n, k.replace("_", " "))
                                                        for k, n in dataset.problems.items()) or "no images"))
    metrics = detection_metrics(gts, preds, dataset.names, max_det=max_det)
    info = runner.info
    return {
        "model": str(runner.path),
        "name": runner.path.stem,
        "backend": runner.backend,
        "device": runner.device,
        "precision": info.get("precision", "fp32") if info else "fp32",
        "trained": info.trained if info else None,
        "weights_label": info.weights_label if info else None,
        "sha256": info.get("sha256") if info else None,
        "pruned": bool(info.get("pruned", False)) if info else False,
        "params": info.get("params") if info else None,
        "gflops": info.get("gflops") if info else None,
        "input_shape": [1, 3, pipe.hw[0], pipe.hw[1]],
        "dataset": dataset.source,
        "settings": {"conf": conf, "iou": iou, "max_det": max_det, "multi_label": True},
        "metrics": metrics,
        "problems": dict(dataset.problems),
        "problem_examples": {kind: dataset.messages[kind][0] for kind in dataset.problems},
        "inference_ms_mean": round(float(np.mean(infer_ms)), 3) if infer_ms else None,
    }


def metrics_rows(result: Dict[str, Any]) -> List[List[str]]:
    """Rows for a table: 'all' first, then each class."""
    m = result["metrics"]
    rows = [["all", str(m["images"]), str(m["instances"]), "%.3f" % m["precision"], "%.3f" % m["recall"],
             "%.3f" % m["map50"], "%.3f" % m["map50_95"]]]
    for c in m["per_class"]:
        rows.append([c["name"], "", str(c["instances"]), "%.3f" % c["precision"], "%.3f" % c["recall"],
                     "%.3f" % c["map50"], "%.3f" % c["map50_95"]])
    return rows
