"""edgekit serve as a real process on 127.0.0.1 (ONNX Runtime): detections equal bench's pipeline, the
Roboflow format, load shedding with every request answered, dynamic batching, bad inputs, SIGTERM drain."""

import asyncio
import base64
import json
import signal
import struct
import time
import zlib

import cv2
import numpy as np
import pytest

# the serve extra: without it (e.g. `pytest -m gpu tests/` on a device) this file skips, not stops collection
httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from helpers import detection_differences  # noqa: E402
from serve_helpers import Server  # noqa: E402 - imports httpx

TOKEN = "s3cret-token"
SYNTHETIC_CONF = 0.25


def _val_images(synthetic_model, n):
    data = synthetic_model[0]
    return sorted((data.parent / "images" / "val").glob("*.jpg"))[:n]


def _local(onnx, path, conf=SYNTHETIC_CONF):
    """What edgekit bench's pipeline gives for one image: imread -> preprocess -> infer -> postprocess."""
    from edgekit.runtime import open_runner
    from edgekit.vision import postprocess, preprocess

    frame = cv2.imread(str(path))
    with open_runner(onnx, "onnxruntime", threads=1) as runner:
        blob, boxes = preprocess([frame], runner.input_hw(), dtype=runner.input_dtype)
        dets = postprocess(runner.infer(blob)[0], boxes, conf=conf, iou=0.7)[0]
    return frame, dets


def _image_with_shapes(synthetic_model):
    """The first val image on which the trained fixture finds something (which one depends on its training run)."""
    for image in _val_images(synthetic_model, 8):
        frame, dets = _local(synthetic_model[2], image)
        if len(dets):
            return image, frame, dets
    raise AssertionError("the trained fixture finds no shape on 8 val images")


def _assert_same(body, dets, near=0.0):
    """The server's detections are the pipeline's; ``near``: a box scoring within it of the threshold may be on one
    side only (a model exported at another batch size rounds differently; which boxes sit at the threshold
    depends on the fixture's training run)."""
    got = body["detections"]
    if near:
        from edgekit.vision import Detections

        theirs = Detections(np.array([d["xyxy"] for d in got], np.float32).reshape(-1, 4),
                            np.array([d["confidence"] for d in got], np.float32),
                            np.array([d["class_id"] for d in got], np.int64))
        assert detection_differences(dets, theirs, SYNTHETIC_CONF, conf_tol=near, box_atol=0.02) == []
        return
    assert len(got) == len(dets)
    order = np.argsort(-dets.confidence, kind="stable")
    for d, i in zip(sorted(got, key=lambda d: -d["confidence"]), order):
        assert d["class_id"] == int(dets.class_id[i])
        assert d["confidence"] == pytest.approx(float(dets.confidence[i]), abs=1e-3)
        assert d["xyxy"] == pytest.approx(dets.xyxy[i].tolist(), abs=0.02)


@pytest.fixture(scope="module")
def token_server(synthetic_model):
    server = Server(synthetic_model[2], "--max-body-mb", "1", "--max-pixels", "4000000", token=TOKEN)
    yield server
    server.stop()


def test_detect_equals_bench_pipeline_in_every_body_format(token_server, synthetic_model):
    image, frame, dets = _image_with_shapes(synthetic_model)
    data = image.read_bytes()

    raw = token_server.post(data)
    assert raw.status_code == 200, raw.text
    body = raw.json()
    _assert_same(body, dets)
    assert body["image"] == {"width": frame.shape[1], "height": frame.shape[0]}
    assert body["model"]["backend"] == "onnxruntime" and len(body["model"]["sha256"]) == 64
    assert {"decode", "queue", "preprocess", "inference", "postprocess", "total"} <= set(body["timings_ms"])
    assert "inference;dur=" in raw.headers["server-timing"] and "total;dur=" in raw.headers["server-timing"]
    assert body["detections"][0]["class_name"] in ("circle", "square", "triangle")

    b64 = base64.b64encode(data).decode()
    multipart = httpx.post(token_server.url + "/v1/detect", files={"file": ("x.jpg", data, "image/jpeg")},
                           headers=token_server.headers, timeout=60)
    roboflow_json = token_server.post(json.dumps({"image": {"type": "base64", "value": b64}}).encode(),
                                      "application/json")
    plain_json = token_server.post(json.dumps({"image": b64}).encode(), "application/json")
    form = token_server.post(b64.encode(), "application/x-www-form-urlencoded")  # Roboflow's hosted API
    curl_default = token_server.post(data, "application/x-www-form-urlencoded")  # curl --data-binary, no -H
    lower_scheme = token_server.post(data, headers={"Authorization": "bearer %s" % TOKEN})
    for response in (multipart, roboflow_json, plain_json, form, curl_default, lower_scheme):
        assert response.status_code == 200, response.text
        _assert_same(response.json(), dets)


def test_roboflow_format_round_trips(token_server, synthetic_model):
    data = _image_with_shapes(synthetic_model)[0].read_bytes()
    ours = token_server.post(data).json()["detections"]
    rf = token_server.post(data, params="?format=roboflow").json()
    assert len(rf["predictions"]) == len(ours) > 0
    for p, d in zip(sorted(rf["predictions"], key=lambda p: -p["confidence"]),
                    sorted(ours, key=lambda d: -d["confidence"])):
        xyxy = [p["x"] - p["width"] / 2, p["y"] - p["height"] / 2, p["x"] + p["width"] / 2, p["y"] + p["height"] / 2]
        assert xyxy == pytest.approx(d["xyxy"], abs=0.02)
        assert (p["class"], p["class_id"], p["confidence"]) == (d["class_name"], d["class_id"], d["confidence"])
    assert set(rf["image"]) == {"width", "height"} and rf["time"] > 0


def _png_header(width, height):
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg(shape=(480, 640)):
    frame = np.random.default_rng(0).integers(0, 255, shape + (3,), dtype=np.uint8)
    return cv2.imencode(".jpg", frame)[1].tobytes()


BAD = [
    # (case, request kwargs, status, fragment of the error)
    ("empty body", dict(body=b""), 400, "empty image"),
    ("garbage bytes", dict(body=b"not an image at all" * 10), 400, "cannot decode"),
    ("truncated jpeg", dict(body=_jpeg()[:5000]), 400, "truncated jpeg"),
    ("20000x20000 png header", dict(body=_png_header(20000, 20000), content_type="image/png"), 413, "pixels"),
    ("oversized body", dict(body=b"\xff" * (1024 * 1024 + 10)), 413, "max-body-mb"),
    ("wrong content type", dict(body=_jpeg(), content_type="text/plain"), 415, "unsupported content type"),
    ("bad json", dict(body=b"{nope", content_type="application/json"), 400, "not valid json"),
    ("bad query", dict(body=_jpeg(), params="?conf=2"), 400, "conf=2"),
    ("missing token", dict(body=_jpeg(), headers={"Authorization": ""}), 401, "token"),
    ("wrong token", dict(body=_jpeg(), headers={"Authorization": "Bearer nope"}), 401, "token"),
]


@pytest.mark.parametrize("case,kwargs,status,fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clear_json_error_and_the_server_goes_on(token_server, case, kwargs, status, fragment):
    kwargs = dict(kwargs)
    response = token_server.post(kwargs.pop("body"), **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment.lower() in error.lower() and "\n" not in error and "Traceback" not in error
    good = token_server.post(_jpeg())
    assert good.status_code == 200, good.text


def test_routes_probes_and_unknown_route(token_server):
    url = token_server.url
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}  # probes need no token
    assert httpx.get(url + "/readyz").status_code == 200
    assert httpx.get(url + "/v1/info").status_code == 401
    info = httpx.get(url + "/v1/info", headers=token_server.headers).json()
    assert info["model"]["name"] == "synthetic-yolov8n-160" and info["names"] and info["max_batch"] == 1
    missing = httpx.get(url + "/v2/nothing", headers=token_server.headers)
    assert missing.status_code == 404 and "no route" in missing.json()["error"]
    metrics = token_server.metrics()
    assert metrics["edgekit_rejections_total[('reason', 'unauthorized')]"] >= 1
    assert any(k.startswith("edgekit_stage_seconds_count[('stage', 'inference')]") for k in metrics)


async def _flood(url, body, total, in_flight, on_done):
    """``total`` requests, ``in_flight`` at a time; returns every status (or exception type name)."""
    statuses = []
    sem = asyncio.Semaphore(in_flight)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        async def one():
            async with sem:
                try:
                    r = await client.post(url + "/v1/detect", content=body, headers={"Content-Type": "image/jpeg"})
                    statuses.append(r.status_code)
                except httpx.HTTPError as exc:
                    statuses.append(type(exc).__name__)
                on_done(len(statuses))

        await asyncio.gather(*(one() for _ in range(total)))
    return statuses


def test_100_in_flight_every_request_answered_and_rss_flat(yolov8n_onnx):
    server = Server(yolov8n_onnx, "--max-queue", "8")
    try:
        body = _jpeg((360, 640))
        asyncio.run(_flood(server.url, body, 100, 100, lambda n: None))  # warm-up: allocations settle
        total, rss = 400, {}

        def sample(done):
            if done in (total // 4, total):
                rss[done] = server.rss_kb()

        statuses = asyncio.run(_flood(server.url, body, total, 100, sample))
        assert len(statuses) == total
        assert set(statuses) <= {200, 503}, sorted(set(map(str, statuses)))
        assert statuses.count(503) > 0 and statuses.count(200) > 0  # --max-queue 8 sheds load on purpose
        m = server.metrics()
        assert m["edgekit_rejections_total[('reason', 'queue_full')]"] >= statuses.count(503)
        assert abs(rss[total] - rss[total // 4]) <= 0.10 * rss[total // 4], rss
    finally:
        code, out = server.stop()
    assert code == 0, out


def test_dynamic_batching_batches_and_maps_results_back(synthetic_model, tmp_path):
    from edgekit.host.export import export

    b4 = export(weights=str(synthetic_model[1]), imgsz=160, batch=4, out=str(tmp_path))
    server = Server(b4, "--max-queue-delay-ms", "30")
    try:
        assert httpx.get(server.url + "/v1/info").json()["max_batch"] == 4
        images = _val_images(synthetic_model, 8)
        expected = [_local(synthetic_model[2], p)[1] for p in images]

        async def send_all():
            async with httpx.AsyncClient(timeout=120) as client:
                return await asyncio.gather(*(
                    client.post(server.url + "/v1/detect", content=p.read_bytes(),
                                headers={"Content-Type": "image/jpeg"}) for p in images * 2))

        responses = asyncio.run(send_all())
        for response, dets in zip(responses, expected * 2):
            assert response.status_code == 200, response.text
            _assert_same(response.json(), dets, near=1e-3)
        m = server.metrics()
        assert m["edgekit_batch_size_count[]"] < 16  # fewer inference calls than requests
        assert m["edgekit_batch_size_bucket[('le', '1.0')]"] < m["edgekit_batch_size_count[]"]  # some batches > 1
        assert max(r.json()["batch_size"] for r in responses) > 1
    finally:
        code, out = server.stop()
    assert code == 0, out


def test_sigterm_under_load_answers_in_flight_and_exits_0(yolov8n_onnx):
    server = Server(yolov8n_onnx)
    body = _jpeg((360, 640))
    n = 12

    async def run():
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=n), timeout=120) as client:
            tasks = [asyncio.ensure_future(client.post(server.url + "/v1/detect", content=body,
                                                       headers={"Content-Type": "image/jpeg"})) for _ in range(n)]
            deadline = time.monotonic() + 60
            while True:  # every request reached the server and some are still in flight
                m = await asyncio.to_thread(server.metrics)  # the event loop keeps sending meanwhile
                in_flight = m.get("edgekit_in_flight[]", 0)
                answered = sum(v for k, v in m.items() if k.startswith("edgekit_requests_total") and "detect" in k)
                if in_flight >= 1 and in_flight + answered >= n:
                    break
                assert time.monotonic() < deadline, "requests never all reached the server"
                await asyncio.sleep(0.01)
            server.proc.send_signal(signal.SIGTERM)
            return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        responses = asyncio.run(run())
    finally:  # a failed wait must not leave the server running after the test
        code, out = server.stop()
    assert [getattr(r, "status_code", repr(r)) for r in responses] == [200] * n
    assert code == 0, out
    assert "draining" in out and "Traceback" not in out


def test_service_installs_the_server_as_a_unit(yolov8n_onnx, tmp_path):
    import shutil
    import subprocess

    from helpers import assert_user_error, invoke

    units = tmp_path / "units"
    units.mkdir()
    token_file = tmp_path / "serve.env"
    token_file.write_text("EDGEKIT_TOKEN=abc\n")
    token_file.chmod(0o600)  # service install refuses a token file other users can read
    result = invoke(["service", "install", "--serve", "--model", yolov8n_onnx, "--host", "0.0.0.0", "--port", 8181,
                     "--token-file", token_file, "--unit-dir", units, "--", "--max-batch", "1"])
    assert result.exit_code == 0, result.output
    text = (units / "edgekit-serve.service").read_text()
    assert " serve %s --host 0.0.0.0 --port 8181 --drain-timeout 15 --max-batch 1" % yolov8n_onnx in text
    assert "EnvironmentFile=%s" % token_file in text and "abc" not in text and "Restart=on-failure" in text
    assert "Description=edgekit inference server" in text and "KillSignal=SIGTERM" in text
    if shutil.which("systemd-analyze"):
        done = subprocess.run(["systemd-analyze", "verify", str(units / "edgekit-serve.service")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert_user_error(invoke(["service", "install", "--model", yolov8n_onnx, "--unit-dir", units]), "--source")
    assert_user_error(invoke(["service", "install", "--serve", "--model", yolov8n_onnx, "--token-file",
                              tmp_path / "none.env", "--unit-dir", units]), "--token-file")


def test_serve_errors_are_one_line_before_or_after_loading(tmp_path, yolov8n_onnx):
    import os
    import subprocess
    import sys

    from serve_helpers import ROOT, free_port

    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07not a model" * 100)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cases = [([bad], "cannot load"), ([tmp_path / "none.onnx"], "not found"),
             ([yolov8n_onnx, "--max-batch", "4"], "static batch 1")]
    for args, fragment in cases:
        done = subprocess.run([sys.executable, "-m", "edgekit", "serve"] + [str(a) for a in args] +
                              ["--port", str(free_port())], env=env, capture_output=True, text=True, timeout=120)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 2 and len(errors) == 1 and fragment in errors[0], done.stderr
        assert "Traceback" not in done.stderr


def test_requests_past_timeout_answer_504(yolov8n_onnx):
    server = Server(yolov8n_onnx, "--timeout", "0.03")
    try:
        statuses = asyncio.run(_flood(server.url, _jpeg((360, 640)), 16, 16, lambda n: None))
        assert set(statuses) <= {200, 504} and statuses.count(504) > 0, statuses
        assert server.metrics()["edgekit_rejections_total[('reason', 'timeout')]"] == statuses.count(504)
    finally:
        code, out = server.stop()
    assert code == 0 and "Traceback" not in out, out


def test_server_and_remote_bench_run_without_torch(yolov8n_onnx, tmp_path):
    import os
    import subprocess
    import sys

    from serve_helpers import ROOT, free_port
    from test_device_side import BLOCKED, run_blocked

    port = free_port()
    url = "http://127.0.0.1:%d" % port
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", BLOCKED, "serve", str(yolov8n_onnx), "--port", str(port),
                             "--threads", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "slow"
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        bench = run_blocked("bench", url, "--concurrency", "2", "--requests", "4", "--warmup", "0", "--no-save")
        assert bench.returncode == 0 and "Traceback" not in bench.stderr, bench.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out  # the blocked runner asserts at exit that torch was never imported


# --- who may reach the server: token rules, bind errors, every answer counted ---------------------------------
@pytest.mark.parametrize("token, no_token, host, env, expected", [
    (None, False, "127.0.0.1", {}, None),  # loopback without a token: allowed (log says "token off")
    (None, False, "localhost", {}, None),
    (None, False, "::1", {}, None),
    ("abc", False, "0.0.0.0", {}, "abc"),
    (None, False, "0.0.0.0", {"EDGEKIT_TOKEN": "xyz"}, "xyz"),
    ("abc", False, "0.0.0.0", {"EDGEKIT_TOKEN": "xyz"}, "abc"),  # --token wins over the environment
    (None, True, "0.0.0.0", {}, None),  # --no-token: open on purpose
    (None, True, "0.0.0.0", {"EDGEKIT_TOKEN": ""}, None),
    (None, False, "0.0.0.0", {}, "error: serves the network without a token"),
    (None, False, "192.0.2.10", {}, "error: --no-token"),
    (None, False, "127.0.0.1", {"EDGEKIT_TOKEN": ""}, "error: EDGEKIT_TOKEN is set but empty"),
    (None, False, "0.0.0.0", {"EDGEKIT_TOKEN": "  "}, "error: EDGEKIT_TOKEN is set but empty"),
    ("", False, "127.0.0.1", {}, "error: --token is empty"),
    ("abc", True, "0.0.0.0", {}, "error: contradict"),
    (None, True, "0.0.0.0", {"EDGEKIT_TOKEN": "xyz"}, "error: contradicts EDGEKIT_TOKEN"),
])
def test_token_rules(token, no_token, host, env, expected):
    from edgekit.errors import EdgekitError
    from edgekit.serve.access import resolve_token

    if expected is not None and expected.startswith("error: "):
        with pytest.raises(EdgekitError, match=expected[len("error: "):].replace("$", r"\$")):
            resolve_token(token, no_token, host, env)
    else:
        assert resolve_token(token, no_token, host, env) == expected


@pytest.mark.parametrize("exc, port, fragment", [
    (OSError(98, "Address already in use"), 8080, "pick another --port"),
    (OSError(99, "Cannot assign requested address"), 8080, "check --host"),
    (OSError(13, "Permission denied"), 80, "ports below 1024 need root"),
    (OSError(13, "Permission denied"), 8080, "check --host and --port"),
])
def test_bind_error_hint_fits_the_cause(exc, port, fragment):
    import errno

    from edgekit.serve.access import bind_error

    assert exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)  # Linux numbers in the table
    assert fragment in bind_error("0.0.0.0", port, exc)


def test_serve_refusals_are_one_line_before_the_model_loads(yolov8n_onnx, monkeypatch):
    import socket

    from helpers import assert_user_error, invoke
    from serve_helpers import free_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        cases = [
            (["--host", "0.0.0.0"], {}, ("without a token", "--no-token")),
            (["--host", "0.0.0.0", "--token", ""], {}, ("--token is empty",)),
            ([], {"EDGEKIT_TOKEN": ""}, ("EDGEKIT_TOKEN is set but empty",)),
            (["--host", "999.1.1.1"], {}, ("check --host",)),
            (["--port", busy], {}, ("pick another --port",)),
        ]
        for args, env, fragments in cases:
            monkeypatch.delenv("EDGEKIT_TOKEN", raising=False)
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            port = [] if "--port" in args else ["--port", free_port()]
            result = invoke(["serve", yolov8n_onnx] + port + args)
            assert result.exit_code == 2, (args, result.output)
            assert_user_error(result, *fragments)
            if "999.1.1.1" in args:  # a bad address points at --host only
                assert "--port" not in result.output, result.output


def test_no_token_serves_the_network_on_purpose_and_every_answer_is_counted(yolov8n_onnx):
    server = Server(yolov8n_onnx, "--host", "0.0.0.0", "--no-token", "--max-body-mb", "0.01")
    try:
        assert server.post(_jpeg((64, 64))).status_code == 200
        assert server.post(b"x" * 20000).status_code == 413
        assert server.post(b"hello", content_type="text/plain").status_code == 415
        assert httpx.get(server.url + "/v2/nothing").status_code == 404
        m = server.metrics()
        for route, code in (("detect", "200"), ("detect", "413"), ("detect", "415"), ("other", "404"),
                            ("readyz", "200")):
            assert m["edgekit_requests_total[('code', '%s'), ('route', '%s')]" % (code, route)] >= 1, m
    finally:
        code, out = server.stop()
    assert code == 0 and "token off" in out and "--no-token: anyone who reaches 0.0.0.0" in out, out


def test_unauthorized_requests_are_counted_as_401(token_server):
    before = token_server.metrics().get("edgekit_requests_total[('code', '401'), ('route', 'detect')]", 0)
    assert httpx.post(token_server.url + "/v1/detect", content=b"x").status_code == 401
    assert httpx.get(token_server.url + "/v1/info", headers={"Authorization": "Bearer nope"}).status_code == 401
    m = token_server.metrics()
    assert m["edgekit_requests_total[('code', '401'), ('route', 'detect')]"] == before + 1
    assert m["edgekit_requests_total[('code', '401'), ('route', 'info')]"] >= 1
