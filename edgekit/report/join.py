"""Load saved result documents (``benchmarks/**/*.json``) and join bench with eval per device and model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from edgekit.errors import EdgekitError
from edgekit.eval.metrics import size_figures
from edgekit.log import warn
from edgekit.report.lineage import compare

STAGES = ("preprocess", "inference", "postprocess", "e2e")
KINDS = ("bench", "eval", "remote-bench")  # remote-bench: edgekit bench http://BOX (rows of the box that served)
LOCAL = "local engine"


def load_documents(paths: Sequence[str]) -> List[Dict[str, Any]]:
    """Every edgekit result document (kind bench or eval) in the given files and folders (recursively)."""
    files: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise EdgekitError("%s not found: give result files or folders (default: benchmarks/)" % p)
    docs = []
    for f in files:
        try:
            doc = json.loads(f.read_text())
        except (ValueError, OSError) as exc:  # a truncated or unreadable file is named, not silently left out
            warn("%s is not readable JSON (%s): left out of the report" % (f, str(exc).splitlines()[0][:80]))
            continue
        if isinstance(doc, dict) and doc.get("kind") in KINDS and isinstance(doc.get("results"), list):
            doc["_file"] = str(f)
            docs.append(doc)
    return docs


def device_name(system: Dict[str, Any]) -> str:
    """What the numbers were measured on: the Jetson model, else the GPU, else the CPU; plus the host."""
    jetson = system.get("jetson") or {}
    what = jetson.get("model") or system.get("gpu") or system.get("cpu") or "unknown device"
    mode = " (%s)" % jetson["power_mode"] if jetson.get("power_mode") else ""
    return "%s%s @ %s" % (what, mode, system.get("hostname", "?"))


def _key(result: Dict[str, Any]) -> Tuple:
    return (result.get("sha256") or result.get("name"), result.get("backend"), result.get("precision"),
            result.get("destination", LOCAL), str(result.get("in_flight", "")))


def headings(docs: Sequence[Dict[str, Any]]) -> List[str]:
    """The table heading of each document: its device, plus the folder it came from when one device has results
    in several folders (the project's committed measurements are never mixed with your own under one heading)."""
    devices = [device_name(doc.get("system") or {}) for doc in docs]
    folders: Dict[str, set] = {}
    for device, doc in zip(devices, docs):
        folders.setdefault(device, set()).add(str(Path(doc.get("_file", ".")).parent))
    return ["%s, from %s" % (device, Path(doc.get("_file", ".")).parent) if len(folders[device]) > 1 else device
            for device, doc in zip(devices, docs)]


def join_results(docs: Sequence[Dict[str, Any]], baseline: Optional[str] = None) -> Dict[str, List[Dict[str, Any]]]:
    """heading -> rows; a row joins the newest bench and the newest eval of one model/backend/precision.

    A model evaluated on several datasets (or splits) gets one row per dataset, each with its bench figures and
    its ``dataset_label``: one mAP is never silently chosen over another.
    Remote bench rows (``edgekit bench http://BOX``) land in the table of the box that served them, one per
    destination and frames in flight, beside the local engine's rows; eval rows join the local engine's row.
    Each evaluated row is compared with the model it was made from, or with ``baseline`` (see
    :mod:`edgekit.report.lineage`): ``vs``, ``map50_95_change`` and ``map50_95_small_change`` (points).
    """
    rows: Dict[str, Dict[Tuple, Dict[str, Any]]] = {}
    evals: Dict[Tuple, Dict[Tuple, Dict[str, Any]]] = {}  # (heading, row key) -> (dataset, split) -> figures
    docs = sorted(docs, key=lambda d: d.get("created_at", ""))
    for doc, device in zip(docs, headings(docs)):
        for r in doc["results"]:
            row = rows.setdefault(device, {}).setdefault(_key(r), {"device": device})
            for k in ("name", "model", "backend", "precision", "params", "gflops", "trained", "pruned", "batch",
                      "imgsz", "destination", "in_flight", "sent_rate", "error_rate", "failed", "sha256",
                      "derived_from", "accuracy_gate"):
                if r.get(k) is not None:
                    row[k] = r[k]
            if r.get("input_shape") is not None:  # a shape is read with its own layout, never another result's
                row.update(input_shape=r["input_shape"], input_format=r.get("input_format"))
            if doc["kind"] in ("bench", "remote-bench"):
                row["latency"] = {s: r["stages"][s]["mean"] for s in STAGES if s in r["stages"]}
                row["fps"] = r["fps"]
                row["power"] = power_figures(r.get("power"))
            else:
                m = r["metrics"]
                evals.setdefault((device, _key(r)), {})[(r.get("dataset"), r.get("split"))] = dict(
                    map50_95=m["map50_95"], map50=m["map50"], recall=m["recall"], precision_metric=m["precision"],
                    dataset=r.get("dataset"), split=r.get("split"),
                    **size_figures(m))  # map50_95_small, recall_small, ...: None in results older than them
    out = {}
    for device, by_key in rows.items():
        table = []
        for key, row in by_key.items():
            per_data = evals.get((device, key)) or {(None, None): {}}
            table += [dict(row, **figures) for _, figures in sorted(per_data.items(), key=lambda kv: str(kv[0]))]
        _label_datasets(table)
        out[device] = sorted(table, key=lambda x: ((x.get("latency") or {}).get("e2e", float("inf")),
                                                   x.get("dataset_label") or ""))
    compare(out, docs, baseline)
    return out


def dataset_label(dataset: Any, split: Any = None, full: bool = False) -> str:
    """'ekds/data.yaml (val)': the dataset file with its folder, and the split evaluated; '-' for none."""
    if not dataset:
        return "-"
    path = Path(str(dataset))
    text = str(path) if full else "/".join(path.parts[-2:])
    return "%s (%s)" % (text, split) if split else text


def _label_datasets(rows: List[Dict[str, Any]]) -> None:
    """Each row's ``dataset_label``; the full path where two datasets of one table share a short label."""
    short: Dict[str, set] = {}
    for r in rows:
        short.setdefault(dataset_label(r.get("dataset"), r.get("split")), set()).add(r.get("dataset"))
    for r in rows:
        label = dataset_label(r.get("dataset"), r.get("split"))
        r["dataset_label"] = dataset_label(r.get("dataset"), r.get("split"), full=True) if len(short[label]) > 1 \
            else label


def power_figures(power) -> Dict[str, Any]:
    """What the report shows of a bench result's power block (empty where power was not measured)."""
    if not power or not power.get("power_available"):
        return {"throttled": True} if power and power.get("throttled") else {}
    return {"mean_w": power["total"]["mean_w"], "energy_per_frame_mj": power.get("energy_per_frame_mj"),
            "frames_per_joule": power.get("frames_per_joule"), "scope": power.get("scope"),
            "throttled": bool(power.get("throttled"))}


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of points not dominated by a faster-and-at-least-as-accurate one (latency low, accuracy high)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
