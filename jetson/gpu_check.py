#!/usr/bin/env python3
"""The GPU check behind ``jetson/gpu-check.sh``: every TensorRT path of edgekit on this machine's GPU, in one
command, within a time budget (default 450 s), leaving one results JSON and one log.

Steps, each with its own timeout (a failed or timed-out step does not stop the ones after it):

  probe       GPU, driver, TensorRT, pycuda, cuda-python, numpy, Python: one line per missing piece
  assets      the host-built assets (make gpu-assets): present and unchanged (sha256)
  build-fp16, build-int8, build-qdq
              ``edgekit build --fast-build --if-changed`` of the trained YOLOv8n (160 px): FP16, calibrated INT8,
              Q/DQ INT8; an engine already built on this machine is reused in seconds
  tests       ``pytest -m gpu tests/test_tensorrt_gpu.py`` on those engines (no rebuild): detections vs ONNX
              Runtime, calibration-table reuse, bench with and without CUDA graphs, compat refusal, truncated
              engine, inspect's layer precisions

Plain Python 3.8+ standard library (the device has no torch, maybe no pip). Without a GPU it still runs: the
build steps are skipped with the missing pieces named, and the tests step shows that the suite collects and
skips with one line per reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.gpu_assets import ENGINES, RESULTS_ENV, WORK_ENV, load_assets, work_dir  # noqa: E402

TIMEOUTS = {"probe": 60, "build": 180, "tests": 200}
TESTS_RESERVE = 90  # seconds the builds leave for the tests step, whatever they take

PROBE = r"""
import json, platform, sys
facts, missing = {"python": platform.python_version()}, []
try:
    import numpy
    facts["numpy"] = numpy.__version__
except ImportError as exc:
    missing.append("numpy: %s" % exc)
try:
    import tensorrt
    facts["tensorrt"] = getattr(tensorrt, "__version__", None)
    if not hasattr(tensorrt, "Builder"):
        missing.append("tensorrt: the module here is type stubs only (JetPack: apt install python3-libnvinfer)")
except ImportError as exc:
    missing.append("tensorrt: not importable (%s): JetPack ships it (python3-libnvinfer)" % exc)
try:
    import pycuda.driver as cuda
    facts["pycuda"] = __import__("pycuda").VERSION_TEXT
    try:
        cuda.init()
        count = cuda.Device.count()
        facts["gpus"] = count
        if count:
            dev = cuda.Device(0)
            facts["gpu"], facts["sm"] = dev.name(), "%d.%d" % dev.compute_capability()
            facts["cuda_driver_api"] = cuda.get_driver_version()
        else:
            missing.append("GPU: CUDA sees no device")
    except Exception as exc:
        missing.append("GPU: CUDA cannot start (%s)" % str(exc).splitlines()[0][:160])
except ImportError as exc:
    missing.append("pycuda: cannot load (%s): pip install 'edgekit[jetson]'; it also needs the NVIDIA driver"
                   % str(exc).splitlines()[0][:160])
try:
    try:
        from cuda.bindings import driver
    except ImportError:
        from cuda import cuda as driver
    facts["cuda_python"] = True
except ImportError:
    facts["cuda_python"] = False
    missing.append("cuda-python: absent, so the CUDA-graph test skips (pip install 'edgekit[jetson]')")
print(json.dumps({"facts": facts, "missing": missing}))
"""


class Check:
    min_step = 10.0  # seconds: a step given less is skipped as out of time

    def __init__(self, out: Path, budget: float, python: str) -> None:
        self.out = out
        self.python = python
        self.deadline = time.monotonic() + budget
        self.log_path = out / "gpu-check.log"
        self.results: Dict[str, Any] = {
            "kind": "edgekit-gpu-check", "started_at": _now(), "budget_s": budget, "host": platform.node(),
            "python_executable": python, "device": {}, "missing": [], "steps": [], "tests": [], "bench": [],
            "records": {},
        }
        out.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, text: str) -> None:
        with open(self.log_path, "a") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.log(line)

    def step(self, name: str, argv: List[str], timeout: float, env: Optional[Dict[str, str]] = None,
             skip: Optional[str] = None) -> Dict[str, Any]:
        record: Dict[str, Any] = {"name": name, "command": argv, "status": "skipped", "seconds": 0.0}
        timeout = min(timeout, self.left())
        if skip is None and timeout < self.min_step:
            skip = "out of time (%.0f s of the check's budget left for it)" % max(timeout, 0)
        if skip is not None:
            record["reason"] = skip
            self.say("[skip] %s: %s" % (name, skip))
            return self._keep(record)
        self.log("\n===== %s (timeout %.0f s): %s" % (name, timeout, " ".join(argv)))
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, cwd=str(ROOT), env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
            record["status"] = "ok" if proc.returncode == 0 else "failed"
            record["rc"] = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            record["status"], record["rc"] = "timed out", None
        record["seconds"] = round(time.monotonic() - t0, 2)
        text = output.decode(errors="replace")
        record["output"] = text
        self.log(text)
        last = [ln for ln in text.splitlines() if ln.strip()]
        record["last_line"] = last[-1][:300] if last else ""
        self.say("[%s] %s in %.1f s%s" % (record["status"], name, record["seconds"],
                                          "" if record["status"] == "ok" else ": " + record["last_line"]))
        for line in last:  # pytest's one line per skip reason / failure
            if line.startswith(("SKIPPED", "FAILED", "ERROR")):
                self.say("    " + line[:300])
        return self._keep(record)

    def _keep(self, record: Dict[str, Any]) -> Dict[str, Any]:
        self.results["steps"].append(record)
        self.save()
        return record

    def save(self) -> None:
        self.results["finished_at"] = _now()
        tmp = self.out / ".results.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        tmp.replace(self.out / "results.json")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def nvidia_smi() -> Dict[str, str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return {"error": "nvidia-smi not found (no NVIDIA driver on this machine?)"}
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": "nvidia-smi: %s" % exc}
    first = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    if out.returncode != 0 or len(parts) < 2:
        return {"error": "nvidia-smi: %s" % (out.stderr.strip() or out.stdout.strip() or out.returncode)}
    return {"name": parts[0], "driver": parts[1], "memory": parts[2] if len(parts) > 2 else ""}


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
    rows = []
    for name, doc in sorted(records.items()):
        if not name.startswith("bench") or not isinstance(doc, dict):
            continue
        for r in doc.get("results", []):
            stages = r.get("stages") or {}
            rows.append({"record": name, "model": r.get("name") or r.get("model"), "backend": r.get("backend"),
                         "precision": r.get("precision"), "device": r.get("device"),
                         "input_shape": r.get("input_shape"), "iterations": r.get("iterations"),
                         "cuda_graph": "graph" in name, "fps": r.get("fps"),
                         "median_ms": {k: (v or {}).get("median") for k, v in stages.items()}})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description="edgekit's GPU check: see jetson/gpu_check.py")
    default_out = os.environ.get(RESULTS_ENV) or (os.path.join(os.environ["OUT"], "gpu-check") if os.environ.get(
        "OUT") else str(ROOT / "gpu-check-results"))
    parser.add_argument("--out", default=default_out, help="results folder (default: $OUT/gpu-check or "
                                                          "gpu-check-results/)")
    parser.add_argument("--budget", type=float, default=450, help="seconds for all steps together (default 450)")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    check = Check(out, args.budget, sys.executable)
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
           "YOLO_OFFLINE": "1", WORK_ENV: str(work_dir())}
    check.say("edgekit GPU check: results in %s, budget %.0f s" % (out, args.budget))

    smi = nvidia_smi()
    probe = check.step("probe", [sys.executable, "-c", PROBE], TIMEOUTS["probe"], env)
    try:
        found = json.loads((probe.get("output") or "{}").strip().splitlines()[-1])
    except (ValueError, IndexError):
        found = {}
    device = dict(found.get("facts", {}), **{"nvidia_smi": smi})
    missing = list(found.get("missing", ["probe: did not report (see the log)"]))
    if "error" in smi:
        missing.insert(0, "NVIDIA driver: %s" % smi["error"])
    assets, asset_lines = load_assets()
    missing += asset_lines
    check.results["device"], check.results["missing"] = device, missing
    for line in missing:
        check.say("missing: %s" % line)
    check.say("assets: %s" % ("ok (%s)" % assets.root if assets and not asset_lines else "not usable"))

    blockers = [m for m in missing if not m.startswith("cuda-python")]
    for key in ENGINES:
        timeout = min(TIMEOUTS["build"], check.left() - TESTS_RESERVE)
        argv = [sys.executable, "-m", "edgekit"] + (assets.build_args(key, work_dir()) if assets else ["build"])
        check.step("build-" + key, argv, timeout, env,
                   skip="%d piece(s) missing, listed above" % len(blockers) if blockers else None)

    records = out / "records"
    junit = out / "junit.xml"
    check.step("tests", [sys.executable, "-m", "pytest", "-m", "gpu", "tests/test_tensorrt_gpu.py", "-rs", "-q",
                         "-p", "no:cacheprovider", "--junitxml", str(junit)], TIMEOUTS["tests"],
               dict(env, EDGEKIT_GPU_NO_BUILD="1", **{RESULTS_ENV: str(records)}))
    check.results["tests"] = junit_tests(junit)
    for path in sorted(records.glob("*.json")) if records.is_dir() else []:
        check.results["records"][path.stem] = json.loads(path.read_text())
    check.results["bench"] = bench_rows(check.results["records"])
    statuses = [s["status"] for s in check.results["steps"]]
    outcomes = [t["outcome"] for t in check.results["tests"]]
    check.results["summary"] = {
        "steps": {s: statuses.count(s) for s in sorted(set(statuses))},
        "tests": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        "seconds": round(args.budget - check.left(), 1),
    }
    check.save()
    check.say("summary: steps %s, tests %s, %.0f s; wrote %s and %s" % (
        check.results["summary"]["steps"], check.results["summary"]["tests"], check.results["summary"]["seconds"],
        out / "results.json", check.log_path))
    if any(s in ("failed", "timed out") for s in statuses) or any(o in ("failed", "error") for o in outcomes):
        return 1
    return 0 if "skipped" not in statuses else 3


if __name__ == "__main__":
    sys.exit(main())
