"""``edgekit eval``: run a model (any backend) over a dataset and compute mAP/P/R, ultralytics-style.

Predictions use the deployment pipeline (letterbox, the runner, decode + NMS) with validation settings:
conf 0.001, IoU 0.7, up to 300 detections, multi-label NMS. Images that fail to decode are skipped and counted.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from edgekit.errors import EdgekitError
from edgekit.eval.dataset import Dataset
from edgekit.eval.metrics import detection_metrics
from edgekit.log import progress_bar, warn
from edgekit.runtime import Runner
from edgekit.vision.images import read_image
from edgekit.vision.pipeline import Pipeline


def evaluate(runner: Runner, dataset: Dataset, conf: float = 0.001, iou: float = 0.7, max_det: int = 300,
             show_progress: bool = True) -> Dict[str, Any]:
    pipe = Pipeline(runner, conf=conf, iou=iou, max_det=max_det, multi_label=True)
    mismatch = class_mismatch(runner.info.names if runner.info else {}, dataset.names, runner.path.name)
    if mismatch:
        warn(mismatch)
    gts, preds, infer_ms = [], [], []
    progress = progress_bar(TextColumn("eval %s" % runner.path.name), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), show=show_progress)
    with progress:
        task = progress.add_task("eval", total=len(dataset.samples))
        for img_id, sample in enumerate(dataset.samples, 1):
            progress.advance(task)
            if not sample.image.is_file():  # named as missing, and OpenCV is not asked (it logs its own warning)
                dataset.problem("missing_images", "%s: not found; skipped" % sample.image)
                continue
            image = read_image(sample.image)
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
        # the tensor as it is fed, as bench records it: [1, 3, H, W] floats or [1, H, W, 3] uint8 pixels
        "input_shape": [1, 3, pipe.hw[0], pipe.hw[1]] if pipe.format.kind == "float" else
        [1] + list(pipe.format.frame_hw or pipe.hw) + [3],
        "input_format": pipe.format.kind,
        "imgsz": list(pipe.hw),
        "dataset": dataset.source,
        "split": dataset.split,
        "class_mismatch": mismatch,
        "settings": {"conf": conf, "iou": iou, "max_det": max_det, "multi_label": True},
        "metrics": metrics,
        "problems": dict(dataset.problems),
        "problem_examples": {kind: dataset.messages[kind][0] for kind in dataset.problems},
        "inference_ms_mean": round(float(np.mean(infer_ms)), 3) if infer_ms else None,
    }


def class_mismatch(model_names: Dict[int, str], data_names: Dict[int, str], model: str) -> Optional[str]:
    """One line when the model's classes are not the dataset's (count or names), else None (also when the model
    does not say). Class ids are compared as they are, so a mismatch makes the figures meaningless."""
    if not model_names or not data_names:
        return None
    if len(model_names) != len(data_names):
        return ("%s has %d classes (%s) and the dataset %d (%s): class ids are compared as they are, so expect "
                "zeros; evaluate a model trained on this dataset's classes"
                % (model, len(model_names), _some(model_names), len(data_names), _some(data_names)))
    differ = [k for k in sorted(data_names)
              if str(model_names.get(k, "")).strip().lower() != str(data_names[k]).strip().lower()]
    if differ:
        k = differ[0]
        return ("%s names its classes differently from the dataset (%d of %d differ; class %d is '%s' in the model, "
                "'%s' in the dataset): class ids are compared as they are" % (
                    model, len(differ), len(data_names), k, model_names.get(k, "?"), data_names[k]))
    return None


def _some(names: Dict[int, str], n: int = 3) -> str:
    items = [names[k] for k in sorted(names)]
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def metrics_rows(result: Dict[str, Any]) -> List[List[str]]:
    """Rows for a table: 'all' first, then each class of the dataset ('-' for a class with no instances)."""
    m = result["metrics"]
    rows = [["all", str(m["images"]), str(m["instances"]), "%.3f" % m["precision"], "%.3f" % m["recall"],
             "%.3f" % m["map50"], "%.3f" % m["map50_95"]]]
    for c in m["per_class"]:
        rows.append([c["name"], "", str(c["instances"])] + [
            "-" if c[k] is None else "%.3f" % c[k] for k in ("precision", "recall", "map50", "map50_95")])
    return rows
