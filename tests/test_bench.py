"""edgekit bench: results per stage, JSON/CSV content, sources, several models in one table."""

import csv
import json

import cv2
import numpy as np
import pytest
from helpers import assert_user_error, invoke

from edgekit.bench import BenchConfig, bench_models
from edgekit.bench.frames import synthetic_frames
from edgekit.bench.report import STAGE_ORDER

STAGES = ("preprocess", "inference", "postprocess", "e2e")


def test_bench_json_csv_and_table(yolov8n_onnx, tmp_path):
    js, cs = tmp_path / "out" / "bench.json", tmp_path / "bench.csv"
    result = invoke(["bench", yolov8n_onnx, "--warmup", 2, "--iterations", 7, "--threads", 2,
                     "--json", js, "--csv", cs])
    assert result.exit_code == 0, result.output
    for stage in STAGES + ("FPS", "(untrained)"):
        assert stage in result.output

    doc = json.loads(js.read_text())
    assert doc["kind"] == "bench" and doc["system"]["cpu_count"] >= 1
    assert doc["system"]["versions"]["onnxruntime"]
    (r,) = doc["results"]
    assert r["backend"] == "onnxruntime" and r["device"] == "CPUExecutionProvider" and r["clock"] == "host"
    assert r["threads"] == 2 and r["iterations"] == 7 and r["warmup"] == 2
    assert r["input_shape"] == [1, 3, 320, 320] and r["trained"] is False
    assert r["params"] == 3157200
    for stage in STAGES:
        s = r["stages"][stage]
        assert s["count"] == 7
        assert 0 < s["min"] <= s["median"] <= s["p90"] <= s["p99"] <= s["max"]
        assert s["min"] <= s["mean"] <= s["max"]
    # the end-to-end time covers the three stages it is made of
    assert r["stages"]["e2e"]["mean"] == pytest.approx(
        sum(r["stages"][s]["mean"] for s in STAGES[:3]), rel=1e-3, abs=1e-3)
    assert r["fps"] == pytest.approx(1e3 / r["stages"]["e2e"]["mean"], rel=1e-3)

    rows = list(csv.DictReader(cs.open()))
    assert [row["stage"] for row in rows] == list(STAGES)
    assert float(rows[-1]["fps"]) == pytest.approx(r["fps"])
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic writes leave no temp files


def test_bench_writes_under_benchmarks_by_default(yolov8n_onnx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(["bench", yolov8n_onnx, "--warmup", 0, "--iterations", 2])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "benchmarks" / "results").glob("bench-*.json")
    assert json.loads(path.read_text())["results"][0]["iterations"] == 2


def test_two_models_side_by_side_with_duration(yolov8n_onnx, tmp_path):
    other = tmp_path / "copy.onnx"
    other.write_bytes(yolov8n_onnx.read_bytes())  # no manifest: weights are unknown
    results = bench_models([str(yolov8n_onnx), str(other)],
                           BenchConfig(warmup=1, duration=0.3, threads=1), show_progress=False)
    assert [r["name"] for r in results] == ["yolov8n-320", "copy"]
    assert results[1]["trained"] is None and "no edgekit manifest" in results[1]["weights_label"]
    for r in results:
        assert r["iterations"] >= 1 and r["stages"]["e2e"]["count"] == r["iterations"]


def test_bench_from_image_folder_and_video(yolov8n_onnx, tmp_path):
    frames = synthetic_frames(3, (240, 320))
    folder = tmp_path / "images"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / ("%d.jpg" % i)), f)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for f in frames:
        writer.write(f)
    writer.release()
    for source in (folder, video, folder / "0.jpg"):
        (r,) = bench_models([str(yolov8n_onnx)], BenchConfig(warmup=0, iterations=3, source=str(source)),
                            show_progress=False)
        assert r["source"] == str(source) and r["stages"]["e2e"]["count"] == 3


def test_dynamic_model_takes_batch(tmp_path, yolov8n_pt):
    from edgekit.host.export import export

    path = export(weights=str(yolov8n_pt), imgsz=64, dynamic=True, out=str(tmp_path))
    (r,) = bench_models([str(path)], BenchConfig(warmup=0, iterations=2, batch=4), show_progress=False)
    assert r["input_shape"] == [4, 3, 64, 64]
    assert r["fps"] == pytest.approx(4e3 / r["stages"]["e2e"]["mean"], rel=1e-3)


def test_stage_order_lists_every_stage_once():
    assert len(set(STAGE_ORDER)) == len(STAGE_ORDER)
    assert set(STAGES) <= set(STAGE_ORDER)


def test_synthetic_frames_are_deterministic_camera_frames():
    a, b = synthetic_frames(2), synthetic_frames(2)
    assert a[0].shape == (720, 1280, 3) and a[0].dtype == np.uint8
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_bench_batch_mismatch_is_user_error(yolov8n_onnx):
    assert_user_error(invoke(["bench", yolov8n_onnx, "--batch", 4, "--no-save"]),
                      "--batch 4 does not match", "edgekit export --batch 4")


def _interrupt_at(monkeypatch, call):
    """Runners whose ``call``-th inference (counted over every model) raises KeyboardInterrupt, as Ctrl-C does."""
    from edgekit.bench import core

    calls, real_open = [0], core.open_runner

    def open_runner(*args, **kwargs):
        runner = real_open(*args, **kwargs)
        infer = runner.infer

        def interrupted_infer(blob):
            calls[0] += 1
            if calls[0] == call:
                raise KeyboardInterrupt
            return infer(blob)

        runner.infer = interrupted_infer
        return runner

    monkeypatch.setattr(core, "open_runner", open_runner)


@pytest.mark.parametrize("call, iterations", [
    (10, [5, 4]),  # the first model measured in full, the second cut after 4 iterations: both reported
    (7, [5]),  # the second had 1 iteration: too few to report
    (2, []),  # nothing finished
])
def test_interrupted_bench_shows_and_saves_what_finished(yolov8n_onnx, tmp_path, monkeypatch, call, iterations):
    other = tmp_path / "b.onnx"
    other.write_bytes(yolov8n_onnx.read_bytes())
    _interrupt_at(monkeypatch, call)
    js = tmp_path / "out" / "bench.json"
    result = invoke(["bench", yolov8n_onnx, other, "--warmup", 0, "--iterations", 5, "--threads", 1, "--no-power",
                     "--json", js])
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert "stopped by Ctrl-C (SIGINT)" in result.output
    if not iterations:
        assert not js.exists() and "nothing finished, nothing saved" in result.output
        return
    doc = json.loads(js.read_text())
    assert [r["iterations"] for r in doc["results"]] == iterations
    assert [r["stages"]["e2e"]["count"] for r in doc["results"]] == iterations
    assert "interrupted" not in doc["results"][0]
    if len(iterations) == 2:
        assert doc["results"][1]["interrupted"] == "Ctrl-C (SIGINT)"
        table = result.output.split("edgekit bench (latency in ms)")[1].split("stopped by")[0]
        assert "interrupted" in table  # the name cell: "b (interrupted after 4 iterations)", wrapped or not
    assert "1 of 2 models measured in full" in result.output


def test_ctrl_c_during_a_real_bench_prints_the_table_and_saves(yolov8n_onnx, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from serve_helpers import ROOT

    other = tmp_path / "b.onnx"
    other.write_bytes(yolov8n_onnx.read_bytes())
    js = tmp_path / "bench.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "bench", str(yolov8n_onnx), str(other), "--duration", "4", "--warmup", "0",
         "--threads", "1", "--no-power", "--json", str(js)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's Ctrl-C finds it
    try:
        seen = []
        for line in proc.stderr:  # the first model is measured: the second is running for 4 s
            seen.append(line)
            if line.startswith("measured %s" % yolov8n_onnx.name):
                proc.send_signal(signal.SIGINT)
                break
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = "".join(seen) + stderr
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped by Ctrl-C (SIGINT): 1 of 2 models measured in full" in stderr
    doc = json.loads(js.read_text())
    assert doc["results"][0]["name"] == yolov8n_onnx.stem and "interrupted" not in doc["results"][0]
    assert all(r.get("interrupted") for r in doc["results"][1:])  # the second, if it had 3 iterations
    assert yolov8n_onnx.stem in stdout and "e2e" in stdout


def test_settings_line_names_each_count_when_a_model_was_cut_short():
    from edgekit.bench.report import settings_line

    row = {"iterations": 300, "warmup": 10, "threads": 2, "source": "synthetic", "name": "a"}
    assert settings_line([row, dict(row, name="b")]).startswith("300 timed iterations after 10 warm-up")
    assert settings_line([row, dict(row, name="b", iterations=283)]).startswith(
        "283/300 timed iterations (a 300, b 283) after 10 warm-up")
