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
from test_video import FlakySource, full_disk_open, read_back, write_video

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
    record = summary["record"]  # frames the loop dropped at the 60 FPS source repeat the one before
    assert record["frames"] == 15 + record["repeated"] and read_back(rec) == (pytest.approx(60.0), record["frames"])


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
                              "--log", blocker / "frames.jsonl"]), "--log", "is a file")


@pytest.mark.parametrize(
    "source, fps, note",
    [("clip10.avi", 10.0, "the file's rate"), ("synthetic://?width=160&height=120&fps=15", 15.0, "the source's rate")],
)
def test_recording_plays_at_the_source_rate(yolov8n_onnx, tmp_path, source, fps, note):
    if source.endswith(".avi"):
        source = str(write_video(tmp_path / source, 12))  # 12 frames at 10 FPS
    rec, js = tmp_path / "out.mp4", tmp_path / "c.json"
    result = invoke(["camera", source, "--model", yolov8n_onnx, "--headless", "--frames", 12, "--record", rec,
                     "--json", js, "--engine-iters", 0, "--no-power"])
    assert result.exit_code == 0, result.output
    record = json.loads(js.read_text())["results"][0]["record"]
    assert record["fps"] == fps and record["rate"] == note and record["frames"] >= 12
    assert read_back(rec) == (pytest.approx(fps, rel=0.01), record["frames"])  # dropped frames held, not lost
    assert "wrote %s (%d frames at %.1f FPS, %s" % (rec, record["frames"], fps, note) in result.output


def test_full_disk_keeps_the_summary_and_names_what_was_not_written(yolov8n_onnx, tmp_path, monkeypatch):
    monkeypatch.setattr("edgekit.camera.stats.open", full_disk_open(3), raising=False)
    monkeypatch.setattr("edgekit.video.outputs._free_mb", lambda folder: 1.0)  # the recording's disk is full
    log, js, rec = tmp_path / "f.jsonl", tmp_path / "c.json", tmp_path / "r.mp4"
    result = invoke(["camera", "synthetic://?width=160&height=120&fps=0", "--model", yolov8n_onnx, "--headless",
                     "--frames", 8, "--log", log, "--json", js, "--record", rec, "--engine-iters", 0, "--no-power"])
    assert_user_error(result, "frame log %s (No space left on device after 3 frames" % log,
                      "recording %s (no file was written" % rec)
    assert "loop FPS" in result.output and "stopped by --frames 8" in result.output  # the summary is there
    assert json.loads(js.read_text())["results"][0]["frames"] == 8  # and the other outputs are written
    assert len(read_jsonl(log)) == 3 and not rec.exists()
    assert "wrote %s" % rec not in result.output and "finalized" not in result.output
    assert result.output.count("the frame log %s stopped" % log) == 1  # one warning, then the loop went on


@pytest.mark.parametrize(
    "source, advice",
    [("synthetic://?width=320&height=240", "use synthetic://?width=160&height=120"),
     ("clip.avi", "re-export with --graph-letterbox 320x240 to match")],
)
def test_letterbox_model_advice_fits_the_source(letterbox_onnx, tmp_path, source, advice):
    if source == "clip.avi":
        source = str(write_video(tmp_path / source, 3, size=(320, 240)))
    result = invoke(["camera", source, "--model", letterbox_onnx, "--headless", "--no-save", "--engine-iters", 0,
                     "--no-power", "--frames", 2])
    assert_user_error(result, "letterboxes 160x120 frames in its graph; this frame is 320x240: " + advice)
    assert "--width" not in result.output


@pytest.mark.parametrize("source", ["empty.mp4", "/dev/video99", "rtsp://127.0.0.1:1/x", "broken.jpg"])
def test_opencv_noise_stays_out_of_the_output(yolov8n_onnx, tmp_path, source):
    """OpenCV's, FFmpeg's and libjpeg's own lines (printed from C to fd 2) do not come before edgekit's."""
    (tmp_path / "empty.mp4").write_bytes(b"")
    ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    (tmp_path / "broken.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])  # libjpeg: premature end
    proc = subprocess.run([sys.executable, "-m", "edgekit", "camera", source, "--model", str(yolov8n_onnx),
                           "--headless", "--no-save", "--engine-iters", "0", "--no-power", "--max-retries", "0"],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if source == "broken.jpg":  # decodes in part: it runs
        assert proc.returncode == 0, proc.stderr
        assert not [line for line in lines if "JPEG" in line], proc.stderr
    else:
        assert proc.returncode == 2 and lines == [lines[-1]] and lines[-1].startswith("error: cannot open"), \
            proc.stderr


def test_batch_model_pads_one_source(tmp_path, yolov8n_pt):
    """A static batch-2 model on one camera runs padded (the multi-source loop), not refused: no rebuild to try it."""
    from edgekit.host.export import export

    model = export(weights=str(yolov8n_pt), imgsz=64, batch=2, out=str(tmp_path))
    js = tmp_path / "cam.json"
    result = invoke(["camera", "synthetic://?width=160&height=120&fps=0", "--model", model, "--headless", "--frames",
                     5, "--engine-iters", 0, "--json", js])
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(js.read_text())["results"]
    assert summary["batch"]["size"] == 2 and summary["batch"]["padded"] == 5 and summary["frames"] == 5


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


@pytest.mark.parametrize("sig, reason", [(signal.SIGINT, "Ctrl-C (SIGINT)"), (signal.SIGTERM, "SIGTERM")])
def test_signal_stops_cleanly_with_jsonl_intact(yolov8n_onnx, tmp_path, sig, reason):
    rec = tmp_path / "int_rec.mp4"
    proc, log, js = start_camera(yolov8n_onnx, tmp_path, "--record", str(rec))
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
    assert "loop FPS" in out and "stopped by %s" % reason in out
    # the count said is the count in the file (a signal never lands between a write and its count)
    frames = summary["record"]["frames"]
    assert read_back(rec) == (pytest.approx(20.0, rel=0.01), frames)
    assert "wrote %s (%d frames at 20.0 FPS, the source's rate" % (rec, frames) in err


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
