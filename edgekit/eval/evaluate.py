"""``edgekit eval``: run a model (any backend) over a dataset and compute mAP/P/R, ultralytics-style, overall, per
class and by object size (``edgekit.eval.metrics``).

Predictions use the deployment pipeline (letterbox, the runner, decode + NMS) with validation settings:
conf 0.001, IoU 0.7, up to 300 detections, multi-label NMS. An end-to-end model (``edgekit export --end2end``) is
read as ultralytics' validator reads one: its ``[B, K, 6]`` rows above conf, no NMS, up to 300 (at most its K).
Images that fail to decode are skipped and counted.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from edgekit.errors import EdgekitError
from edgekit.eval.dataset import Dataset
from edgekit.eval.metrics import SIZES, detection_metrics, size_figures
from edgekit.log import progress_bar, warn
from edgekit.runtime import Runner
from edgekit.runtime.modelinfo import derived_from
from edgekit.vision.images import read_image
from edgekit.vision.pipeline import Pipeline


def evaluate(runner: Runner, dataset: Dataset, conf: float = 0.001, iou: float = 0.7, max_det: Optional[int] = None,
             show_progress: bool = True) -> Dict[str, Any]:
    return evaluate_many([runner], dataset, conf=conf, iou=iou, max_det=max_det, show_progress=show_progress)[0]


def evaluate_many(runners: Sequence[Runner], dataset: Dataset, conf: float = 0.001, iou: float = 0.7,
                  max_det: Optional[int] = None, show_progress: bool = True) -> List[Dict[str, Any]]:
    """``evaluate`` for several models on the same images: each image is read once and its problems counted once
    (``compare --data`` evaluates both models this way). One result per runner, in order. ``max_det`` None: 300,
    or an end-to-end model's K where it returns fewer (``Pipeline``)."""
    pipes = [Pipeline(r, conf=conf, iou=iou, max_det=max_det, multi_label=True) for r in runners]
    mismatches = [class_mismatch(r.info.names if r.info else {}, dataset.names, r.path.name) for r in runners]
    for mismatch in mismatches:
        if mismatch:
            warn(mismatch)
    gts: List[Any] = []
    preds: List[List[Any]] = [[] for _ in runners]
    infer_ms: List[List[float]] = [[] for _ in runners]
    progress = progress_bar(TextColumn("eval %s" % ", ".join(r.path.name for r in runners)), BarColumn(),
                            MofNCompleteColumn(), TimeRemainingColumn(), show=show_progress)
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
            for runner, pipe, found, ms in zip(runners, pipes, preds, infer_ms):
                blob, boxes = pipe.preprocess([image])
                t0 = time.perf_counter()
                outputs = runner.infer(blob)
                ms.append((time.perf_counter() - t0) * 1e3)
                dets = pipe.postprocess(outputs, boxes)[0]
                found.append((img_id, dets.xyxy, dets.confidence, dets.class_id))
            crowd = sample.iscrowd if sample.iscrowd is not None else np.zeros(len(sample.classes), np.int64)
            gts.append((img_id, w, h, sample.boxes_xyxy(w, h), sample.classes, crowd))
    for kind, count in dataset.problems.items():
        warn("%d %s in %s (first: %s)" % (count, kind.replace("_", " "), dataset.source, dataset.messages[kind][0]))
    if not gts:
        raise EdgekitError("no image of %s could be evaluated (%s): nothing to measure"
                           % (dataset.source, ", ".join("%d %s" % (n, k.replace("_", " "))
                                                        for k, n in dataset.problems.items()) or "no images"))
    return [_result(runner, pipe, dataset, detection_metrics(gts, found, dataset.names, max_det=pipe.max_det),
                    mismatch, ms, settings(pipe))
            for runner, pipe, found, mismatch, ms in zip(runners, pipes, preds, mismatches, infer_ms)]


def settings(pipe: Pipeline) -> Dict[str, Any]:
    """The settings as applied: an end-to-end model runs no NMS (``iou`` and ``multi_label`` are not used)."""
    if pipe.output == "end2end":
        return {"conf": pipe.conf, "iou": None, "max_det": pipe.max_det, "multi_label": None, "nms": "none (end2end)"}
    return {"conf": pipe.conf, "iou": pipe.iou, "max_det": pipe.max_det, "multi_label": True}


def _result(runner: Runner, pipe: Pipeline, dataset: Dataset, metrics: Dict[str, Any], mismatch: Optional[str],
            infer_ms: List[float], settings: Dict[str, Any]) -> Dict[str, Any]:
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
        "accuracy_gate": info.get("accuracy") if info else None,  # edgekit build/quantize --accuracy-data's record
        "derived_from": derived_from(info),  # the source model's sha256: edgekit report's change column
        "pruned": bool(info.get("pruned", False)) if info else False,
        "params": info.get("params") if info else None,
        "gflops": info.get("gflops") if info else None,
        # the tensor as it is fed, as bench records it: [1, 3, H, W] floats or [1, H, W, 3] uint8 pixels
        "input_shape": [1, 3, pipe.hw[0], pipe.hw[1]] if pipe.format.kind == "float" else
        [1] + list(pipe.format.frame_hw or pipe.hw) + [3],
        "input_format": pipe.format.kind,
        "output_format": pipe.output,
        "imgsz": list(pipe.hw),
        "dataset": dataset.source,
        "split": dataset.split,
        "class_mismatch": mismatch,
        "settings": settings,
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
    """Rows for a table or CSV: 'all' first, then each class of the dataset ('-' for a class with no instances);
    columns: class, images, instances, P, R, mAP50, mAP50-95, then mAP50-95 and R of each size (SIZE_COLUMNS)."""
    m = result["metrics"]
    rows = [["all", str(m["images"]), str(m["instances"])] + _figures(m)]
    for c in m["per_class"]:
        rows.append([c["name"], "", str(c["instances"])] + _figures(c))
    return rows


SIZE_COLUMNS = [(kind + "_" + size) for size in SIZES for kind in ("map50_95", "recall")]


def _figures(m: Dict[str, Any]) -> List[str]:
    sizes = size_figures(m)
    return ["-" if v is None else "%.3f" % v
            for v in [m[k] for k in ("precision", "recall", "map50", "map50_95")] + [sizes[k] for k in SIZE_COLUMNS]]
