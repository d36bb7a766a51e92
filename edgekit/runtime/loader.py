"""Open the right Runner for a model file and a ``--backend`` choice."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from edgekit.errors import EdgekitError
from edgekit.lazy import lazy_import
from edgekit.runtime.base import Runner

BACKENDS = ("auto", "onnxruntime", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def open_runner(path, backend: str = "auto", threads: Optional[int] = None) -> Runner:
    """A ready Runner for ``path`` (ONNX now; TensorRT engines once the TensorRT runner lands)."""
    path = Path(path)
    if backend not in BACKENDS:
        raise EdgekitError("unknown backend %r: choose one of %s" % (backend, ", ".join(BACKENDS)))
    if not path.is_file():
        raise EdgekitError("model %s not found" % path)
    if path.stat().st_size == 0:
        raise EdgekitError("model %s is empty (0 bytes): re-export or rebuild it" % path)
    suffix = path.suffix.lower()
    if suffix in ENGINE_SUFFIXES or backend == "tensorrt":
        return _tensorrt_runner(path)
    if suffix != ".onnx":
        raise EdgekitError("%s: expected an ONNX model (.onnx) or a TensorRT engine (.engine)" % path)
    from edgekit.runtime.onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, threads=threads)


def _tensorrt_runner(path: Path) -> Runner:
    lazy_import("tensorrt")  # a missing TensorRT gets the install hint first
    raise EdgekitError(
        "%s: the TensorRT runner is not in edgekit yet (it comes with `edgekit build`); "
        "run the ONNX with --backend onnxruntime meanwhile" % path.name
    )
