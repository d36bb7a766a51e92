#!/usr/bin/env python3
"""The GPU check behind ``jetson/gpu-check.sh``: every TensorRT path of edgekit on this machine's GPU, in one
command, within a time budget (default 450 s), leaving results.json, summary.md and a log.

Steps, each with its own timeout (a failed or timed-out step does not stop the ones after it), most informative
first, so a short GPU session proves the main path before the rest:

  probe        GPU, driver, TensorRT, pycuda, cuda-python, numpy, Python: one line per missing piece
  build-fp16   ``edgekit build --fast-build --if-changed`` of the trained YOLOv8n (160 px), FP16, then
  tests-fp16   ``pytest -m gpu -k test_fp16_ tests/test_tensorrt_gpu.py tests/test_gate.py`` on it: detections vs
               ONNX Runtime, bench with and without CUDA graphs beside ONNX Runtime on the CPU, power (NVML or the
               Jetson's rails), streams and tracking, compat refusal, damaged engine, layers, the accuracy gate
  build-qdq, tests-qdq    the Q/DQ INT8 twin (no calibration images)
  build-nms, tests-nms    uint8 frames, letterbox in the graph, EfficientNMS_TRT (FP16) vs the host NMS
  build-int8, tests-int8  the float model calibrated to INT8 on a few batches (the slowest build)
  build-e2e, tests-e2e    the trained YOLO26n's end-to-end head (export --end2end: TopK in the graph, no NMS), FP16,
                          vs ONNX Runtime on the same ONNX; last, so it only uses the time the others leave

Each build gets the time left minus what its tests need; an engine already built on this machine is reused in
seconds. ``--resume DIR`` (an earlier run's results folder, e.g. one committed under benchmarks/) skips
the engines whose build and tests all passed there and carries their results over: a later GPU session
continues where the last one stopped.

Plain Python 3.8+ standard library (the device has no torch, maybe no pip). Without a GPU it still runs: the
build steps are skipped with the missing pieces named, and the test steps show that the suite collects and
skips with one line per reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# its sibling by folder, not as jetson.gpu_report: on a Jetson, jetson-inference's own `jetson` package (a regular
# package) wins over this folder (a namespace one) wherever both are on the path
sys.path.insert(0, str(ROOT / "jetson"))
from gpu_report import bench_rows, counts, junit_tests, summary_markdown  # noqa: E402

from tests.gpu_assets import ENGINES, RESULTS_ENV, WORK_ENV, load_assets, work_dir  # noqa: E402

TIMEOUTS = {"probe": 60, "tests": 150}
MIN_BUDGET = 30  # seconds: less cannot even probe the machine
TESTS_RESERVE = 60  # seconds each build leaves for its own tests step, whatever it takes
# the gpu tests, named by the engine they need (test_fp16_...): TensorRT itself, and the accuracy gate on an engine
TEST_FILES = ("tests/test_tensorrt_gpu.py", "tests/test_gate.py")


class Check:
    min_step = 10.0  # seconds: a step given less is skipped as out of time

    def __init__(self, out: Path, budget: float, python: str, earlier: Optional[Dict[str, Any]] = None) -> None:
        self.out = out
        self.python = python
        self.deadline = time.monotonic() + budget
        self.log_path = out / "gpu-check.log"
        self.earlier = earlier or {}
        self.results: Dict[str, Any] = {
            "kind": "edgekit-gpu-check", "started_at": _now(), "budget_s": budget, "host": platform.node(),
            "python_executable": python, "device": {}, "missing": [], "steps": [], "tests": [], "bench": [],
            "records": {}, "resumed_from": self.earlier.get("started_at"),
        }
        try:
            out.mkdir(parents=True, exist_ok=True)
            self.log_path.write_text("")
        except OSError as exc:
            die("--out %s: cannot write the results there (%s)" % (out, exc))

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

    def proven_earlier(self, key: str) -> Optional[List[Dict[str, Any]]]:
        """The earlier run's build and tests steps of engine ``key`` when that run proved it (--resume): both
        steps ok, none of its tests failed and at least one passed (a run where all were skipped, e.g. without a
        GPU, proved nothing), else None. A test skipped there (a dependency that machine lacked) stays skipped,
        listed as not proven: resuming saves the engine's build, not its proof."""
        steps = {r.get("name"): r for r in self.earlier.get("steps", [])}
        records = [steps.get("build-" + key), steps.get("tests-" + key)]
        tests = [t for t in self.earlier.get("tests", []) if str(t.get("test", "")).startswith("test_%s_" % key)]
        if not tests or any(r is None or r.get("status") != "ok" for r in records):
            return None
        outcomes = [t.get("outcome") for t in tests]
        if "passed" not in outcomes or any(o not in ("passed", "skipped") for o in outcomes):
            return None
        return [r for r in records if r is not None]

    def carry(self, record: Dict[str, Any]) -> None:
        proven_at = record.get("carried_from") or self.earlier.get("started_at")  # a chain of resumes keeps it
        self.say("[ok] %s: passed in the earlier run of %s (%.1f s there), carried over" % (
            record["name"], proven_at, record.get("seconds", 0)))
        self._keep(dict(record, carried_from=proven_at))

    def _keep(self, record: Dict[str, Any]) -> Dict[str, Any]:
        self.results["steps"].append(record)
        self.save()
        return record

    def save(self) -> None:
        self.results["finished_at"] = _now()
        tmp = self.out / ".results.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        tmp.replace(self.out / "results.json")


def die(message: str) -> NoReturn:
    """A usage error: one line on stderr, exit status 2 (as for a Python that cannot start)."""
    print("gpu-check: %s" % message, file=sys.stderr, flush=True)
    sys.exit(2)


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


def read_earlier(path: str) -> Dict[str, Any]:
    """An earlier run's results.json (or the folder holding it), with its records folder beside it."""
    folder = Path(path)
    file = folder / "results.json" if folder.is_dir() else folder
    try:
        doc = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        die("--resume %s: no readable results.json there (%s)" % (path, exc))
    if not isinstance(doc, dict) or doc.get("kind") != "edgekit-gpu-check":
        die("--resume %s: not a GPU check's results.json" % path)
    for part in ("steps", "tests"):
        if not isinstance(doc.get(part, []), list) or not all(isinstance(r, dict) for r in doc.get(part, [])):
            die("--resume %s: its %r is not a list of records (a damaged results.json?)" % (path, part))
    doc["_folder"] = str(file.parent)
    return doc


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, as everywhere in edgekit (not argparse's usage + error)
        die("%s (see bash jetson/gpu-check.sh --help)" % message)


def budget_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds (e.g. 420)" % text) from None
    if not MIN_BUDGET <= value < float("inf"):
        raise argparse.ArgumentTypeError("%s: give at least %d seconds (the probe alone may take 10; e.g. 420)"
                                         % (text, MIN_BUDGET))
    return value


def main() -> int:
    parser = Parser(description="edgekit's GPU check: see jetson/gpu_check.py")
    default_out = os.environ.get(RESULTS_ENV) or (os.path.join(os.environ["OUT"], "gpu-check") if os.environ.get(
        "OUT") else str(ROOT / "gpu-check-results"))
    parser.add_argument("--out", default=default_out, help="results folder (default: $OUT/gpu-check or "
                                                          "gpu-check-results/)")
    parser.add_argument("--budget", type=budget_seconds, default=450,
                        help="seconds for all steps together (default 450)")
    parser.add_argument("--resume", metavar="DIR", help="an earlier run's results folder: engines whose tests "
                                                        "passed there are skipped and their results carried over")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    earlier = read_earlier(args.resume) if args.resume else None
    if earlier is not None and Path(earlier["_folder"]).resolve() == out:
        die("--out %s is the --resume folder: give the new run a folder of its own" % args.out)
    check = Check(out, args.budget, sys.executable, earlier)
    check.results["command"] = " ".join(["bash jetson/gpu-check.sh"] + sys.argv[1:])
    records = out / "records"
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
           "YOLO_OFFLINE": "1", WORK_ENV: str(work_dir())}
    check.say("edgekit GPU check: results in %s, budget %.0f s%s" % (
        out, args.budget, ", resuming %s" % args.resume if args.resume else ""))

    smi = nvidia_smi()
    probe = check.step("probe", [sys.executable, str(ROOT / "jetson" / "gpu_probe.py")], TIMEOUTS["probe"], env)
    try:
        found = json.loads((probe.get("output") or "{}").strip().splitlines()[-1])
    except (ValueError, IndexError):
        found = {}
    device = dict(found.get("facts", {}), **{"nvidia_smi": smi})
    missing = list(found.get("missing", ["probe: %s" % (probe.get("reason") or "did not report (see the log)")]))
    if "error" in smi:
        missing.insert(0, "NVIDIA driver: %s" % smi["error"])
    assets, asset_lines = load_assets()
    missing += asset_lines
    check.results["device"], check.results["missing"] = device, missing
    for line in missing:
        check.say("missing: %s" % line)
    check.say("assets: %s" % ("ok (%s)" % assets.root if assets and not asset_lines else "not usable"))

    blockers = [m for m in missing if not m.startswith("cuda-python")]
    if earlier is not None and not any(check.proven_earlier(key) for key in ENGINES):
        check.say("--resume %s: no engine passed its build and tests there; nothing to carry over" % args.resume)
    junits = []
    for key in ENGINES:
        proven = check.proven_earlier(key)
        if proven is not None and earlier is not None:  # --resume: this engine was proven in the earlier run
            for record in proven:
                check.carry(record)
            _carry_files(Path(earlier["_folder"]), out, key)
            junits.append(out / ("junit-%s.xml" % key))
            continue
        timeout = check.left() - TESTS_RESERVE  # most informative first: a build may use what the rest would
        argv = [sys.executable, "-m", "edgekit"] + (assets.build_args(key, work_dir()) if assets else ["build"])
        check.step("build-" + key, argv, timeout, env,
                   skip="%d piece(s) missing, listed above" % len(blockers) if blockers else None)
        junit = out / ("junit-%s.xml" % key)
        junits.append(junit)
        check.step("tests-" + key, [sys.executable, "-m", "pytest", "-m", "gpu", "-k", "test_%s_" % key]
                   + list(TEST_FILES) + ["-rs", "-q", "-p", "no:cacheprovider", "--junitxml", str(junit)],
                   TIMEOUTS["tests"],
                   dict(env, EDGEKIT_GPU_NO_BUILD="1", **{RESULTS_ENV: str(records)}))
        check.say("    tests of %s: %s" % (key, counts(junit_tests(junit)) or "none ran (see the log)"))
        gather(check, junits, records, args.budget)  # kept after every engine: a run cut short keeps what it has

    gather(check, junits, records, args.budget)
    statuses = [s["status"] for s in check.results["steps"]]
    outcomes = [t["outcome"] for t in check.results["tests"]]
    check.say("summary: steps %s; tests %s; %.0f s; wrote %s, %s and %s" % (
        counts(check.results["steps"], "status"), counts(check.results["tests"]) or "none",
        check.results["summary"]["seconds"], out / "results.json", out / "summary.md", check.log_path))
    name = commit_folder(device)
    if name and "passed" in outcomes:
        check.say("to keep it: copy %s to benchmarks/%s/ and commit it (docs/results/gpu.md renders it)" % (out, name))
    if any(s in ("failed", "timed out") for s in statuses) or any(o in ("failed", "error") for o in outcomes):
        return 1
    return 0 if "skipped" not in statuses + outcomes else 3


def commit_folder(device: Dict[str, Any]) -> Optional[str]:
    """The folder name a run is committed under (benchmarks/gpu-check-<gpu>-<driver>-trt<version>), from what
    the check found: "NVIDIA H100 80GB HBM3", driver 580.95.05, TensorRT 8.5.3.1 -> gpu-check-h100-580.95.05-trt8.5.3.1;
    None without a GPU."""
    smi = device.get("nvidia_smi") or {}
    gpu = str(device.get("gpu") or smi.get("name") or "")
    words = [w for w in re.split(r"[^a-z0-9.]+", gpu.lower()) if w and w not in ("nvidia", "geforce", "tesla")]
    if not words or not smi.get("driver"):
        return None
    model = next((i for i, w in enumerate(words) if re.search(r"\d", w)), 0)  # "rtx 4090" -> rtx-4090
    return "gpu-check-%s-%s-trt%s" % ("-".join(words[:model + 1]), smi["driver"], device.get("tensorrt") or "unknown")


def gather(check: Check, junits: List[Path], records: Path, budget: float) -> None:
    """The tests' outcomes (junit files), the records they kept and the bench rows into results.json, and
    summary.md, as they stand: called after each engine's tests, so a run stopped from outside (a lent machine's
    time running out) leaves both files with every engine it finished."""
    check.results["tests"] = [t for junit in junits for t in junit_tests(junit)]
    carried = {s["name"].split("-", 1)[1]: s["carried_from"] for s in check.results["steps"] if s.get("carried_from")}
    for test in check.results["tests"]:
        key = str(test["test"]).split("_")[1]
        if key in carried:
            test["carried_from"] = carried[key]
    for path in sorted(records.glob("*.json")) if records.is_dir() else []:
        try:
            check.results["records"][path.stem] = json.loads(path.read_text())
        except ValueError:  # a record half-written by a test killed at its timeout
            check.results["records"][path.stem] = {"error": "not JSON: %s" % path.name}
    check.results["bench"] = bench_rows(check.results["records"])
    statuses = [s["status"] for s in check.results["steps"]]
    outcomes = [t["outcome"] for t in check.results["tests"]]
    check.results["summary"] = {
        "steps": {s: statuses.count(s) for s in sorted(set(statuses))},
        "tests": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        "seconds": round(budget - check.left(), 1),
    }
    check.save()
    tmp = check.out / ".summary.md.tmp"
    tmp.write_text(summary_markdown(check.results))
    tmp.replace(check.out / "summary.md")


def _carry_files(earlier: Path, out: Path, key: str) -> None:
    """The earlier run's junit and records of engine ``key`` into this run's folder."""
    junit = earlier / ("junit-%s.xml" % key)
    if junit.is_file() and junit.resolve() != (out / junit.name).resolve():
        shutil.copy(str(junit), str(out / junit.name))
    src = earlier / "records"
    if src.is_dir() and src.resolve() != (out / "records").resolve():
        (out / "records").mkdir(parents=True, exist_ok=True)
        for path in src.glob("*-%s*.json" % key):
            shutil.copy(str(path), str(out / "records" / path.name))


if __name__ == "__main__":
    sys.exit(main())
