"""The accuracy gate: a new model (an INT8 engine, a Q/DQ ONNX) measured beside the ONNX it came from.

``edgekit build`` and ``edgekit quantize`` with ``--accuracy-data DATA [--max-map-drop POINTS]`` evaluate the
model they just made and its reference on DATA with edgekit eval's own pipeline and metrics, and refuse to keep
a model that loses more than POINTS of mAP50-95 (a point is 0.01 mAP). The record goes into the new model's
manifest as ``accuracy``; bench, eval and serve show it as ``accuracy_gate``.

The reference runs on ONNX Runtime: for a float ONNX, itself; for a Q/DQ (or FP16) ONNX made by edgekit
quantize, the float ONNX its manifest names (``derived_from``) when that file is here unchanged, so the drop
covers quantization and TensorRT together. A reference's figures are cached by content (its sha256, the
dataset's fingerprint, the settings) under ``~/.cache/edgekit/accuracy``: trying other build options on the same
device measures the reference once.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from edgekit.errors import EdgekitError
from edgekit.eval.metrics import size_figures
from edgekit.log import warn
from edgekit.manifest import read_manifest, sha256_file, utc_now, write_json_atomic
from edgekit.report.join import dataset_label

SETTINGS = {"conf": 0.001, "iou": 0.7, "max_det": None}  # edgekit eval's: max_det None is 300, or an end2end top-k
WARN_DROP = 1.0  # without --max-map-drop a bigger drop is said in a warning (never refused)


class GateRefused(EdgekitError):
    """A model that lost more than --max-map-drop: one line with both numbers, exit code 1 (a failed check, as
    a failed test; 2 stays a bad command line or input)."""

    exit_code = 1


@dataclass
class GateRequest:
    data: str
    split: str = "val"
    images: Optional[str] = None  # the image folder of a COCO json
    max_drop: Optional[float] = None  # points; None: measure and record, never refuse
    dataset: Any = field(default=None, repr=False)
    fingerprint: str = ""


def gate_request(data: Optional[str], split: str = "val", images: Optional[str] = None,
                 max_drop: Optional[float] = None) -> Optional[GateRequest]:
    """The gate asked for on the command line, its dataset loaded and checked now (not after a long build);
    None when no gate was asked for."""
    if data is None:
        if max_drop is not None:
            raise EdgekitError("--max-map-drop %g needs --accuracy-data DATA: the dataset (data.yaml or COCO json) "
                               "to measure the drop on" % max_drop)
        if images is not None or split != "val":
            raise EdgekitError("--accuracy-%s goes with --accuracy-data DATA" % ("images" if images else "split"))
        return None
    if max_drop is not None and not max_drop >= 0:  # also NaN; the CLI's FloatRange refuses these first
        raise EdgekitError("--max-map-drop %s: give points of mAP50-95 >= 0 (1.0 = 0.01 mAP)" % max_drop)
    from edgekit.eval.dataset import load_dataset
    from edgekit.lazy import require

    try:
        require("pycocotools", "onnxruntime")  # mAP is pycocotools'; the reference runs on ONNX Runtime
        dataset = load_dataset(data, split=split, images=images)
    except EdgekitError as exc:
        message = _as_gate_options(str(exc))
        raise EdgekitError(message if message.startswith("--accuracy-") else "--accuracy-data: " + message) from exc
    return GateRequest(str(data), split, images, max_drop, dataset, fingerprint(dataset))


def _as_gate_options(message: str) -> str:
    """eval's messages name eval's options: say the gate's."""
    for option in ("--data", "--images", "--split"):
        message = message.replace(option + " ", option.replace("--", "--accuracy-") + " ")
    return message.replace("choose with --split", "choose with --accuracy-split")


def fingerprint(dataset: Any) -> str:
    """What was measured on: every image (path, size) and its labels, in order."""
    h = hashlib.sha256(("%s|%s|" % (dataset.split, sorted(dataset.names.items()))).encode())
    for sample in dataset.samples:
        size = sample.image.stat().st_size if sample.image.is_file() else -1
        h.update(("%s:%d;" % (os.path.abspath(str(sample.image)), size)).encode())
        h.update(sample.xywhn.tobytes() + sample.classes.tobytes())
    return h.hexdigest()


def check_model(request: GateRequest, names: Dict[Any, Any], model: str) -> None:
    """A model of other classes than the dataset scores zero on both sides: a gate that always passes."""
    from edgekit.eval.evaluate import class_mismatch

    mismatch = class_mismatch({int(k): str(v) for k, v in (names or {}).items()}, request.dataset.names, model)
    if mismatch:
        raise EdgekitError("--accuracy-data %s cannot gate this model: %s" % (request.data, mismatch))


def reference_for(onnx_path) -> Tuple[Path, Optional[str]]:
    """The ONNX a model built from ``onnx_path`` is measured against, and a note when it is not the float model.
    Only an INT8 or FP16 ONNX that edgekit quantize made (``derived_from`` + its ``precision``) is measured against
    its source: another model derived from one (fine-tuned, pruned) is a model of its own."""
    onnx_path = Path(onnx_path)
    manifest = read_manifest(onnx_path) or {}
    source = manifest.get("derived_from") or {}
    if not source.get("file") or manifest.get("precision") not in ("int8", "fp16"):  # only quantize's outputs
        return onnx_path, None
    named = Path(source["file"])
    for candidate in (named, onnx_path.parent / named.name):  # as quantize was given it, or beside this ONNX
        if candidate.is_file():
            if source.get("sha256") and sha256_file(candidate) != source["sha256"]:
                return onnx_path, ("%s changed since %s was made from it (sha256): the reference is %s itself, so "
                                   "the drop leaves out the quantization" % (candidate, onnx_path.name, onnx_path.name))
            return candidate, None
    return onnx_path, ("the float ONNX %s was made from (%s) is not here: the reference is %s itself, so the drop "
                       "leaves out the quantization (copy the float ONNX beside it to include it)"
                       % (onnx_path.name, named, onnx_path.name))


def open_model(path, backend: str, gpu: int = 0):
    """A runner for a model being gated: ONNX Runtime for an ONNX (any file name: quantize measures its temporary
    file), TensorRT for an engine, on the GPU it was built on (``build --gpu``)."""
    if backend == "onnxruntime":
        from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path)
    from edgekit.lazy import require_tensorrt
    from edgekit.runtime.loader import check_model_path

    check_model_path(path)
    require_tensorrt()
    from edgekit.runtime.tensorrt.runner import TensorRTRunner

    return TensorRTRunner(path, gpu=gpu)


def run_gate(candidate, reference, request: GateRequest, label: Optional[str] = None, backend: str = "tensorrt",
             note: Optional[str] = None, show_progress: bool = True, gpu: int = 0) -> Dict[str, Any]:
    """Evaluate ``candidate`` (recorded as ``label``) and ``reference`` on the request's data; the ``accuracy``
    record. ``passed`` is None when no limit was asked for. A reference that scores nothing cannot gate."""
    ref = _reference_figures(Path(reference), request, show_progress)
    if note:
        warn(note)
        ref["note"] = note
    with open_model(candidate, backend, gpu) as runner:
        cand = _figures(runner, request, label, show_progress)
    images, instances = cand.pop("images"), cand.pop("instances")
    ref.pop("images", None)
    ref.pop("instances", None)
    drop = round(100.0 * (ref["map50_95"] - cand["map50_95"]), 2)
    record = {
        "data": request.data, "split": request.dataset.split, "images": images, "instances": instances,
        "data_fingerprint": request.fingerprint, "settings": dict(SETTINGS), "candidate": cand, "reference": ref,
        "drop_points": drop, "drop_points_small": _small_drop(ref, cand), "max_drop_points": request.max_drop,
        "passed": None if request.max_drop is None else drop <= request.max_drop, "measured_at": utc_now(),
    }
    if ref["map50_95"] <= 0:
        message = ("the reference %s scores mAP50-95 0 on %s: nothing to lose, so the gate proves nothing (an "
                   "untrained model, or a dataset of other scenes?)" % (Path(reference).name, request.data))
        if request.max_drop is not None:
            raise EdgekitError("cannot gate: " + message)
        warn(message)
    elif record["passed"] is None and drop > WARN_DROP:
        warn("%s loses %.1f points of mAP50-95 on %s (no --max-map-drop given, so it is kept)"
             % (Path(cand["model"]).name, drop, request.data))
    return record


def _figures(runner: Any, request: GateRequest, label: Optional[str], show_progress: bool) -> Dict[str, Any]:
    from edgekit.eval.evaluate import evaluate

    result = evaluate(runner, copy.deepcopy(request.dataset), show_progress=show_progress, **SETTINGS)
    m = result["metrics"]
    figures = {"model": label or str(runner.path), "backend": result["backend"], "device": result["device"],
               "precision": result["precision"], "map50_95": m["map50_95"], "map50": m["map50"],
               "recall": m["recall"], "images": m["images"], "instances": m["instances"]}
    figures.update(size_figures(m))
    return figures


def _small_drop(ref: Dict[str, Any], cand: Dict[str, Any]) -> Optional[float]:
    a, b = ref.get("map50_95_small"), cand.get("map50_95_small")
    return round(100.0 * (a - b), 2) if a is not None and b is not None else None


def _measuring_code() -> str:
    """A fingerprint of the code that computes the figures: a cached reference never outlives a change to it."""
    import inspect

    from edgekit.eval import evaluate, metrics

    return hashlib.sha256((inspect.getsource(metrics) + inspect.getsource(evaluate)).encode()).hexdigest()[:16]


def _reference_figures(reference: Path, request: GateRequest, show_progress: bool) -> Dict[str, Any]:
    """The reference's figures on ONNX Runtime, from the cache when this very ONNX was measured on this data."""
    from edgekit.runtime.loader import engine_cache_dir

    sha = sha256_file(reference)
    key = hashlib.sha256(json.dumps({"onnx_sha256": sha, "data": request.fingerprint, "settings": SETTINGS,
                                     "code": _measuring_code()}, sort_keys=True).encode()).hexdigest()
    path = engine_cache_dir().parent / "accuracy" / ("%s-%s.json" % (reference.stem, key[:16]))
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return dict(cached["figures"], model=str(reference), cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with open_model(reference, "onnxruntime") as runner:
        figures = dict(_figures(runner, request, str(reference), show_progress), sha256=sha)
    try:
        write_json_atomic(path, {"key": key, "figures": figures})
    except (EdgekitError, OSError):  # the cache is a saving, never a failure
        pass
    return dict(figures, cached=False)


# --- what people read ------------------------------------------------------------------------------------------
def _with_small(entry: Dict[str, Any]) -> str:
    small = entry.get("map50_95_small")
    return "%.3f" % entry["map50_95"] + (" (small objects %.3f)" % small if small is not None else "")


def _where(record: Dict[str, Any]) -> str:
    return "%s (%s%d images)" % (record["data"], "%s, " % record["split"] if record.get("split") else "",
                                 record["images"])


def result_line(record: Dict[str, Any]) -> str:
    """Both mAPs (and small objects), the change and the verdict, in one line."""
    cand, ref = record["candidate"], record["reference"]
    limit = record.get("max_drop_points")
    verdict = ("limit %g: %s" % (limit, "passed" if record["passed"] else "REFUSED")) if limit is not None else \
        "no limit (--max-map-drop)"
    return ("accuracy on %s: %s mAP50-95 %s vs %s on ONNX Runtime %s: %+.1f points, %s"
            % (_where(record), Path(cand["model"]).name, _with_small(cand), Path(ref["model"]).name,
               _with_small(ref), 0.0 - record["drop_points"], verdict))


def failure_message(record: Dict[str, Any], advice: str = "") -> str:
    """The one line a refusal prints: both numbers, the limit, what was (not) kept, what to do."""
    cand, ref = record["candidate"], record["reference"]
    return ("%s scores mAP50-95 %.3f on %s vs %.3f for %s: %.1f points lost, more than --max-map-drop %g, so it was "
            "not kept%s" % (Path(cand["model"]).name, cand["map50_95"], _where(record), ref["map50_95"],
                            Path(ref["model"]).name, record["drop_points"], record["max_drop_points"],
                            ": " + advice if advice else ""))


def caption(record: Optional[Dict[str, Any]], name: str = "") -> str:
    """A table caption line: 'accuracy gate: mAP50-95 0.512 vs ONNX 0.518 (-0.6 pts, limit 1.0) on
    coco/data.yaml (val)'."""
    if not record or "candidate" not in record:
        return ""
    limit = record.get("max_drop_points")
    return "accuracy gate%s: mAP50-95 %.3f vs ONNX %.3f (%+.1f pts, %s) on %s" % (
        " " + name if name else "", record["candidate"]["map50_95"], record["reference"]["map50_95"],
        0.0 - record["drop_points"], "limit %g" % limit if limit is not None else "no limit",
        dataset_label(record["data"], record.get("split")))  # as the report's dataset column names it


def covers(record: Optional[Dict[str, Any]], request: GateRequest) -> Optional[str]:
    """Why an existing model's ``accuracy`` record does not answer this request (None when it does)."""
    if not record:
        return "its accuracy was never measured"
    if record.get("data_fingerprint") != request.fingerprint:
        return "its accuracy was measured on other data (%s)" % record.get("data")
    limit, drop = request.max_drop, record.get("drop_points")
    if limit is not None and (drop is None or drop > limit):
        return "it lost %s points, more than --max-map-drop %g" % (drop, limit)
    return None
