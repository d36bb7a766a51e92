"""The manifest written beside every engine: what it is, what built it, for which device, from which ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from edgekit import __version__
from edgekit.manifest import package_versions, utc_now
from edgekit.runtime.modelinfo import onnx_io, onnx_metadata
from edgekit.runtime.tensorrt.plan import BuildPlan, Caps
from edgekit.runtime.tensorrt.prepare import Prepared
from edgekit.runtime.tensorrt.qdq import qdq_summary

# copied from the ONNX's own manifest, so bench/eval/report know the model without the ONNX at hand
CARRIED = ("model", "task", "trained", "weights_label", "pruned", "params", "gflops", "names", "stride", "source",
           "preprocess", "nms", "head", "max_det", "end2end_head", "end2end")


def engine_manifest(target: Path, engine_file: Path, sha256: str, prepared: Prepared, plan: BuildPlan, caps: Caps,
                    calibration: Optional[Dict[str, Any]], seconds: Dict[str, float], timing_cache: Optional[str],
                    command: Optional[str], warnings: int,
                    build_speed: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    proto, options, onnx_manifest = prepared.proto, prepared.options, prepared.onnx_manifest
    inputs, outputs = onnx_io(proto)
    doc: Dict[str, Any] = {
        "kind": "tensorrt-engine",
        "file": target.name,
        "sha256": sha256,
        "engine_bytes": engine_file.stat().st_size,
        "created_at": utc_now(),
        "edgekit_version": __version__,
        "tensorrt": caps.tensorrt,
        "gpu": caps.gpu,
        "sm": caps.sm,
        "dla_core": plan.dla_core,
        "precision": plan.precision,
        "flags": list(plan.flags),
        "quantization": plan.quantization,
        "strongly_typed": plan.strongly_typed,
        "calibration": calibration,
        # how many images set the INT8 scales: the calibrator's, or those edgekit quantize used for a Q/DQ ONNX
        "calibration_images": calibration_images(plan, calibration, onnx_manifest),
        "qdq": qdq_summary(proto) if plan.quantization == "qdq" else None,
        "onnx": str(prepared.onnx_path),
        "onnx_sha256": onnx_manifest.get("sha256"),
        "imgsz": list(options["imgsz"]),
        "batch": options.get("batch") or inputs[0]["shape"][0],
        "inputs": inputs,
        "outputs": outputs,
        "workspace_mib": options.get("workspace"),
        "tactic_sources": options["tactic_sources"],
        "build_speed": build_speed,  # --fast-build / --tactic-heuristic / --optimization-level / ... as used
        "timing_cache": timing_cache,
        "build_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "build_warnings": warnings,
        "notes": list(plan.notes),
        "command": command,
        "versions": package_versions(["numpy", "onnx", "pycuda"]),
    }
    for key in CARRIED:
        if key in onnx_manifest:
            doc[key] = onnx_manifest[key]
    if not doc.get("names"):
        doc["names"] = {int(k): str(v) for k, v in (onnx_metadata(proto, "names") or {}).items()}
    return doc


def calibration_images(plan: BuildPlan, calibration: Optional[Dict[str, Any]],
                       onnx_manifest: Dict[str, Any]) -> Optional[int]:
    """How many images calibrated this engine's INT8 scales; None for FP16/FP32 or a Q/DQ ONNX of unknown origin."""
    if plan.quantization == "calibrated" and calibration:
        return calibration.get("images")
    if plan.quantization == "qdq":
        made = onnx_manifest.get("calibration") or onnx_manifest.get("quantization") or {}
        images = made.get("images") if isinstance(made, dict) else None
        return int(images) if isinstance(images, int) else None
    return None
