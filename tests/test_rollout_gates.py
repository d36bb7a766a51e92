"""edgekit models gate / health: the checks of a roll-out, on real models, real processes and a real store.

Speed: real ONNX Runtime runs in interleaved rounds (a YOLOv8n at 320 is far slower than the synthetic one at
160). Accuracy: the trained synthetic YOLOv8n on the synthetic val split; a TensorRT run is a stand-in engine (an
ONNX written under the engine's name, as tests/test_gate.py does) opened on ONNX Runtime, so the comparison with
its own ONNX is real and a copy with noisy weights really loses accuracy. Health: a real ``edgekit serve`` and a
real ``edgekit camera --serve`` on loopback ports, each started on HOME/store/current.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit.bench import core as bench_core
from edgekit.eval import gate as eval_gate
from edgekit.rollout import health, speed
from edgekit.store import Store
from tests.helpers import assert_user_error, invoke, noisy_copy

ROOT = Path(__file__).resolve().parents[1]
DEVICE = {"tensorrt": "10.3.0", "sm": "8.7", "gpu": "Orin (stand-in)"}  # keys TensorRT runs without TensorRT
QUICK = ["--iterations", "6", "--rounds", "3", "--warmup", "2", "--threads", "1"]


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    """The reference mAP is cached under EDGEKIT_CACHE: this module's folder, never the user's."""
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "edgekit-cache"))


@pytest.fixture(scope="module")
def models(synthetic_model, yolov8n_onnx, tmp_path_factory):
    """(fp32 ONNX, its copy with 30% noise on the conv weights, a slower YOLOv8n at 320, the eval folder). The eval
    folder's data.yaml names a ``path:`` that is not on this machine, as one made on a workstation would."""
    data, _, fp32 = synthetic_model
    folder = tmp_path_factory.mktemp("gate-models")
    broken = noisy_copy(fp32, folder / "noisy.onnx")
    ev = folder / "eval"
    for kind in ("images", "labels"):
        shutil.copytree(str(data.parent / kind / "val"), str(ev / kind / "val"))
    (ev / "data.yaml").write_text("path: /workstation/datasets/synthetic\nval: images/val\n"
                                  "names: {0: circle, 1: square, 2: triangle}\n")
    return fp32, broken, yolov8n_onnx, ev


def stand_in(content):
    """A TensorRT build that writes ``content`` (an ONNX, or any bytes) as the engine."""
    def build(onnx_path, folder, precision, dla_core, options):
        target = folder / "model.engine"
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            shutil.copy(str(content), str(target))
        return target
    return build


@pytest.fixture
def engines_on_ort(monkeypatch):
    """Stand-in engines (ONNX bytes) run on ONNX Runtime, one thread, for speed and accuracy alike."""
    from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner

    monkeypatch.setattr(speed, "open_model", lambda path, plan: OnnxRuntimeRunner(path, threads=1))
    monkeypatch.setattr(eval_gate, "open_model", lambda path, backend, gpu=0: OnnxRuntimeRunner(path, threads=1))


def ort_run(store, onnx_path, eval_dir=None, activate=False):
    entry, _ = store.add(onnx_path, eval_dir=eval_dir)
    run, _ = store.ensure_run(entry["sha256"], "onnxruntime")
    if activate:
        store.activate(run["sha256"], run["key"])
    return run


def trt_run(store, onnx_path, content, eval_dir=None, precision="int8"):
    entry, _ = store.add(onnx_path, eval_dir=eval_dir)
    run, _ = store.ensure_run(entry["sha256"], "tensorrt", precision, build=stand_in(content), device=DEVICE)
    return run


def run_cli(*args, timeout=180):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "edgekit"] + [str(a) for a in args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def errors(text):
    return [line for line in text.splitlines() if line.startswith("error:")]


def record_of(run):
    return json.loads((Path(run["path"]) / "gates.json").read_text())


# --- speed --------------------------------------------------------------------------------------------------------
def test_a_slower_candidate_fails_the_speed_gate_beside_current_and_the_record_is_kept(models, tmp_path):
    fp32, _, slow, _ = models
    store = Store(tmp_path)
    now = ort_run(store, fp32, activate=True)
    cand = ort_run(store, slow)
    done = run_cli("models", "gate", cand["sha256"][:12], "--home", tmp_path, *QUICK)
    assert done.returncode == 1, done.stderr
    (error,) = errors(done.stderr)
    assert "gate speed failed for %s/onnxruntime" % cand["sha256"][:12] in error
    assert "below --min-speed-ratio 0.9" in error and "current is unchanged" in error and "gates.json" in error
    out = done.stdout.splitlines()
    assert out[0].startswith("speed: ") and out[0].endswith("FAILED") and len(out) == 2
    assert out[1] == "accuracy: skipped: the run is the ONNX itself (nothing to compare it with)"
    record = record_of(cand)
    assert record["passed"] is False and record["failed"] == "speed"
    assert record["current"] == {"sha256": now["sha256"], "key": "onnxruntime"}
    s = record["gates"]["speed"]
    assert s["passed"] is False and s["ratio"] < 0.9 and s["min_ratio"] == 0.9 and s["current_fps"] > s["fps"] > 0
    assert len(s["rounds_fps"]) == len(s["current_rounds_fps"]) == len(s["rounds_ratio"]) == 3
    assert s["ratio"] == sorted(s["rounds_ratio"])[1]  # the median of the paired rounds
    assert s["candidate"]["iterations"] == 6 and s["candidate"]["ort_threads"]["threads"] == 1
    assert "%.1f FPS is %.2fx" % (s["fps"], s["ratio"]) in error  # the numbers said are the numbers kept
    assert record["gates"]["accuracy"]["passed"] is None
    assert store.current()["sha256"] == now["sha256"]


@pytest.mark.parametrize("args, code, fragment", [
    (["--min-speed-ratio", "0.4"], 0, None),  # same network, noisy weights: the same speed
    (["--min-fps", "100000"], 1, "below --min-fps 100000"),
])
def test_speed_floors(models, tmp_path, args, code, fragment):
    fp32, noisy, _, _ = models
    store = Store(tmp_path)
    ort_run(store, fp32, activate=True)
    cand = ort_run(store, noisy)
    result = invoke(["models", "gate", cand["sha256"][:12], "--home", tmp_path] + QUICK + args)
    assert result.exit_code == code, result.output
    record = record_of(cand)
    assert record["passed"] is (code == 0) and record["gates"]["speed"]["ratio"] > 0.4
    if fragment:
        assert_user_error(result, "gate speed failed", fragment)
    else:
        assert "gates passed: %s/onnxruntime" % cand["sha256"][:12] in result.output


def test_without_a_current_model_only_the_fps_floor_counts(models, tmp_path):
    store = Store(tmp_path)
    cand = ort_run(store, models[0])
    result = invoke(["models", "gate", cand["sha256"][:12], "--home", tmp_path, "--json"] + QUICK)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record == record_of(cand) and record["current"] is None
    assert record["gates"]["speed"]["note"] == "no current model" and record["gates"]["speed"]["ratio"] is None


def test_rounds_interleave_on_the_same_frames(models, monkeypatch):
    seen = []

    def bench_model(runner, frames, config, progress=None, power=None):
        seen.append((runner.path.name, id(frames), config.iterations, config.warmup))
        return {"batch": 1, "fps": 100.0, "iterations": config.iterations,
                "stages": {k: {"mean": 10.0, "count": config.iterations} for k in ("e2e", "inference")},
                **{k: None for k in ("model", "backend", "device", "precision", "sha256", "input_shape", "source",
                                     "synthetic_hw")}}

    monkeypatch.setattr(bench_core, "bench_model", bench_model)
    results = speed.measure([str(models[0]), str(models[1])], speed.SpeedConfig(iterations=10, rounds=4, threads=1))
    assert [name for name, *_ in seen] == ["synthetic-yolov8n-160.onnx", "noisy.onnx"] * 1 + [
        "noisy.onnx", "synthetic-yolov8n-160.onnx", "synthetic-yolov8n-160.onnx", "noisy.onnx",
        "noisy.onnx", "synthetic-yolov8n-160.onnx"]
    assert len({frames for _, frames, _, _ in seen}) == 1  # the same frames for both, every round
    assert [n for _, _, n, _ in seen[::2]] == [3, 3, 2, 2] and [w for *_, w in seen[:2]] == [10, 10]
    assert results[0]["iterations"] == results[1]["iterations"] == 10 and results[0]["rounds_fps"] == [100.0] * 4


# --- accuracy -----------------------------------------------------------------------------------------------------
def test_an_engine_that_computes_what_its_onnx_does_passes_the_accuracy_gate(models, tmp_path, engines_on_ort):
    fp32, _, _, ev = models
    store = Store(tmp_path, device=DEVICE)
    ort_run(store, fp32, eval_dir=ev, activate=True)  # the box runs the ONNX; its engine comes next
    cand = trt_run(store, fp32, fp32)
    result = invoke(["models", "gate", cand["sha256"][:12], "--key", cand["key"], "--home", tmp_path,
                     "--min-speed-ratio", "0.4"] + QUICK)
    assert result.exit_code == 0, result.output
    acc = record_of(cand)["gates"]["accuracy"]
    assert acc["passed"] is True and acc["drop"] == 0.0 and acc["map"] == acc["onnx_map"] > 0.2
    assert acc["images"] == 48 and acc["split"] == "val" and acc["max_drop"] == 1.0
    assert acc["detail"]["candidate"]["model"] == cand["model_path"]
    assert "not on this box" in acc["detail"]["note"]  # the workstation's path: read from the shipped folder
    line = next(x for x in result.output.splitlines() if x.startswith("accuracy:"))
    assert "mAP50-95 %.3f vs %.3f" % (acc["map"], acc["onnx_map"]) in line and line.endswith("passed")


def test_an_engine_that_loses_accuracy_is_refused_with_both_numbers(models, tmp_path, engines_on_ort):
    fp32, noisy, _, ev = models
    store = Store(tmp_path, device=DEVICE)
    now = ort_run(store, fp32, eval_dir=ev, activate=True)
    cand = trt_run(store, fp32, noisy)
    result = invoke(["models", "gate", cand["sha256"][:12], "--key", cand["key"], "--home", tmp_path,
                     "--min-speed-ratio", "0.4", "--max-map-drop", "2"] + QUICK)
    assert result.exit_code == 1
    assert_user_error(result, "gate accuracy failed for %s/%s" % (cand["sha256"][:12], cand["key"]),
                      "more than --max-map-drop 2", "current is unchanged")
    record = record_of(cand)
    acc = record["gates"]["accuracy"]
    assert record["failed"] == "accuracy" and record["gates"]["speed"]["passed"] is True
    assert acc["passed"] is False and acc["map"] < 0.2 < acc["onnx_map"] and acc["drop"] > 2
    assert "mAP50-95 %.3f vs %.3f" % (acc["map"], acc["onnx_map"]) in errors(result.output)[0]
    assert store.current()["sha256"] == now["sha256"]


def test_an_engine_without_an_eval_set_skips_accuracy(models, tmp_path, engines_on_ort):
    store = Store(tmp_path, device=DEVICE)
    cand = trt_run(store, models[0], models[1])
    result = invoke(["models", "gate", cand["sha256"][:12], "--home", tmp_path] + QUICK)
    assert result.exit_code == 0, result.output
    assert record_of(cand)["gates"]["accuracy"]["skipped"].startswith("the model shipped no evaluation set")


# --- runs that cannot run here ------------------------------------------------------------------------------------
def test_a_candidate_that_cannot_run_fails_its_gates_with_the_reason(models, tmp_path):
    fp32, _, _, ev = models
    store = Store(tmp_path, device=DEVICE)
    ort_run(store, fp32, eval_dir=ev, activate=True)
    cand = trt_run(store, fp32, b"not a TensorRT engine")
    result = invoke(["models", "gate", cand["sha256"][:12], "--key", cand["key"], "--home", tmp_path] + QUICK)
    assert result.exit_code == 1
    assert_user_error(result, "gate speed failed", "model.engine cannot run here")
    record = record_of(cand)
    assert record["failed"] == "speed" and "cannot run here" in record["gates"]["speed"]["error"]
    assert record["gates"]["accuracy"]["passed"] is False  # measured too: every gate has its line


def test_a_current_run_that_cannot_run_here_leaves_no_ratio_to_check(models, tmp_path):
    fp32, noisy, _, _ = models
    store = Store(tmp_path, device=DEVICE)
    broken = trt_run(store, fp32, b"not a TensorRT engine")
    store.activate(broken["sha256"], broken["key"])
    cand = ort_run(store, noisy)
    result = invoke(["models", "gate", cand["sha256"][:12], "--home", tmp_path] + QUICK)
    assert result.exit_code == 0, result.output
    s = record_of(cand)["gates"]["speed"]
    assert s["ratio"] is None and s["note"].startswith("the current run cannot run here, so no ratio")


# --- bad inputs: one line, exit 2, nothing written ----------------------------------------------------------------
@pytest.mark.parametrize("args, fragment", [
    (["gate", "deadbeef00"], "no model deadbeef00"),
    (["gate", "{sha}", "--key", "trt-fp16-0123456789ab"], "has no run trt-fp16-0123456789ab"),
    (["gate", "{sha}", "--iterations", "2", "--rounds", "3"], "--rounds 3 is more than --iterations 2"),
    (["gate", "{sha}", "--min-speed-ratio", "-1"], "--min-speed-ratio"),
    (["gate", "{sha}", "--max-map-drop", "nan"], "--max-map-drop"),
    (["gate", "{sha}", "--source", "missing-folder"], "--source missing-folder not found"),
    (["gate", "{sha}", "--json", "{home}"], "is a folder: give a file name"),
    (["health", "--url", "http://127.0.0.1:1/readyz"], "--url http://127.0.0.1:1/readyz"),
    (["health", "--url", "http://127.0.0.1:1", "--timeout", "0"], "--timeout"),
    (["health", "--url", "http://127.0.0.1:1", "--kind", "web"], "--kind"),
])
def test_bad_inputs_are_one_line_and_exit_2(models, tmp_path, args, fragment):
    store = Store(tmp_path)
    run = ort_run(store, models[0])
    result = invoke(["models"] + [a.replace("{sha}", run["sha256"][:12]).replace("{home}", str(tmp_path))
                                  for a in args] + ["--home", tmp_path])
    assert result.exit_code == 2
    assert_user_error(result, fragment)
    assert not (Path(run["path"]) / "gates.json").exists()


def test_health_without_a_current_model_says_what_to_do(tmp_path):
    result = invoke(["models", "health", "--url", "http://127.0.0.1:1", "--home", tmp_path])
    assert result.exit_code == 2
    assert_user_error(result, "no current model", "edgekit models activate")


# --- health: real services ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("status, doc, problem, healthy, seen", [
    (None, None, "no answer (Connection refused)", False, "no answer (Connection refused)"),
    (503, {"status": "loading"}, "", False, "HTTP 503 (loading)"),
    (503, {"error": "model failed to load", "status": 503}, "", False, "HTTP 503 (model failed to load)"),
    (404, {"error": "not found: /readyz", "status": 404}, "", False, "then --kind camera"),
    (200, {"status": "ready"}, "", False, "without model.sha256"),
    (200, {"model": {"sha256": "b" * 64, "name": "old"}}, "", False, "it runs bbbbbbbbbbbb (old), not the current"),
    (200, {"model": {"sha256": "a" * 64}}, "", True, "ready, running aaaaaaaaaaaa"),
])
def test_what_serve_answers_is_judged(status, doc, problem, healthy, seen):
    got = health._Poll("serve", "a" * 64).judge(status, doc, problem)
    assert got[0] is healthy and seen in got[1]


def test_camera_is_healthy_only_while_frames_flow_with_the_current_model():
    poll = health._Poll("camera", "a" * 64)
    model = {"sha256": "a" * 64}
    answers = [({"model": {"sha256": "b" * 64}, "frames": 50}, False, "not the current"),
               ({"model": model, "frames": 3}, False, "3 frames so far"),
               ({"model": model, "frames": 3}, False, "frames stay at 3"),
               ({"model": model, "frames": 1}, False, "1 frames so far"),  # restarted: counted from here
               ({"model": model, "frames": 4}, True, "frames 1 -> 4")]
    for doc, healthy, seen in answers:
        got = poll.judge(200, doc, "")
        assert got[0] is healthy and seen in got[1], (doc, got)


def two_runs_and_a_port(models, tmp_path):
    """A store whose current run is the fp32 ONNX, a second run (the noisy copy) not yet current, and a free port
    with its URL for the service that will run them."""
    from serve_helpers import free_port

    fp32, noisy, _, _ = models
    store = Store(tmp_path)
    first = ort_run(store, fp32, activate=True)
    second = ort_run(store, noisy)
    port = free_port()
    return store, first, second, port, "http://127.0.0.1:%d" % port


def test_health_waits_for_serve_then_refuses_the_old_process_after_a_switch(models, tmp_path):
    from serve_helpers import Server

    store, first, second, port, url = two_runs_and_a_port(models, tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    waiting = subprocess.Popen([sys.executable, "-m", "edgekit", "models", "health", "--url", url, "--home",
                                str(tmp_path), "--timeout", "90", "--json"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # health is polling a port nobody answers yet
    server = Server(store.link, ready_timeout=90.0, port=port)
    try:
        out, err = waiting.communicate(timeout=90)
        assert waiting.returncode == 0, err
        record = json.loads(out)
        assert record["healthy"] is True and record["polls"] > 1 and record["model"]["sha256"] == first["sha256"]
        assert record["current"]["sha256"] == first["sha256"] and "healthy after" in err
        store.activate(second["sha256"], second["key"])  # switched, but the service was not restarted
        done = run_cli("models", "health", "--url", url, "--home", tmp_path, "--timeout", "2", "--json")
        assert done.returncode == 1
        (error,) = errors(done.stderr)
        assert "it runs %s" % first["sha256"][:12] in error and "not the current run's model %s" % (
            second["sha256"][:12]) in error
        assert json.loads(done.stdout)["healthy"] is False and server.proc.poll() is None  # /readyz still 200
    finally:
        server.stop()
    server = Server(store.link, ready_timeout=90.0, port=port)  # restarted: runs what current names now
    try:
        done = run_cli("models", "health", "--url", url, "--home", tmp_path, "--timeout", "30")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("healthy after") and "running %s" % second["sha256"][:12] in done.stdout
    finally:
        server.stop()


def test_camera_health_needs_the_current_model_and_frames_flowing(models, tmp_path):
    store, first, second, port, url = two_runs_and_a_port(models, tmp_path)
    camera = subprocess.Popen([sys.executable, "-m", "edgekit", "camera", "synthetic://?width=160&height=120&fps=15",
                               "--model", str(store.link), "--headless", "--serve", str(port), "--threads", "1",
                               "--no-save", "--no-power", "--engine-iters", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        done = run_cli("models", "health", "--url", url, "--kind", "camera", "--home", tmp_path, "--timeout", "90",
                       "--json=-")
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        assert record["healthy"] and record["route"] == "/stats.json" and "frames" in record["seen"]
        assert record["model"]["sha256"] == first["sha256"]
        store.activate(second["sha256"], second["key"])
        done = run_cli("models", "health", "--url", url, "--kind", "camera", "--home", tmp_path, "--timeout", "2")
        assert done.returncode == 1 and "it runs %s" % first["sha256"][:12] in errors(done.stderr)[0]
    finally:
        camera.terminate()
        camera.communicate(timeout=30)
