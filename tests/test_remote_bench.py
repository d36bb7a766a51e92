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

from helpers import invoke  # noqa: E402
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
    destinations = sorted(c[col["destination"]] + "@" + c[col["in flight"]] for c in cells)
    assert destinations == ["local engine@-", "served over loopback@1", "served over loopback@25/s",
                            "served over loopback@4"], md


def test_bench_of_a_url_with_no_server_is_one_line():
    from helpers import assert_user_error
    from serve_helpers import free_port

    result = invoke(["bench", "http://127.0.0.1:%d" % free_port(), "--requests", "1"])
    assert_user_error(result, "cannot reach", "edgekit serve")


def test_wrong_token_and_bad_concurrency_are_one_line(yolov8n_onnx):
    from helpers import assert_user_error

    assert_user_error(invoke(["bench", "http://127.0.0.1:1", "--concurrency", "0,4"]), "--concurrency")
    server = Server(yolov8n_onnx, token="t0k")
    try:
        assert_user_error(invoke(["bench", server.url, "--requests", "1"]), "token")
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
