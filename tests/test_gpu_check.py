"""jetson/gpu-check.sh without a GPU: it runs, names every missing piece in one line each, skips the builds,
shows the GPU suite collects and skips, and still writes its results JSON and log."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.gpu_assets import load_assets

ROOT = Path(__file__).resolve().parents[1]


def make_assets(folder: Path) -> Path:
    import hashlib

    (folder / "val").mkdir(parents=True)
    (folder / "calib").mkdir()
    files = {"m.onnx": b"onnx", "m-int8-qdq.onnx": b"qdq", "val/a.jpg": b"jpg", "calib/b.jpg": b"jpg"}
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    doc = {"model": "m.onnx", "qdq": "m-int8-qdq.onnx", "val": "val", "calib": "calib",
           "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}}
    (folder / "assets.json").write_text(json.dumps(doc))
    return folder


def test_assets_are_found_and_each_missing_piece_is_one_line(tmp_path):
    assets, lines = load_assets(make_assets(tmp_path / "a"))
    assert lines == [] and assets.onnx_for("qdq").name == "m-int8-qdq.onnx"
    args = assets.build_args("int8", tmp_path / "work")
    assert args[:3] == ["build", str(assets.model), "--int8"] and "--if-changed" in args and "--fast-build" in args
    (tmp_path / "a" / "val" / "a.jpg").unlink()
    (tmp_path / "a" / "m.onnx").write_bytes(b"other")
    _, lines = load_assets(tmp_path / "a")
    assert len(lines) == 2 and "missing" in lines[0] and "val/a.jpg" in lines[0] and "changed" in lines[1]
    assert "make gpu-assets" in load_assets(tmp_path / "nowhere")[1][0]
    (tmp_path / "a" / "assets.json").write_text("{")
    assert "unreadable" in load_assets(tmp_path / "a")[1][0]


def test_gpu_check_without_a_gpu_names_what_is_missing_and_writes_its_results(tmp_path):
    out = tmp_path / "results"
    env = dict(os.environ, EDGEKIT_GPU_ASSETS=str(tmp_path / "no-assets"), EDGEKIT_GPU_WORK=str(tmp_path / "work"),
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("EDGEKIT_GPU_RESULTS", None)
    proc = subprocess.run(["bash", str(ROOT / "jetson" / "gpu-check.sh"), "--out", str(out), "--budget", "200"],
                          env=dict(env, EDGEKIT_PYTHON=sys.executable), capture_output=True, text=True, timeout=240)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 3, proc.stdout + proc.stderr  # nothing failed, but the builds could not run
    assert any(line.startswith("missing: no GPU assets at") for line in lines), proc.stdout
    if shutil.which("nvidia-smi") is None:
        assert any(line.startswith("missing: NVIDIA driver") for line in lines), proc.stdout
    assert sum(line.startswith("[skip] build-") for line in lines) == 3
    assert any(line.startswith("[ok] tests") for line in lines) and any("SKIPPED" in line for line in lines)
    doc = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in doc["steps"]] == ["probe", "build-fp16", "build-int8", "build-qdq", "tests"]
    assert doc["device"]["python"] and doc["tests"] and all(t["outcome"] == "skipped" for t in doc["tests"])
    assert all(isinstance(t["seconds"], float) for t in doc["tests"]) and doc["summary"]["tests"] == {"skipped": 9}
    assert "===== tests" in (out / "gpu-check.log").read_text()


def test_a_step_that_hangs_is_killed_at_its_timeout_and_the_next_one_runs(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", str(ROOT / "jetson" / "gpu_check.py"))
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    check = gpu_check.Check(tmp_path, budget=60, python=sys.executable)
    check.min_step = 1
    hung = check.step("hang", [sys.executable, "-c", "import time; print('building', flush=True); time.sleep(60)"], 2)
    failed = check.step("fail", [sys.executable, "-c", "raise SystemExit('error: TensorRT could not build m')"], 10)
    done = check.step("ok", [sys.executable, "-c", "print('fine')"], 10)
    assert hung["status"] == "timed out" and hung["seconds"] < 10 and hung["last_line"] == "building"
    assert failed["status"] == "failed" and "could not build" in failed["last_line"] and done["status"] == "ok"
    assert check.step("late", ["true"], 10, skip="out of pieces")["status"] == "skipped"
    doc = json.loads((tmp_path / "results.json").read_text())
    assert [s["status"] for s in doc["steps"]] == ["timed out", "failed", "ok", "skipped"]
