"""edgekit's own logic around TensorRT and pycuda, with their objects stood in by small fakes (no GPU, no
TensorRT): CUDA context lifetime, CUDA graph capture errors, the INT8 calibrator's callbacks, which build error
is reported, timing-cache merging, build-time options, profile limits, and inspect without TensorRT."""

import json
import types

import cv2
import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.runtime.tensorrt import cuda
from edgekit.runtime.tensorrt.calib import CalibrationCache, CalibrationFeed, CalibrationSet
from edgekit.runtime.tensorrt.logkeeper import ERROR, WARNING, LogKeeper
from edgekit.runtime.tensorrt.plan import Caps, parse_tactic_sources
from edgekit.runtime.tensorrt.shapes import check_profile
from edgekit.runtime.tensorrt.speed import SpeedRequest, plan_speed
from tests.helpers import invoke


# --- the CUDA context: retained once, never left pushed, and an error frees what it held inside it ------------
@pytest.fixture
def fake_pycuda(monkeypatch):
    stack, retained = [], []

    class Context:
        def push(self):
            stack.append(self)

        @staticmethod
        def pop():
            stack.pop()

        def detach(self):  # pycuda pushes a primary context here and never pops it
            stack.append(self)

    class Device:
        def __init__(self, index):
            self.index = index

        @staticmethod
        def count():
            return 1

        def retain_primary_context(self):
            retained.append(self.index)
            return Context()

        def name(self):
            return "Fake GPU"

        def compute_capability(self):
            return (8, 7)

    drv = types.SimpleNamespace(init=lambda: None, Device=Device, Context=Context, Error=RuntimeError)
    monkeypatch.setattr(cuda, "driver", lambda: drv)
    monkeypatch.setattr(cuda, "_PRIMARY", {})
    return stack, retained


def test_primary_context_is_retained_once_and_release_leaves_nothing_pushed(fake_pycuda):
    stack, retained = fake_pycuda
    first, second = cuda.CudaContext(0), cuda.CudaContext(0)
    with first.current():
        assert len(stack) == 1
    first.release()
    second.release()
    assert retained == [0] and stack == [] and first.sm == "8.7"
    with pytest.raises(EdgekitError, match="after release"):
        with first.current():
            pass
    with pytest.raises(EdgekitError, match="GPU 3 not found"):
        cuda.CudaContext(3)


def test_an_error_inside_the_context_frees_what_its_frames_held_while_the_context_is_current(fake_pycuda):
    stack, _ = fake_pycuda
    freed_with_stack = []

    class TensorRTObject:  # e.g. a builder or network: its destructor needs the context current
        def __del__(self):
            freed_with_stack.append(len(stack))

    def build():
        network = TensorRTObject()  # noqa: F841 - held by this frame when the error is raised
        raise EdgekitError("TensorRT cannot parse model.onnx")

    ctx = cuda.CudaContext(0)
    with pytest.raises(EdgekitError) as err:  # pytest keeps the exception (and so its frames) alive
        with ctx.current():
            build()
    assert freed_with_stack == [1] and stack == [] and "cannot parse" in str(err.value)


# --- CUDA graph capture: the capture's own error is reported, partial graphs are destroyed --------------------
class FakeGraphDriver:
    CUresult = types.SimpleNamespace(CUDA_SUCCESS=0)
    CUstreamCaptureMode = types.SimpleNamespace(CU_STREAM_CAPTURE_MODE_GLOBAL=1)

    def __init__(self, end_error=0, instantiate_error=0):
        self.end_error, self.instantiate_error = end_error, instantiate_error
        self.destroyed, self.launched = [], 0

    def CUstream(self, handle):  # noqa: N802 - cuda-python's names
        return handle

    def cuStreamBeginCapture(self, stream, mode):  # noqa: N802
        return (0,)

    def cuStreamEndCapture(self, stream):  # noqa: N802
        return (self.end_error, "graph")

    def cuGraphInstantiateWithFlags(self, graph, flags):  # noqa: N802
        return (self.instantiate_error, "exec")

    def cuGraphLaunch(self, exec_, stream):  # noqa: N802
        self.launched += 1
        return (0,)

    def cuGraphDestroy(self, graph):  # noqa: N802
        self.destroyed.append(graph)
        return (0,)

    def cuGraphExecDestroy(self, exec_):  # noqa: N802
        self.destroyed.append(exec_)
        return (0,)


def failing_launch(stream):
    raise EdgekitError("TensorRT failed to run model.engine: enqueue failed")


@pytest.mark.parametrize("end_error, destroyed", [(901, []), (0, ["graph"])])  # 901: capture invalidated
def test_an_error_inside_graph_capture_is_the_one_reported(monkeypatch, end_error, destroyed):
    drv = FakeGraphDriver(end_error=end_error)
    monkeypatch.setattr(cuda, "_cuda_python_driver", lambda: drv)
    with pytest.raises(EdgekitError, match="enqueue failed"):
        cuda.CudaGraph(types.SimpleNamespace(handle=7), failing_launch)
    assert drv.destroyed == destroyed


def test_graph_instantiate_failure_destroys_the_graph_and_free_destroys_both(monkeypatch):
    drv = FakeGraphDriver(instantiate_error=1)
    monkeypatch.setattr(cuda, "_cuda_python_driver", lambda: drv)
    with pytest.raises(EdgekitError, match="instantiating"):
        cuda.CudaGraph(types.SimpleNamespace(handle=7), lambda s: None)
    assert drv.destroyed == ["graph"]
    drv = FakeGraphDriver()
    monkeypatch.setattr(cuda, "_cuda_python_driver", lambda: drv)
    graph = cuda.CudaGraph(types.SimpleNamespace(handle=7), lambda s: None)
    graph.replay()
    graph.free()
    graph.free()
    assert drv.launched == 1 and drv.destroyed == ["exec", "graph"]


def test_only_a_failed_capture_gets_the_capture_hint(monkeypatch):
    drv = FakeGraphDriver(end_error=901)
    monkeypatch.setattr(cuda, "_cuda_python_driver", lambda: drv)
    with pytest.raises(EdgekitError) as err:
        cuda.CudaGraph(types.SimpleNamespace(handle=7), lambda s: None)
    assert "ending CUDA graph capture: 901" in str(err.value) and "cannot be captured" in str(err.value)
    drv = FakeGraphDriver(instantiate_error=2)
    monkeypatch.setattr(cuda, "_cuda_python_driver", lambda: drv)
    with pytest.raises(EdgekitError) as err:
        cuda.CudaGraph(types.SimpleNamespace(handle=7), lambda s: None)
    assert str(err.value) == "CUDA error while instantiating the CUDA graph: 2"


# --- the INT8 calibrator's callbacks: never raise into TensorRT, read the table once -------------------------
@pytest.fixture
def calib_set(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / ("f%d.jpg" % i)), np.full((24, 40, 3), 40 * i, np.uint8))
    return CalibrationSet.from_folder(folder, 2, (32, 32))


def feed_for(calib, cache, host_shape=(2, 3, 32, 32)):
    buffer = types.SimpleNamespace(host=np.zeros(host_shape, np.float32), ptr=1234)
    uploads = []
    return CalibrationFeed(calib, cache, buffer, lambda: uploads.append(1)), uploads


def test_fresh_calibration_is_not_recorded_as_reused_when_tensorrt_asks_again(calib_set, tmp_path):
    cache = CalibrationCache(tmp_path / "t.calib", "key1")
    feed, uploads = feed_for(calib_set, cache)
    assert feed.read_cache() is None
    assert [feed.next_batch(), feed.next_batch(), feed.next_batch()] == [[1234], [1234], None]
    feed.write_cache(b"table")
    assert feed.read_cache() == b"table"  # TensorRT 8.x may read again after writing
    assert not feed.used_cache and feed.batches_fed == 2 and len(uploads) == 2 and feed.error is None
    again, _ = feed_for(calib_set, CalibrationCache(tmp_path / "t.calib", "key1"))
    assert again.read_cache() == b"table" and again.used_cache
    other, _ = feed_for(calib_set, CalibrationCache(tmp_path / "t.calib", "key2"))  # another model or image set
    assert other.read_cache() is None and not other.used_cache


def test_calibrator_callbacks_keep_errors_instead_of_raising(calib_set, tmp_path):
    class UnreadableCache(CalibrationCache):
        def read(self):
            raise OSError("[Errno 5] Input/output error")

    feed, _ = feed_for(calib_set, UnreadableCache(tmp_path / "t.calib", "k"))
    assert feed.read_cache() is None and feed.next_batch() is None  # calibration stops at once
    assert isinstance(feed.error, EdgekitError) and "cannot read calibration table" in str(feed.error)
    feed, _ = feed_for(calib_set, CalibrationCache(tmp_path / "u.calib", "k"), host_shape=(1, 3, 8, 8))
    assert feed.next_batch() is None and isinstance(feed.error, ValueError)  # a batch that does not fit
    blocked = tmp_path / "file"
    blocked.write_text("x")
    feed, _ = feed_for(calib_set, CalibrationCache(blocked / "t.calib", "k"))  # its folder is a file
    feed.write_cache(b"table")
    assert "cannot write calibration table" in str(feed.error)


def test_an_empty_calibration_table_is_not_reused(calib_set, tmp_path, capsys):
    cache = CalibrationCache(tmp_path / "t.calib", "key1")
    cache.write(b"")  # e.g. a calibration that wrote nothing
    feed, _ = feed_for(calib_set, cache)
    assert feed.read_cache() is None and not feed.used_cache
    assert "is empty: calibrating again" in capsys.readouterr().err
    assert feed.next_batch() == [1234]

    class EmptyRead(CalibrationCache):  # whatever the file said, an empty table is no table
        def read(self):
            return b""

    feed, _ = feed_for(calib_set, EmptyRead(tmp_path / "u.calib", "key1"))
    assert feed.read_cache() is None and not feed.used_cache


# --- one process-wide TensorRT logger, each line routed to the build or runner that asked ----------------------
def test_log_lines_go_to_the_keeper_of_the_thread_that_called_tensorrt():
    import threading

    from edgekit.runtime.tensorrt.logkeeper import LogRouter

    router = LogRouter()
    build, runner = LogKeeper(), LogKeeper()
    router.route(ERROR, "before anyone asked")
    assert router.orphans.errors == ["before anyone asked"]
    with router.to(build):
        router.route(ERROR, "build: parser error")
        seen = []

        def camera_thread():  # another thread with its own runner: its lines never reach the build's
            with router.to(runner):
                router.route(ERROR, "runner: enqueue failed")
                seen.append(router.current() is runner)

        t = threading.Thread(target=camera_thread)
        t.start()
        t.join()
        worker = threading.Thread(target=lambda: router.route(WARNING, "tensorrt worker thread"))
        worker.start()  # a thread of TensorRT's own: the most recent keeper still open
        worker.join()
        with router.to(runner):  # nested: the inner one takes the lines, the outer one gets them back after
            router.route(WARNING, "runner warning")
        router.route(WARNING, "build warning")
    assert build.errors == ["build: parser error"] and runner.errors == ["runner: enqueue failed"] and seen == [True]
    assert build.warnings == ["tensorrt worker thread", "build warning"] and runner.warnings == ["runner warning"]
    assert router.current() is router.orphans  # nothing left registered


def test_log_keeper_keeps_a_bounded_number_of_lines():
    from edgekit.runtime.tensorrt.logkeeper import KEEP

    log = LogKeeper()
    for i in range(KEEP + 5):
        log.add(WARNING, "w%d" % i)
    assert len(log.warnings) == KEEP and log.dropped == 5 and log.warnings[0] == "w0"


# --- which TensorRT error a failed build reports --------------------------------------------------------------
def test_build_error_is_the_first_one_after_the_build_started():
    log = LogKeeper()
    log.add(ERROR, "1: [myelinCache.h::deserializeFromBuffer] Myelin error: timing cache could not be loaded")
    log.add(WARNING, "onnx2trt_utils.cpp:377: Your ONNX model has been generated with INT64 weights")
    since = log.mark()
    assert log.first_error("none", since) == "none"
    log.add(ERROR, "10: [optimizer.cpp::computeCosts] Could not find any implementation for node  /model.0/conv")
    assert log.first_error("none", since).startswith("10: [optimizer.cpp::computeCosts] Could not find any")
    assert "Myelin" in log.first_error("none")
    log.add(ERROR, "x" * 400)
    assert len(log.first_error("none", since + 1)) == 300
    assert log.last_warning("none").startswith("onnx2trt_utils") and LogKeeper().last_warning("none") == "none"


# --- build-time options: what each TensorRT and GPU allows, never a silent change -----------------------------
XAVIER_85 = Caps(tensorrt="8.5.2.2", gpu="Xavier", sm="7.2", tactic_heuristic=True)
H100_85 = Caps(tensorrt="8.5.3.1", gpu="H100", sm="9.0", tactic_heuristic=True)
ORIN_10 = Caps(tensorrt="10.3.0.30", gpu="Orin", sm="8.7", optimization_levels=True)


@pytest.mark.parametrize("caps, request_, heuristic, level, note", [
    (H100_85, SpeedRequest(fast_build=True), True, None, None),
    (XAVIER_85, SpeedRequest(fast_build=True), False, None, "sm_80+"),
    (ORIN_10, SpeedRequest(fast_build=True), False, 2, None),
    (ORIN_10, SpeedRequest(fast_build=True, optimization_level=0), False, 0, None),
    (H100_85, SpeedRequest(tactic_heuristic=True, avg_timing_iterations=4), True, None, None),
    (ORIN_10, SpeedRequest(), False, None, None),
])
def test_speed_plan(caps, request_, heuristic, level, note):
    plan = plan_speed(request_, caps)
    assert (plan.tactic_heuristic, plan.optimization_level) == (heuristic, level)
    assert (note is None and not plan.notes) or any(note in n for n in plan.notes)
    record = plan.record(request_)
    assert record["fast_build"] == request_.fast_build
    assert record["avg_timing_iterations"] == request_.avg_timing_iterations


@pytest.mark.parametrize("caps, request_, fragment", [
    (XAVIER_85, SpeedRequest(tactic_heuristic=True), "Ampere or newer"),
    (ORIN_10, SpeedRequest(tactic_heuristic=True), "no tactic heuristic"),
    (H100_85, SpeedRequest(optimization_level=1), "TensorRT 8.6 or newer"),
])
def test_speed_options_that_cannot_be_had_are_errors(caps, request_, fragment):
    with pytest.raises(EdgekitError, match=fragment):
        plan_speed(request_, caps)


def test_fast_build_drops_jit_convolutions_unless_asked_for():
    assert parse_tactic_sources(None) == ["EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS"]
    assert parse_tactic_sources(None, fast=True) == ["EDGE_MASK_CONVOLUTIONS"]
    assert parse_tactic_sources("+JIT_CONVOLUTIONS", fast=True) == ["EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS"]
    assert parse_tactic_sources("CUDNN", fast=True) == ["CUDNN"]


def test_speed_options_are_checked_at_parse_time_and_kept_in_the_rebuild_command():
    from edgekit.runtime.tensorrt.prepare import rebuild_command

    result = invoke(["build", "m.onnx", "--optimization-level", "9"])
    assert result.exit_code == 2 and "--optimization-level" in result.output
    result = invoke(["build", "m.onnx", "--avg-timing-iterations", "0"])
    assert result.exit_code == 2 and "--avg-timing-iterations" in result.output
    cmd = rebuild_command("m.onnx", "fp16", None, None, None, False, None, None, None,
                          SpeedRequest(fast_build=True, avg_timing_iterations=4))
    assert cmd == "edgekit build m.onnx --fp16 --fast-build --avg-timing-iterations 4"


# --- a dynamic-batch engine refuses a batch above its profile in one line -------------------------------------
def test_batch_above_the_profile_max_is_one_line():
    check_profile((4, 3, 320, 320), (-1, 3, 320, 320), (4, 3, 320, 320), "m.engine")
    with pytest.raises(EdgekitError) as err:
        check_profile((8, 3, 320, 320), (-1, 3, 320, 320), (4, 3, 320, 320), "m-b4.engine", "engines/m.onnx")
    assert "batch of 8" in str(err.value) and "edgekit build engines/m.onnx --batch 8" in str(err.value)
    with pytest.raises(EdgekitError, match="input dimension 2"):
        check_profile((1, 3, 640, 640), (-1, 3, -1, -1), (4, 3, 320, 320), "m.engine")


# --- optimization profiles from the input's own shape (NCHW float or NHWC uint8 pixels) -----------------------
@pytest.mark.parametrize("shape, batch, nhwc, expected", [
    ((-1, 3, 320, 320), 4, False, ((1, 3, 320, 320), (4, 3, 320, 320), (4, 3, 320, 320))),
    ((-1, 3, -1, -1), 1, False, ((1, 3, 256, 320), (1, 3, 256, 320), (1, 3, 256, 320))),
    # edgekit export --graph-preprocess --dynamic: uint8 [B, H, W, 3]; an NCHW profile here is what TensorRT refused
    ((-1, -1, -1, 3), 2, True, ((1, 256, 320, 3), (2, 256, 320, 3), (2, 256, 320, 3))),
    ((-1, 240, 320, 3), 8, True, ((1, 240, 320, 3), (8, 240, 320, 3), (8, 240, 320, 3))),
])
def test_profile_from_the_inputs_own_shape(shape, batch, nhwc, expected):
    from edgekit.runtime.tensorrt.shapes import profile_shapes

    assert profile_shapes(shape, (256, 320), batch, nhwc) == expected


def test_profile_refuses_what_it_cannot_fill():
    from edgekit.runtime.tensorrt.shapes import profile_shapes

    with pytest.raises(EdgekitError, match="dimension 1"):
        profile_shapes((1, -1, 320, 320), (320, 320))
    with pytest.raises(EdgekitError, match="4-D"):
        profile_shapes((-1, 3, 320), (320, 320))


def test_layout_of_a_graph_preprocess_dynamic_export_is_nhwc():
    from onnx import TensorProto, helper

    from edgekit.runtime.tensorrt.prepare import input_layout, input_size

    def model(elem, dims):
        inp = helper.make_tensor_value_info("images", elem, dims)
        out = helper.make_tensor_value_info("out", elem, dims)
        return helper.make_model(helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g", [inp],
                                                   [out]))

    pixels = model(TensorProto.UINT8, ["batch", "height", "width", 3])
    assert input_layout(pixels) == "nhwc" and input_size(pixels, {"imgsz": [256, 320]}) == (256, 320)
    assert input_layout(model(TensorProto.FLOAT, ["batch", 3, "h", "w"])) == "nchw"


# --- inspect shows the manifest whatever stops TensorRT from reading the engine -------------------------------
def write_engine(tmp_path):
    from edgekit.manifest import sha256_file

    path = tmp_path / "m-fp16-sm87-trt8.5.2.engine"
    path.write_bytes(b"plan" * 64)
    manifest = {"kind": "tensorrt-engine", "sha256": sha256_file(path), "engine_bytes": path.stat().st_size,
                "tensorrt": "8.5.2.2", "sm": "8.7", "gpu": "Orin", "precision": "fp16",
                "build_speed": {"fast_build": True, "tactic_heuristic": True}}
    (tmp_path / (path.name + ".json")).write_text(json.dumps(manifest))
    return path


def test_inspect_shows_the_manifest_when_tensorrt_cannot_load_the_engine(tmp_path, monkeypatch):
    from edgekit.runtime.tensorrt import inspect

    def no_gpu(path, layers):
        raise EdgekitError("TensorRT could not start on a GPU (CUDA initialization failure)")

    monkeypatch.setattr(inspect, "engine_details", no_gpu)
    engine = write_engine(tmp_path)
    result = invoke(["inspect", engine, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["manifest"]["tensorrt"] == "8.5.2.2" and "CUDA initialization failure" in doc["note"]
    engine.write_bytes(b"plan")  # truncated: TensorRT is not even tried
    result = invoke(["inspect", engine])
    assert result.exit_code == 0 and "8.5.2.2" in result.output and "truncated" in result.output


# --- pycuda installed but no driver (the device kit on a machine without a GPU): one line, not two warnings ------
def test_pycuda_without_a_driver_is_one_line(tmp_path, monkeypatch):
    import sys
    import warnings

    from edgekit.lazy import require_tensorrt

    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.py").write_text("__version__ = '8.5.3.1'\nclass Builder: pass\n")
    (tmp_path / "pycuda").mkdir()
    (tmp_path / "pycuda" / "__init__.py").write_text("")
    (tmp_path / "pycuda" / "driver.py").write_text(
        "import warnings\nwarnings.warn('Failed to import the CUDA driver interface, with an error message\\n'\n"
        "              'indicating that the version of your CUDA header does not match')\n"
        "raise ImportError('_driver.so: undefined symbol: cuArrayCreate_v2')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ("tensorrt", "pycuda", "pycuda.driver")
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    try:
        with warnings.catch_warnings(record=True) as shown, pytest.raises(EdgekitError) as err:
            warnings.simplefilter("always")
            require_tensorrt(building=True)
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    assert "pycuda is installed but its CUDA driver interface cannot load" in str(err.value)
    assert "undefined symbol" in str(err.value) and "NVIDIA GPU and driver" in str(err.value)
    assert "pip install" not in str(err.value) and "\n" not in str(err.value)
    assert shown == []  # pycuda's own two warning lines are not shown before edgekit's one
