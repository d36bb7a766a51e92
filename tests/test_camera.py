"""edgekit camera end to end on ONNX Runtime: synthetic and file sources, reconnects, SIGINT, the web page."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from helpers import assert_user_error, invoke
from test_video import FlakySource, write_video

from edgekit.camera.loop import CameraConfig, run_camera
from edgekit.runtime import open_runner
from edgekit.video.capture import Capture

PIPELINE_STAGES = ("capture_wait", "preprocess", "inference", "postprocess", "draw", "output", "e2e")


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("pipeline", [True, False])
def test_synthetic_source_end_to_end(yolov8n_onnx, tmp_path, pipeline):
    log, js, rec = tmp_path / "frames.jsonl", tmp_path / "camera.json", tmp_path / "out.avi"
    args = ["camera", "synthetic://?width=320&height=240&fps=60", "--model", yolov8n_onnx, "--frames", 15,
            "--headless", "--log", log, "--json", js, "--record", rec, "--engine-iters", 3]
    result = invoke(args + (["--pipeline"] if pipeline else ["--no-pipeline"]))
    assert result.exit_code == 0, result.output
    assert "loop FPS" in result.output and "engine-only FPS" in result.output

    (summary,) = json.loads(js.read_text())["results"]
    assert summary["frames"] == 15 and summary["stopped_by"] == "--frames 15"
    assert summary["pipelined"] is pipeline and summary["clock"] == "host" and summary["trained"] is False
    assert summary["engine_fps"] > 0 and summary["fps"] > 0
    assert summary["loop_vs_engine"] == pytest.approx(summary["fps"] / summary["engine_fps"], rel=0.01)
    for stage in PIPELINE_STAGES:
        st = summary["stages"][stage]
        assert st["count"] == 15 and st["min"] >= 0 and st["max"] >= st["median"]
    assert summary["stages"]["inference"]["min"] > 0 and summary["stages"]["e2e"]["min"] > 0

    lines = read_jsonl(log)
    assert [r["frame"] for r in lines] == list(range(1, 16))
    assert all(set(PIPELINE_STAGES) <= set(r["ms"]) for r in lines)
    # e2e runs from capture to output: it covers the stages after the capture wait
    assert all(r["ms"]["e2e"] >= r["ms"]["inference"] + r["ms"]["postprocess"] for r in lines)
    cap = cv2.VideoCapture(str(rec))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 15


def test_file_and_folder_sources_process_every_frame(yolov8n_onnx, tmp_path):
    video = write_video(tmp_path / "clip.avi", 7)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / ("%02d.png" % i)), np.full((90, 120, 3), i * 40 + 10, np.uint8))
    for source, frames in (("file://" + str(video), 7), (str(folder), 4)):
        js = tmp_path / "s.json"
        result = invoke(["camera", source, "--model", yolov8n_onnx, "--headless", "--json", js, "--engine-iters", 0])
        assert result.exit_code == 0, result.output
        (s,) = json.loads(js.read_text())["results"]
        assert (s["frames"], s["dropped"], s["stopped_by"]) == (frames, 0, "end of source")
        assert s["engine_fps"] is None


def test_loop_option_restarts_a_file(yolov8n_onnx, tmp_path):
    video = write_video(tmp_path / "clip.avi", 5)
    js = tmp_path / "s.json"
    result = invoke(["camera", video, "--model", yolov8n_onnx, "--loop", "--frames", 12, "--headless",
                     "--json", js, "--engine-iters", 0])
    assert result.exit_code == 0, result.output
    assert json.loads(js.read_text())["results"][0]["frames"] == 12


def test_loop_survives_a_failing_source(yolov8n_onnx):
    source = FlakySource(good=4, refuse=1, shape=(120, 160, 3))
    with open_runner(yolov8n_onnx) as runner:
        summary = run_camera(runner, Capture(source, live=False), [], CameraConfig(frames=10, engine_iters=0))
    assert summary["frames"] == 10 and summary["failures"] >= 2 and summary["reconnects"] >= 1


@pytest.mark.parametrize(
    "source, fragment",
    [("/dev/video99", "cannot open /dev/video99"), ("missing.mp4", "missing.mp4 not found"),
     ("ftp://host/x", "unknown source scheme")],
)
def test_bad_sources(yolov8n_onnx, tmp_path, source, fragment):
    log = tmp_path / "frames.jsonl"
    assert_user_error(invoke(["camera", source, "--model", yolov8n_onnx, "--headless", "--no-save", "--log", log]),
                      fragment)
    assert not log.exists()  # nothing written for a source that never opened


def test_unwritable_log_is_a_user_error(yolov8n_onnx, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_user_error(invoke(["camera", "synthetic://", "--model", yolov8n_onnx, "--headless", "--no-save",
                              "--log", blocker / "frames.jsonl"]), "cannot write the frame log")


def test_batch_model_is_refused(tmp_path, yolov8n_pt):
    from edgekit.host.export import export

    model = export(weights=str(yolov8n_pt), imgsz=64, batch=2, out=str(tmp_path))
    assert_user_error(invoke(["camera", "synthetic://", "--model", model, "--headless", "--no-save"]),
                      "static batch 2", "--batch 1")


def start_camera(model, tmp_path, *extra):
    """``edgekit camera`` in a subprocess on a synthetic source; returns (process, log, summary paths)."""
    log, js = tmp_path / "frames.jsonl", tmp_path / "camera.json"
    cmd = [sys.executable, "-m", "edgekit", "camera", "synthetic://?width=320&height=240&fps=20", "--model",
           str(model), "--headless", "--log", str(log), "--json", str(js), "--engine-iters", "2", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, log, js


def wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig, reason", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "SIGTERM")])
def test_signal_stops_cleanly_with_jsonl_intact(yolov8n_onnx, tmp_path, sig, reason):
    proc, log, js = start_camera(yolov8n_onnx, tmp_path)
    try:
        assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 5)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    lines = read_jsonl(log)  # every line is whole JSON
    (summary,) = json.loads(js.read_text())["results"]
    assert summary["stopped_by"] == reason and summary["frames"] == len(lines) >= 5
    assert "loop FPS" in out


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not chromium() and not os.environ.get("CI"), reason="Chromium not installed (apt install chromium)")
def test_web_page_in_headless_chromium(yolov8n_onnx, tmp_path):
    from playwright.sync_api import sync_playwright

    proc, _, _ = start_camera(yolov8n_onnx, tmp_path, "--serve", "0", "--host", "127.0.0.1")
    try:
        port = None
        for line in proc.stderr:
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "camera did not announce its web address"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 900, "height": 400})
            page.goto("http://127.0.0.1:%d/" % port)
            page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=30000)
            page.wait_for_function("Number(document.getElementById('frames').textContent) > 0", timeout=30000)
            first = int(page.text_content("#frames"))
            page.wait_for_function("Number(document.getElementById('frames').textContent) > %d" % (first + 5),
                                   timeout=30000)
            assert float(page.text_content("#fps")) > 0
            assert page.evaluate("document.getElementById('stream').naturalWidth") == 320
            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot))
            browser.close()
        image = cv2.imread(str(shot))
        stream_area = image[60:300, 20:330]  # where the <img> sits: frames, not a blank box
        assert stream_area.std() > 10
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0
