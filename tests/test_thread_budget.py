"""ONNX Runtime's thread plan: the policy table, the runner's session options, and where the choice is shown."""

import json
import os

import pytest
from helpers import assert_user_error, invoke

from edgekit.errors import EdgekitError
from edgekit.runtime import ThreadPlan, open_runner, ort_threading
from edgekit.runtime.threads import (
    SPIN_ENV,
    background_load,
    capture_load,
    cpu_cores,
    spin_entries,
    spinning_override,
)

SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


@pytest.mark.parametrize("purpose, cores, intra, extra, background, threads, spinning, reason", [
    # bench: inference alone, whatever else the machine runs
    ("bench", 2, None, 0, 0.0, 2, True, "bench: inference alone"),
    ("bench", 6, None, 0, 3.0, 6, True, "bench: inference alone"),
    ("bench", 12, 4, 0, 0.0, 4, True, "bench: inference alone"),
    ("bench", 2, 4, 0, 0.0, 4, False, "bench: 4 threads on 2 cores"),  # more threads than cores: never spin
    # camera/serve: the loop's own stages wait for inference and do not count; busy work does
    ("camera", 2, None, 0, 0.0, 2, True, "camera: nothing else busy on 2 cores"),
    ("camera", 2, None, 0.3, 0.0, 2, True, "camera: 2 threads + 0.3 cores busy (0.3 of its own) fit 2 cores"),
    ("camera", 2, None, 0.6, 0.0, 2, False, "camera: 2 threads + 0.6 cores busy (0.6 of its own) exceed 2 cores"),
    ("camera", 2, None, 0, 1.0, 2, False, "(1.0 of other processes) exceed 2 cores"),
    ("camera", 2, None, 0, 0.2, 2, True, "camera: nothing else busy on 2 cores"),  # a short look's noise
    ("camera", 2, 1, 1.0, 0.0, 1, True, "camera: 1 thread + 1.0 cores busy (1.0 of its own) fit 2 cores"),
    ("camera", 6, None, 4 * 0.3, 0.0, 6, False, "(1.2 of its own) exceed 6 cores"),  # 4 live streams, Xavier NX
    ("camera", 12, 8, 4 * 0.3, 0.5, 8, True, "(1.2 of its own, 0.5 of other processes) fit 12 cores"),
    ("serve", 2, None, 0, 0.0, 2, True, "serve: nothing else busy on 2 cores"),
    ("serve", 8, None, 0, 2.0, 8, False, "serve: 8 threads + 2.0 cores busy (2.0 of other processes) exceed"),
])
def test_policy_table(purpose, cores, intra, extra, background, threads, spinning, reason):
    plan = ort_threading(purpose, extra_threads=extra, intra_threads=intra, cores=cores, background=background,
                         env={})
    assert (plan.threads, plan.spinning) == (threads, spinning)
    assert reason in plan.reason
    assert plan.line() == "ORT: %d thread%s, %s (%s)" % (
        threads, "" if threads == 1 else "s", "spinning" if spinning else "sleeping when idle", plan.reason)
    assert ThreadPlan(**plan.as_dict()) == plan  # what JSON holds makes the plan again


@pytest.mark.parametrize("value, purpose, spinning", [
    ("1", "camera", True), ("0", "bench", False), (" 1 ", "serve", True), ("", "camera", True),
])
def test_env_overrides_every_purpose(value, purpose, spinning):
    # background 5 would make camera/serve sleep: the override wins over it
    plan = ort_threading(purpose, cores=2, background=5.0 if value else 0.0, env={SPIN_ENV: value})
    assert plan.spinning is spinning
    assert plan.reason == ("%s=%s" % (SPIN_ENV, value.strip()) if value.strip() else
                           "camera: nothing else busy on 2 cores")


@pytest.mark.parametrize("value", ["yes", "2", "true", "on"])
def test_env_override_takes_1_or_0(value):
    with pytest.raises(EdgekitError, match="EDGEKIT_ORT_SPINNING=%s: set it to 1 .* or 0" % value):
        spinning_override({SPIN_ENV: value})


def test_bad_arguments_are_bugs_not_user_errors():
    with pytest.raises(ValueError, match="purpose 'camra'"):
        ort_threading("camra", cores=2, env={})
    with pytest.raises(ValueError, match="extra_threads"):
        ort_threading("camera", extra_threads=-1, cores=2, env={})


def test_machine_lookups():
    assert 1 <= cpu_cores() <= (os.cpu_count() or 1)
    assert ort_threading("bench", env={}).threads == cpu_cores()
    load = background_load(samples=3, interval_s=0.001)
    assert isinstance(load, float) and load >= 0
    assert capture_load(30, 10.0) == pytest.approx(0.3)  # a 30 FPS stream decoding 10 ms a frame
    assert capture_load(0, 10.0) == 0.0


def test_spin_entries():
    assert spin_entries(True) == {SPIN_KEYS[0]: "1", SPIN_KEYS[1]: "1", "session.force_spinning_stop": "1"}
    assert spin_entries(False) == {SPIN_KEYS[0]: "0", SPIN_KEYS[1]: "0"}


@pytest.mark.parametrize("spinning, env, expect", [
    (True, None, True), (False, None, False), (False, "1", False),  # an explicit choice is the caller's
    (None, None, False), (None, "1", True), (None, "0", False),  # None: sleep unless EDGEKIT_ORT_SPINNING=1
])
def test_runner_session_options_carry_the_choice(yolov8n_onnx, monkeypatch, spinning, env, expect):
    monkeypatch.delenv(SPIN_ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(SPIN_ENV, env)
    with open_runner(yolov8n_onnx, "onnxruntime", threads=1, spinning=spinning) as runner:
        assert runner.spinning is expect and runner.threads == 1
        options = runner.session_options
        assert options.intra_op_num_threads == 1
        for key in SPIN_KEYS:
            assert options.get_session_config_entry(key) == ("1" if expect else "0")
        assert config_entry(options, "session.force_spinning_stop") == ("1" if expect else None)
        runner.infer(runner_input(runner))


def config_entry(options, key):
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:  # not set
        return None


def runner_input(runner):
    import numpy as np

    return np.zeros([d if isinstance(d, int) else 1 for d in runner.input_shape], runner.input_dtype)


def test_runner_default_threads_is_onnxruntime_s_choice(yolov8n_onnx, monkeypatch):
    monkeypatch.delenv(SPIN_ENV, raising=False)
    with open_runner(yolov8n_onnx, "onnxruntime") as runner:
        assert runner.threads is None and runner.spinning is False
        assert runner.session_options.intra_op_num_threads == 0


def compact(text):
    return " ".join(text.split())


def test_bench_json_and_table_show_the_plan(yolov8n_onnx, tmp_path, monkeypatch):
    monkeypatch.delenv(SPIN_ENV, raising=False)
    js = tmp_path / "bench.json"
    result = invoke(["bench", yolov8n_onnx, "--warmup", 0, "--iterations", 2, "--threads", 1, "--no-power",
                     "--json", js])
    assert result.exit_code == 0, result.output
    (r,) = json.loads(js.read_text())["results"]
    assert r["ort_threads"] == {"threads": 1, "spinning": True, "reason": "bench: inference alone"}
    assert r["threads"] == 1
    assert "ORT: 1 thread, spinning (bench: inference alone)" in compact(result.output)


def test_bench_default_threads_and_override(yolov8n_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv(SPIN_ENV, "0")
    js = tmp_path / "bench.json"
    result = invoke(["bench", yolov8n_onnx, "--warmup", 0, "--iterations", 2, "--no-power", "--json", js])
    assert result.exit_code == 0, result.output
    (r,) = json.loads(js.read_text())["results"]
    assert r["ort_threads"] == {"threads": cpu_cores(), "spinning": False, "reason": "EDGEKIT_ORT_SPINNING=0"}
    assert r["threads"] == cpu_cores()
    assert "sleeping when idle (EDGEKIT_ORT_SPINNING=0)" in compact(result.output)


def test_bench_refuses_a_bad_override(yolov8n_onnx, monkeypatch):
    monkeypatch.setenv(SPIN_ENV, "yes")
    assert_user_error(invoke(["bench", yolov8n_onnx, "--iterations", 1, "--no-save", "--no-power"]),
                      "EDGEKIT_ORT_SPINNING=yes")


def test_settings_line_of_results_without_a_plan():
    from edgekit.bench.report import settings_line

    row = {"iterations": 3, "warmup": 1, "threads": 2, "source": "synthetic", "name": "a"}
    assert "| 2 threads |" in settings_line([row])  # older results, TensorRT
    plan = ort_threading("bench", intra_threads=2, cores=2, env={}).as_dict()
    assert "| ORT: 2 threads, spinning (bench: inference alone) |" in settings_line([dict(row, ort_threads=plan)])


def test_serve_worker_opens_the_runner_with_its_plan(yolov8n_onnx, monkeypatch):
    from edgekit.serve.worker import InferenceWorker

    monkeypatch.delenv(SPIN_ENV, raising=False)
    plan = ThreadPlan(1, True, "serve: nothing else busy on 2 cores")
    worker = InferenceWorker(str(yolov8n_onnx), "onnxruntime", threads=None, warmup=1, thread_plan=plan)
    worker.start()
    try:
        assert worker.ready.wait(60), worker.error
        assert worker.uses_plan and worker.runner.spinning is True and worker.runner.threads == 1
    finally:
        worker.stop()


def test_serve_shows_its_plan_in_info_and_startup_line(yolov8n_onnx):
    pytest.importorskip("uvicorn")
    from serve_helpers import Server

    server = Server(yolov8n_onnx, env={SPIN_ENV: "0"})  # --threads 1; the override makes the reason fixed
    try:
        info = server.get("/v1/info").json()
    finally:
        code, out = server.stop()
    assert info["ort_threads"] == {"threads": 1, "spinning": False, "reason": "EDGEKIT_ORT_SPINNING=0"}
    assert code == 0 and "ORT: 1 thread, sleeping when idle (EDGEKIT_ORT_SPINNING=0)" in compact(out)


def test_serve_spins_on_a_quiet_machine(monkeypatch):
    """Its decode workers wait for requests: only other processes' load makes serve's threads sleep."""
    pytest.importorskip("uvicorn")
    from serve_helpers import free_port

    import edgekit.serve.server as server

    monkeypatch.delenv(SPIN_ENV, raising=False)
    seen = {}

    def plan(purpose, **kwargs):
        seen.update(kwargs, purpose=purpose)
        return ort_threading(purpose, cores=2, background=0.0, **kwargs)

    def worker(*args, thread_plan=None, **kwargs):  # stops serve() before it starts anything
        seen["plan"] = thread_plan
        raise _Stop()

    monkeypatch.setattr(server, "ort_threading", plan)
    monkeypatch.setattr(server, "InferenceWorker", worker)
    with pytest.raises(_Stop):
        server.serve(server.ServeConfig(model=__file__, port=free_port(), workers=4))
    assert seen.pop("plan") == ThreadPlan(2, True, "serve: nothing else busy on 2 cores")
    assert seen == {"purpose": "serve", "extra_threads": 0.0, "intra_threads": None}


class _Stop(Exception):
    pass
