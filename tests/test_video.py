"""Video sources, capture (newest frame, reconnect), recording on a full disk, the web stream."""

import json
import time
import urllib.request

import cv2
import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.video.capture import Capture, EndOfStream
from edgekit.video.outputs import Recorder
from edgekit.video.sources import FrameSource, SourceError, SyntheticSource, make_source
from edgekit.video.uri import SourceOptions, csi_pipeline, parse_uri
from edgekit.video.web import WebStream


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
    ],
)
def test_uri_grammar(uri, kind, location):
    spec = parse_uri(uri)
    assert (spec.kind, spec.location) == (kind, location)


@pytest.mark.parametrize("uri, fragment", [("http2://x", "unknown source scheme"), ("csi://left", "number"),
                                           ("v4l2://video0", "v4l2:///dev/videoN"), ("", "empty source")])
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
