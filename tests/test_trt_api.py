"""Every TensorRT name edgekit uses exists in the TensorRT installed here (8.5 on JetPack 5, 10 on Orin/desktop).

Needs the real tensorrt bindings but no GPU: importing TensorRT and reading its classes works without one
(creating a Builder does not). mypy with tensorrt-stubs checks the same code against TensorRT 10 in CI; this
test checks it against the TensorRT actually installed, e.g. JetPack 5's 8.5, whose API differs.
"""

import ast
from pathlib import Path

import pytest

trt = pytest.importorskip("tensorrt", reason="needs the real TensorRT Python bindings (JetPack, or the device kit)")
if not hasattr(trt, "Builder"):
    pytest.skip("the tensorrt module here is stubs only", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1] / "edgekit"
TRT_MODULES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "runtime" / "tensorrt").glob("*.py"))
MAJOR = int(trt.__version__.split(".")[0])
OPTIONAL = {"IProgressMonitor", "STRONGLY_TYPED"}  # TensorRT >= 10 only; edgekit checks with hasattr first
# gone in TensorRT 11 (read from the 11.4 bindings): edgekit guards each with getattr/hasattr or never reaches it
# there (calibrated INT8 and weakly typed builds are refused on TensorRT 11 before any of these is touched)
GONE_IN_11 = {"IInt8EntropyCalibrator2", "platform_has_fast_fp16", "platform_has_fast_int8",
              "set_calibration_profile", "int8_calibrator", "get_batch", "get_batch_size", "read_calibration_cache",
              "write_calibration_cache", "EXPLICIT_BATCH", "CUBLAS", "CUBLAS_LT", "CUDNN"}

# methods/properties edgekit calls on TensorRT objects (instances are not reachable by parsing)
USED = {
    "Builder": ["create_network", "create_builder_config", "build_serialized_network", "platform_has_fast_fp16",
                "platform_has_fast_int8", "num_DLA_cores", "create_optimization_profile"],
    "IBuilderConfig": ["set_memory_pool_limit", "set_flag", "set_tactic_sources", "create_timing_cache",
                       "set_timing_cache", "get_timing_cache", "int8_calibrator", "DLA_core", "default_device_type",
                       "add_optimization_profile", "set_calibration_profile", "profiling_verbosity",
                       "avg_timing_iterations"],
    "ITimingCache": ["combine", "serialize"],
    "OnnxParser": ["parse_from_file", "num_errors", "get_error"],
    "INetworkDefinition": ["get_input"],
    "ITensor": ["shape", "name"],
    "IOptimizationProfile": ["set_shape"],
    "Runtime": ["deserialize_cuda_engine", "DLA_core", "num_DLA_cores"],
    "ICudaEngine": ["num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_shape", "get_tensor_dtype",
                    "get_tensor_profile_shape", "create_execution_context", "create_engine_inspector"],
    "IExecutionContext": ["set_tensor_address", "set_input_shape", "execute_async_v3", "get_tensor_shape"],
    "IInt8EntropyCalibrator2": ["get_batch", "get_batch_size", "read_calibration_cache", "write_calibration_cache"],
}


def trt_chains():
    """('BuilderFlag', 'FP16')-style chains written as trt.X.Y in edgekit's TensorRT modules."""
    chains = set()
    for rel in TRT_MODULES:
        for node in ast.walk(ast.parse((ROOT / rel).read_text())):
            if isinstance(node, ast.Attribute):
                parts, cur = [], node
                while isinstance(cur, ast.Attribute):
                    parts.append(cur.attr)
                    cur = cur.value
                if isinstance(cur, ast.Name) and cur.id == "trt":
                    chains.add(tuple(reversed(parts)))
    return sorted(chains)


def test_module_level_names_exist():
    missing = []
    for chain in trt_chains():
        obj = trt
        for name in chain:
            if not hasattr(obj, name):
                if name not in OPTIONAL and not (MAJOR >= 11 and name in GONE_IN_11):
                    missing.append(".".join(chain))
                break
            obj = getattr(obj, name)
    assert not missing, "TensorRT %s lacks %s" % (trt.__version__, missing)


def test_flag_and_enum_names_used_by_name_exist():
    from edgekit.runtime.tensorrt.plan import TACTIC_SOURCES

    for source in TACTIC_SOURCES:
        assert hasattr(trt.TacticSource, source) or (MAJOR >= 11 and source in GONE_IN_11), source
    for flag in ("FP16", "INT8", "GPU_FALLBACK"):
        assert hasattr(trt.BuilderFlag, flag) or int(trt.__version__.split(".")[0]) >= 11, flag


def test_methods_exist():
    names = {"Builder": trt.Builder, "Runtime": trt.Runtime, "OnnxParser": trt.OnnxParser}
    missing = [
        "%s.%s" % (cls, m) for cls, methods in USED.items() for m in methods
        if not (MAJOR >= 11 and (cls in GONE_IN_11 or m in GONE_IN_11))
        and not hasattr(names.get(cls) or getattr(trt, cls), m)
    ]
    assert not missing, "TensorRT %s lacks %s" % (trt.__version__, missing)


def test_build_speed_names_exist_where_edgekit_expects_them():
    """--fast-build and friends: ENABLE_TACTIC_HEURISTIC on TensorRT 8.5/8.6, builder_optimization_level on 8.6+
    (edgekit checks both with hasattr before use; here: they are there on the versions that should have them)."""
    from edgekit.runtime.tensorrt.plan import version_tuple
    from edgekit.runtime.tensorrt.speed import HEURISTIC_FLAG

    version = version_tuple(trt.__version__)
    if (8, 5) <= version[:2] < (10, 0):
        assert hasattr(trt.BuilderFlag, HEURISTIC_FLAG), HEURISTIC_FLAG
    if version[:2] >= (8, 6):
        assert hasattr(trt.IBuilderConfig, "builder_optimization_level")
    else:
        assert not hasattr(trt.IBuilderConfig, "builder_optimization_level")
    assert "ignore_mismatch" in (trt.ITimingCache.combine.__doc__ or "")


def test_dtype_table_and_the_process_logger_without_a_gpu():
    import numpy as np

    from edgekit.runtime.tensorrt import trtlib

    assert trtlib.numpy_dtype(trt.DataType.HALF) == np.float16
    assert trtlib.numpy_dtype(trt.DataType.FLOAT) == np.float32
    assert trtlib.numpy_dtype(trt.DataType.BOOL) == np.bool_  # trt.nptype breaks here on TensorRT 8.5 + numpy 1.24
    logger = trtlib.process_logger()
    assert logger is trtlib.process_logger() and isinstance(logger, trt.ILogger)  # one per process
    capture = trtlib.LogCapture()
    with capture.active():
        logger.log(trt.ILogger.Severity.ERROR, "1: [stdArchiveReader.cpp] Magic tag does not match")
        assert "Magic tag" in capture.first_error("x")
        since = capture.mark()
        logger.log(trt.ILogger.Severity.WARNING, "INT64 weights cast down to INT32")
        logger.log(trt.ILogger.Severity.INTERNAL_ERROR, "2: [builder.cpp] Assertion failed")
    logger.log(trt.ILogger.Severity.ERROR, "after the build: not this capture's")
    assert capture.first_error("x", since) == "2: [builder.cpp] Assertion failed" and len(capture.warnings) == 1
    assert len(capture.errors) == 2


def test_no_gpu_is_one_line_naming_tensorrts_reason():
    """Without a GPU TensorRT 8.5's Builder logs 'CUDA initialization failure' as a warning and pybind raises
    TypeError; edgekit says it in one line. (Skipped where a GPU is present.)"""
    from edgekit.errors import EdgekitError
    from edgekit.runtime.tensorrt import trtlib

    try:
        with trtlib.LogCapture().active():
            builder = trtlib.builder()
    except EdgekitError as exc:
        assert "\n" not in str(exc) and "CUDA" in str(exc) and "--backend onnxruntime" in str(exc)
        return
    del builder
    pytest.skip("TensorRT starts here: a GPU is present")
