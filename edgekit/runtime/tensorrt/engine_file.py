"""Check a TensorRT engine file against its manifest and this device *before* TensorRT reads it.

Engines are not portable: one built by another TensorRT version or for another GPU (compute capability)
fails to load or, worse, crashes. edgekit writes ``ENGINE.json`` beside every engine; here that manifest is
compared with the file (size, sha256: truncated or replaced?) and with this device (TensorRT version, SM),
and a mismatch is one line that names the rebuild command. Plain Python: tested without a GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from edgekit.errors import EdgekitError
from edgekit.log import warn
from edgekit.manifest import read_manifest, sha256_file


def rebuild_hint(manifest: Optional[Dict[str, Any]], path: Path) -> str:
    if manifest and manifest.get("command"):
        return "rebuild it on this device with: %s" % manifest["command"]
    onnx = (manifest or {}).get("onnx") or "MODEL.onnx"
    return "rebuild it on this device with: edgekit build %s" % onnx


def describe(tensorrt: Optional[str], sm: Optional[str], gpu: Optional[str] = None) -> str:
    where = "sm_%s" % str(sm).replace(".", "") if sm else "an unknown GPU"
    if gpu:
        where = "%s (%s)" % (where, gpu)
    return "TensorRT %s for %s" % (tensorrt or "?", where)


def check_engine_file(path, device: Optional[Dict[str, str]] = None,
                      verify_sha: bool = True) -> Optional[Dict[str, Any]]:
    """Raise :class:`EdgekitError` if ``path`` cannot be a loadable engine here; return its manifest (or None).

    ``device`` is ``{"tensorrt": "8.5.2.2", "sm": "7.2", "gpu": "Xavier"}`` for this machine; None skips the
    device comparison (e.g. ``edgekit inspect`` on a workstation).
    """
    path = Path(path)
    if not path.is_file():
        raise EdgekitError("engine %s not found" % path)
    size = path.stat().st_size
    if size == 0:
        raise EdgekitError("engine %s is empty (0 bytes): %s" % (path, rebuild_hint(None, path)))
    manifest = read_manifest(path)
    if manifest is None:
        warn("%s has no manifest (%s.json): TensorRT version and GPU cannot be checked before loading"
             % (path.name, path.name))
        return None
    if manifest.get("kind") != "tensorrt-engine":
        raise EdgekitError("%s.json is not an engine manifest (kind %r): is %s an engine?"
                           % (path.name, manifest.get("kind"), path.name))
    expected = manifest.get("engine_bytes")
    if expected is not None and size != expected:
        raise EdgekitError("engine %s is %d bytes but was built as %d (truncated or replaced): %s"
                           % (path, size, expected, rebuild_hint(manifest, path)))
    if verify_sha and manifest.get("sha256") and sha256_file(path) != manifest["sha256"]:
        raise EdgekitError("engine %s does not match the sha256 in its manifest (changed since it was built): %s"
                           % (path, rebuild_hint(manifest, path)))
    if device is not None:
        check_compatible(manifest, device, path)
    return manifest


def check_compatible(manifest: Dict[str, Any], device: Dict[str, str], path: Path) -> None:
    built_trt, built_sm = manifest.get("tensorrt"), manifest.get("sm")
    here_trt, here_sm = device.get("tensorrt"), device.get("sm")
    trt_differs = bool(built_trt and here_trt and built_trt != here_trt)
    sm_differs = bool(built_sm and here_sm and built_sm != here_sm)
    if trt_differs or sm_differs:
        raise EdgekitError("engine %s was built with %s; this device has %s: %s" % (
            path.name, describe(built_trt, built_sm, manifest.get("gpu")),
            describe(here_trt, here_sm, device.get("gpu")), rebuild_hint(manifest, path)))
    dla = manifest.get("dla_core")
    if dla is not None and int(device.get("dla_cores", 0) or 0) <= int(dla):
        raise EdgekitError("engine %s runs on DLA core %s, which this device does not have: %s"
                           % (path.name, dla, rebuild_hint(manifest, path)))
    if manifest.get("gpu") and device.get("gpu") and manifest["gpu"] != device["gpu"]:
        warn("%s was built on %s and runs on %s (same sm_%s): it loads, but its tactics were timed on the other GPU"
             % (path.name, manifest["gpu"], device["gpu"], str(here_sm).replace(".", "")))


def find_current_engine(folder, onnx_sha256: str, precision: Optional[str], device: Dict[str, str],
                        dla_core: Optional[int] = None) -> Optional[Path]:
    """An engine in ``folder`` built from this very ONNX (sha256), for this TensorRT version and GPU (SM), with the
    precision and DLA core asked for, and intact (size and sha256 as built); None when it must be (re)built.

    What ``edgekit build --if-changed`` and the fleet playbook use to skip builds that would change nothing.
    """
    import json

    folder = Path(folder)
    if not folder.is_dir():
        return None
    for meta in sorted(folder.glob("*.engine.json")):
        try:
            manifest = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        wanted = (
            manifest.get("kind") == "tensorrt-engine"
            and manifest.get("onnx_sha256") == onnx_sha256
            and manifest.get("tensorrt") == device.get("tensorrt")
            and manifest.get("sm") == device.get("sm")
            and (precision is None or manifest.get("precision") == precision)
            and manifest.get("dla_core") == dla_core
        )
        engine = meta.with_name(meta.name[: -len(".json")])
        if wanted and engine.is_file():
            try:
                check_engine_file(engine)  # intact: size and sha256 as built
            except EdgekitError:
                continue
            return engine
    return None
