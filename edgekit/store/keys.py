"""Where the store lives and what its names mean: the home folder, run keys, SHA references."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Optional

from edgekit.errors import EdgekitError

BACKENDS = ("tensorrt", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "int8", "best")
ONNXRUNTIME_KEY = "onnxruntime"
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
KEY_RE = re.compile(r"^(onnxruntime|trt-(fp32|fp16|int8|best)(-dla\d+)?-[0-9a-f]{12})$")


def home_dir(home=None) -> Path:
    """``--home``, else ``$EDGEKIT_HOME``, else ``~/edgekit`` (the playbook's ``edgekit_home``)."""
    value = home or os.environ.get("EDGEKIT_HOME") or "~/edgekit"
    return Path(os.path.abspath(os.path.expanduser(str(value))))


def canonical(data: Dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def key_inputs(onnx_sha256: str, device: Dict[str, Any], precision: str, dla_core: Optional[int],
               build_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Everything that goes into a TensorRT engine, hashed into its run key."""
    return {"onnx_sha256": onnx_sha256, "tensorrt": str(device.get("tensorrt")), "sm": str(device.get("sm")),
            "gpu": str(device.get("gpu")), "precision": precision, "dla_core": dla_core,
            "build_options": dict(build_options or {})}


def run_key(backend: str, onnx_sha256: str, precision: Optional[str] = None, dla_core: Optional[int] = None,
            device: Optional[Dict[str, Any]] = None, build_options: Optional[Dict[str, Any]] = None) -> str:
    """``onnxruntime``, or ``trt-<precision>[-dla<N>]-<12 hex>`` for TensorRT (hex: sha256 of the canonical JSON
    of the ONNX's sha256, TensorRT version, SM, GPU name, precision, DLA core and build options)."""
    check_backend(backend)
    if backend == "onnxruntime":
        return ONNXRUNTIME_KEY
    check_precision(precision)
    if device is None:
        raise ValueError("a TensorRT run key needs the device facts (tensorrt, sm, gpu)")
    digest = hashlib.sha256(canonical(key_inputs(onnx_sha256, device, str(precision), dla_core,
                                                 build_options)).encode()).hexdigest()
    return "trt-%s%s-%s" % (precision, "" if dla_core is None else "-dla%d" % dla_core, digest[:12])


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise EdgekitError("unknown backend %r: choose tensorrt or onnxruntime" % (backend,))


def check_precision(precision: Optional[str]) -> None:
    if precision not in PRECISIONS:
        raise EdgekitError("unknown precision %r: choose one of %s" % (precision, ", ".join(PRECISIONS)))


def check_key(key: str) -> str:
    if not KEY_RE.match(key or ""):
        raise EdgekitError("run key %r is not a store run key (onnxruntime or trt-PRECISION-HEX): see edgekit "
                           "models list" % (key,))
    return key


def looks_like_sha(ref: str) -> bool:
    return bool(re.match(r"^[0-9a-f]{8,64}$", ref or ""))
