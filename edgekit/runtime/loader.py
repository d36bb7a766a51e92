"""Open the right Runner for a model file and a ``--backend`` choice."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from edgekit.errors import EdgekitError
from edgekit.lazy import require_tensorrt
from edgekit.log import info
from edgekit.runtime.base import Runner

BACKENDS = ("auto", "onnxruntime", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def check_model_path(path) -> Path:
    """The checks a model file gets before anything opens it (bench runs them for every model up front). A
    model-store run folder (one holding run.json, e.g. HOME/store/current) stands for the model file in it."""
    path = Path(model_argument(str(path)))
    if path.is_dir():
        raise EdgekitError("model %s is a folder: give an .onnx or .engine file in it (e.g. %s/*.onnx)"
                           % (path, str(path).rstrip("/")))
    if not path.is_file():
        server = re.match(r"^(?:https?:/+)?([\w.-]+|\[[\w:]+\]):(\d+)/?$", str(path))
        raise EdgekitError("model %s not found%s" % (path, (
            ": to bench a running edgekit serve, give it as http://%s:%s" % server.groups()) if server else ""))
    if path.stat().st_size == 0:
        raise EdgekitError("model %s is empty (0 bytes): re-export or rebuild it" % path)
    suffix = path.suffix.lower()
    if suffix not in ENGINE_SUFFIXES and suffix != ".onnx":
        raise EdgekitError("%s: expected an ONNX model (.onnx) or a TensorRT engine (.engine)" % path)
    return path


def model_argument(model: str) -> str:
    """A command's MODEL as the file to open: a model-store run folder (HOME/store/current) becomes the model file
    in it, read through the folder as given, once at start; anything else is left as it is."""
    path = Path(model)
    if path.is_dir() and (path / "run.json").is_file():
        return str(store_run_model(path))
    return model


def store_run_model(folder: Path) -> Path:
    """The model file of a model-store run folder (``edgekit models``; HOME/store/current is one), path kept as
    given (not resolved through the ``current`` symlink)."""
    import json

    try:
        name = json.loads((folder / "run.json").read_text())["model"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EdgekitError("%s/run.json is unreadable (%s): rebuild the run with edgekit models build" % (folder, exc)
                           ) from exc
    if not isinstance(name, str) or "/" in name or not (folder / name).is_file():
        raise EdgekitError("%s/run.json names model %r, which is not in that folder: rebuild the run with edgekit "
                           "models build" % (folder, name))
    return folder / name


def open_runner(path, backend: str = "auto", threads: Optional[int] = None, cuda_graph: bool = False,
                spinning: Optional[bool] = None) -> Runner:
    """A ready Runner: TensorRT for engines (and for ONNX with backend="tensorrt"), else ONNX Runtime.
    ``threads``/``spinning``: ONNX Runtime's intra-op threads and whether they spin when idle (from
    :func:`edgekit.runtime.threads.ort_threading`); TensorRT ignores both."""
    if backend not in BACKENDS:
        raise EdgekitError("unknown backend %r: choose one of %s" % (backend, ", ".join(BACKENDS)))
    path = check_model_path(path)
    is_engine = path.suffix.lower() in ENGINE_SUFFIXES
    if is_engine and backend == "onnxruntime":
        raise EdgekitError("%s is a TensorRT engine: ONNX Runtime runs the .onnx it was built from" % path.name)
    if cuda_graph and not runs_on_tensorrt(path, backend):
        raise EdgekitError("--cuda-graph applies to TensorRT only: add --backend tensorrt or pass an engine")
    if runs_on_tensorrt(path, backend):
        require_tensorrt()  # a missing TensorRT/pycuda gets the install hint first
        from edgekit.runtime.tensorrt.runner import TensorRTRunner

        return TensorRTRunner(path if is_engine else engine_for_onnx(path), cuda_graph=cuda_graph)
    from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, threads=threads, spinning=spinning)


def runs_on_tensorrt(path, backend: str = "auto") -> bool:
    """Whether open_runner gives this model to TensorRT (an engine, or backend="tensorrt") rather than ONNX
    Runtime: callers that plan ONNX Runtime's threads skip the planning for TensorRT."""
    return Path(path).suffix.lower() in ENGINE_SUFFIXES or backend == "tensorrt"


def engine_cache_dir() -> Path:
    base = os.environ.get("EDGEKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgekit")
    return Path(base) / "engines"


def engine_for_onnx(onnx_path: Path) -> Path:
    """``--backend tensorrt`` on an ONNX: build it once with edgekit build's defaults, keyed by content."""
    from edgekit.runtime.tensorrt.builder import build_engine, device_facts
    from edgekit.runtime.tensorrt.engine_file import find_current_engine
    from edgekit.runtime.tensorrt.plan import BuildRequest
    from edgekit.runtime.tensorrt.prepare import prepare

    request = BuildRequest()
    prepared = prepare(onnx_path, request)
    sha = prepared.onnx_manifest["sha256"]
    device = device_facts()
    cached = find_current_engine(engine_cache_dir(), sha, None, device)
    if cached is not None:
        info("using cached engine %s" % cached)
        return cached
    name = "%s-%s-default-sm%s-trt%s.engine" % (onnx_path.stem, sha[:12], device["sm"].replace(".", ""),
                                                device["tensorrt"])
    info("building a TensorRT engine for %s (cached as %s; edgekit build gives the options)"
         % (onnx_path, engine_cache_dir() / name))
    return build_engine(prepared, request, out=str(engine_cache_dir()), name=name,
                        command="edgekit build %s" % onnx_path)
