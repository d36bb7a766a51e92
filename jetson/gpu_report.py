#!/usr/bin/env python3
"""The GPU check's results as a person reads them: test outcomes from pytest's junit files, bench rows, and the
"Measured on a GPU" table (summary.md) that docs/results/gpu.md shows.

    python jetson/gpu_report.py RESULTS_DIR_OR_JSON      # print summary.md again from a results.json

Plain Python 3.8+ standard library: it runs on the device, and here on a results.json that came back.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Optional

LABELS = {"fp16": "FP16", "qdq": "INT8 Q/DQ (edgekit quantize)", "nms": "FP16, uint8 input, letterbox + "
          "EfficientNMS_TRT in the graph", "int8": "INT8 calibrated (entropy)",
          "e2e": "YOLO26 end-to-end (TopK head), FP16"}


def junit_tests(path: Path) -> List[Dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for case in ET.parse(str(path)).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            child = case.find(tag)
            if child is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (child.get("message") or "").splitlines()[0][:300] if child.get("message") else ""
                break
        rows.append({"test": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0),
                     "message": message})
    return rows


def bench_rows(records: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per model of every ``bench-*`` record: stage medians and p99s, FPS, CUDA graph or not."""
    rows = []
    for name, doc in sorted(records.items()):
        if not name.startswith("bench") or not isinstance(doc, dict):
            continue
        for r in doc.get("results", []):
            stages = r.get("stages") or {}
            rows.append({"record": name, "model": r.get("name") or r.get("model"), "backend": r.get("backend"),
                         "precision": r.get("precision"), "device": r.get("device"),
                         "input_shape": r.get("input_shape"), "iterations": r.get("iterations"),
                         "warmup": r.get("warmup"), "source": r.get("source"),
                         "cuda_graph": bool((r.get("config") or {}).get("cuda_graph")), "fps": r.get("fps"),
                         "median_ms": {k: (v or {}).get("median") for k, v in stages.items()},
                         "p99_ms": {k: (v or {}).get("p99") for k, v in stages.items()}})
    return rows


ORDER = ("ok", "passed", "failed", "error", "timed out", "skipped")  # how counts list a step's or test's outcomes


def counts(rows: List[Dict[str, Any]], field: str = "outcome") -> str:
    """"20 passed, 2 skipped": how many rows have each value of ``field`` (a test's outcome, a step's status)."""
    values = [str(r.get(field)) for r in rows]
    rank = {v: i for i, v in enumerate(ORDER)}
    return ", ".join("%d %s" % (values.count(v), v) for v in sorted(set(values), key=lambda v: (rank.get(v, 99), v)))


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else "%.3f" % value


def _row(rows: List[Dict[str, Any]], record: str, backend: str) -> Optional[Dict[str, Any]]:
    return next((r for r in rows if r["record"] == record and r["backend"] == backend), None)


def _agreement(doc: Optional[Dict[str, Any]]) -> str:
    det = (doc or {}).get("detections")
    if not det:
        return "-"
    return "%s of %s matched (rate %s), IoU %s, class %s" % (det.get("matched"), det.get("a"), det.get("match_rate"),
                                                             det.get("mean_iou"), det.get("class_agreement"))


def _why_not(results: Dict[str, Any], key: str) -> str:
    """Why engine ``key`` has no bench row: its build's or its tests' status and last line."""
    steps = {s["name"]: s for s in results.get("steps", [])}
    for name in ("build-" + key, "tests-" + key):
        step = steps.get(name)
        if step is None:
            return "%s not run" % name
        if step.get("status") != "ok":
            why = step.get("reason") or step.get("last_line") or ""
            return "%s %s: %s" % (name, step.get("status"), why.replace("listed above", "listed below"))
    return "no bench record (see the log)"


def _more_figures(records: Dict[str, Any]) -> List[str]:
    """What the check measured beside the table: the camera loop against the engine alone, the FP16 engine's power
    while benched and its accuracy gate."""
    lines = []
    for key in LABELS:
        cam = records.get("camera-%s" % key) or {}
        if cam.get("fps"):
            lines.append("- Camera loop on the %s engine (`edgekit camera --headless`, source %s, %s frames): %s "
                         "FPS, the engine alone %s FPS: loop/engine %s (target >= 0.95), limited by %s." % (
                             LABELS[key], cam.get("source"), cam.get("frames"), cam.get("fps"),
                             cam.get("engine_fps"), cam.get("loop_vs_engine"),
                             (cam.get("bottleneck") or {}).get("stage", "-")))
    power = records.get("power-fp16") or {}
    total = power.get("total") or {}
    if total:
        lines.append("- Power while the FP16 engine ran (`edgekit bench --power`, %s, %s samples every %s ms): "
                     "mean %s W, peak %s W, %s mJ per frame (%s)." % (
                         power.get("scope") or power.get("source"), power.get("samples"), power.get("interval_ms"),
                         total.get("mean_w"), total.get("peak_w"), power.get("energy_per_frame_mj", "-"),
                         total.get("energy_source")))
    gate = records.get("gate-fp16") or {}
    if gate.get("candidate") and gate.get("reference"):
        lines.append("- Accuracy gate on the FP16 engine (`edgekit build --accuracy-data ... --max-map-drop 2`, "
                     "the float model's own detections on the validation frames as labels): mAP50-95 %s on %s vs %s on "
                     "%s, %s." % (gate["candidate"].get("map50_95"), gate["candidate"].get("backend"),
                                  gate["reference"].get("map50_95"), gate["reference"].get("backend"),
                                  "passed" if gate.get("passed") else "refused"))
    return [""] + lines if lines else []


def _fps(value: Optional[float]) -> str:
    return "-" if value is None else "%.1f" % value


def summary_markdown(results: Dict[str, Any], heading: bool = True) -> str:
    """One check's results as summary.md: a heading naming the GPU, driver and TensorRT (``heading=False``: none,
    for a page that names them itself, docs/hooks/tables_gpu.py), the table, what was not proven and why."""
    device = results.get("device") or {}
    smi = device.get("nvidia_smi") or {}
    records = results.get("records") or {}
    rows = results.get("bench") or bench_rows(records)
    lines = ["## Measured on a GPU: %s, driver %s, TensorRT %s (%s)" % (
        device.get("gpu") or smi.get("name") or "no GPU", smi.get("driver") or "-", device.get("tensorrt") or "-",
        (results.get("started_at") or "")[:10]), ""] if heading else []
    method = ("Trained YOLOv8n (the YOLO26 row: YOLO26n trained the same way) on the test suite's synthetic set, "
              "160x160, batch 1, built with `edgekit build --fast-build`; bench on the validation frames, stage "
              "medians in ms (H2D/compute/D2H from CUDA events, e2e = preprocess + inference + postprocess on the "
              "host clock). `%s`." % (results.get("command") or "bash jetson/gpu-check.sh"))
    table = ["", "| engine | build s | H2D | compute | D2H | e2e p50 | e2e p99 | FPS | with CUDA graph: e2e p50, FPS "
                 "| vs ONNX Runtime (CPU, float) |", "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    cpu = next((r for r in rows if r["backend"] == "onnxruntime"), None)
    if cpu:
        m, p = cpu["median_ms"], cpu["p99_ms"]
        table.append("| ONNX Runtime, %s | - | - | %s | - | %s | %s | %s | - | reference |" % (
            cpu.get("device"), _ms(m.get("inference")), _ms(m.get("e2e")), _ms(p.get("e2e")), _fps(cpu.get("fps"))))
    not_proven, unbuilt = [], set()
    for key, label in LABELS.items():
        manifest = records.get("manifest-%s" % key) or {}
        row = _row(rows, "bench-%s" % key, "tensorrt")
        graph = _row(rows, "bench-%s-graph" % key, "tensorrt")
        if row is None:
            not_proven.append("- %s: %s" % (label, _why_not(results, key)))
            unbuilt.add(key)
            continue
        m, p = row["median_ms"], row["p99_ms"]
        build_s = (manifest.get("build_seconds") or {}).get("total")
        calibration = manifest.get("calibration") or {}
        if calibration.get("batches"):
            label += ", %d batches of %d" % (calibration["batches"], calibration.get("batch") or 1)
        table.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, "-" if build_s is None else "%.0f" % build_s, _ms(m.get("h2d")), _ms(m.get("compute")),
            _ms(m.get("d2h")), _ms(m.get("e2e")), _ms(p.get("e2e")), _fps(row.get("fps")),
            "%s ms, %s" % (_ms(graph["median_ms"].get("e2e")), _fps(graph.get("fps"))) if graph else "-",
            _agreement(records.get("agreement-%s" % key))))
    lines += [method] + table if len(table) > 3 else ["Nothing was measured in this run (`%s`)."
                                                       % (results.get("command") or "bash jetson/gpu-check.sh")]
    lines += _more_figures(records)
    tests = results.get("tests") or []
    if tests:
        lines += ["", "Tests: %s." % counts(tests)]
    failed = [t for t in tests if t.get("outcome") in ("failed", "error")]
    skipped: Dict[str, List[str]] = {}
    for t in tests:  # skipped on an engine that ran (a missing extra, no NVML...); an unbuilt one is listed above
        if t.get("outcome") == "skipped" and str(t.get("test")).split("_")[1] not in unbuilt:
            skipped.setdefault(t.get("message") or "no reason given", []).append(str(t.get("test")))
    if not_proven or failed or skipped:
        lines += ["", "Not proven in this run:", ""] + not_proven + [
            "- test %s %s: %s" % (t["test"], t["outcome"], t.get("message")) for t in failed] + [
            "- %s skipped: %s" % (", ".join(names), why) for why, names in skipped.items()]
    if results.get("missing"):
        lines += ["", "Missing on this machine:", ""] + ["- %s" % m for m in results["missing"]]
    if results.get("resumed_from") and any(s.get("carried_from") for s in results.get("steps", [])):
        lines += ["", "Engines proven in the run of %s are carried over from it (`--resume`)."
                  % results["resumed_from"]]
    return "\n".join(lines) + "\n"


def main(argv: List[str]) -> int:
    usage = "usage: python jetson/gpu_report.py RESULTS_DIR_OR_JSON (prints the summary.md of a GPU check's results)"
    if argv in (["-h"], ["--help"]):
        print(usage)
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        print(usage, file=sys.stderr)
        return 2
    path = Path(argv[0])
    path = path / "results.json" if path.is_dir() else path
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print("gpu_report: cannot read %s (%s)" % (path, exc), file=sys.stderr)
        return 2
    if not isinstance(results, dict) or results.get("kind") != "edgekit-gpu-check":
        print("gpu_report: %s is not a GPU check's results.json (jetson/gpu-check.sh writes one)" % path,
              file=sys.stderr)
        return 2
    print(summary_markdown(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
