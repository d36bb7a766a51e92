"""``GET /metrics`` of ``edgekit camera --serve`` and ``edgekit serve``, scraped over HTTP from real processes, and the
fleet dashboard (jetson/grafana/edgekit-fleet.json) checked against what they expose: every panel's PromQL names
only series a scrape really has, with label values that occur. Where Prometheus is installed (apt install
prometheus), a real Prometheus runs the shipped scrape config against them and answers every panel's query."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fake_boxes import fake_orin_nano
from promql import dashboard_queries, metric_names, selectors
from serve_helpers import Server, free_port

from edgekit.manifest import sha256_file
from edgekit.runtime.identity import model_identity

parser = pytest.importorskip("prometheus_client.parser")

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "jetson" / "grafana" / "edgekit-fleet.json"
SCRAPE_CONFIG = ROOT / "jetson" / "prometheus" / "prometheus.yml"
PROMETHEUS_SERIES = {"up"}  # what Prometheus adds to every target itself
TOKEN = "metrics-test-token"

# edgekit camera reading a faked Orin Nano's sensors (tests/fake_boxes.py) instead of this machine's
ON_FAKE_BOX = textwrap.dedent("""
    import sys
    from edgekit.box import Box
    import edgekit.power.sampler as sampler
    import edgekit.power.sources as sources
    root = sys.argv.pop(1)
    sampler.Box = lambda: Box(root)
    sources.open_nvml = lambda module="pynvml": None
    from edgekit.cli import main
    sys.argv = ["edgekit"] + sys.argv[1:]
    main()
""")


# --- PromQL: the metric names an expression reads (tests/promql.py) -------------------------------------------------
@pytest.mark.parametrize("expr, names", [
    ('sum by (instance, le) (rate(edgekit_camera_stage_seconds_bucket{stage="e2e"}[$__rate_interval]))',
     {"edgekit_camera_stage_seconds_bucket"}),
    ("histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m])))", {"a_bucket"}),
    ("count(up{job=~\"$job\"} == 0) or vector(0)", {"up"}),
    ("sum(x) / on(instance) group_left sum by (instance) (y_total offset 1h) * 1e3", {"x", "y_total"}),
    ('label_replace(m{a="by (b)"}, "dst", "$1", "src", "(.*)")', {"m"}),
    ("count(count by (sha256) (edgekit_model_info))", {"edgekit_model_info"}),
])
def test_metric_names_of_promql(expr, names):
    assert metric_names(expr) == names


def test_selectors_of_promql():
    assert selectors('rate(a{stage!="e2e", job=~"$job"}[1m]) / b{x="}"}') == [
        ("a", [("stage", "!=", "e2e"), ("job", "=~", "$job")]), ("b", [("x", "=", "}")])]


# --- the processes ----------------------------------------------------------------------------------------------
class Camera:
    """``edgekit camera SOURCES --serve 0 --headless`` in a subprocess (on a faked Jetson when ``box`` is given)."""

    def __init__(self, model, sources, box=None):
        launcher = ["-c", ON_FAKE_BOX, str(box)] if box else ["-m", "edgekit"]
        cmd = [sys.executable, *launcher, "camera", *sources, "--model", str(model), "--headless", "--serve", "0",
               "--host", "127.0.0.1", "--engine-iters", "0", "--threads", "1", "--no-save"]
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.lines = []
        port = None
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()
        if port is None:
            self.stop()
            raise AssertionError("camera did not announce its web address:\n" + "".join(self.lines))
        self.url = "http://127.0.0.1:%d" % port
        self.port = port

    def stats(self):
        return json.loads(urllib.request.urlopen(self.url + "/stats.json", timeout=5).read())

    def wait_frames(self, n, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.stats().get("frames") or 0) >= n:
                return
            time.sleep(0.2)
        raise AssertionError("fewer than %d frames after %.0f s:\n%s" % (n, timeout, "".join(self.lines)))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def scrape(url, headers=None):
    """{sample name: [(labels, value)]} of one GET /metrics, parsed by prometheus_client's parser."""
    response = httpx.get(url + "/metrics", headers=headers or {}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def parse(text):
    samples = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def value(samples, name, **labels):
    found = [v for lab, v in samples.get(name, []) if all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, "%s%s: %s" % (name, labels, samples.get(name))
    return found[0]


@pytest.fixture(scope="module")
def model(synthetic_model):
    return synthetic_model[2]


@pytest.fixture(scope="module")
def dynamic_model(synthetic_model, tmp_path_factory):
    from edgekit.host.export import export

    return export(weights=str(synthetic_model[1]), imgsz=160, dynamic=True, out=str(tmp_path_factory.mktemp("dyn")))


def running(cam):
    """A started camera once its first frames are out; stopped when the fixture ends, or when it never got there."""
    try:
        cam.wait_frames(3)
        yield cam
    finally:
        cam.stop()


@pytest.fixture(scope="module")
def camera(model):
    yield from running(Camera(model, ["synthetic://?width=320&height=240&fps=10"]))


@pytest.fixture(scope="module")
def multi_camera(dynamic_model, tmp_path_factory):
    box = fake_orin_nano(tmp_path_factory.mktemp("orin"))
    yield from running(Camera(dynamic_model, ["synthetic://?width=320&height=240&fps=8&seed=%d" % i for i in (1, 2)],
                              box=box))


@pytest.fixture(scope="module")
def server(model):
    srv = Server(model, token=TOKEN)
    try:
        from PIL import Image

        jpeg = io.BytesIO()
        Image.new("RGB", (64, 48), (90, 120, 30)).save(jpeg, "JPEG")
        for _ in range(3):
            assert srv.post(jpeg.getvalue()).status_code == 200
        assert srv.post(b"not an image").status_code == 400  # a rejection, so edgekit_rejections_total has a series
        yield srv
    finally:
        srv.stop()


# --- camera -------------------------------------------------------------------------------------------------------
def check_histograms(samples, name):
    """Cumulative buckets that never go down, +Inf equal to _count, for every label set."""
    series = {}
    for labels, v in samples[name + "_bucket"]:
        key = tuple(sorted((k, w) for k, w in labels.items() if k != "le"))
        series.setdefault(key, []).append((float(labels["le"]), v))
    for key, buckets in series.items():
        counts = [v for _, v in sorted(buckets)]
        assert counts == sorted(counts), key
        assert counts[-1] == value(samples, name + "_count", **dict(key)), key
    return {dict(key)["stage"]: dict(key) for key in series}


def test_camera_stats_json_names_the_model_file(camera, model):
    stats = camera.stats()
    assert stats["model"] == {"sha256": sha256_file(model), "name": "synthetic-yolov8n-160", "version": None,
                              "path": str(Path(os.path.realpath(str(Path(model).parent))) / Path(model).name),
                              "precision": "fp32", "backend": "onnxruntime"}
    assert stats["label"].startswith("synthetic-yolov8n-160 fp32 onnxruntime")  # the page's model line


def test_camera_metrics_single_source(camera, model):
    first = scrape(camera.url)
    camera.wait_frames(value(first, "edgekit_camera_frames_total", stream="0") + 5)
    second = scrape(camera.url)
    frames = value(second, "edgekit_camera_frames_total", stream="0")
    assert frames >= value(first, "edgekit_camera_frames_total", stream="0") + 5
    assert 0 < value(second, "edgekit_camera_fps", stream="0") < 30
    for name in ("dropped_frames", "reconnects", "stalls"):
        assert value(second, "edgekit_camera_%s_total" % name, stream="0") >= 0
    stages = check_histograms(second, "edgekit_camera_stage_seconds")
    assert {"capture_wait", "preprocess", "inference", "postprocess", "draw", "output", "e2e"} <= set(stages)
    assert {s["stream"] for s in stages.values()} == {"0"}
    # every frame is in e2e once (a scrape may land between its numbers and the frame count)
    assert abs(value(second, "edgekit_camera_stage_seconds_count", stream="0", stage="e2e") - frames) <= 1
    assert 0 < value(second, "edgekit_camera_stage_seconds_sum", stream="0", stage="inference") < frames
    (labels, one), = second["edgekit_model_info"]
    assert one == 1 and labels == {"sha256": sha256_file(model), "name": "synthetic-yolov8n-160", "version": "",
                                   "precision": "fp32", "backend": "onnxruntime"}


def test_camera_metrics_several_sources_on_a_jetson(multi_camera):
    samples = scrape(multi_camera.url)
    multi_camera.wait_frames(multi_camera.stats()["frames"] + 4)
    later = scrape(multi_camera.url)
    for stream in ("0", "1"):
        assert value(later, "edgekit_camera_frames_total", stream=stream) > \
            value(samples, "edgekit_camera_frames_total", stream=stream)
    stages = {}
    for labels, _ in later["edgekit_camera_stage_seconds_count"]:
        stages.setdefault(labels["stream"], set()).add(labels["stage"])
    check_histograms(later, "edgekit_camera_stage_seconds")
    assert {"e2e", "draw", "output", "mux_wait"} <= stages["0"] and stages["0"] == stages["1"]
    assert {"preprocess", "inference", "postprocess"} <= stages["all"] and not stages["all"] & stages["0"]
    # the faked Orin Nano's INA3221: VDD_IN 5.000 V x 3.264 A, and its thermal zones
    assert value(later, "edgekit_power_watts", rail="total") == pytest.approx(16.32)
    assert value(later, "edgekit_power_watts", rail="VDD_SOC") == pytest.approx(3.12)
    assert value(later, "edgekit_temperature_celsius", zone="gpu") == pytest.approx(58.625)


def test_camera_metrics_without_prometheus_client_says_how_to_install(monkeypatch):
    import importlib

    from edgekit.camera import metrics
    from edgekit.video.web import WebStream

    real = importlib.import_module

    def no_prometheus(name, *args):
        if name.startswith("prometheus_client"):
            raise ImportError("No module named %r" % name)
        return real(name, *args)

    monkeypatch.setattr(metrics.importlib, "import_module", no_prometheus)
    web = WebStream(0)
    try:
        metrics.attach(web, {"sha256": "ab" * 32, "name": "m"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen("http://127.0.0.1:%d/metrics" % web.port, timeout=5)
        assert err.value.code == 501
        assert "pip install 'edgekit[metrics]'" in json.loads(err.value.read())["error"]
        assert json.loads(web.stats_json())["model"]["sha256"] == "ab" * 32
    finally:
        web.close()


def test_histograms_fold_every_frame_while_the_loop_runs():
    """Scrapes read the loop's samples while it appends, with no lock: every frame is counted once, in its
    bucket; a warm-up's reset (a new StageStats) keeps the counters going up."""
    import prometheus_client

    from edgekit.camera.metrics import CameraMetrics
    from edgekit.camera.stats import RollingRate, StageStats

    frames = 40000
    # a window holding every frame: this feeder adds frames far faster than a camera, and a real loop's 10000 only
    # bound what a scrape can fold (10000 frames since the last scrape: 5 minutes at 30 FPS)
    loop = SimpleNamespace(rate=RollingRate(), processed=0, stalls=0, stats=StageStats(window=frames),
                           capture=SimpleNamespace(dropped=0, reconnects=0))
    metrics = CameraMetrics(prometheus_client, {"sha256": "ab" * 32})
    metrics.watch(loop)
    ms = (0.3, 3.0, 30.0, 3000.0)  # one per bucket: <= 0.5 ms, 5 ms, 50 ms, 5 s

    def run():
        for i in range(frames):
            loop.stats.add({"inference": ms[i % 4]})
            loop.processed += 1

    feeder = threading.Thread(target=run)
    feeder.start()
    scrapes = 0
    while feeder.is_alive():
        assert parse(metrics.exposition().decode())["edgekit_camera_frames_total"]
        scrapes += 1
    feeder.join()
    samples = parse(metrics.exposition().decode())
    assert scrapes > 3
    assert value(samples, "edgekit_camera_stage_seconds_count", stream="0", stage="inference") == frames
    buckets = {lab["le"]: v for lab, v in samples["edgekit_camera_stage_seconds_bucket"]}
    for le, want in (("0.0005", 1), ("0.005", 2), ("0.05", 3), ("5.0", 4), ("+Inf", 4)):
        # a scrape between a sample and its count may take the next frame's value for one frame's
        assert abs(buckets[le] - want * frames / 4) <= scrapes, (le, buckets[le])
    loop.stats, loop.processed = StageStats(), 0  # a multi-source warm-up ends: the loop's numbers start again
    loop.stats.add({"inference": 3.0})
    loop.processed = 1
    later = parse(metrics.exposition().decode())
    assert value(later, "edgekit_camera_stage_seconds_count", stream="0", stage="inference") == frames + 1
    assert value(later, "edgekit_camera_frames_total", stream="0") == frames + 1


def test_identity_of_a_store_run_names_the_added_onnx(tmp_path):
    """A model run from the on-box store: named and versioned by its store entry, its run folder resolved."""
    run = tmp_path / "store" / "models" / ("c" * 64) / "runs" / "trt-fp16-0123456789ab"
    run.mkdir(parents=True)
    (run / "model.engine").write_bytes(b"engine bytes")
    (run / "run.json").write_text(json.dumps({"precision": "fp16", "backend": "tensorrt"}))
    (run.parent.parent / "entry.json").write_text(json.dumps({"name": "yolov8s.onnx", "version": "2024-06-01"}))
    (tmp_path / "store" / "current").symlink_to(Path("models") / ("c" * 64) / "runs" / run.name)
    got = model_identity(tmp_path / "store" / "current" / "model.engine")
    assert got == {"sha256": sha256_file(run / "model.engine"), "name": "yolov8s", "version": "2024-06-01",
                   "path": str(run.resolve() / "model.engine"), "precision": "fp16", "backend": "tensorrt"}


# --- serve --------------------------------------------------------------------------------------------------------
def test_serve_readyz_and_model_info_name_the_model_file(server, model):
    ready = httpx.get(server.url + "/readyz", timeout=10).json()  # open: no token
    assert ready["status"] == "ready" and ready["model"]["sha256"] == sha256_file(model)
    assert ready["model"]["name"] == "synthetic-yolov8n-160" and ready["model"]["path"].endswith(Path(model).name)
    samples = scrape(server.url, server.headers)
    (labels, one), = samples["edgekit_model_info"]
    assert one == 1 and labels["sha256"] == sha256_file(model) and labels["backend"] == "onnxruntime"
    assert server.get("/v1/info").json()["model"]["sha256"] == sha256_file(model)


# --- the dashboard ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exposed(camera, multi_camera, server):
    """Every sample name with the label values seen, over the three scrapes."""
    seen = {}
    for samples in (scrape(camera.url), scrape(multi_camera.url), scrape(server.url, server.headers)):
        for name, series in samples.items():
            labels = seen.setdefault(name, {})
            for lab, _ in series:
                for k, v in lab.items():
                    labels.setdefault(k, set()).add(v)
    return seen


def test_dashboard_queries_name_only_exposed_series(exposed):
    doc = json.loads(DASHBOARD.read_text())
    assert {v["name"] for v in doc["templating"]["list"]} >= {"datasource", "job", "instance"}
    queries = dashboard_queries(doc)
    assert len(queries) >= 20
    used = set()
    for title, expr in queries:
        names = metric_names(expr)
        assert names, (title, expr)
        unknown = names - set(exposed) - PROMETHEUS_SERIES
        assert not unknown, "%s: %s names %s, which no scrape exposes" % (title, expr, sorted(unknown))
        used |= names
        for metric, matchers in selectors(expr):
            for label, op, want in matchers:
                if metric in PROMETHEUS_SERIES or label in ("job", "instance"):
                    continue
                values = exposed[metric].get(label)
                assert values, "%s: %s has no label %s" % (title, metric, label)
                if op == "=":
                    assert want in values, "%s: %s{%s=%r} never occurs (%s)" % (title, metric, label, want, values)
                elif op == "=~":
                    assert any(re.fullmatch(want, v) for v in values), (title, metric, label, want, values)
    # the camera and serve both have their panels, the model info and power among them
    for needed in ("edgekit_camera_frames_total", "edgekit_camera_stage_seconds_bucket", "edgekit_model_info",
                   "edgekit_power_watts", "edgekit_requests_total", "edgekit_stage_seconds_bucket",
                   "edgekit_rejections_total", "edgekit_camera_dropped_frames_total",
                   "edgekit_camera_reconnects_total"):
        assert needed in used, needed


def test_dashboard_layout():
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)) and doc["uid"] == "edgekit-fleet"
    for panel in doc["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert all('instance=~"$instance"' in t["expr"] or "edgekit" not in t["expr"] for t in panel["targets"])


# --- a real Prometheus ----------------------------------------------------------------------------------------------
def prometheus_config(tmp_path, cameras, server):
    """The shipped scrape config, pointed at the test's processes (1 s scrapes, the token in a file)."""
    import yaml

    doc = yaml.safe_load(SCRAPE_CONFIG.read_text())
    doc["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    token = tmp_path / "token"
    token.write_text(TOKEN)
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    assert set(jobs) == {"edgekit-camera", "edgekit-serve"}
    for job in jobs.values():
        job.pop("file_sd_configs", None)
    jobs["edgekit-camera"]["static_configs"] = [{"targets": ["127.0.0.1:%d" % c.port for c in cameras]}]
    jobs["edgekit-serve"]["static_configs"] = [{"targets": [server.url.split("//")[1]]}]
    jobs["edgekit-serve"]["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.skipif(not shutil.which("prometheus") and not os.environ.get("CI"),
                    reason="Prometheus not installed (apt install prometheus)")
def test_prometheus_scrapes_the_fleet_and_answers_every_panel(camera, multi_camera, server, tmp_path):
    config = prometheus_config(tmp_path, [camera, multi_camera], server)
    port = free_port()
    proc = subprocess.Popen(["prometheus", "--config.file=%s" % config, "--storage.tsdb.path=%s" % (tmp_path / "db"),
                             "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    api = "http://127.0.0.1:%d/api/v1/query" % port
    queries = [(title, expr.replace("$job", ".*").replace("$instance", ".*").replace("$__rate_interval", "10s"))
               for title, expr in dashboard_queries(json.loads(DASHBOARD.read_text()))]
    try:
        deadline = time.monotonic() + 60
        empty = queries
        while empty and time.monotonic() < deadline:
            time.sleep(2)
            server.post(b"not an image")  # keep serve's counters moving
            answers = {}
            for title, expr in empty:
                try:
                    body = httpx.get(api, params={"query": expr}, timeout=10).json()
                except (httpx.HTTPError, ValueError):  # not listening yet
                    answers[title] = None
                    continue
                assert body["status"] == "success", (title, expr, body)
                answers[title] = body["data"]["result"]
            empty = [(t, e) for t, e in empty if not answers.get(t)]
        assert not empty, "no data for %s" % [t for t, _ in empty]
        targets = httpx.get(api.replace("query", "targets"), timeout=10).json()["data"]["activeTargets"]
        assert sorted((t["labels"]["job"], t["health"]) for t in targets) == [
            ("edgekit-camera", "up"), ("edgekit-camera", "up"), ("edgekit-serve", "up")]
        models = httpx.get(api, params={"query": "count by (sha256) (edgekit_model_info)"}, timeout=10).json()
        assert len(models["data"]["result"]) == 2  # the static ONNX (camera, serve) and the dynamic one
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
