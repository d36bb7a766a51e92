"""Video sources, capture (newest frame, reconnect), recording on a full disk, the web stream."""

import errno
import json
import os
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from edgekit.camera.stats import JsonlLog
from edgekit.errors import EdgekitError
from edgekit.video.capture import Capture, EndOfStream
from edgekit.video.outputs import Recorder, writer_rate
from edgekit.video.sources import FrameSource, ImagesSource, SourceError, SyntheticSource, make_source
from edgekit.video.uri import SourceOptions, csi_pipeline, parse_uri
from edgekit.video.web import WebStream
from edgekit.vision.quiet import filtered_stderr


@pytest.mark.parametrize(
    "uri, kind, location",
    [
        ("csi://0", "csi", "0"),
        ("csi://1", "csi", "1"),
        ("/dev/video0", "v4l2", "/dev/video0"),
        ("v4l2:///dev/video2", "v4l2", "/dev/video2"),
        ("rtsp://user:pass@10.0.0.5:554/live", "rtsp", "rtsp://user:pass@10.0.0.5:554/live"),
        ("file://clip.mp4", "file", "clip.mp4"),
        ("file:///data/clip.mp4", "file", "/data/clip.mp4"),
        ("clips/street.mp4", "file", "clips/street.mp4"),
        ("synthetic://?width=320&height=240", "synthetic", ""),
        ("http://192.168.1.20:8080/video.mjpg", "http", "http://192.168.1.20:8080/video.mjpg"),
        ("https://user:pw@cam.local/mjpg/video.mjpg?resolution=640x480", "http",
         "https://user:pw@cam.local/mjpg/video.mjpg?resolution=640x480"),
    ],
)
def test_uri_grammar(uri, kind, location):
    spec = parse_uri(uri)
    assert (spec.kind, spec.location) == (kind, location)


@pytest.mark.parametrize("uri, fragment", [("http2://x", "unknown source scheme"), ("csi://left", "number"),
                                           ("v4l2://video0", "v4l2:///dev/videoN"), ("", "empty source"),
                                           ("ftp://x", "http://, https://"), ("http:///x.mjpg", "HOST")])
def test_bad_uris(uri, fragment):
    with pytest.raises(EdgekitError, match=fragment):
        parse_uri(uri)


def test_csi_pipeline_keeps_only_newest_frame():
    p = csi_pipeline("0", SourceOptions(width=1920, height=1080, fps=30, flip=2))
    assert p.startswith("nvarguscamerasrc sensor-id=0 ")
    assert "width=1920, height=1080, framerate=30/1" in p and "flip-method=2" in p
    assert p.endswith("appsink drop=true max-buffers=1 sync=false")


def test_csi_without_gstreamer_says_what_to_do(monkeypatch):
    monkeypatch.setattr("edgekit.video.sources.has_gstreamer", lambda: False)
    with pytest.raises(SourceError, match="GStreamer"):
        make_source(parse_uri("csi://0"), SourceOptions())


def test_missing_v4l2_camera_is_a_clear_error():
    capture = Capture(make_source(parse_uri("/dev/video99"), SourceOptions()), live=True)
    with pytest.raises(EdgekitError, match="cannot open /dev/video99: check that the camera is plugged in"):
        capture.open()


class FlakySource(FrameSource):
    """Delivers ``good`` frames, then fails; the next ``refuse`` reopen attempts fail too."""

    def __init__(self, good=5, refuse=2, shape=(48, 64, 3)):
        super().__init__("flaky://test", 100.0)
        self.good, self.refuse, self.shape = good, refuse, shape
        self.opens = 0
        self.left = 0

    def open(self):
        super().open()
        self.opens += 1
        if 1 < self.opens <= 1 + self.refuse:
            raise SourceError("flaky://test refused")
        self.left = self.good

    def read(self):
        time.sleep(0.005)
        if self.left <= 0:
            return None  # a failure (not an end: ended stays False)
        self.left -= 1
        return np.full(self.shape, self.left, np.uint8)


def take(capture, n, timeout=10.0):
    frames, deadline = [], time.time() + timeout
    while len(frames) < n and time.time() < deadline:
        frame = capture.read(0.5)
        if frame is not None:
            frames.append(frame)
    return frames


def test_capture_reopens_a_failing_source_with_backoff():
    source = FlakySource(good=5, refuse=2)
    capture = Capture(source, live=False).start()
    try:
        frames = take(capture, 12)
    finally:
        capture.stop()
    assert len(frames) == 12
    assert capture.failures >= 2 and capture.reconnects >= 2
    assert any("reopen failed" in e for e in capture.events) and any("reopened" in e for e in capture.events)


def test_live_capture_hands_newest_frame_and_counts_drops():
    capture = Capture(SyntheticSource(64, 48, fps=200), live=True).start()
    try:
        first = take(capture, 1)[0]
        time.sleep(0.2)  # the consumer is slow: frames pile up at the source, not in a queue
        second = take(capture, 1)[0]
    finally:
        capture.stop()
    assert second.index - first.index > 5
    assert capture.dropped >= second.index - first.index - 2


def test_file_capture_is_lossless_and_ends(tmp_path):
    video = write_video(tmp_path / "clip.avi", 9)
    capture = Capture(make_source(parse_uri(str(video)), SourceOptions()), live=False).start()
    frames = take(capture, 9)
    with pytest.raises(EndOfStream):
        for _ in range(20):
            capture.read(0.5)
    capture.stop()
    assert [f.index for f in frames] == list(range(9)) and capture.dropped == 0


def test_bad_and_odd_frames():
    class Odd(FlakySource):
        def read(self):
            self.left -= 1
            return [np.zeros((30, 40), np.uint8), np.zeros((30, 40, 4), np.uint8),
                    np.zeros((30, 40, 3), np.float32), np.zeros((50, 20, 3), np.uint8)][self.left % 4]

    capture = Capture(Odd(good=1000), live=False).start()
    frames = take(capture, 6)
    capture.stop()
    assert all(f.image.ndim == 3 and f.image.shape[2] == 3 and f.image.dtype == np.uint8 for f in frames)
    assert capture.bad_frames >= 1


def write_video(path, n, size=(160, 120)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), i * 20 % 255, np.uint8))
    writer.release()
    return path


def test_recording_stops_cleanly_on_full_disk(tmp_path):
    free = {"mb": 10_000.0}
    events = []
    rec = Recorder(tmp_path / "out.mp4", 10, min_free_mb=100, free_mb=lambda _: free["mb"], on_event=events.append)
    rec.check_every = 5
    frame = np.zeros((120, 160, 3), np.uint8)
    for i in range(20):
        if i == 10:
            free["mb"] = 1.0  # the disk fills up
        rec.write(frame)
    rec.close()
    assert rec.frames == 10 and "MB free" in rec.stopped_reason and events
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 10  # finalized, playable
    cap.release()


def test_recorder_resizes_frames_of_another_size(tmp_path):
    rec = Recorder(tmp_path / "out.avi", 10)
    rec.write(np.zeros((120, 160, 3), np.uint8))
    rec.write(np.zeros((240, 100, 3), np.uint8))
    rec.close()
    cap = cv2.VideoCapture(str(tmp_path / "out.avi"))
    ok, frame = cap.read()
    assert ok and frame.shape == (120, 160, 3)


def test_web_stream_serves_page_stats_snapshot_and_mjpeg():
    web = WebStream(0, "127.0.0.1")
    base = "http://127.0.0.1:%d" % web.port
    try:
        assert b"edgekit camera" in urllib.request.urlopen(base + "/", timeout=5).read()
        web.update_stats({"fps": 12.5, "frames": 3})
        assert json.loads(urllib.request.urlopen(base + "/stats.json", timeout=5).read())["fps"] == 12.5
        frame = np.zeros((48, 64, 3), np.uint8)
        web.write(frame)
        jpeg = urllib.request.urlopen(base + "/snapshot.jpg", timeout=5).read()
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)
        stream = urllib.request.urlopen(base + "/stream.mjpg", timeout=5)
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        web.write(frame)
        assert stream.read(7) == b"--frame"
        stream.close()
    finally:
        web.close()


def test_port_in_use_is_a_user_error():
    web = WebStream(0, "127.0.0.1")
    try:
        with pytest.raises(EdgekitError, match="port %d is in use" % web.port):
            WebStream(web.port, "127.0.0.1")
    finally:
        web.close()


class Clock:
    """A fake clock: ``step`` seconds per call."""

    def __init__(self, step):
        self.t, self.step = 0.0, step

    def __call__(self):
        self.t += self.step
        return self.t


def read_back(path):
    cap = cv2.VideoCapture(str(path))
    fps, n = cap.get(cv2.CAP_PROP_FPS), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return fps, n


@pytest.mark.parametrize(
    "fps, indices, written, repeated, file_fps",
    [
        (10.0, range(6), 6, 0, 10.0),  # a file at its rate: every frame once
        (15.0, [0, 1, 4, 5], 6, 2, 15.0),  # a live source: 2 and 3 were dropped, 1 holds their time
        (None, range(0, 40, 2), 39, 19, 20.0),  # measured: 0.1 s per loop frame, every 2nd source frame
    ],
)
def test_recording_plays_at_the_source_rate(tmp_path, fps, indices, written, repeated, file_fps):
    rec = Recorder(tmp_path / "out.avi", fps, "test", clock=Clock(0.1))
    for i in indices:
        rec.write(np.full((48, 64, 3), i * 5 % 255, np.uint8), i)
    rec.close()
    assert (rec.frames, rec.repeated, rec.fps) == (written, repeated, pytest.approx(file_fps))
    assert read_back(tmp_path / "out.avi") == (pytest.approx(file_fps, rel=0.01), written)
    assert rec.describe().startswith("wrote %s (%d frames at %.1f FPS" % (tmp_path / "out.avi", written, file_fps))


def test_measured_rate_keeps_real_time_when_the_loop_slows_down(tmp_path):
    """An uncapped source's rate is measured over the first frames, before the writer's own cost slows the loop:
    later frames keep to the clock (repeats fill the gaps), so the file lasts as long as the run."""
    times = iter([0.01 * i for i in range(90)] + [0.89 + 0.02 * j for j in range(1, 51)])
    rec = Recorder(tmp_path / "out.avi", None, clock=lambda: next(times))
    for i in range(140):
        rec.write(np.full((48, 64, 3), i % 255, np.uint8), i)
    rec.close()
    assert rec.fps == pytest.approx(100.0) and rec.repeated > 40
    fps, n = read_back(tmp_path / "out.avi")
    assert n == rec.frames and n / fps == pytest.approx(1.89, abs=0.02)  # the run's 1.89 s of wall time


@pytest.mark.parametrize("fps, rate", [(141.843, 141.84), (100.123, 100.12), (29.97, 29.97), (23.976, 23.976),
                                       (1000 / 7, 142.86), (999.9999, 1000.0), (0.5, 0.5)])
def test_writer_rate_fits_mpeg4(tmp_path, fps, rate):
    """FFmpeg's MPEG-4 writer refuses a rate whose thousandths reduce to a numerator over 65535 (141.843 FPS)."""
    assert writer_rate(fps) == pytest.approx(rate)
    writer = cv2.VideoWriter(str(tmp_path / "r.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), writer_rate(fps), (64, 48))
    assert writer.isOpened()
    writer.release()


def test_recording_that_never_starts_says_no_file(tmp_path):
    events = []
    rec = Recorder(tmp_path / "r.mp4", 10, free_mb=lambda _: 1.0, on_event=events.append)
    rec.write(np.zeros((48, 64, 3), np.uint8))
    rec.close()
    assert rec.frames == 0 and not (tmp_path / "r.mp4").exists()
    assert "no file was written" in events[0] and "finalized" not in events[0]
    assert not rec.describe().startswith("wrote")


def test_recording_the_writer_lost_is_not_claimed(tmp_path, monkeypatch):
    class LostWriter:  # a writer that fails silently, as cv2.VideoWriter does on a full disk
        def __init__(self, *args):
            pass

        def isOpened(self):  # noqa: N802 (OpenCV's naming)
            return True

        def write(self, frame):
            pass

        def release(self):
            pass

    monkeypatch.setattr("edgekit.video.outputs.cv2.VideoWriter", LostWriter)
    rec = Recorder(tmp_path / "r.mp4", 10)
    rec.write(np.zeros((48, 64, 3), np.uint8))
    rec.close()
    assert "could not be written" in rec.failed and rec.describe() == rec.failed


class FullDisk:
    """A file whose writes fail with ENOSPC after ``good`` of them (the last one half written)."""

    def __init__(self, path, good):
        self.file, self.good = open(path, "w"), good

    def write(self, text):
        if self.good <= 0:
            self.file.write(text[: len(text) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.good -= 1
        return self.file.write(text)

    def flush(self):
        self.file.flush()

    def fileno(self):
        return self.file.fileno()

    def close(self):
        self.file.close()


def full_disk_open(good):
    """An ``open`` for edgekit.camera.stats: the frame log (.jsonl) is on a full disk, other files are not."""
    import builtins

    return lambda path, *a, **k: FullDisk(path, good) if str(path).endswith(".jsonl") else builtins.open(path, *a, **k)


@pytest.mark.parametrize("good", [0, 3])
def test_frame_log_on_a_full_disk_stops_with_one_warning(tmp_path, monkeypatch, good):
    monkeypatch.setattr("edgekit.camera.stats.open", full_disk_open(good), raising=False)
    events, path = [], tmp_path / "f.jsonl"
    log = JsonlLog(str(path), on_event=events.append)
    for i in range(6):
        log.write({"frame": i + 1})
    log.close()
    assert len(events) == 1 and "No space left" in events[0] and "goes on" in events[0]
    assert "No space left on device after %d frames" % good in log.failed
    if good:  # whole lines only
        assert [json.loads(line)["frame"] for line in path.read_text().splitlines()] == [1, 2, 3]
    else:
        assert not path.exists()  # no empty log left behind


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_web_stream_answers_other_methods_with_405(method):
    web = WebStream(0, "127.0.0.1")
    try:
        request = urllib.request.Request("http://127.0.0.1:%d/stats.json" % web.port, data=b"{}", method=method)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 405 and info.value.headers["Allow"] == "GET, HEAD"
        assert info.value.headers["Content-Type"] == "application/json"
        assert "not allowed" in json.loads(info.value.read())["error"]
        head = urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d/stats.json" % web.port, method="HEAD"), timeout=5)
        assert head.status == 200 and head.read() == b""
    finally:
        web.close()


def test_filtered_stderr_drops_library_noise_only(capfd):
    with filtered_stderr():
        os.write(2, b"Premature end of JPEG file\n[mov,mp4,m4a @ 0x55d0c0ffee00] moov atom not found\n"
                    b"[ WARN:0@0.090] global cap.cpp:212 open VIDEOIO(V4L2): ...\nanother thread's line\n")
    assert capfd.readouterr().err == "another thread's line\n"


@pytest.mark.parametrize(
    "make, rate",
    [
        (lambda tmp: SyntheticSource(64, 48, fps=15), (15.0, "the source's rate")),
        (lambda tmp: SyntheticSource(64, 48, fps=0), (None, "measured: synthetic fps=0 has no rate of its own")),
        (lambda tmp: make_source(parse_uri(str(write_video(tmp / "c.avi", 3))), SourceOptions()),
         (10.0, "the file's rate")),
        (lambda tmp: ImagesSource(tmp, 7.0, False), (7.0, "--fps: images have no frame rate")),
        (lambda tmp: FlakySource(), (100.0, "the source's nominal rate")),
    ],
)
def test_frame_rate_says_where_it_comes_from(tmp_path, make, rate):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    source = make(tmp_path)
    source.open()
    try:
        assert source.frame_rate() == rate
    finally:
        source.close()


def test_a_paced_source_opened_early_does_not_burst():
    """The engine runs between open and the first read: a camera does not queue the frames it would have sent,
    so the first frames still come one period apart (a burst made a 5 FPS source look like 15 FPS)."""
    from edgekit.video.sources import SyntheticSource

    source = SyntheticSource(64, 48, fps=10)
    source.open()
    time.sleep(0.35)  # the engine-only runs
    times = []
    for _ in range(3):
        source.read()
        times.append(time.perf_counter())
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.09
