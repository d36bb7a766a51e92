"""Decide what to build before TensorRT is touched: precision, quantization, DLA, engine name.

Everything here is plain Python over two small records, so every rule is unit-tested without a GPU:

* :class:`Caps` — what this TensorRT and GPU can do (read from ``trt.Builder`` in ``engine.py``);
* :class:`ModelFacts` — what the ONNX is (Q/DQ or not, float type, static batch), read by ``qdq.py``.

:func:`plan_build` turns a request into a :class:`BuildPlan` or stops with one line that says what to do.
It never builds another precision than the one asked for (a GPU without fast INT8 is an error, not FP32).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from edgekit.errors import EdgekitError

PRECISIONS = ("fp32", "fp16", "int8", "best")
# trtexec --tacticSources names; TensorRT 10 has cuBLAS/cuDNN off by default, TensorRT 8.5 on Hopper needs them off
TACTIC_SOURCES = ("CUBLAS", "CUBLAS_LT", "CUDNN", "EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS")
DEFAULT_TACTIC_SOURCES = ("EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS")
FAST_TACTIC_SOURCES = ("EDGE_MASK_CONVOLUTIONS",)  # --fast-build: JIT convolutions lengthen builds (NVIDIA's docs)
QUANTIZE_HINT = "edgekit quantize MODEL.onnx --calib DIR (on the host)"


@dataclass(frozen=True)
class Caps:
    """What the TensorRT library and the GPU it runs on can do."""

    tensorrt: str  # full version, e.g. "8.5.2.2"
    gpu: str = "unknown GPU"
    sm: str = "0.0"  # compute capability "major.minor"
    fast_fp16: bool = True
    fast_int8: bool = True
    dla_cores: int = 0
    precision_flags: bool = True  # False on TensorRT 11: strongly typed networks only, no FP16/INT8 flags
    calibrators: bool = True  # False on TensorRT 11: no IInt8Calibrator
    tactic_heuristic: bool = False  # BuilderFlag.ENABLE_TACTIC_HEURISTIC exists (TensorRT 8.5, 8.6)
    optimization_levels: bool = False  # IBuilderConfig.builder_optimization_level exists (TensorRT >= 8.6)

    @property
    def major(self) -> int:
        return version_tuple(self.tensorrt)[0]

    @property
    def short_version(self) -> str:
        return ".".join(str(v) for v in version_tuple(self.tensorrt)[:3])

    @property
    def sm_tag(self) -> str:
        return "sm" + self.sm.replace(".", "")


@dataclass(frozen=True)
class ModelFacts:
    """What the ONNX file is, as far as building it goes."""

    qdq: bool = False  # has QuantizeLinear/DequantizeLinear: INT8 by design (explicit quantization)
    float_type: str = "fp32"  # the model's own activation type: fp32, or fp16 for an FP16 ONNX
    static_batch: Optional[int] = 1  # None when the batch dimension is dynamic


@dataclass
class BuildRequest:
    precision: Optional[str] = None  # None: FP16 where the GPU has fast FP16, else FP32
    calib: Optional[str] = None  # image folder for calibrated INT8
    dla_core: Optional[int] = None
    gpu_fallback: bool = False
    batch: Optional[int] = None  # for dynamic-batch ONNX: the profile's opt/max batch


@dataclass
class BuildPlan:
    precision: str  # what the engine computes in: fp32, fp16, int8 or best (int8 + fp16)
    flags: List[str] = field(default_factory=list)  # builder flags: FP16, INT8, GPU_FALLBACK
    quantization: Optional[str] = None  # None, "calibrated" or "qdq"
    strongly_typed: bool = False  # TensorRT 11 path: types come from the ONNX
    dla_core: Optional[int] = None
    notes: List[str] = field(default_factory=list)  # said to the user, also kept in the manifest

    @property
    def label(self) -> str:
        """The precision part of the engine name: fp16, int8, int8-qdq, best, best-qdq, ..."""
        return self.precision + ("-qdq" if self.quantization == "qdq" else "")


def version_tuple(version: str) -> Tuple[int, ...]:
    parts = [int(p) for p in re.findall(r"\d+", version)[:4]]
    return tuple(parts) if parts else (0,)


def check_request(request: BuildRequest, model: ModelFacts) -> None:
    """The rules that need no GPU: checked before TensorRT is even imported."""
    precision = request.precision
    if precision is not None and precision not in PRECISIONS:
        raise EdgekitError("unknown precision %r: choose one of %s" % (precision, ", ".join(PRECISIONS)))
    if model.qdq and precision in ("fp32", "fp16"):
        raise EdgekitError(
            "this ONNX has Q/DQ nodes (it is INT8 by design): build it with --int8 or --best, or build the "
            "unquantized ONNX for %s" % precision
        )
    if precision in ("int8", "best") and not model.qdq and not request.calib:
        raise EdgekitError(
            "INT8 needs calibration images (--calib DIR: a folder of frames like the camera's) or a Q/DQ "
            "model made by %s" % QUANTIZE_HINT
        )


def plan_build(request: BuildRequest, caps: Caps, model: ModelFacts) -> BuildPlan:
    """The build to run, or an :class:`EdgekitError` saying why this request cannot be met here."""
    check_request(request, model)
    precision = request.precision or _default_precision(caps, model)
    if not caps.precision_flags:
        plan = _strongly_typed_plan(precision, request, caps, model)
    else:
        plan = _flag_plan(precision, request, caps, model)
    _add_dla(plan, request, caps)
    return plan


def _default_precision(caps: Caps, model: ModelFacts) -> str:
    if model.qdq:
        return "best" if caps.fast_fp16 else "int8"
    if not caps.precision_flags:  # strongly typed: the model's own type is the only choice
        return model.float_type
    return "fp16" if caps.fast_fp16 else "fp32"


def _flag_plan(precision: str, request: BuildRequest, caps: Caps, model: ModelFacts) -> BuildPlan:
    """TensorRT 8.5 - 10: weakly typed network, precision chosen by builder flags."""
    wants_fp16 = precision in ("fp16", "best")
    wants_int8 = precision in ("int8", "best")
    if wants_fp16 and not caps.fast_fp16:
        raise EdgekitError("%s (%s) has no fast FP16: build with --fp32 instead" % (caps.gpu, caps.sm_tag))
    if wants_int8 and not caps.fast_int8:
        raise EdgekitError(
            "%s (%s) has no fast INT8: build with --fp16%s instead"
            % (caps.gpu, caps.sm_tag, "" if caps.fast_fp16 else " or --fp32")
        )
    plan = BuildPlan(precision=precision)
    if wants_fp16:
        plan.flags.append("FP16")
    if wants_int8:
        plan.flags.append("INT8")
        if model.qdq:
            plan.quantization = "qdq"
            if request.calib:
                plan.notes.append("the model carries its own Q/DQ scales: --calib %s is not used" % request.calib)
        elif request.calib:
            if not caps.calibrators:
                raise EdgekitError("TensorRT %s has no INT8 calibrators: make a Q/DQ model with %s and build that"
                                   % (caps.short_version, QUANTIZE_HINT))
            plan.quantization = "calibrated"
        else:
            raise EdgekitError(
                "INT8 needs calibration images (--calib DIR: a folder of frames like the camera's) or a Q/DQ "
                "model made by %s" % QUANTIZE_HINT
            )
    if model.float_type == "fp16" and precision in ("fp32", "int8"):
        plan.notes.append("the ONNX itself is FP16: TensorRT may keep FP16 layers without the FP16 flag")
    return plan


def _strongly_typed_plan(precision: str, request: BuildRequest, caps: Caps, model: ModelFacts) -> BuildPlan:
    """TensorRT 11: no FP16/INT8 flags and no calibrators; the ONNX's own types decide, so they must match."""
    trt = "TensorRT %s" % caps.short_version
    if precision in ("int8", "best"):
        if not model.qdq:
            raise EdgekitError(
                "%s builds INT8 only from Q/DQ models (no calibrators): make one with %s, then build that"
                % (trt, QUANTIZE_HINT)
            )
        high = "fp16" if precision == "best" else "fp32"
        if model.float_type != high:
            raise EdgekitError(
                "%s keeps the Q/DQ model's own types: its unquantized layers are %s, so it builds as %s, not %s: "
                "re-quantize with --high-precision %s, or ask for --%s"
                % (trt, model.float_type, "best" if model.float_type == "fp16" else "int8", precision, high,
                   "best" if model.float_type == "fp16" else "int8")
            )
        return BuildPlan(precision=precision, quantization="qdq", strongly_typed=True,
                         notes=["strongly typed build (%s): precision from the model's Q/DQ and types" % trt])
    if model.float_type != precision:
        raise EdgekitError(
            "%s builds strongly typed networks only (no FP16 flag): this ONNX is %s, so it would build as %s, not "
            "%s: convert it on the host with edgekit quantize MODEL.onnx --fp16, or build on TensorRT <= 10"
            % (trt, model.float_type, model.float_type, precision)
        )
    return BuildPlan(precision=precision, strongly_typed=True,
                     notes=["strongly typed build (%s): precision from the model's types" % trt])


def _add_dla(plan: BuildPlan, request: BuildRequest, caps: Caps) -> None:
    if request.dla_core is None:
        if request.gpu_fallback:
            raise EdgekitError("--allow-gpu-fallback only applies with --dla N")
        return
    if caps.dla_cores == 0:
        raise EdgekitError("%s has no DLA cores: build without --dla (DLA is on Xavier and Orin)" % caps.gpu)
    if not 0 <= request.dla_core < caps.dla_cores:
        raise EdgekitError(
            "--dla %d: %s has %d DLA core(s), numbered 0..%d" % (request.dla_core, caps.gpu, caps.dla_cores,
                                                                caps.dla_cores - 1)
        )
    if plan.precision == "fp32":
        raise EdgekitError("DLA runs FP16 or INT8 only: add --fp16 or --int8 to --dla %d" % request.dla_core)
    plan.dla_core = request.dla_core
    if request.gpu_fallback:
        plan.flags.append("GPU_FALLBACK")
    else:
        plan.notes.append("layers DLA cannot run fail the build; --allow-gpu-fallback lets them run on the GPU")


def engine_name(onnx_stem: str, plan: BuildPlan, caps: Caps, batch: Optional[int] = None) -> str:
    """``yolov8m-int8-sm72-trt8.5.2.engine``: what it is, for which GPU and TensorRT, from the name alone.
    A stem that already ends in the label (``yolov8m-int8-qdq`` from edgekit quantize) does not get it twice."""
    parts = [onnx_stem] if onnx_stem.endswith("-" + plan.label) else [onnx_stem, plan.label]
    if plan.dla_core is not None:
        parts.append("dla%d" % plan.dla_core)
    if batch is not None:
        parts.append("b%d" % batch)
    parts += [caps.sm_tag, "trt" + caps.short_version]
    return "-".join(parts) + ".engine"


def parse_tactic_sources(text: Optional[str], fast: bool = False) -> List[str]:
    """trtexec's syntax: ``-CUBLAS,+CUDNN`` edits the default set; plain names replace it; '' keeps the default.
    The default set is ``FAST_TACTIC_SOURCES`` with ``fast`` (--fast-build)."""
    default = FAST_TACTIC_SOURCES if fast else DEFAULT_TACTIC_SOURCES
    if not text:
        return list(default)
    items = [t.strip() for t in text.split(",") if t.strip()]
    edits = all(t[0] in "+-" for t in items)
    if not edits and any(t[0] in "+-" for t in items):
        raise EdgekitError("--tactic-sources %s: either list sources or edit them with +/-, not both" % text)
    chosen = list(default) if edits else []
    for item in items:
        name = item.lstrip("+-").upper()
        if name not in TACTIC_SOURCES:
            raise EdgekitError("--tactic-sources: unknown source %r; choose from %s"
                               % (name, ", ".join(TACTIC_SOURCES)))
        if item.startswith("-"):
            chosen = [c for c in chosen if c != name]
        elif name not in chosen:
            chosen.append(name)
    return chosen


def check_workspace(mib: Optional[int]) -> Optional[int]:
    if mib is not None and mib <= 0:
        raise EdgekitError("--workspace %d: give MiB > 0 (or leave it out for TensorRT's default)" % mib)
    return mib


def flags_text(flags: Sequence[str]) -> str:
    return "+".join(f.lower() for f in flags) or "fp32"
