"""The store's TensorRT build: ``edgekit build``'s own steps (prepare, then build_engine) into a given folder.

``Store.ensure_run`` calls a build callable ``build(onnx_path, folder, precision, dla_core, build_options) -> Path``
that writes ``folder/model.engine`` (and its manifest); this module's :func:`tensorrt_build` is the real one, and
tests pass a stand-in (no GPU needed). :func:`tensorrt_device` gives the facts a run key is made of.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from edgekit.errors import EdgekitError
from edgekit.manifest import sha256_file

ENGINE_NAME = "model.engine"
# build options a store run may carry; each one goes into the run key
BUILD_OPTIONS = ("calib", "calib_batches", "workspace", "batch", "gpu_fallback", "fast_build")


Build = Callable[[Path, Path, str, Optional[int], Dict[str, Any]], Path]


def onnx_run(model_dir: Path, folder: Path) -> Dict[str, Any]:
    """An ONNX Runtime run: links to the model's ONNX (and manifest); run.json fields but the key's."""
    os.symlink("../../model.onnx", str(folder / "model.onnx"))
    if (model_dir / "model.onnx.json").is_file():
        os.symlink("../../model.onnx.json", str(folder / "model.onnx.json"))
    return {"precision": None, "dla_core": None, "model": "model.onnx", "model_sha256": model_dir.name,
            "tensorrt": None, "sm": None, "gpu": None, "build_options": {}}


def engine_run(model_dir: Path, folder: Path, precision: str, dla_core: Optional[int], build: Build,
               device: Dict[str, Any], options: Dict[str, Any]) -> Dict[str, Any]:
    """A TensorRT run: ``build`` writes folder/model.engine; run.json fields but the key's."""
    engine = Path(build(model_dir / "model.onnx", folder, precision, dla_core, options))
    if engine != folder / ENGINE_NAME:
        raise EdgekitError("the build wrote %s, not %s" % (engine, folder / ENGINE_NAME))
    if not engine.is_file() or engine.stat().st_size == 0:
        raise EdgekitError("the build of %s left no engine: build it again (edgekit models build %s)"
                           % (model_dir.name[:12], model_dir.name[:12]))
    return dict(device, precision=precision, dla_core=dla_core, model=ENGINE_NAME, model_sha256=sha256_file(engine),
                build_options=options)


def check_build_options(options: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    options = {k: v for k, v in dict(options or {}).items() if v not in (None, False)}
    unknown = sorted(set(options) - set(BUILD_OPTIONS))
    if unknown:
        raise EdgekitError("unknown build option(s) %s: the store knows %s" % (", ".join(unknown),
                                                                               ", ".join(BUILD_OPTIONS)))
    return options


def tensorrt_device(gpu: int = 0) -> Dict[str, str]:
    """This box's TensorRT version, SM and GPU name (needs TensorRT and a GPU)."""
    from edgekit.lazy import require_tensorrt

    require_tensorrt(building=True)
    from edgekit.runtime.tensorrt.builder import device_facts

    return device_facts(gpu)


def tensorrt_build(onnx_path: Path, folder: Path, precision: str, dla_core: Optional[int],
                   build_options: Dict[str, Any]) -> Path:
    """Build ``onnx_path`` into ``folder/model.engine`` (+ model.engine.json) as ``edgekit build`` would."""
    from edgekit.lazy import require_tensorrt
    from edgekit.runtime.tensorrt.plan import BuildRequest
    from edgekit.runtime.tensorrt.prepare import prepare
    from edgekit.runtime.tensorrt.speed import SpeedRequest

    request = BuildRequest(precision=precision, calib=build_options.get("calib"), dla_core=dla_core,
                           gpu_fallback=bool(build_options.get("gpu_fallback")), batch=build_options.get("batch"))
    fast = bool(build_options.get("fast_build"))
    prepared = prepare(onnx_path, request, workspace=build_options.get("workspace"),
                       calib_batches=build_options.get("calib_batches"), fast_build=fast)
    require_tensorrt(building=True)
    from edgekit.runtime.tensorrt.builder import build_engine

    command = "edgekit models build %s --%s%s" % (onnx_path.parent.name[:12], precision,
                                                 "" if dla_core is None else " --dla %d" % dla_core)
    return build_engine(prepared, request, out=str(folder), name=ENGINE_NAME, command=command,
                        speed=SpeedRequest(fast_build=fast))
