"""jetson/gpu-check.sh without a GPU: it runs, names every missing piece in one line each, skips the builds,
shows the GPU suite collects and skips, and still writes its results JSON and log."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gpu_assets import ENGINES, PRECISION, load_assets
from tests.helpers import jetson_script

gpu_check = jetson_script("gpu_check")

ROOT = Path(__file__).resolve().parents[1]


def make_assets(folder: Path) -> Path:
    import hashlib

    (folder / "val").mkdir(parents=True)
    (folder / "calib").mkdir()
    files = {"m.onnx": b"onnx", "m-int8-qdq.onnx": b"qdq", "m-lb320x240-nms.onnx": b"nms", "y26-e2e.onnx": b"e2e",
             "val/a.jpg": b"jpg", "calib/b.jpg": b"jpg"}
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    doc = {"model": "m.onnx", "qdq": "m-int8-qdq.onnx", "nms": "m-lb320x240-nms.onnx", "e2e": "y26-e2e.onnx",
           "val": "val", "calib": "calib",
           "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}}
    (folder / "assets.json").write_text(json.dumps(doc))
    return folder


def test_assets_are_found_and_each_missing_piece_is_one_line(tmp_path):
    assets, lines = load_assets(make_assets(tmp_path / "a"))
    assert lines == [] and assets.onnx_for("qdq").name == "m-int8-qdq.onnx"
    assert assets.onnx_for("nms").name == "m-lb320x240-nms.onnx" and assets.onnx_for("fp16") == assets.model
    args = assets.build_args("int8", tmp_path / "work")
    assert args[:3] == ["build", str(assets.model), "--int8"] and "--if-changed" in args and "--fast-build" in args
    assert args[args.index("--calib-batches") + 1] == "8"  # few batches: the INT8 build is the slowest
    for key in ENGINES:  # no shared timing cache (TensorRT 8.5/Hopper failed to reload one)
        assert "--timing-cache" not in assets.build_args(key, tmp_path / "work")
    assert assets.build_args("nms", tmp_path / "work")[1:3] == [str(assets.nms), "--fp16"]
    assert assets.build_args("e2e", tmp_path / "work")[1:3] == [str(assets.e2e), "--fp16"]
    assert assets.e2e.name == "y26-e2e.onnx" and ENGINES[-1] == "e2e" and PRECISION["e2e"] == "fp16"
    (tmp_path / "a" / "val" / "a.jpg").unlink()
    (tmp_path / "a" / "m.onnx").write_bytes(b"other")
    _, lines = load_assets(tmp_path / "a")
    assert len(lines) == 2 and "missing" in lines[0] and "val/a.jpg" in lines[0] and "changed" in lines[1]
    assert "make gpu-assets" in load_assets(tmp_path / "nowhere")[1][0]
    (tmp_path / "a" / "assets.json").write_text("{")
    assert "unreadable" in load_assets(tmp_path / "a")[1][0]
    (tmp_path / "a" / "assets.json").write_text(json.dumps({"model": "m.onnx", "qdq": "q.onnx", "val": "v",
                                                            "calib": "c"}))
    assert "no 'nms' entry" in load_assets(tmp_path / "a")[1][0]  # assets from before the NMS model
    doc = json.loads((tmp_path / "a" / "assets.json").read_text())
    (tmp_path / "a" / "assets.json").write_text(json.dumps(dict(doc, nms="m-lb320x240-nms.onnx")))
    (line,) = load_assets(tmp_path / "a")[1]  # assets from before the YOLO26n end-to-end model
    assert "no 'e2e' entry (made by an older make gpu-assets)" in line and "make gpu-assets" in line


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
    assert sum(line.startswith("[skip] build-") for line in lines) == 5
    assert any(line.startswith("[ok] tests-fp16") for line in lines) and any("SKIPPED" in line for line in lines)
    doc = json.loads((out / "results.json").read_text())
    # most informative first, each engine's tests right after its build
    assert [s["name"] for s in doc["steps"]] == ["probe", "build-fp16", "tests-fp16", "build-qdq", "tests-qdq",
                                                 "build-nms", "tests-nms", "build-int8", "tests-int8",
                                                 "build-e2e", "tests-e2e"]
    assert doc["device"]["python"] and doc["tests"] and all(t["outcome"] == "skipped" for t in doc["tests"])
    # every GPU test of the check's files (TensorRT's own and the accuracy gate's), each in its engine's step
    files = ("test_tensorrt_gpu.py", "test_gate.py")
    n_tests = sum(len(re.findall(r"^def test_(?:%s)_" % "|".join(ENGINES), (ROOT / "tests" / name).read_text(), re.M))
                  for name in files)
    assert "test_fp16_gate_measures_the_engine_on_tensorrt" in (ROOT / "tests" / "test_gate.py").read_text()
    assert all(isinstance(t["seconds"], float) for t in doc["tests"])
    assert doc["summary"]["tests"] == {"skipped": n_tests}
    assert all(isinstance(s["seconds"], float) for s in doc["steps"])
    names = {t["test"] for t in doc["tests"]}
    assert len(names) == n_tests and all(n.split("_")[1] in ENGINES for n in names)
    assert "===== tests-e2e" in (out / "gpu-check.log").read_text()
    assert {n.split("_")[1] for n in names} == set(ENGINES)  # every engine has tests, the end-to-end one too
    summary = (out / "summary.md").read_text()
    assert "Not proven in this run:" in summary and "- FP16: build-fp16 skipped" in summary
    assert "- YOLO26 end-to-end (TopK head), FP16: build-e2e skipped" in summary
    # a step whose tests all skipped says so under its [ok]; the last line is counts, not Python dicts
    assert "    tests of fp16: %d skipped" % len([n for n in names if n.startswith("test_fp16_")]) in lines
    (last,) = [line for line in lines if line.startswith("summary: ")]
    assert last.startswith("summary: steps 6 ok, 5 skipped; tests %d skipped; " % n_tests) and "{" not in last
    assert "Tests: %d skipped." % n_tests in summary and "Nothing was measured in this run (`bash jetson/" \
        "gpu-check.sh --out %s --budget 200`)." % out in summary
    assert "Trained YOLOv8n" not in summary and "to keep it:" not in proc.stdout  # nothing to commit


def test_a_step_that_hangs_is_killed_at_its_timeout_and_the_next_one_runs(tmp_path):
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


def run_check(tmp_path, *args, **env):
    base = dict(os.environ, EDGEKIT_GPU_ASSETS=str(tmp_path / "no-assets"), EDGEKIT_GPU_WORK=str(tmp_path / "work"),
                EDGEKIT_KIT=str(tmp_path / "no-kit"),
                PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    for name in ("EDGEKIT_GPU_RESULTS", "EDGEKIT_PYTHON", "PY39"):
        base.pop(name, None)
    base.update(env)
    return subprocess.run(["bash", str(ROOT / "jetson" / "gpu-check.sh")] + [str(a) for a in args], env=base,
                          capture_output=True, text=True, timeout=240)


def test_a_python_that_cannot_start_is_refused_in_one_line(tmp_path):
    """On the GPU machine the system python3 dies under the kit's PYTHONHOME: say so, never a Python traceback."""
    proc = run_check(tmp_path, "--out", tmp_path / "r", EDGEKIT_PYTHON=str(tmp_path / "nowhere" / "python3"))
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("gpu-check: EDGEKIT_PYTHON=") and "cannot start: not found" in line
    assert "line " not in line and "PYTHONHOME" not in line  # no bash line number, no unrelated PYTHONHOME
    for program, why in (("true", "not a Python"), ("false", "exit status 1")):  # runs, but is no Python
        proc = run_check(tmp_path, "--out", tmp_path / "r", EDGEKIT_PYTHON=shutil.which(program))
        assert proc.returncode == 2 and proc.stdout == "" and why in proc.stderr, proc.stderr
    # no EDGEKIT_PYTHON: $PY39 first (the kit's env.sh exports it), then python3; here both die at start-up
    proc = run_check(tmp_path, "--out", tmp_path / "r", PY39=str(tmp_path / "nowhere" / "python3.9"),
                     PYTHONHOME=str(tmp_path / "no-such-home"), PATH=os.path.dirname(sys.executable) + ":/usr/bin:/bin")
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    (line,) = proc.stderr.splitlines()
    assert line.startswith("gpu-check: no Python 3.8+ starts here") and "python3.9" in line and "python3:" in line
    assert "PYTHONHOME=%s" % (tmp_path / "no-such-home") in line and not (tmp_path / "r").exists()


def test_the_kits_python_is_found_by_itself(tmp_path):
    """No EDGEKIT_PYTHON, no PY39: the kit unpacked at $EDGEKIT_KIT is sourced and its Python used."""
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "env.sh").write_text("export PY39=%s EDGEKIT_FOUND_KIT=yes\n" % sys.executable)
    proc = run_check(tmp_path, "--out", tmp_path / "r", "--budget", 100, EDGEKIT_KIT=str(kit))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "r" / "results.json").read_text())
    assert doc["python_executable"] == sys.executable


def test_resume_skips_engines_proven_earlier_and_carries_their_results(tmp_path):
    """A later GPU session continues: engines whose tests passed in the earlier run's results are not built or
    tested again, and their records come along into the new results and summary."""
    earlier = tmp_path / "earlier"
    (earlier / "records").mkdir(parents=True)
    steps = [{"name": "probe", "status": "ok", "seconds": 0.3},
             {"name": "build-fp16", "status": "ok", "seconds": 95.0},
             {"name": "tests-fp16", "status": "ok", "seconds": 30.0},
             {"name": "build-qdq", "status": "timed out", "seconds": 200.0}]
    tests = [{"test": "test_fp16_engine_matches_onnxruntime", "outcome": "passed", "seconds": 3.5},
             # skipped there for a dependency that machine lacked: the engine still counts as proven
             {"test": "test_fp16_camera_tracks_and_counts_on_the_engine", "outcome": "skipped", "seconds": 0.0,
              "message": "supervision is not installed here (edgekit[track])"},
             {"test": "test_qdq_bench_and_int8_layers", "outcome": "skipped", "seconds": 0.0}]
    (earlier / "results.json").write_text(json.dumps({"kind": "edgekit-gpu-check", "started_at": "2026-12-01T10:00:00Z",
                                                      "steps": steps, "tests": tests}))
    bench = {"results": [{"name": "m-fp16", "backend": "tensorrt", "precision": "fp16", "fps": 2500.0,
                          "config": {"cuda_graph": False},
                          "stages": {k: {"median": 0.1, "p99": 0.2} for k in ("h2d", "compute", "d2h", "e2e")}}]}
    (earlier / "records" / "bench-fp16.json").write_text(json.dumps(bench))
    (earlier / "records" / "manifest-fp16.json").write_text(json.dumps({"build_seconds": {"total": 93.5}}))
    (earlier / "records" / "bench-qdq.json").write_text("{}")  # not passed there: not carried
    (earlier / "junit-fp16.xml").write_text(
        '<testsuite><testcase name="test_fp16_engine_matches_onnxruntime" time="3.5"/><testcase name='
        '"test_fp16_camera_tracks_and_counts_on_the_engine" time="0"><skipped message="supervision is not installed '
        'here (edgekit[track])"/></testcase></testsuite>')
    out = tmp_path / "now"
    proc = run_check(tmp_path, "--out", out, "--budget", 100, "--resume", earlier, EDGEKIT_PYTHON=sys.executable)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "[ok] build-fp16: passed in the earlier run of 2026-12-01T10:00:00Z" in proc.stdout
    doc = json.loads((out / "results.json").read_text())
    by_name = {s["name"]: s for s in doc["steps"]}
    assert by_name["build-fp16"]["carried_from"] == "2026-12-01T10:00:00Z" and by_name["build-fp16"]["seconds"] == 95
    assert by_name["build-qdq"]["status"] == "skipped" and "carried_from" not in by_name["build-qdq"]
    assert set(doc["records"]) == {"bench-fp16", "manifest-fp16"} and doc["resumed_from"] == "2026-12-01T10:00:00Z"
    assert {"test": "test_fp16_engine_matches_onnxruntime", "outcome": "passed", "seconds": 3.5, "message": "",
            "carried_from": "2026-12-01T10:00:00Z"} in doc["tests"]
    row = [ln for ln in (out / "summary.md").read_text().splitlines() if ln.startswith("| FP16 |")]
    assert row == ["| FP16 | 94 | 0.100 | 0.100 | 0.100 | 0.100 | 0.200 | 2500.0 | - | - |"]
    assert "carried over from it (`--resume`)" in (out / "summary.md").read_text()
    assert ("- test_fp16_camera_tracks_and_counts_on_the_engine skipped: supervision is not installed here "
            "(edgekit[track])") in (out / "summary.md").read_text()  # carried, and still listed as not proven
    assert "Tests: 1 passed, " in (out / "summary.md").read_text()  # and this run's own, skipped without a GPU
    # resuming from that run again: FP16 still counts as proven where it was, and nothing else does
    again = tmp_path / "again"
    proc = run_check(tmp_path, "--out", again, "--budget", 100, "--resume", out, EDGEKIT_PYTHON=sys.executable)
    assert proc.returncode == 3 and proc.stdout.count("carried over") == 2, proc.stdout
    doc = json.loads((again / "results.json").read_text())
    assert {s["name"]: s.get("carried_from") for s in doc["steps"]}["tests-fp16"] == "2026-12-01T10:00:00Z"
    # a run where the tests were skipped (no GPU) proved nothing: resuming from it carries nothing over
    skipped_run = tmp_path / "skipped"
    assert run_check(tmp_path, "--out", skipped_run, "--budget", 100, EDGEKIT_PYTHON=sys.executable).returncode == 3
    proc = run_check(tmp_path, "--out", tmp_path / "third", "--budget", 100, "--resume", skipped_run,
                     EDGEKIT_PYTHON=sys.executable)
    assert proc.returncode == 3 and "carried over" not in proc.stdout, proc.stdout
    assert "nothing to carry over" in proc.stdout
    assert "carried over from it" not in (tmp_path / "third" / "summary.md").read_text()


@pytest.mark.parametrize("args, fragment", [
    (["--resume", "{tmp}/nothing-here"], "--resume"),
    (["--resume", "{tmp}/list.json"], "not a GPU check's results.json"),
    (["--budget", "abc"], "'abc' is not a number of seconds"),
    (["--budget", "-5"], "at least 30 seconds"),
    (["--budget", "5"], "at least 30 seconds"),  # not even the probe would run
    (["--budget", "nan"], "at least 30 seconds"),
    (["--resume", "{tmp}/damaged.json"], "its 'steps' is not a list of records"),
    (["--resume", "{tmp}/run", "--out", "{tmp}/run"], "is the --resume folder"),
    (["--out", "{tmp}/list.json"], "cannot write the results there"),
    (["--no-such-flag"], "unrecognized arguments"),
])
def test_bad_options_are_one_line(tmp_path, args, fragment):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "damaged.json").write_text('{"kind": "edgekit-gpu-check", "steps": "x"}')
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text('{"kind": "edgekit-gpu-check", "steps": [], "tests": []}')
    proc = run_check(tmp_path, *[a.format(tmp=tmp_path) for a in args], EDGEKIT_PYTHON=sys.executable)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    (line,) = proc.stderr.splitlines()
    assert line.startswith("gpu-check: ") and fragment in line


def test_gpu_report_reads_only_a_checks_results(tmp_path):
    report = [sys.executable, str(ROOT / "jetson" / "gpu_report.py")]
    (tmp_path / "other.json").write_text('{"a": 1}')
    (tmp_path / "list.json").write_text("[1]")
    for name in ("other.json", "list.json", "missing.json"):
        proc = subprocess.run(report + [str(tmp_path / name)], capture_output=True, text=True)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_summary_reads_the_camera_power_and_gate_records_as_edgekit_writes_them(synthetic_model, tmp_path,
                                                                               monkeypatch):
    """The records the GPU tests keep beside the table (camera-KEY, power-fp16, gate-fp16), made here by the same
    commands on ONNX Runtime (NVML faked for the power): the summary finds their figures, so the one GPU run that
    measures them does not lose them to a renamed key."""
    from edgekit.box import Box
    from edgekit.eval import gate
    from edgekit.power import sampler
    summary_markdown = jetson_script("gpu_report").summary_markdown
    from tests.helpers import invoke
    from tests.test_gate import _pseudo_labelled
    from tests.test_power import fake_nvml
    from tests.test_tensorrt_gpu import camera_record

    onnx = synthetic_model[2]
    out = tmp_path / "camera.json"
    result = invoke(["camera", "synthetic://?width=320&height=240&fps=0", "--model", onnx, "--headless",
                     "--frames", 20, "--json", out])
    assert result.exit_code == 0, result.output
    camera = camera_record(json.loads(out.read_text())["results"][0])
    monkeypatch.setattr(sampler, "Box", lambda: Box(tmp_path / "pc"))  # no Jetson rails: NVML is the source
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([250_000, 310_000, 280_000] * 20, reasons=0))
    result = invoke(["bench", onnx, "--iterations", 20, "--warmup", 2, "--power", "--power-interval", 10,
                     "--json", tmp_path / "power.json"])
    assert result.exit_code == 0, result.output
    power = json.loads((tmp_path / "power.json").read_text())["results"][0]["power"]
    frames = sorted((Path(synthetic_model[0]).parent / "images" / "val").glob("*.jpg"))[:8]
    (tmp_path / "frames").mkdir()
    for path in frames:
        shutil.copy(str(path), str(tmp_path / "frames" / path.name))
    data = _pseudo_labelled(onnx, str(tmp_path / "frames"), tmp_path / "pseudo", limit=8)
    record = gate.run_gate(Path(onnx), onnx, gate.gate_request(str(data), max_drop=2.0), label="m",
                           backend="onnxruntime")
    results = {"kind": "edgekit-gpu-check", "records": {"camera-nms": camera, "power-fp16": power,
                                                        "gate-fp16": record}}
    lines = summary_markdown(results).splitlines()
    (cam,) = [ln for ln in lines if ln.startswith("- Camera loop on the FP16, uint8 input")]
    assert "synthetic://320x240@0" in cam and "20 frames" in cam and "%s FPS" % camera["fps"] in cam
    assert "loop/engine %s (target >= 0.95)" % camera["loop_vs_engine"] in cam
    assert "limited by %s." % camera["bottleneck"]["stage"] in cam
    (pw,) = [ln for ln in lines if ln.startswith("- Power while the FP16 engine ran")]
    assert "NVIDIA H200" in pw and "mean %s W" % power["total"]["mean_w"] in pw
    assert "%s mJ per frame (NVML energy counter)" % power["energy_per_frame_mj"] in pw
    (gt,) = [ln for ln in lines if ln.startswith("- Accuracy gate on the FP16 engine")]
    assert "mAP50-95 %s on onnxruntime vs %s on onnxruntime, passed." % (
        record["candidate"]["map50_95"], record["reference"]["map50_95"]) in gt


def test_results_and_summary_are_kept_after_every_engine(tmp_path):
    """A lent machine's time may run out in the middle of the check: what the engines before that proved is
    already in results.json and summary.md (gathered after each engine's tests), so a later --resume builds on it."""
    out = tmp_path / "run"
    check = gpu_check.Check(out, budget=450, python=sys.executable)
    for name in ("probe", "build-fp16", "tests-fp16"):
        check._keep({"name": name, "status": "ok", "seconds": 1.0})
    (out / "junit-fp16.xml").write_text('<testsuite><testcase name="test_fp16_engine_matches_onnxruntime" '
                                        'time="2.5"/></testsuite>')
    records = out / "records"
    records.mkdir()
    bench = {"results": [{"name": "m-fp16", "backend": "tensorrt", "precision": "fp16", "fps": 2500.04,
                          "stages": {k: {"median": 0.1, "p99": 0.2} for k in ("h2d", "compute", "d2h", "e2e")}}]}
    (records / "bench-fp16.json").write_text(json.dumps(bench))
    (records / "agreement-qdq.json").write_text('{"detections": {"a": 3')  # a test killed while writing
    gpu_check.gather(check, [out / "junit-fp16.xml", out / "junit-qdq.xml"], records, 450)
    # the build of the next engine starts, and the machine goes away here: no final summary
    doc = json.loads((out / "results.json").read_text())
    assert doc["tests"] == [{"test": "test_fp16_engine_matches_onnxruntime", "outcome": "passed", "seconds": 2.5,
                             "message": ""}]
    assert doc["bench"][0]["fps"] == 2500.04 and doc["records"]["agreement-qdq"] == {"error": "not JSON: "
                                                                                               "agreement-qdq.json"}
    assert "| FP16 | - | 0.100 | 0.100 | 0.100 | 0.100 | 0.200 | 2500.0 | - | - |" in (out / "summary.md").read_text()
    assert not list(out.glob(".*.tmp"))
    proc = run_check(tmp_path, "--out", tmp_path / "next", "--budget", 100, "--resume", out,
                     EDGEKIT_PYTHON=sys.executable)
    assert "[ok] build-fp16: passed in the earlier run" in proc.stdout, proc.stdout


def test_the_folder_to_commit_is_named_from_the_gpu_driver_and_tensorrt():

    def name(gpu, driver="580.95.05"):
        return gpu_check.commit_folder({"gpu": gpu, "tensorrt": "8.5.3.1", "nvidia_smi": {"driver": driver}})

    assert name("NVIDIA H100 80GB HBM3") == "gpu-check-h100-580.95.05-trt8.5.3.1"
    assert name("NVIDIA GeForce RTX 4090") == "gpu-check-rtx-4090-580.95.05-trt8.5.3.1"
    assert name("NVIDIA A100-SXM4-40GB") == "gpu-check-a100-580.95.05-trt8.5.3.1"
    assert name("NVIDIA H100 80GB HBM3", driver=None) is None  # no driver seen: no name to suggest
    assert gpu_check.commit_folder({"nvidia_smi": {"error": "nvidia-smi not found"}}) is None


def test_gpu_report_help_is_usage_not_a_file_name():
    report = [sys.executable, str(ROOT / "jetson" / "gpu_report.py")]
    proc = subprocess.run(report + ["--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python jetson/gpu_report.py") and not proc.stderr
    proc = subprocess.run(report + ["--bogus"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("usage:") and "cannot read" not in proc.stderr
