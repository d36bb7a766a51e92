"""The remote bench (edgekit bench http://...) against a real edgekit serve on 127.0.0.1: closed and open loop,
JSON/CSV/plot, edgekit report's destination column, and a server killed mid-bench."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

# the serve extra: without it (e.g. `pytest -m gpu tests/` on a device) this file skips, not stops collection
pytest.importorskip("starlette")
pytest.importorskip("httpx")

from helpers import assert_user_error, invoke  # noqa: E402
from serve_helpers import ROOT, Server  # noqa: E402 - imports httpx

from edgekit.report.render import COLUMNS  # noqa: E402


@pytest.fixture(scope="module")
def server(yolov8n_onnx):
    server = Server(yolov8n_onnx)
    yield server
    server.stop()


def test_closed_and_open_loop_results_and_report_destinations(server, yolov8n_onnx, tmp_path):
    out = tmp_path / "results"
    result = invoke(["bench", server.url, "--concurrency", "1,4", "--requests", "12", "--warmup", "2",
                     "--jpeg-quality", "80", "--json", out / "remote.json", "--csv", out / "remote.csv",
                     "--plot", out / "remote.png"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "remote.json").read_text())
    assert doc["kind"] == "remote-bench" and doc["destination"] == "served over loopback"
    assert [s["concurrency"] for s in doc["steps"]] == [1, 4]
    for step in doc["steps"]:
        assert step["ok"] == step["requests"] == 12 and step["status_counts"] == {"200": 12}
        assert step["throughput_fps"] > 0 and step["latency"]["p99"] >= step["latency"]["median"] > 0
        assert {"connect", "upload", "wait", "download", "json", "overhead"} <= set(step["client"])
        assert {"decode", "queue", "preprocess", "inference", "postprocess", "total"} <= set(step["server"])
        # every request's latency holds the server's whole work (send starts before, JSON ends after it)
        assert step["latency"]["min"] >= step["server"]["total"]["min"]
    assert doc["plan"]["jpeg_quality"] == 80 and "token" not in doc["plan"]
    assert (out / "remote.png").stat().st_size > 1000
    assert "served over loopback" in (out / "remote.csv").read_text()

    open_loop = invoke(["bench", server.url, "--rate", "25", "--arrivals", "poisson", "--requests", "10",
                        "--warmup", "1", "--json", out / "open.json"])
    assert open_loop.exit_code == 0, open_loop.output
    step = json.loads((out / "open.json").read_text())["steps"][0]
    assert step["mode"] == "open" and step["rate"] == 25 and step["ok"] == 10

    local = invoke(["bench", yolov8n_onnx, "--iterations", "5", "--warmup", "1", "--threads", "1",
                    "--json", out / "local.json"])
    assert local.exit_code == 0, local.output
    report = invoke(["report", out, "--markdown", tmp_path / "report.md"])
    assert report.exit_code == 0, report.output
    md = (tmp_path / "report.md").read_text()
    assert "| destination | in flight |" in md
    rows = [line for line in md.splitlines() if line.startswith("| yolov8n")]
    col = {name: i for i, name in enumerate(COLUMNS)}
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in rows]
    destinations = sorted(c[col["destination"]] + "@" + c[col["in flight"]].split(" (")[0] for c in cells)
    assert destinations == ["local engine@-", "served over loopback@1", "served over loopback@4",
                            "served over loopback@poisson 25/s"], md
    # served rows carry the server's input size and the open loop's realised rate, like the local row
    assert len({c[col["input"]] for c in cells}) == 1 and cells[0][col["input"]] != "-", md
    assert any(c[col["in flight"]].startswith("poisson 25/s (") and "/s sent)" in c[col["in flight"]]
               for c in cells), md


def test_bench_of_a_url_with_no_server_is_one_line():
    from helpers import assert_user_error
    from serve_helpers import free_port

    result = invoke(["bench", "http://127.0.0.1:%d" % free_port(), "--requests", "1"])
    assert_user_error(result, "cannot reach", "edgekit serve")


def test_wrong_token_and_bad_concurrency_are_one_line(yolov8n_onnx, monkeypatch):
    from helpers import assert_user_error

    monkeypatch.delenv("EDGEKIT_TOKEN", raising=False)
    assert_user_error(invoke(["bench", "http://127.0.0.1:1", "--concurrency", "0,4"]), "--concurrency")
    server = Server(yolov8n_onnx, token="t0k")
    try:
        assert_user_error(invoke(["bench", server.url, "--requests", "1"]), "wants a token")
        wrong = invoke(["bench", server.url, "--requests", "1", "--token", "wrong"])
        assert_user_error(wrong, "rejected the token")
        assert "wants a token" not in wrong.output
    finally:
        server.stop()


def test_server_killed_mid_bench_reports_connection_errors_and_exits_nonzero(yolov8n_onnx, tmp_path):
    server = Server(yolov8n_onnx)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    bench = subprocess.Popen([sys.executable, "-m", "edgekit", "bench", server.url, "--concurrency", "2,2",
                              "--requests", "400", "--warmup", "0", "--json", str(tmp_path / "killed.json")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while server.metrics().get("edgekit_requests_total[('code', '200'), ('route', 'detect')]", 0) < 5:
            assert time.monotonic() < deadline and bench.poll() is None, bench.stderr.read()
            time.sleep(0.1)
        server.proc.send_signal(signal.SIGKILL)
        stdout, stderr = bench.communicate(timeout=120)
    finally:
        server.stop()
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "connection errors" in errors[0] and "Traceback" not in stderr, stderr
    doc = json.loads((tmp_path / "killed.json").read_text())
    assert all(step["status_counts"].get("connection error", 0) > 0 for step in doc["steps"])
    assert doc["steps"][0]["ok"] >= 5


@pytest.mark.parametrize("args, fragment", [
    (["ftp://x", "--requests", "5"], "not ftp://"),
    (["rtsp://cam/1"], "http://HOST:PORT or https://HOST:PORT"),
    (["http://127.0.0.1:99999", "--requests", "5"], "port 99999 is out of range"),
    (["http://127.0.0.1:0"], "port 0 is out of range"),
    (["http://127.0.0.1:abc"], "port abc is not a number"),
    (["http:/127.0.0.1:8081", "--requests", "2"], "two slashes"),
    (["127.0.0.1:8081", "--no-save"], "give it as http://127.0.0.1:8081"),
    (["box.local:8080", "--no-save"], "give it as http://box.local:8080"),
    (["http://127.0.0.1:8080/v1/detect"], "no path"),
    (["http://127.0.0.1:1", "--max-error-rate", "nan"], "--max-error-rate"),
    (["http://127.0.0.1:1", "--max-error-rate", "5"], "--max-error-rate"),
    (["http://127.0.0.1:1", "--max-error-rate", "101%"], "--max-error-rate"),
    (["http://127.0.0.1:1", "--max-error-rate", "-0.1"], "--max-error-rate"),
    (["http://127.0.0.1:1", "--max-error-rate", "inf"], "--max-error-rate"),
    (["missing.onnx", "--source", "rtsp://cam/1"], "missing.onnx"),  # an option's value is not a model or URL
])
def test_bad_bench_targets_are_one_line(args, fragment):
    from helpers import assert_user_error

    result = invoke(["bench"] + args)
    assert result.exit_code == 2
    assert_user_error(result, fragment)


@pytest.mark.parametrize("text, value", [("0.05", 0.05), ("5%", 0.05), ("0", 0.0), ("1", 1.0), ("100%", 1.0),
                                         (" 12.5% ", 0.125)])
def test_max_error_rate_takes_a_fraction_or_a_percent(text, value):
    from edgekit.serve.remote_target import parse_error_rate

    assert parse_error_rate(text) == pytest.approx(value)


@pytest.fixture(scope="module")
def picky_server(yolov8n_onnx):
    """Refuses images over 10000 pixels (413): a source of one small and one large frame fails exactly half."""
    server = Server(yolov8n_onnx, "--max-pixels", "10000")
    yield server
    server.stop()


@pytest.fixture()
def half_bad_source(tmp_path):
    import cv2
    import numpy as np

    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_small.jpg"), np.full((64, 64, 3), 90, np.uint8))  # 4096 px: answered
    cv2.imwrite(str(folder / "b_large.jpg"), np.full((200, 200, 3), 90, np.uint8))  # 40000 px: 413
    return folder


@pytest.mark.parametrize("limit, failed", [(None, True), ("0.4", True), ("60%", False), ("0.5", False)])
def test_a_step_over_max_error_rate_is_marked_and_exits_2_after_saving(picky_server, half_bad_source, tmp_path,
                                                                       limit, failed):
    out = tmp_path / "res"
    args = ["bench", picky_server.url, "--concurrency", "1,2", "--requests", "10", "--warmup", "0",
            "--source", half_bad_source, "--json", out / "remote.json", "--csv", out / "remote.csv"]
    result = invoke(args + (["--max-error-rate", limit] if limit else []))
    doc = json.loads((out / "remote.json").read_text())  # saved before the exit
    for step in doc["steps"]:
        assert step["status_counts"] == {"200": 5, "413": 5} and step["error_rate"] == 0.5
        assert step["failed"] is failed
    assert [r["failed"] for r in doc["results"]] == [failed, failed]
    assert "5 (50.0%)" in result.output  # the errors cell, with the rate
    if failed:
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "--max-error-rate" in errors[0], result.output
        assert "1 in flight 50.0% (413 x5)" in errors[0] and "2 in flight" in errors[0]
        assert result.output.index("in flight") < result.output.index("error:")  # the table came first
        report = invoke(["report", out, "--markdown", tmp_path / "r.md"])
        assert report.exit_code == 0, report.output
        served = [line for line in (tmp_path / "r.md").read_text().splitlines() if "served over" in line]
        assert len(served) == 2 and all("(50% errors)" in line for line in served), served
    else:
        assert result.exit_code == 0, result.output
        assert "over --max-error-rate" not in result.output and "%) over" not in result.output


def test_open_loop_with_duration_runs_for_the_duration(server, tmp_path):
    import random

    rate, duration = 40.0, 1.0
    result = invoke(["bench", server.url, "--rate", rate, "--arrivals", "poisson", "--duration", duration,
                     "--warmup", "0", "--json", tmp_path / "open.json"])
    assert result.exit_code == 0, result.output
    step = json.loads((tmp_path / "open.json").read_text())["steps"][0]
    rng, t, expected = random.Random(0), 0.0, 0  # the plan's seed: the arrivals are the same every run
    while t < duration:
        expected += 1
        t += rng.expovariate(rate)
    assert abs(step["requests"] - expected) <= 1, (step["requests"], expected)
    assert step["sent"] == step["requests"] and step["sent_rate"] > 0
    assert "poisson 40/s (%g/s sent)" % step["sent_rate"] in result.output


def test_interrupted_remote_bench_keeps_finished_steps_and_the_partial_one(server, tmp_path, monkeypatch):
    from edgekit.serve import client

    calls, real = [0], client.one_request

    async def interrupted(*args, **kwargs):  # the 6th request meets Ctrl-C: step 1 had 3, step 2 answered 2
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt
        return await real(*args, **kwargs)

    monkeypatch.setattr(client, "one_request", interrupted)
    result = invoke(["bench", server.url, "--concurrency", "1,1,4", "--requests", "3", "--warmup", "0",
                     "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv"])
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert "stopped by Ctrl-C (SIGINT): 1 of 3 steps finished" in result.output
    assert "1 (interrupted)" in result.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [(s["requests"], s["ok"], bool(s.get("interrupted"))) for s in doc["steps"]] == [(3, 3, False),
                                                                                        (2, 2, True)]
    assert [r["interrupted"] for r in doc["results"]] == [False, True]
    assert "1 (interrupted)" in (tmp_path / "r.csv").read_text()


def test_ctrl_c_during_a_real_remote_bench_prints_the_table_and_saves(server, tmp_path):
    js = tmp_path / "remote.json"
    bench = subprocess.Popen([sys.executable, "-m", "edgekit", "bench", server.url, "--concurrency", "1,4",
                              "--requests", "100000", "--warmup", "0", "--json", str(js)],
                             env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    key = "edgekit_requests_total[('code', '200'), ('route', 'detect')]"
    try:
        start = server.metrics().get(key, 0)
        deadline = time.monotonic() + 60
        while server.metrics().get(key, 0) < start + 6:  # one frame in flight: the client holds >= 5 answers
            assert time.monotonic() < deadline and bench.poll() is None, bench.stderr.read()
            time.sleep(0.05)
        bench.send_signal(signal.SIGINT)
        stdout, stderr = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped by Ctrl-C (SIGINT): 0 of 2 steps finished" in stderr
    assert "1 (interrupted)" in stdout
    (step,) = json.loads(js.read_text())["steps"]
    assert step["interrupted"] and step["ok"] >= 5 and step["concurrency"] == 1


def test_https_to_a_plain_http_server_says_tls(tmp_path):
    """Not 'cannot reach': the server answered, in plain HTTP, and the TLS handshake is what failed."""
    import http.server
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # "code 400, bad request version" on the stderr CliRunner captures
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        result = invoke(["bench", "https://127.0.0.1:%d" % httpd.server_port, "--requests", 1, "--no-save"])
    finally:
        httpd.shutdown()
    assert_user_error(result, "TLS handshake failed", "http://127.0.0.1:%d" % httpd.server_port)
