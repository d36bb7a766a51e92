"""TensorRT glue shared by the builder and the runner: import check, the process-wide logger, dtype table.

Import this module only after ``edgekit.lazy.lazy_import("tensorrt")`` succeeded (the CLI and loaders do):
it imports tensorrt at the top so mypy checks every call against ``tensorrt-stubs``.
Only the name-based tensor API (TensorRT >= 8.5) is used: no binding indices, no ``build_engine``, no
``max_workspace_size``.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Tuple

import numpy as np
import tensorrt as trt

from edgekit.errors import EdgekitError
from edgekit.runtime.tensorrt.logkeeper import ERROR, OTHER, WARNING, LogKeeper, LogRouter

# trt.nptype() uses np.bool, gone in numpy >= 1.24 (TensorRT 8.5 breaks there): our own table, by enum name
_DTYPES: Dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32), "HALF": np.dtype(np.float16), "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64), "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
}


def check_bindings() -> None:
    """A ``tensorrt`` that is only type stubs (a namespace folder) imports fine and then fails oddly."""
    if not hasattr(trt, "Builder") or not hasattr(trt, "__version__"):
        raise EdgekitError("the 'tensorrt' module at %s is not TensorRT's Python bindings (stubs only?): on "
                           "JetPack apt install python3-libnvinfer (ONNX Runtime runs the .onnx meanwhile)"
                           % list(getattr(trt, "__path__", [])))


def numpy_dtype(dtype: trt.DataType) -> np.dtype:
    name = str(dtype).split(".")[-1]
    if name not in _DTYPES:
        raise EdgekitError("TensorRT tensor type %s has no numpy equivalent in edgekit" % name)
    return _DTYPES[name]


def dims(d: trt.Dims) -> Tuple[int, ...]:
    """A TensorRT Dims as a plain tuple of ints."""
    return tuple(int(d[i]) for i in range(len(d)))


def version() -> str:
    return str(trt.__version__)


def major() -> int:
    return int(version().split(".")[0])


class _ProcessLogger(trt.ILogger):
    """The one ``trt.ILogger`` of this process; each line goes where ``ROUTER`` says (``logkeeper``)."""

    def __init__(self) -> None:
        trt.ILogger.__init__(self)

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
            kind = ERROR
        elif severity == trt.ILogger.Severity.WARNING:
            kind = WARNING
        else:
            kind = OTHER
        if ROUTER.route(kind, msg).verbose:
            print("[TensorRT] %s" % msg, flush=True)


ROUTER = LogRouter()
_PROCESS: Dict[str, Any] = {}  # "logger": the process logger; "plugins": whether the plugin library is initialised
_START_LOCK = threading.Lock()


def process_logger() -> trt.ILogger:
    """The process-wide TensorRT logger (made once; never freed while TensorRT may still log)."""
    with _START_LOCK:
        if "logger" not in _PROCESS:
            _PROCESS["logger"] = _ProcessLogger()
        return _PROCESS["logger"]


class LogCapture:
    """One build's or runner's share of TensorRT's log: ``with capture.active():`` around its TensorRT calls;
    errors make the one-line message, every line is printed with ``verbose``."""

    def __init__(self, verbose: bool = False) -> None:
        self.kept = LogKeeper(verbose)

    def active(self) -> Any:
        return ROUTER.to(self.kept)

    @property
    def errors(self) -> List[str]:
        return self.kept.errors

    @property
    def warnings(self) -> List[str]:
        return self.kept.warnings

    def mark(self) -> int:
        return self.kept.mark()

    def first_error(self, default: str, since: int = 0) -> str:
        return self.kept.first_error(default, since)


def builder() -> trt.Builder:
    """A Builder, or one line that says CUDA/TensorRT could not start (no GPU, broken driver). Call it with a
    ``LogCapture`` active, so the reason lands there."""
    return _start(trt.Builder)


def runtime() -> trt.Runtime:
    return _start(trt.Runtime)


def onnx_parser(network: Any) -> trt.OnnxParser:
    return trt.OnnxParser(network, process_logger())


def _start(factory: Any) -> Any:
    logger = process_logger()
    try:
        with _START_LOCK:
            if not _PROCESS.get("plugins"):  # once, with the process logger: the library keeps that pointer
                trt.init_libnvinfer_plugins(logger, "")  # EfficientNMS_TRT (edgekit export --trt-nms) and others
                _PROCESS["plugins"] = True
        return factory(logger)
    except TypeError as exc:  # pybind: "factory function returned nullptr" when CUDA cannot initialise
        kept = ROUTER.current()
        why = kept.first_error(kept.last_warning("CUDA initialisation failed"))
        raise EdgekitError("TensorRT could not start on a GPU (%s): this machine needs an NVIDIA GPU and driver; "
                           "use --backend onnxruntime here" % why) from exc


def io_tensors(engine: trt.ICudaEngine) -> List[Tuple[str, bool, Tuple[int, ...], np.dtype]]:
    """(name, is_input, shape, numpy dtype) for every I/O tensor, found by name."""
    out = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = dims(engine.get_tensor_shape(name))
        out.append((name, is_input, shape, numpy_dtype(engine.get_tensor_dtype(name))))
    return out
