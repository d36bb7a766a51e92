"""The "Measured on a GPU" section of docs/results/gpu.md, from the GPU check's results folders committed under
``benchmarks/gpu-check-<gpu>-<driver>-trt<version>/`` (``jetson/gpu-check.sh`` writes them).

Each folder's ``results.json`` is rendered by the check's own ``summary_markdown`` (jetson/gpu_report.py, the
same text as the folder's summary.md) under a heading of its own; newest run first. Every figure comes from a
results.json; with no folder committed the section says so.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

REPO = Path(__file__).resolve().parents[2]  # where jetson/gpu_report.py is (the root a renderer is given may differ)
PATTERN = "benchmarks/gpu-check-*"

NOT_YET = ("Not yet: no results folder of the GPU check is committed under `benchmarks/`, so no engine has been "
           "built or run by edgekit on a GPU. When `jetson/gpu-check.sh` has run on one, its results go here: per "
           "engine build seconds, H2D / compute / D2H and e2e p50/p99, FPS, with and without CUDA graphs, agreement "
           "with ONNX Runtime, and ONNX Runtime's CPU row beside them, then what was not proven and why.\n")


def summary_markdown() -> Callable[..., str]:
    """``jetson/gpu_report.summary_markdown``, loaded from its file: ``jetson`` is no installed package (and on a
    Jetson, NVIDIA's jetson-inference has a ``jetson`` package of its own)."""
    spec = importlib.util.spec_from_file_location("edgekit_docs_gpu_report", str(REPO / "jetson" / "gpu_report.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.summary_markdown


def runs(root: Path) -> List[Tuple[Path, Dict[str, Any]]]:
    """(folder, results) of every committed GPU check, newest first: by the run's own ``started_at``, else (a
    results.json without one, sorted after those with one) by folder name. A folder without a GPU check's
    results.json, or of a run where no test passed, is an error, not a silent gap or an empty table."""
    found = []
    for folder in sorted(p for p in root.glob(PATTERN) if p.is_dir()):
        path = folder / "results.json"
        if not path.is_file():
            raise ValueError("%s has no results.json (commit the whole results folder of jetson/gpu-check.sh)"
                             % folder.relative_to(root).as_posix())
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
        if not isinstance(results, dict) or results.get("kind") != "edgekit-gpu-check":
            raise ValueError("%s is not a GPU check's results.json" % path.relative_to(root).as_posix())
        if not any(isinstance(t, dict) and t.get("outcome") == "passed" for t in results.get("tests") or []):
            raise ValueError("%s: no test passed in that run (no GPU there?): it proves nothing, commit a run that "
                             "did" % path.relative_to(root).as_posix())
        found.append((folder, results))
    return sorted(found, key=lambda run: (run[1].get("started_at") or "", run[0].name), reverse=True)


def title(folder: Path, results: Dict[str, Any]) -> str:
    """The run's folder and what it ran on (GPU, driver, TensorRT), as results.json recorded them."""
    device = results.get("device") or {}
    smi = device.get("nvidia_smi") or {}
    facts = [device.get("gpu") or smi.get("name") or "no GPU"]
    facts += ["driver %s" % smi["driver"] if smi.get("driver") else None,
              "TensorRT %s" % device["tensorrt"] if device.get("tensorrt") else None]
    facts = [str(f) for f in facts if f]
    return "### %s%s" % (folder.name, ": " + ", ".join(facts) if facts else "")


def gpu_check(root: Path) -> str:
    """Every committed ``benchmarks/gpu-check-*/results.json``, newest first: a heading naming its folder, GPU,
    driver and TensorRT, then the check's own summary without its heading (one table row per engine proven, what
    was not proven and why); the honest paragraph ``NOT_YET`` when none is committed."""
    found = runs(root)
    if not found:
        return NOT_YET
    render = summary_markdown()
    parts = ["%s\n\n%s" % (title(folder, results), render(results, heading=False)) for folder, results in found]
    return "\n".join(parts)
