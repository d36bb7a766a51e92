"""HTTP(S) IP cameras: MJPEG streams and JPEG snapshot URLs, from real local HTTP servers."""

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
from helpers import assert_user_error, invoke

from edgekit.video.capture import Capture
from edgekit.video.mjpeg import MjpegSource, split_credentials
from edgekit.video.web import WebStream


def jpeg(i, size=(160, 120)):
    return cv2.imencode(".jpg", np.full((size[1], size[0], 3), i * 10 % 255, np.uint8))[1].tobytes()


@pytest.fixture()
def camera_server():
    """edgekit's own --serve stream (/stream.mjpg, /snapshot.jpg), fed 50 frames a second by a thread."""
    web, stop = WebStream(0, "127.0.0.1"), threading.Event()

    def feed():
        i = 0
        while not stop.is_set():
            web.write(np.full((120, 160, 3), i % 255, np.uint8))
            i += 1
            time.sleep(0.02)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % web.port
    stop.set()
    thread.join()
    web.close()


@pytest.mark.parametrize("path", ["/stream.mjpg", "/snapshot.jpg"])
def test_camera_runs_on_an_http_camera(yolov8n_onnx, camera_server, tmp_path, path):
    rec = tmp_path / "h.avi"
    result = invoke(["camera", camera_server + path, "--model", yolov8n_onnx, "--frames", 5, "--headless",
                     "--no-save", "--engine-iters", 0, "--no-power", "--record", rec])
    assert result.exit_code == 0, result.output
    assert "5 frames in" in result.output and "stopped by --frames 5" in result.output
    assert "measured: the source does not say its rate" in result.output  # an MJPEG stream has no nominal rate


def serve(handler_body):
    """A tiny HTTP server whose GET handler is ``handler_body(handler)``; returns (server, base URL)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            handler_body(self)

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            """A client that hung up mid-stream (the reader closed) is normal for a camera: no traceback on a
            stderr that a concurrent CliRunner call may be capturing."""
            if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


def multipart(frames, lengths=True, boundary=b"myboundary"):
    """A camera's stream of ``frames`` JPEGs, then the connection closes (a camera that drops us)."""

    def body(h):
        h.send_response(200)
        h.send_header("Content-Type", "multipart/x-mixed-replace;boundary=%s" % boundary.decode())
        h.end_headers()
        for i in range(frames):
            data = jpeg(i)
            h.wfile.write(b"--" + boundary + b"\r\nContent-Type: image/jpeg\r\n")
            if lengths:
                h.wfile.write(b"Content-Length: %d\r\n" % len(data))
            h.wfile.write(b"\r\n" + data + b"\r\n")

    return body


@pytest.mark.parametrize("lengths", [True, False])
def test_stream_without_lengths_and_reconnects(lengths):
    server, base = serve(multipart(4, lengths))
    capture = Capture(MjpegSource("cam", base + "/video.mjpg"), live=False, max_backoff=0.05).start()
    try:
        frames = []
        deadline = time.time() + 30
        while len(frames) < 10 and time.time() < deadline:
            frame = capture.read(0.5)
            if frame is not None:
                frames.append(frame)
    finally:
        capture.stop()
        server.shutdown()
        server.server_close()
    assert len(frames) == 10 and frames[0].image.shape == (120, 160, 3)
    assert capture.reconnects >= 2  # 4 frames per connection: the stream was reopened, like rtsp


def test_basic_auth_and_http_errors(yolov8n_onnx):
    seen = []

    def body(h):
        seen.append(h.headers.get("Authorization"))
        if h.headers.get("Authorization") != "Basic dXNlcjpwYXNz":  # user:pass
            h.send_error(401)
            return
        multipart(2)(h)

    server, base = serve(body)
    try:
        source = MjpegSource("cam", base.replace("http://", "http://user:pass@") + "/v.mjpg")
        source.open()
        assert source.read().shape == (120, 160, 3)
        source.close()
        assert_user_error(invoke(["camera", base + "/v.mjpg", "--model", yolov8n_onnx, "--headless", "--no-save",
                                  "--no-power"]), "HTTP 401", "credentials")
    finally:
        server.shutdown()
        server.server_close()
    assert seen[0] == "Basic dXNlcjpwYXNz"


@pytest.mark.parametrize(
    "url, plain, auth",
    [("http://cam/v.mjpg", "http://cam/v.mjpg", None),
     ("https://u:p%40ss@cam:8443/v.mjpg?x=1", "https://cam:8443/v.mjpg?x=1", "Basic dTpwQHNz")],
)
def test_split_credentials(url, plain, auth):
    assert split_credentials(url) == (plain, auth)


def test_a_page_that_is_not_a_camera_is_a_clear_error(yolov8n_onnx):
    def body(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.end_headers()
        h.wfile.write(b"<html>login</html>")

    server, base = serve(body)
    try:
        assert_user_error(invoke(["camera", base + "/", "--model", yolov8n_onnx, "--headless", "--no-save",
                                  "--no-power"]), "text/html", "not an MJPEG stream")
    finally:
        server.shutdown()
        server.server_close()
