"""Which model a running service runs: the sha256 of the very file it opened, its name and version.

serve's ``/readyz`` and ``/metrics`` and the camera's ``/stats.json`` and ``/metrics`` report it, so a roll-out's
health check (``edgekit models health``) and a fleet dashboard see which bytes each box runs, not which file name.
The hash is of the file itself (read once at start), never taken on trust from a manifest that could be stale.

A model in the on-box store (``HOME/store/models/<sha>/runs/<key>/``, a ``run.json`` beside the file) is named
after the ONNX it was added as, with the version it was added with (``../../entry.json``); any other model by its
file name, with the ``version`` of its manifest when it has one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

from edgekit.manifest import read_manifest, sha256_file

MODEL_LABELS = ("sha256", "name", "version", "precision", "backend")  # of edgekit_model_info (serve and camera)


def _json(path: Path) -> Dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def model_identity(path, backend: Optional[str] = None, precision: Optional[str] = None) -> Dict[str, Any]:
    """{"sha256", "name", "version", "path", "precision", "backend"} of the model file at ``path``.

    ``path`` is the file the runner opened; it is reported with its folder resolved (``HOME/store/current/`` becomes
    the run folder it named when the service started), so a switch of the store's pointer after the start does not
    change what a running service says it runs."""
    path = Path(path)
    folder = Path(os.path.realpath(str(path.parent)))
    try:
        manifest = read_manifest(path) or {}
    except Exception:  # an unreadable manifest: the runner reports it; the identity is the file's
        manifest = {}
    run = _json(folder / "run.json") if (folder / "run.json").is_file() else {}
    entry = _json(folder.parent.parent / "entry.json") if run else {}
    name = entry.get("name") or path.name
    try:
        sha = sha256_file(path)  # type: Optional[str]
    except OSError:  # a runner whose path names no file (a test's stand-in): no sha256, so never "healthy"
        sha = None
    return {"sha256": sha, "name": Path(str(name)).stem,
            "version": entry.get("version") or manifest.get("version"), "path": str(folder / path.name),
            "precision": precision or run.get("precision") or manifest.get("precision") or "fp32",
            "backend": backend or run.get("backend")}


def info_labels(identity: Optional[Dict[str, Any]]) -> Dict[str, str]:
    """The labels of ``edgekit_model_info``: sha256, name, version, precision, backend (empty when unknown)."""
    identity = identity or {}
    return {k: str(identity.get(k) or "") for k in MODEL_LABELS}
