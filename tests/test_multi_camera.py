"""Several sources through one engine (edgekit camera SRC1 SRC2 ...), the muxer, and edgekit streams."""

import json
import threading
import time

import numpy as np
import pytest
from conftest import TEST_IMGSZ
from helpers import assert_user_error, invoke

from edgekit.camera.loop import CameraConfig
from edgekit.camera.multi import MultiLoop, StreamSinks
from edgekit.camera.multi_session import run_multi
from edgekit.camera.mux import ENDED, FAILED, LIVE, Muxer, Stream
from edgekit.runtime import open_runner
from edgekit.video.capture import Capture
from edgekit.video.sources import FrameSource, SourceError, SyntheticSource


@pytest.fixture(scope="module")
def dynamic_onnx(yolov8n_pt, tmp_path_factory):
    from edgekit.host.export import export

    return export(weights=str(yolov8n_pt), imgsz=TEST_IMGSZ, dynamic=True, out=str(tmp_path_factory.mktemp("dyn")))


@pytest.fixture(scope="module")
def batch3_onnx(yolov8n_pt, tmp_path_factory):
    from edgekit.host.export import export

    return export(weights=str(yolov8n_pt), imgsz=TEST_IMGSZ, batch=3, out=str(tmp_path_factory.mktemp("b3")))


@pytest.fixture(scope="module")
def trained_dynamic(synthetic_model, tmp_path_factory):
    """The trained synthetic YOLOv8n with a dynamic batch: it finds the shapes synthetic:// draws."""
    from edgekit.host.export import export

    _, pt, _ = synthetic_model
    return export(weights=str(pt), imgsz=160, dynamic=True, out=str(tmp_path_factory.mktemp("tdyn")))


class PacedSource(FrameSource):
    """Frames of one value at ``fps``; after ``good`` frames it stalls (``stall`` s per read) or fails for good."""

    def __init__(self, name, fps=50.0, good=10 ** 9, after="fail", stall=0.0, shape=(96, 128, 3)):
        super().__init__(name, fps)
        self.good, self.after, self.stall, self.shape = good, after, stall, shape
        self.reads = 0
        self.opens = 0

    def open(self):
        super().open()
        self.opens += 1
        if self.opens > 1 and self.after == "fail":
            raise SourceError("%s refused" % self.name)

    def read(self):
        time.sleep(1.0 / self.fps)
        self.reads += 1
        if self.reads > self.good:
            if self.after == "fail":
                return None
            time.sleep(self.stall)
        return np.full(self.shape, self.reads % 255, np.uint8)


def captures_of(*sources, retries=1):
    caps = [Capture(s, live=True, max_retries=retries, max_backoff=0.05) for s in sources]
    for c in caps:
        c.open()
    return caps


def run_loop(model, caps, timeout=0.05, **config):
    streams = [Stream(i, c.source.name, c) for i, c in enumerate(caps)]
    config.setdefault("engine_iters", 0)
    with open_runner(model) as runner:
        loop = MultiLoop(runner, streams, [StreamSinks() for _ in streams], [], CameraConfig(**config), timeout)
        return run_multi(loop, caps)


# --- the muxer ------------------------------------------------------------------------------------------
def test_muxer_waits_for_every_live_source_then_pushes():
    caps = captures_of(PacedSource("a://", fps=100), PacedSource("b://", fps=100))
    mux = Muxer([Stream(i, c.source.name, c) for i, c in enumerate(caps)], timeout=1.0, capture_timeout=2.0)
    for c in caps:
        c.start()
    mux.start()
    try:
        batch, times = mux.next_batch(threading.Event())
    finally:
        for c in caps:
            c.stop()
    assert [s.index for s, _ in batch] == [0, 1] and mux.timeouts == 0
    assert times["mux_wait"] < 1000  # pushed when complete, not by the 1 s timeout


def test_muxer_pushes_on_timeout_without_a_stalled_source():
    caps = captures_of(PacedSource("fast://", fps=100), PacedSource("stuck://", fps=100, good=1, after="stall",
                                                                    stall=5.0))
    streams = [Stream(i, c.source.name, c) for i, c in enumerate(caps)]
    mux = Muxer(streams, timeout=0.05, capture_timeout=0.3)
    for c in caps:
        c.start()
    mux.start()
    sizes, stop = [], threading.Event()
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < 1.0:
            batch, times = mux.next_batch(stop)
            if batch:
                sizes.append(len(batch))
                assert times["mux_wait"] < 200  # never held much past the timeout
    finally:
        for c in caps:
            c.stop()
    assert sizes.count(1) >= 5 and mux.timeouts >= 5
    assert streams[1].status != LIVE and streams[1].stalls == 1 and streams[0].status == LIVE


# --- the loop -------------------------------------------------------------------------------------------
def test_a_dead_source_leaves_and_the_others_go_on(dynamic_onnx):
    caps = captures_of(PacedSource("ok://", fps=60), PacedSource("dies://", fps=60, good=5, after="fail"))
    summary = run_loop(dynamic_onnx, caps, duration=2.0)
    ok, dead = summary["streams"]
    assert dead["status"] == FAILED and "gave up" in dead["failed"] and dead["frames"] <= 5
    assert ok["status"] == LIVE and ok["frames"] > 3 * dead["frames"]
    assert summary["stopped_by"] == "--duration 2" and summary["source_failed"] is None
    assert summary["batch"]["frames"].get("1", 0) > 0  # the live source alone after the other died


def test_every_source_ending_ends_the_run(dynamic_onnx):
    a, b = PacedSource("a://", fps=200, good=4, after="fail"), PacedSource("b://", fps=200, good=6, after="fail")
    a.finite = b.finite = True
    summary = run_loop(dynamic_onnx, captures_of(a, b, retries=0), duration=10.0)
    assert summary["stopped_by"] == "end of source" and summary["duration_s"] < 8
    assert {s["status"] for s in summary["streams"]} <= {ENDED, FAILED}
    assert summary["source_failed"].startswith("every source was given up")


def test_static_batch_pads_and_numbers_add_up(batch3_onnx):
    caps = [Capture(SyntheticSource(160, 120, 0, seed=i), live=False) for i in range(2)]
    summary = run_loop(batch3_onnx, caps, frames=6)
    batch = summary["batch"]
    assert batch["size"] == 3 and batch["batches"] == 6 and batch["padded"] == 6 and batch["mean_frames"] == 2.0
    assert [s["frames"] for s in summary["streams"]] == [6, 6] and summary["frames"] == 12
    assert summary["stages"]["inference"]["count"] == 6 and summary["stages"]["e2e"]["count"] == 12


# --- the command ----------------------------------------------------------------------------------------
def test_two_sources_end_to_end(dynamic_onnx, tmp_path):
    js, log, rec = tmp_path / "cam.json", tmp_path / "run.jsonl", tmp_path / "out.avi"
    result = invoke(["camera", "synthetic://?width=320&height=240&fps=40&seed=1",
                     "synthetic://?width=160&height=120&fps=20&seed=2", "--model", dynamic_onnx, "--headless",
                     "--duration", 2, "--engine-iters", 2, "--json", js, "--log", log, "--record", rec])
    assert result.exit_code == 0, result.output
    assert "2 sources, batch dynamic" in result.output and "total" in result.output
    (summary,) = json.loads(js.read_text())["results"]
    fast, slow = summary["streams"]
    assert summary["sources"] == 2 and fast["frames"] > slow["frames"] > 10
    assert fast["e2e_p99"] >= fast["e2e_p50"] > 0 and set(fast["batch_frames"]) <= {"1", "2"}
    assert summary["stages"]["mux_wait"]["count"] == summary["batch"]["batches"]
    # the faster stream's frames wait in the muxer for the slower one's; its FPS is its own rate while it ran
    assert fast["stages"]["mux_wait"]["mean"] > slow["stages"]["mux_wait"]["mean"] and fast["mux_wait"] is not None
    # (the fast one is not held to the slow one's 20 FPS; 25% because a 2-second run on a busy 2-core CI machine
    # has measured 33 FPS where an idle one gives 40)
    assert fast["fps"] == pytest.approx(40, rel=0.25) and slow["fps"] == pytest.approx(20, rel=0.15)
    for i, stream in enumerate((fast, slow)):
        lines = [json.loads(x) for x in (tmp_path / ("run-%d.jsonl" % i)).read_text().splitlines()]
        assert len(lines) == stream["frames"] and {r["stream"] for r in lines} == {i}
        assert (tmp_path / ("out-%d.avi" % i)).stat().st_size > 0
    assert not log.exists() and not rec.exists()


@pytest.mark.parametrize("sources, fragment", [
    (["synthetic://", "synthetic://"], "given twice"),
    (["clip.mp4", "./clip.mp4"], "given twice"),
])
def test_the_same_source_twice_is_refused(yolov8n_onnx, tmp_path, sources, fragment, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_user_error(invoke(["camera", *sources, "--model", yolov8n_onnx, "--headless", "--no-save"]), fragment)


def test_more_sources_than_a_static_batch(yolov8n_onnx, tmp_path):
    log = tmp_path / "run.jsonl"
    result = invoke(["camera", "synthetic://?seed=1", "synthetic://?seed=2", "--model", yolov8n_onnx, "--headless",
                     "--no-save", "--log", log])
    assert_user_error(result, "static batch 1", "2 sources", "--batch 2", "--dynamic")
    assert not (tmp_path / "run-0.jsonl").exists()


def test_letterbox_model_with_another_frame_size_writes_nothing(letterbox_onnx, tmp_path):
    log = tmp_path / "run.jsonl"
    result = invoke(["camera", "synthetic://?width=320&height=240", "--model", letterbox_onnx, "--headless",
                     "--no-save", "--log", log])
    assert_user_error(result, "letterboxes 160x120", "synthetic://?width=160&height=120")
    assert not log.exists()


def test_letterbox_model_needs_one_frame_size(letterbox_onnx):
    result = invoke(["camera", "synthetic://?width=160&height=120&seed=1", "synthetic://?width=320&height=240&seed=2",
                     "--model", letterbox_onnx, "--headless", "--no-save"])
    assert_user_error(result)  # a static batch-1 letterbox model: refused for the batch or the size, in one line


def test_no_source_is_a_usage_error(yolov8n_onnx):
    assert_user_error(invoke(["camera", "--model", yolov8n_onnx]), "missing argument")


# --- edgekit streams -------------------------------------------------------------------------------------
def test_streams_finds_how_many_streams_hold(dynamic_onnx, tmp_path):
    js, csv_path, png = tmp_path / "s.json", tmp_path / "s.csv", tmp_path / "s.png"
    result = invoke(["streams", dynamic_onnx, "--width", 320, "--height", 240, "--fps", 10, "--max-streams", 2,
                     "--seconds", 1.5, "--warmup", 0.5, "--json", js, "--csv", csv_path, "--plot", png])
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(js.read_text())["results"]
    assert [s["streams"] for s in doc["steps"]] == [1, 2][:len(doc["steps"])]
    assert " of 320x240 at 10 FPS with " in doc["headline"] and doc["headline"] in result.output.replace(
        "\n", " ")
    for step in doc["steps"]:
        assert len(step["per_stream"]) == step["streams"] and step["e2e_p99_max"] > 0
        assert step["held"] == (step["fps_min"] >= 9.5 and step["e2e_p99_max"] <= 200)
    assert csv_path.read_text().count("\n") == len(doc["steps"]) + 1 and png.read_bytes()[:4] == b"\x89PNG"


def test_streams_reports_a_step_that_is_not_held(dynamic_onnx, tmp_path):
    js = tmp_path / "s.json"
    result = invoke(["streams", dynamic_onnx, "--width", 160, "--height", 120, "--fps", 10, "--max-streams", 3,
                     "--seconds", 1, "--warmup", 0.2, "--max-latency", 0.01, "--json", js])
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(js.read_text())["results"]
    assert doc["held"] == 0 and len(doc["steps"]) == 1 and "p99 e2e over 0.01 ms" in doc["steps"][0]["why"]
    assert "holds no stream" in doc["headline"]


def test_streams_stops_at_a_static_batch(yolov8n_onnx, tmp_path):
    js = tmp_path / "s.json"
    result = invoke(["streams", yolov8n_onnx, "--width", 160, "--height", 120, "--fps", 5, "--seconds", 1,
                     "--warmup", 0.2, "--json", js])
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(js.read_text())["results"]
    assert len(doc["steps"]) == 1 and doc["stopped_by"] in ("static batch", "failed")
    if doc["held"]:
        assert "export with --batch N or --dynamic" in doc["headline"]


def test_web_view_and_sigint_with_three_sources(dynamic_onnx, tmp_path):
    """The live page's numbers per stream and each stream's MJPEG over real HTTP; Ctrl-C keeps every frame log."""
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    js, log = tmp_path / "cam.json", tmp_path / "run.jsonl"
    sources = ["synthetic://?width=%d&height=%d&fps=15&seed=%d" % (w, h, i) for i, (w, h) in
               enumerate([(320, 240), (160, 120), (256, 144)])]
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "camera", *sources, "--model", str(dynamic_onnx),
                             "--headless", "--serve", "0", "--engine-iters", "0", "--json", str(js), "--log",
                             str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in proc.stderr:
            m = re.search(r"http://localhost:(\d+)/", line) or re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "camera did not announce its web address"
        base = "http://127.0.0.1:%d" % port
        deadline, stats = time.time() + 60, {}
        while time.time() < deadline:
            stats = json.loads(urllib.request.urlopen(base + "/stats.json", timeout=5).read())
            if stats.get("streams") and all(s["frames"] >= 3 for s in stats["streams"]):
                break
            time.sleep(0.2)
        assert [s["index"] for s in stats["streams"]] == [0, 1, 2] and stats["batch"]["size"] is None
        assert all(s["status"] == "live" and s["fps"] > 0 for s in stats["streams"])
        with urllib.request.urlopen(base + "/snapshot.jpg?stream=1", timeout=10) as r:
            import cv2

            image = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[:2] == (120, 160)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    (summary,) = json.loads(js.read_text())["results"]
    assert summary["stopped_by"] == "Ctrl-C (SIGINT)"
    for stream in summary["streams"]:
        lines = (tmp_path / ("run-%d.jsonl" % stream["index"])).read_text().splitlines()
        assert len(lines) == stream["frames"] and all(json.loads(x)["stream"] == stream["index"] for x in lines)


# --- tracking and counting as stages ---------------------------------------------------------------------
def test_track_and_count_on_one_and_on_two_sources(trained_dynamic, tmp_path):
    onnx = trained_dynamic
    for sources in (["synthetic://?width=320&height=240&fps=0&seed=3"],
                    ["synthetic://?width=320&height=240&fps=0&seed=3", "synthetic://?width=320&height=240&fps=0&seed=4"]):
        js, log = tmp_path / "cam.json", tmp_path / "run.jsonl"
        result = invoke(["camera", *sources, "--model", onnx, "--headless", "--frames", 40, "--engine-iters", 0,
                         "--conf", 0.1, "--count-line", "160,0,160,240", "--count-zone", "0,0,160,0,160,240,0,240",
                         "--json", js, "--log", log])
        assert result.exit_code == 0, result.output
        (summary,) = json.loads(js.read_text())["results"]
        assert summary["stages"]["track"]["count"] == summary["stages"]["count"]["count"] == summary["frames"]
        logs = [log] if len(sources) == 1 else [tmp_path / ("run-%d.jsonl" % i) for i in range(2)]
        records = [json.loads(x) for p in logs for x in p.read_text().splitlines()]
        assert all("track" in r["ms"] and "count" in r["ms"] for r in records)
        tracks = [t for r in records for t in r["tracks"]]
        assert tracks and all(len(t) == 6 for t in tracks)  # [id, class, x1, y1, x2, y2]
        last = records[-1]["counts"]
        assert set(last) == {"line", "zone"} and last["zone"]["total_entered"] >= 1
        counts = summary["counts"] if len(sources) == 1 else summary["streams"][0]["counts"]
        assert counts["zone"]["total_entered"] >= 1 and "line in" in result.output


@pytest.mark.parametrize("extra, fragment", [
    (["--count-line", "1,2,3"], "give exactly four"),
    (["--count-line", "10,10,10,10"], "differ"),
    (["--count-zone", "0,0,10,10"], "at least 3"),
    (["--count-line", "5000,0,5000,10"], "outside the 320x240 frame"),
    (["--count-zone", "0,0,400,0,400,100"], "outside the 320x240 frame"),
    (["--track", "--track-classes", "giraffe"], "giraffe"),
])
def test_bad_tracking_options(synthetic_model, tmp_path, extra, fragment):
    _, _, onnx = synthetic_model
    log = tmp_path / "run.jsonl"
    result = invoke(["camera", "synthetic://?width=320&height=240", "--model", onnx, "--headless", "--no-save",
                     "--log", log, *extra])
    assert_user_error(result, fragment)
    assert not log.exists()


def test_count_lines_once_or_once_per_source(synthetic_model):
    _, _, onnx = synthetic_model
    result = invoke(["camera", "synthetic://?seed=1", "synthetic://?seed=2", "--model", onnx, "--headless",
                     "--no-save", "--count-line", "0,0,10,10", "--count-line", "0,0,20,20", "--count-line",
                     "0,0,30,30"])
    assert_user_error(result, "given 3 times for 2 sources")


def test_streams_keeps_finished_steps_when_a_later_step_fails(dynamic_onnx, tmp_path, monkeypatch):
    from edgekit.camera import capacity
    from edgekit.errors import EdgekitError

    real = capacity.run_step

    def step(model, config, k):
        if k == 2:
            raise EdgekitError("cannot open rtsp://cam2/s")
        return real(model, config, k)

    monkeypatch.setattr(capacity, "run_step", step)
    js = tmp_path / "s.json"
    result = invoke(["streams", dynamic_onnx, "--width", 160, "--height", 120, "--fps", 5, "--max-streams", 3,
                     "--seconds", 0.5, "--warmup", 0, "--json", js])
    assert_user_error(result, "K=2: cannot open rtsp://cam2/s", "saved")
    (doc,) = json.loads(js.read_text())["results"]
    assert [s["streams"] for s in doc["steps"]] == [1] and doc["stopped_by"] == "error"
    assert "stopped by an error" in doc["headline"]


def test_streams_ctrl_c_keeps_the_steps_that_finished(dynamic_onnx, tmp_path):
    import signal
    import subprocess
    import sys

    js = tmp_path / "s.json"
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "streams", str(dynamic_onnx), "--width", "160",
                             "--height", "120", "--fps", "5", "--max-streams", "6", "--seconds", "1", "--warmup", "0",
                             "--json", str(js)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("2 stream(s)"):  # K=1 finished, K=2 is running
                break
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    (doc,) = json.loads(js.read_text())["results"]
    assert [s["streams"] for s in doc["steps"]] == [1] and doc["stopped_by"] == "signal"
    assert "stopped by Ctrl-C (SIGINT) after K=1" in doc["headline"] and "Traceback" not in err
