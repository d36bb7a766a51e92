"""What a model is (class names, input size, trained or not), read from its manifest or ONNX metadata."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from edgekit.manifest import read_manifest

UNKNOWN_WEIGHTS = "unknown weights (no edgekit manifest)"


@dataclass
class ModelInfo:
    path: Path
    names: Dict[int, str]
    imgsz: Optional[Tuple[int, int]]
    trained: Optional[bool]  # None: not known (no manifest)
    weights_label: str
    manifest: Optional[Dict[str, Any]] = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.stem

    def get(self, key: str, default: Any = None) -> Any:
        """A manifest field, or ``default`` when there is no manifest or no such field."""
        return (self.manifest or {}).get(key, default)


def model_info(path, metadata: Optional[Mapping[str, str]] = None) -> ModelInfo:
    """Prefer edgekit's manifest; fall back to ultralytics' ONNX metadata props (``names``, ``imgsz``)."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is not None:
        names = {int(k): str(v) for k, v in (manifest.get("names") or {}).items()}
        imgsz = manifest.get("imgsz")
        return ModelInfo(
            path=path,
            names=names,
            imgsz=(int(imgsz[0]), int(imgsz[1])) if imgsz else None,
            trained=manifest.get("trained"),
            weights_label=manifest.get("weights_label", UNKNOWN_WEIGHTS),
            manifest=manifest,
        )
    metadata = metadata or {}
    names = _literal(metadata.get("names")) or {}
    imgsz = _literal(metadata.get("imgsz"))
    return ModelInfo(
        path=path,
        names={int(k): str(v) for k, v in names.items()},
        imgsz=(int(imgsz[0]), int(imgsz[1])) if imgsz else None,
        trained=None,
        weights_label=UNKNOWN_WEIGHTS,
    )


def derived_from(info: Any) -> Optional[str]:
    """The sha256 of the model this one was made from, as its manifest records it, or None (no manifest, an
    exported baseline, an older manifest): an engine's ONNX (``onnx_sha256``), a Q/DQ ONNX's float ONNX
    (``derived_from.sha256``; it copies the rest of its source's manifest, ``prune`` included, so this comes
    first), a pruned ONNX's baseline exported with it (``prune.baseline_sha256``). ``info``: a ModelInfo or a
    manifest dict."""
    if info is None:
        return None
    get = info.get
    if get("kind") == "tensorrt-engine":
        return get("onnx_sha256")
    source = get("derived_from")
    if isinstance(source, dict) and source.get("sha256"):
        return source["sha256"]
    if isinstance(source, str) and source:
        return source
    prune = get("prune")
    if isinstance(prune, dict) and prune.get("baseline_sha256"):
        return prune["baseline_sha256"]
    return get("onnx_sha256")


def graph_inputs(proto) -> List[Any]:
    """The graph's real inputs (older exporters list initializers among the inputs too)."""
    initializers = {i.name for i in proto.graph.initializer}
    return [v for v in proto.graph.input if v.name not in initializers]


def onnx_metadata(proto, key: str) -> Any:
    """An ultralytics metadata prop (``names``, ``imgsz``, ...) as a Python value, or None."""
    for prop in proto.metadata_props:
        if prop.key == key:
            return _literal(prop.value)
    return None


def onnx_io(proto) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Graph inputs (without initializers) and outputs as ``{"name", "shape", "dtype"}`` dicts."""
    from onnx import helper

    def describe(value) -> Dict[str, Any]:
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        return {"name": value.name, "shape": dims, "dtype": str(helper.tensor_dtype_to_np_dtype(t.elem_type))}

    return [describe(v) for v in graph_inputs(proto)], [describe(v) for v in proto.graph.output]


def _literal(text: Optional[str]) -> Any:
    if not text:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
