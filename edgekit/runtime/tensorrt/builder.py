"""ONNX -> TensorRT engine, as small steps (Polygraphy's loaders): caps, network, config, build, save.

``build_engine`` is the whole of ``edgekit build``: it checks the request against this GPU and TensorRT
(``plan.py``) and the ONNX (``qdq.py``) before the slow part, logs each phase with its time, shows a progress
bar (a spinner with elapsed time, a bar while calibrating, and TensorRT >= 10's own phases), and writes the
engine and its manifest atomically.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import tensorrt as trt

from edgekit.errors import EdgekitError
from edgekit.log import info, phase
from edgekit.manifest import atomic_path, read_manifest, sha256_file, write_json_atomic
from edgekit.runtime.tensorrt import trtlib
from edgekit.runtime.tensorrt.calib import CalibrationCache, cache_key
from edgekit.runtime.tensorrt.cuda import CudaContext
from edgekit.runtime.tensorrt.manifest import engine_manifest
from edgekit.runtime.tensorrt.plan import BuildPlan, BuildRequest, Caps, engine_name, flags_text, plan_build
from edgekit.runtime.tensorrt.prepare import Prepared
from edgekit.runtime.tensorrt.progress import build_display
from edgekit.runtime.tensorrt.qdq import check_buildable
from edgekit.runtime.tensorrt.shapes import profile_shapes
from edgekit.runtime.tensorrt.speed import HEURISTIC_FLAG, SpeedPlan, SpeedRequest, plan_speed
from edgekit.runtime.tensorrt.timing_cache import TimingCacheFile


def caps_of(builder: trt.Builder, gpu: CudaContext) -> Caps:
    return Caps(
        tensorrt=trtlib.version(), gpu=gpu.name, sm=gpu.sm,
        fast_fp16=bool(getattr(builder, "platform_has_fast_fp16", True)),
        fast_int8=bool(getattr(builder, "platform_has_fast_int8", True)),
        dla_cores=int(getattr(builder, "num_DLA_cores", 0)),
        precision_flags=hasattr(trt.BuilderFlag, "FP16") and hasattr(trt.BuilderFlag, "INT8"),
        calibrators=hasattr(trt, "IInt8EntropyCalibrator2"),
        tactic_heuristic=hasattr(trt.BuilderFlag, HEURISTIC_FLAG),
        optimization_levels=hasattr(trt.IBuilderConfig, "builder_optimization_level"),
    )


def device_facts(gpu: int = 0) -> Dict[str, str]:
    """This machine's TensorRT version and GPU, as engine manifests record them."""
    ctx = CudaContext(gpu)
    return {"tensorrt": trtlib.version(), "sm": ctx.sm, "gpu": ctx.name}


def network_from_onnx(builder: trt.Builder, logs: trtlib.LogCapture, path: Path, plan: BuildPlan):
    flags = 0
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if explicit is not None and trtlib.major() < 10:  # the only mode from TensorRT 10 on
        flags |= 1 << int(explicit)
    if plan.strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trtlib.onnx_parser(network)
    if not parser.parse_from_file(str(path)):
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise EdgekitError("TensorRT %s cannot parse %s: %s" % (
            trtlib.version(), path.name, (errors[0] if errors else logs.first_error("parser failed"))[:300]))
    return network, parser  # the parser owns weights the network points at: keep it alive until the build


def config_from_plan(builder: trt.Builder, network: Any, plan: BuildPlan, speed: SpeedPlan,
                     options: Dict[str, Any], logs: trtlib.LogCapture) -> Any:
    config = builder.create_builder_config()
    if options.get("workspace"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options["workspace"]) << 20)
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    mask = 0
    for source in options["tactic_sources"]:
        if not hasattr(trt.TacticSource, source):  # TensorRT 11 dropped cuBLAS/cuDNN tactics
            raise EdgekitError("TensorRT %s has no tactic source %s: leave it out of --tactic-sources"
                               % (trtlib.version(), source))
        mask |= 1 << int(getattr(trt.TacticSource, source))
    config.set_tactic_sources(mask)
    if speed.tactic_heuristic:  # checked in speed.plan_speed: TensorRT 8.5/8.6 on sm_80+ (gone in TensorRT 10)
        config.set_flag(getattr(trt.BuilderFlag, HEURISTIC_FLAG))
    if speed.optimization_level is not None:  # TensorRT >= 8.6
        config.builder_optimization_level = speed.optimization_level
    if speed.avg_timing_iterations is not None:
        config.avg_timing_iterations = speed.avg_timing_iterations
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # edgekit inspect shows layer precisions
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    inp = network.get_input(0)
    shape = trtlib.dims(inp.shape)
    if any(d < 0 for d in shape):
        # from the input's own shape: NCHW float, or NHWC uint8 pixels (edgekit export --graph-preprocess)
        lo, opt, hi = profile_shapes(shape, options["imgsz"], options.get("batch") or 1,
                                     options.get("layout") == "nhwc")
        profile = builder.create_optimization_profile()
        since = logs.mark()
        profile.set_shape(inp.name, trt.Dims(list(lo)), trt.Dims(list(opt)), trt.Dims(list(hi)))
        if config.add_optimization_profile(profile) < 0:  # TensorRT logs why and returns -1
            raise EdgekitError("TensorRT refused the optimization profile min %s opt %s max %s for input %s %s: %s"
                               % (list(lo), list(opt), list(hi), inp.name, list(shape),
                                  logs.first_error("no reason given", since)))
        if plan.quantization == "calibrated":
            config.set_calibration_profile(profile)
    return config


def build_engine(prepared: Prepared, request: BuildRequest, out: str = "engines", name: Optional[str] = None,
                 timing_cache: Optional[str] = None, calib_cache: Optional[str] = None, gpu: int = 0,
                 verbose: bool = False, command: Optional[str] = None,
                 speed: Optional[SpeedRequest] = None, stage: Optional[str] = None) -> Path:
    """Build the prepared ONNX into ``out/NAME.engine`` + manifest on this GPU; returns the engine path.

    ``stage``: write the engine and its manifest into that folder instead, under the same name (the accuracy
    gate measures it there before it moves into ``out``: ``edgekit.eval.gated_build``); the calibration table still
    goes to ``out/calib``.

    Every TensorRT and pycuda object lives in ``_build``'s frame: they go when it returns (or, on an error, when
    ``CudaContext.current`` clears the frames), in both cases while the CUDA context is still current.
    """
    trtlib.check_bindings()
    t_start = time.perf_counter()
    gpu_ctx = CudaContext(gpu)
    logs = trtlib.LogCapture(verbose)  # TensorRT's lines during this build (one process-wide logger routes them)
    try:
        with logs.active(), gpu_ctx.current():
            target, seconds = _build(prepared, request, out, name, timing_cache, calib_cache, gpu_ctx, logs,
                                     command, speed or SpeedRequest(), t_start, stage)
    finally:
        gpu_ctx.release()
    images = (read_manifest(target) or {}).get("calibration_images")
    info("%s %s (%.1f MB) in %.0f s%s" % ("built" if stage else "wrote", target.name if stage else target,
                                        target.stat().st_size / 1e6, seconds["total"],
                                        "; INT8 calibrated on %d images" % images if images else ""))
    return target


def _build(prepared: Prepared, request: BuildRequest, out: str, name: Optional[str], timing_cache: Optional[str],
           calib_cache: Optional[str], gpu_ctx: CudaContext, logs: trtlib.LogCapture, command: Optional[str],
           speed_request: SpeedRequest, t_start: float, stage: Optional[str] = None
           ) -> Tuple[Path, Dict[str, float]]:
    onnx_path, facts = prepared.onnx_path, prepared.facts
    seconds: Dict[str, float] = {}
    builder = trtlib.builder()
    caps = caps_of(builder, gpu_ctx)
    plan = plan_build(request, caps, facts)  # every refusal happens here, before the slow part
    speed = plan_speed(speed_request, caps)
    check_buildable(prepared.proto, facts, caps.tensorrt, onnx_path)
    for note in plan.notes + speed.notes:
        info("note: %s" % note)
    target = Path(stage or out) / (name or engine_name(onnx_path.stem, plan, caps, request.batch))
    calibrator = _calibrator(prepared, calib_cache, out) if plan.quantization == "calibrated" else None
    try:
        t0 = time.perf_counter()
        with phase("parsing %s with TensorRT %s" % (onnx_path.name, caps.tensorrt)):
            network, parser = network_from_onnx(builder, logs, onnx_path, plan)
            config = config_from_plan(builder, network, plan, speed, prepared.options, logs)
        seconds["parse"] = time.perf_counter() - t0
        cache = TimingCacheFile(timing_cache) if timing_cache else None
        if cache:
            cache.attach(config)
        if calibrator is not None:
            config.int8_calibrator = calibrator.trt
        t0 = time.perf_counter()
        since = logs.mark()  # errors before this (a timing cache TensorRT could not load) did not stop anything
        with phase("building %s engine (%s)" % (plan.label, flags_text(plan.flags))):
            with build_display(config, "%s %s on %s" % (onnx_path.name, plan.label, caps.gpu)) as progress:
                if calibrator is not None:
                    calibrator.attach(progress)
                serialized = builder.build_serialized_network(network, config)
        seconds["build"] = time.perf_counter() - t0
        if calibrator is not None:
            calibrator.check()
        if serialized is None:
            raise EdgekitError("TensorRT could not build %s: %s" % (
                onnx_path.name, logs.first_error("no error message (rerun with --verbose)", since)))
        if cache:
            cache.save(config)
        with atomic_path(target) as tmp:
            with open(str(tmp), "wb") as f:
                f.write(memoryview(serialized))
            seconds["total"] = time.perf_counter() - t_start
            doc = engine_manifest(
                target=target, engine_file=tmp, sha256=sha256_file(tmp), prepared=prepared, plan=plan,
                caps=caps, calibration=calibrator.summary() if calibrator else None, seconds=seconds,
                timing_cache=timing_cache, command=command, warnings=len(logs.warnings),
                build_speed=dict(speed.record(speed_request), notes=speed.notes))
            write_json_atomic(str(target) + ".json", doc)
        del serialized, config, parser, network  # TensorRT objects in reverse order of creation
    finally:
        if calibrator is not None:
            calibrator.free()
    return target, seconds


def _calibrator(prepared: Prepared, calib_cache: Optional[str], out: str) -> Any:
    # imported here: TensorRT 11 has no IInt8EntropyCalibrator2, and edgekit must still import there
    from edgekit.runtime.tensorrt.calibrator import Calibration

    calib = prepared.calib
    if calib is None:
        raise EdgekitError("INT8 calibration needs --calib DIR")
    key = cache_key(prepared.onnx_manifest["sha256"], calib)
    cache = CalibrationCache(calib_cache, key) if calib_cache else CalibrationCache.default(
        Path(out) / "calib", prepared.onnx_path.stem, key)
    return Calibration(calib, cache)
