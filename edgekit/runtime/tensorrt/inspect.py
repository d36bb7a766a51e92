"""``edgekit inspect``: what a model file is. ONNX: manifest, I/O, opset, Q/DQ. Engine: manifest, whether
it fits this device, and (with TensorRT on a GPU) its I/O tensors and per-layer precisions."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

from edgekit.errors import EdgekitError
from edgekit.manifest import read_manifest
from edgekit.runtime.loader import ENGINE_SUFFIXES


def inspect_model(path, layers: bool = True) -> Dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise EdgekitError("%s is a folder: give an .onnx or .engine file" % path)
    if path.suffix.lower() == ".onnx":
        return inspect_onnx(path)
    if path.suffix.lower() in ENGINE_SUFFIXES:
        return inspect_engine(path, layers)
    raise EdgekitError("%s: edgekit inspect reads ONNX (.onnx) and TensorRT engines (.engine)" % path)


def inspect_onnx(path: Path) -> Dict[str, Any]:
    from edgekit.runtime.modelinfo import onnx_io
    from edgekit.runtime.tensorrt.qdq import JETPACK5_TENSORRT, load_onnx, model_facts, opset, qdq_problems, qdq_summary

    proto = load_onnx(path)
    facts = model_facts(proto)
    inputs, outputs = onnx_io(proto)
    doc: Dict[str, Any] = {
        "file": str(path), "kind": "onnx", "opset": opset(proto), "inputs": inputs, "outputs": outputs,
        "float_type": facts.float_type, "qdq": facts.qdq,
        "ops": dict(Counter(n.op_type for n in proto.graph.node).most_common()),
        "manifest": read_manifest(path),
    }
    if facts.qdq:
        doc["qdq_nodes"] = qdq_summary(proto)
        doc["tensorrt_8.5_problems"] = qdq_problems(proto, JETPACK5_TENSORRT)
    return doc


def inspect_engine(path: Path, layers: bool = True) -> Dict[str, Any]:
    """The manifest always (it needs no TensorRT); I/O tensors and layer precisions when TensorRT can load the
    engine here. Whatever stops the loading (no TensorRT or pycuda, no GPU, another TensorRT or GPU, a damaged
    file) becomes the ``note``, and the manifest is still shown."""
    from edgekit.runtime.tensorrt.engine_file import check_engine_file

    path = Path(path)
    if not path.is_file():
        raise EdgekitError("engine %s not found" % path)
    doc: Dict[str, Any] = {"file": str(path), "kind": "tensorrt-engine", "manifest": read_manifest(path),
                           "tensors": None}
    try:
        check_engine_file(path, None)  # intact (size, sha256) before anything reads it
        doc.update(engine_details(path, layers))
    except EdgekitError as exc:
        doc["note"] = "I/O tensors and layer precisions not read: %s" % exc
    return doc


def engine_details(path: Path, layers: bool) -> Dict[str, Any]:
    """I/O tensors and per-layer precisions, read by TensorRT on this GPU (raises EdgekitError when it cannot)."""
    from edgekit.lazy import require_tensorrt

    require_tensorrt()
    from edgekit.runtime.tensorrt import trtlib
    from edgekit.runtime.tensorrt.runner import TensorRTRunner

    runner = TensorRTRunner(path)
    doc: Dict[str, Any] = {}
    try:
        with runner.gpu.current():
            doc["tensors"] = [{"name": n, "mode": "input" if i else "output", "shape": list(s), "dtype": str(d)}
                              for n, i, s, d in trtlib.io_tensors(runner.engine)]
            doc["tensorrt"] = trtlib.version()
            doc["device"] = runner.device
            if layers:
                doc["layers"] = engine_layers(runner.engine)
    finally:
        runner.close()
    return doc


_DTYPE = re.compile(r"\b(FP32|FP16|BF16|FP8|INT8|Int8|INT32|Int32|Int64|Bool|UInt8)\b")


def engine_layers(engine: Any) -> List[Dict[str, Any]]:
    """Per-layer name, type and precision from TensorRT's engine inspector (needs DETAILED profiling
    verbosity, which edgekit build sets; other engines show names only)."""
    import tensorrt as trt

    inspector = engine.create_engine_inspector()
    info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    out = []
    for layer in info.get("Layers", []):
        if isinstance(layer, str):
            out.append({"name": layer})
            continue
        precisions = sorted({m.group(1).upper() for t in layer.get("Outputs", [])
                             for m in [_DTYPE.search(str(t.get("Format/Datatype", "")))] if m})
        out.append({"name": layer.get("Name"), "type": layer.get("LayerType"), "precision": "/".join(precisions)})
    return out


def precision_counts(layers: List[Dict[str, Any]]) -> Dict[str, int]:
    return dict(Counter(layer.get("precision") or "?" for layer in layers))


def _short(key: str, value: Any) -> Any:
    """One readable line for the nested manifest fields."""
    if key == "quantization" and isinstance(value, dict):
        return "%s Q/DQ by %s (%s calibration on %s images, unquantized layers %s)" % (
            value.get("mode"), value.get("tool"), value.get("method"), value.get("images"), value.get("high_precision"))
    if key == "calibration" and isinstance(value, dict):
        return "%s images (%s batches of %s, %s distinct)%s%s" % (
            value.get("images"), value.get("batches"), value.get("batch"), value.get("distinct", "?"),
            "; table %s%s" % (value["cache"], " (reused)" if value.get("from_cache") else "") if value.get("cache")
            else "", "; %d warning(s)" % len(value["warnings"]) if value.get("warnings") else "")
    if key == "accuracy" and isinstance(value, dict) and value.get("candidate"):
        limit = value.get("max_drop_points")
        return "mAP50-95 %.3f vs %.3f for %s on %s: %+.1f points (%s)" % (
            value["candidate"]["map50_95"], value["reference"]["map50_95"], value["reference"].get("model"),
            value.get("data"), 0.0 - value["drop_points"],
            "no limit" if limit is None else "limit %g: %s" % (limit, "passed" if value.get("passed") else "failed"))
    return value


def graph_rows(manifest: Dict[str, Any]) -> List[Any]:
    """What export moved into the graph (the manifest's preprocess/nms blocks): the runner's input and outputs
    depend on it, so the table says it rather than leaving it to --json."""
    rows: List[Any] = []
    pre, nms = manifest.get("preprocess") or {}, manifest.get("nms") or {}
    if pre.get("in_graph"):
        box = pre.get("letterbox") or {}
        frame = box.get("frame")
        rows.append(("preprocess", "in the graph: %s%s" % (pre.get("input", "uint8 pixels"), (
            ", letterboxes %dx%d frames" % (frame[1], frame[0])) if frame else "")))
    if nms.get("in_graph"):
        rows.append(("NMS", "in the graph: %s, conf %s, iou %s, max_det %s (TensorRT only)" % (
            nms.get("plugin"), nms.get("conf"), nms.get("iou"), nms.get("max_det"))))
    if manifest.get("head") == "end2end":
        rows.append(("NMS", "none: end-to-end head (export --end2end), top-%s boxes [B, K, 6], conf on the host"
                     % manifest.get("max_det")))
    return rows


def inspect_rows(doc: Dict[str, Any]) -> Any:
    """A two-column rich table of the most useful fields."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="edgekit inspect %s" % doc["file"], show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    manifest = doc.get("manifest") or {}
    rows: List[Any] = [("kind", doc["kind"])]
    if doc["kind"] == "onnx":
        rows += [("opset", doc["opset"]), ("float type", doc["float_type"]), ("Q/DQ", doc["qdq"])]
        if doc.get("qdq_nodes"):
            rows.append(("Q/DQ nodes", "%(quantize_nodes)d Q, %(dequantize_nodes)d DQ" % doc["qdq_nodes"]))
            rows.append(("TensorRT 8.5", "; ".join(doc["tensorrt_8.5_problems"]) or "accepts these Q/DQ nodes"))
        for t in doc["inputs"] + doc["outputs"]:
            rows.append(("tensor %s" % t["name"], "%s %s" % (t["dtype"], t["shape"])))
        rows.append(("ops", ", ".join("%s %d" % kv for kv in list(doc["ops"].items())[:10])))
    for key in ("precision", "flags", "quantization", "calibration", "accuracy", "tensorrt", "gpu", "sm", "dla_core",
                "imgsz",
                "batch", "weights_label", "pruned", "params", "gflops", "sha256", "onnx", "build_seconds", "command"):
        if manifest.get(key) not in (None, [], {}):
            rows.append((key, _short(key, manifest[key])))
    rows += graph_rows(manifest)
    if manifest.get("agreement_vs_fp32"):
        det = manifest["agreement_vs_fp32"]["detections"]
        rows.append(("vs FP32 (ORT)", "%(matched)d of %(a)d detections matched, mean IoU %(mean_iou)s, class "
                                      "agreement %(class_agreement)s" % det))
    if manifest.get("names"):
        names = list(manifest["names"].values())
        rows.append(("classes", "%d: %s%s" % (len(names), ", ".join(names[:8]), ", ..." if len(names) > 8 else "")))
    if doc["kind"] == "tensorrt-engine" and not manifest:
        rows.append(("manifest", "none: TensorRT version and GPU unknown"))
    for t in doc.get("tensors") or []:
        rows.append(("tensor %s" % t["name"], "%s %s %s" % (t["mode"], t["dtype"], t["shape"])))
    if doc.get("layers"):
        rows.append(("layers", "%d: %s" % (len(doc["layers"]), ", ".join(
            "%s %d" % kv for kv in precision_counts(doc["layers"]).items()))))
    if doc.get("note"):
        rows.append(("note", doc["note"]))
    for key, value in rows:
        table.add_row(escape(str(key)), escape(str(value)))  # values such as 'edgekit[jetson]' are not markup
    return table
