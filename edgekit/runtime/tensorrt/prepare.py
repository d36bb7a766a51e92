"""Everything ``edgekit build`` checks before TensorRT is imported: the ONNX, the options, the calibration
images. A bad file or folder fails here in milliseconds, on any machine, not minutes into a build."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from edgekit.errors import EdgekitError
from edgekit.log import warn
from edgekit.manifest import read_manifest, sha256_file
from edgekit.runtime.modelinfo import graph_inputs, onnx_metadata
from edgekit.runtime.tensorrt.calib import CalibrationSet
from edgekit.runtime.tensorrt.plan import BuildRequest, ModelFacts, check_request, check_workspace, parse_tactic_sources
from edgekit.runtime.tensorrt.qdq import load_onnx, model_facts
from edgekit.runtime.tensorrt.speed import SpeedRequest

UINT8 = 2  # onnx.TensorProto.UINT8, without importing onnx here


@dataclass
class Prepared:
    onnx_path: Path
    proto: Any
    facts: ModelFacts
    onnx_manifest: Dict[str, Any]  # the ONNX's edgekit manifest (with its sha256), or {} plus the sha256
    imgsz: Tuple[int, int]
    options: Dict[str, Any]  # workspace, tactic_sources, imgsz, batch
    calib: Optional[CalibrationSet]


def prepare(onnx_path, request: BuildRequest, workspace: Optional[int] = None, tactic_sources: Optional[str] = None,
            calib_batches: Optional[int] = None, fast_build: bool = False) -> Prepared:
    onnx_path = Path(onnx_path)
    if onnx_path.suffix.lower() != ".onnx":
        raise EdgekitError("%s: edgekit build takes an ONNX model (.onnx), e.g. from edgekit export" % onnx_path)
    proto = load_onnx(onnx_path)
    facts = model_facts(proto)
    if request.precision in ("int8", "best") and not facts.qdq and input_layout(proto) == "nhwc":
        raise EdgekitError("%s takes uint8 pixels (--graph-preprocess): INT8 calibration feeds float batches, so "
                           "build it --fp16, or quantize the float export (edgekit quantize) and build that Q/DQ "
                           "model" % onnx_path.name)
    check_request(request, facts)
    manifest = dict(read_manifest(onnx_path) or {}, sha256=sha256_file(onnx_path))
    imgsz = input_size(proto, manifest)
    if request.batch is not None and request.batch < 1:
        raise EdgekitError("--batch %d: must be at least 1" % request.batch)
    if facts.static_batch and request.batch and request.batch != facts.static_batch:
        raise EdgekitError("--batch %d: %s has a static batch of %d; re-export it with edgekit export --batch %d "
                           "(static), or --dynamic (not with --graph-letterbox or --trt-nms, which need static shapes)"
                           % (request.batch, onnx_path.name, facts.static_batch, request.batch))
    options = {"workspace": check_workspace(workspace), "imgsz": imgsz, "batch": request.batch,
               "layout": input_layout(proto), "tactic_sources": parse_tactic_sources(tactic_sources, fast_build)}
    if facts.qdq and request.precision in ("int8", "best", None):  # said on the host too; the device may not know
        for line in (manifest.get("calibration") or {}).get("warnings") or []:
            warn("%s: %s" % (onnx_path.name, line))
    calib = None
    if request.calib is not None:
        if request.precision not in ("int8", "best"):
            raise EdgekitError("--calib is for INT8 builds: add --int8 or --best")
        if manifest.get("preprocess", {}).get("in_graph"):
            raise EdgekitError("--calib feeds float NCHW batches; %s takes uint8 pixels (--graph-preprocess): "
                               "calibrate the float export and use a Q/DQ model, or build --fp16" % onnx_path.name)
        if not facts.qdq:  # a Q/DQ model carries its scales; plan_build notes that --calib is unused
            batch = facts.static_batch or request.batch or 1
            calib = CalibrationSet.from_folder(request.calib, batch, imgsz, calib_batches)
    return Prepared(onnx_path, proto, facts, manifest, imgsz, options, calib)


def input_layout(proto: Any) -> str:
    """"nhwc" for uint8 pixels (edgekit export --graph-preprocess / --graph-letterbox), else "nchw"."""
    tensor = graph_inputs(proto)[0].type.tensor_type
    dims = tensor.shape.dim
    return "nhwc" if tensor.elem_type == UINT8 and len(dims) == 4 and dims[3].dim_value == 3 else "nchw"


def input_size(proto: Any, manifest: Dict[str, Any]) -> Tuple[int, int]:
    """(h, w) of the input: static dims, else the exported imgsz (edgekit manifest or ultralytics metadata)."""
    tensor = graph_inputs(proto)[0].type.tensor_type
    dims = tensor.shape.dim
    if input_layout(proto) == "nhwc":  # --graph-preprocess pixels
        size = manifest.get("imgsz") or onnx_metadata(proto, "imgsz") or [dims[1].dim_value, dims[2].dim_value]
        if int(size[0]) > 0 and int(size[1]) > 0:
            return int(size[0]), int(size[1])
    if len(dims) == 4 and dims[2].dim_value > 0 and dims[3].dim_value > 0:
        return int(dims[2].dim_value), int(dims[3].dim_value)
    size = manifest.get("imgsz") or onnx_metadata(proto, "imgsz")
    if not size:
        raise EdgekitError("cannot tell the input size of this dynamic ONNX: re-export it with edgekit export --imgsz")
    return int(size[0]), int(size[1])


def rebuild_command(onnx_path, precision, calib, calib_batches, dla_core, gpu_fallback, batch, workspace,
                    tactic_sources, speed: Optional[SpeedRequest] = None, gate: Any = None) -> str:
    """The build command as a user would type it again (kept in the manifest for compat errors)."""
    speed = speed or SpeedRequest()
    parts = ["edgekit", "build", str(onnx_path)] + (["--" + precision] if precision else [])
    for option, value in [("--calib", calib), ("--calib-batches", calib_batches), ("--dla", dla_core),
                          ("--allow-gpu-fallback", gpu_fallback or None), ("--batch", batch),
                          ("--workspace", workspace), ("--tactic-sources", tactic_sources),
                          ("--fast-build", speed.fast_build or None),
                          ("--tactic-heuristic", speed.tactic_heuristic or None),
                          ("--optimization-level", speed.optimization_level),
                          ("--avg-timing-iterations", speed.avg_timing_iterations),
                          ("--accuracy-data", gate.data if gate else None),
                          ("--accuracy-split", gate.split if gate and gate.split != "val" else None),
                          ("--accuracy-images", gate.images if gate else None),
                          ("--max-map-drop", gate.max_drop if gate else None)]:
        if value is True:
            parts.append(option)
        elif value is not None:
            parts += [option, str(value)]
    return " ".join(shlex.quote(p) for p in parts)
