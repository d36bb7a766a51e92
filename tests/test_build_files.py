"""Q/DQ checks on ONNX made in code, engine manifest compatibility, and edgekit build/inspect/bench errors
for bad files, all without a GPU."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.errors import EdgekitError
from edgekit.manifest import sha256_file
from edgekit.runtime.tensorrt.engine_file import check_engine_file
from edgekit.runtime.tensorrt.qdq import model_facts, qdq_problems
from tests.helpers import assert_user_error, invoke

try:
    import tensorrt  # noqa: F401

    HAS_TRT = hasattr(tensorrt, "Builder")
except ImportError:
    HAS_TRT = False


def qdq_model(zero_type=TensorProto.INT8, zero=0, scale_type=TensorProto.FLOAT, opset=17, domain="", dq_zero=True):
    """images -> Q -> DQ -> Conv: the smallest explicitly quantized graph (``dq_zero=False``: DQ without its
    optional zero point, which ONNX allows and TensorRT 8.5's parser refuses)."""
    scale = numpy_helper.from_array(np.array(0.02, dtype=helper.tensor_dtype_to_np_dtype(scale_type)), "s")
    zp = numpy_helper.from_array(np.array(zero, dtype=helper.tensor_dtype_to_np_dtype(zero_type)), "z")
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [
        helper.make_node("QuantizeLinear", ["images", "s", "z"], ["q"], name="q0", domain=domain),
        helper.make_node("DequantizeLinear", ["q", "s", "z"] if dq_zero else ["q", "s"], ["dq"], name="dq0",
                         domain=domain),
        helper.make_node("Conv", ["dq", "w"], ["output0"], name="conv"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4, 30, 30])],
                              [scale, zp, w])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=imports)


def test_clean_qdq_model_passes_and_is_detected():
    model = qdq_model()
    assert qdq_problems(model, "8.5.2.2") == []
    facts = model_facts(model)
    assert facts.qdq and facts.float_type == "fp32" and facts.static_batch == 1


@pytest.mark.parametrize("kwargs, version, fragment", [
    (dict(zero_type=TensorProto.UINT8, zero=128), "8.5.2", "symmetric INT8"),
    (dict(zero=3), "8.5.2", "non-zero zero point"),
    (dict(scale_type=TensorProto.FLOAT16), "8.5.2", "FP32 scales"),
    (dict(opset=19), "8.5.2", "opset 19"),
    (dict(domain="com.microsoft"), "10.3", "non-standard domain"),
    (dict(dq_zero=False), "8.5.2", "dq0: DequantizeLinear without a zero point (2 inputs); TensorRT 8.5.2's parser"),
])
def test_qdq_problems(kwargs, version, fragment):
    problems = qdq_problems(qdq_model(**kwargs), version)
    assert any(fragment in p for p in problems), problems


def test_fp16_scales_and_opset19_are_fine_on_trt10():
    assert qdq_problems(qdq_model(scale_type=TensorProto.FLOAT16, opset=19), "10.3.0") == []
    assert qdq_problems(qdq_model(dq_zero=False), "10.3.0") == []  # TensorRT 10's parser takes 2-input DQ


def test_two_input_dequantize_is_refused_in_edgekits_own_line(tmp_path):
    from edgekit.runtime.tensorrt.plan import ModelFacts
    from edgekit.runtime.tensorrt.qdq import check_buildable

    model = qdq_model(dq_zero=False)
    with pytest.raises(EdgekitError) as err:
        check_buildable(model, ModelFacts(qdq=True, float_type="fp32", static_batch=1), "8.5.2.2", "m.onnx")
    assert "\n" not in str(err.value) and "DequantizeLinear without a zero point" in str(err.value)
    assert "edgekit quantize" in str(err.value)
    onnx.save(model, str(tmp_path / "m.onnx"))
    result = invoke(["inspect", tmp_path / "m.onnx", "--json"])
    assert result.exit_code == 0 and "DequantizeLinear without a zero point" in result.output


# --- engine files: checked against their manifest and this device before TensorRT reads them ------------------
def fake_engine(tmp_path, **overrides):
    path = tmp_path / "yolov8n-fp16-sm72-trt8.5.2.engine"
    path.write_bytes(b"\x00engine-bytes" * 100)
    manifest = {"kind": "tensorrt-engine", "sha256": sha256_file(path), "engine_bytes": path.stat().st_size,
                "tensorrt": "8.5.2.2", "sm": "7.2", "gpu": "Xavier", "dla_core": None,
                "onnx": "engines/yolov8n.onnx", "command": "edgekit build engines/yolov8n.onnx --fp16"}
    manifest.update(overrides)
    (tmp_path / (path.name + ".json")).write_text(json.dumps(manifest))
    return path


XAVIER = {"tensorrt": "8.5.2.2", "sm": "7.2", "gpu": "Xavier", "dla_cores": "2"}


def test_matching_engine_passes(tmp_path):
    assert check_engine_file(fake_engine(tmp_path), XAVIER)["tensorrt"] == "8.5.2.2"


@pytest.mark.parametrize("device, fragments", [
    ({"tensorrt": "10.3.0.30", "sm": "8.7", "gpu": "Orin"},
     ["TensorRT 8.5.2.2 for sm_72 (Xavier)", "TensorRT 10.3.0.30 for sm_87 (Orin)",
      "rebuild it on this device with: edgekit build engines/yolov8n.onnx --fp16"]),
    ({"tensorrt": "8.5.2.2", "sm": "8.7"}, ["sm_87"]),
])
def test_engine_from_another_device_names_the_rebuild(tmp_path, device, fragments):
    with pytest.raises(EdgekitError) as err:
        check_engine_file(fake_engine(tmp_path), device)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_truncated_changed_or_dla_engine(tmp_path):
    path = fake_engine(tmp_path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(EdgekitError, match="truncated"):
        check_engine_file(path, XAVIER)
    path = fake_engine(tmp_path)
    path.write_bytes(b"X" * path.stat().st_size)
    with pytest.raises(EdgekitError, match="sha256"):
        check_engine_file(path, XAVIER)
    with pytest.raises(EdgekitError, match="DLA core 0"):
        check_engine_file(fake_engine(tmp_path, dla_core=0), dict(XAVIER, dla_cores="0"))
    empty = tmp_path / "empty.engine"
    empty.write_bytes(b"")
    with pytest.raises(EdgekitError, match="empty"):
        check_engine_file(empty, XAVIER)


def test_engine_without_manifest_warns_and_other_gpu_same_sm_warns(tmp_path, capsys):
    bare = tmp_path / "trtexec.engine"
    bare.write_bytes(b"plan")
    assert check_engine_file(bare, XAVIER) is None
    check_engine_file(fake_engine(tmp_path), dict(XAVIER, gpu="Jetson AGX Xavier"))
    err = capsys.readouterr().err
    assert "no manifest" in err and "same sm_72" in " ".join(err.split())


# --- the CLI: bad input is one line and exit 2, before TensorRT is needed --------------------------------------
@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    model = qdq_model()
    del model.graph.node[:2]
    model.graph.node[0].input[0] = "images"
    del model.graph.initializer[:2]
    onnx.save(model, str(d / "tiny.onnx"))
    onnx.save(qdq_model(), str(d / "tiny-qdq.onnx"))
    (d / "bad.onnx").write_bytes(b"garbage")
    (d / "trunc.onnx").write_bytes((d / "tiny.onnx").read_bytes()[:50])
    return d


@pytest.mark.parametrize("args, fragments", [
    (["missing.onnx"], ["not found"]),
    (["bad.onnx"], ["not a readable ONNX"]),
    (["trunc.onnx"], ["not a readable ONNX"]),
    (["tiny.onnx", "--int8"], ["--calib", "edgekit quantize"]),
    (["tiny.onnx", "--int8", "--calib", "nowhere"], ["not found"]),
    (["tiny.onnx", "--int8", "--calib", "emptydir"], ["no images"]),
    (["tiny.onnx", "--fp16", "--calib", "emptydir"], ["--calib is for INT8"]),
    (["tiny-qdq.onnx", "--fp16"], ["Q/DQ", "--int8"]),
    (["tiny.onnx", "--tactic-sources", "+NOPE"], ["unknown source"]),
    (["tiny.onnx", "--workspace", "0"], ["--workspace"]),
    (["tiny.onnx", "--batch", "4"], ["static batch of 1"]),
    (["tiny.engine"], ["takes an ONNX"]),
])
def test_build_errors(small_onnx, args, fragments, monkeypatch):
    monkeypatch.chdir(small_onnx)
    (small_onnx / "emptydir").mkdir(exist_ok=True)
    result = invoke(["build"] + args + ["--out", "out"])
    assert_user_error(result, *fragments)
    assert not (small_onnx / "out").exists() or not any((small_onnx / "out").glob("*.engine"))


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_build_without_tensorrt_says_what_to_install(small_onnx):
    result = invoke(["build", small_onnx / "tiny.onnx", "--out", small_onnx / "out"])
    assert_user_error(result, "tensorrt", "python3-libnvinfer", "built on the device that runs them")
    assert "--backend" not in result.output  # build has no --backend option: never point to one


def test_inspect_onnx_and_engine_manifest(small_onnx, tmp_path):
    result = invoke(["inspect", small_onnx / "tiny-qdq.onnx", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["qdq"] and doc["qdq_nodes"]["quantize_nodes"] == 1 and doc["tensorrt_8.5_problems"] == []
    engine = fake_engine(tmp_path)
    result = invoke(["inspect", engine])
    assert result.exit_code == 0, result.output
    assert "8.5.2.2" in result.output and "edgekit build engines/yolov8n.onnx --fp16" in result.output
    assert_user_error(invoke(["inspect", small_onnx / "bad.onnx"]), "not a readable ONNX")


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_bench_engine_without_tensorrt_and_cuda_graph_on_ort(small_onnx, tmp_path):
    assert_user_error(invoke(["bench", fake_engine(tmp_path), "--no-save"]), "tensorrt")
    assert_user_error(invoke(["bench", small_onnx / "tiny.onnx", "--cuda-graph", "--no-save"]), "TensorRT only")
    assert_user_error(invoke(["bench", fake_engine(tmp_path), "--backend", "onnxruntime", "--no-save"]),
                      "ONNX Runtime runs the .onnx")


# --- timing cache file logic (TensorRT's cache object stood in by a device tag and a set of tactic names) ---------
class FakeCache:
    """Serialized as ``tc:DEVICE:tactic,tactic``; like TensorRT, ``combine`` refuses another device's cache unless
    told to ignore the mismatch."""

    def __init__(self, data: bytes, device: str):
        if data and not data.startswith(b"tc:"):
            raise RuntimeError("myelinCache.h::deserializeFromBuffer: Myelin error")
        self.device, _, names = data[3:].decode().partition(":") if data else (device, "", "")
        self.entries = set(filter(None, names.split(",")))
        self.ignore_mismatch_args = []

    def combine(self, other, ignore_mismatch):
        self.ignore_mismatch_args.append(ignore_mismatch)
        if other.device != self.device and not ignore_mismatch:
            return False
        self.entries |= other.entries
        return True

    def serialize(self):
        return ("tc:%s:%s" % (self.device, ",".join(sorted(self.entries)))).encode()


class FakeConfig:
    def __init__(self, device="H100"):
        self.cache = None
        self.device = device

    def create_timing_cache(self, data):
        return FakeCache(data, self.device)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache


def test_timing_cache_survives_a_bad_file_and_merges_on_save(tmp_path, capsys):
    pytest.importorskip("fcntl")
    from edgekit.runtime.tensorrt.timing_cache import TimingCacheFile

    path = tmp_path / "timing.cache"
    path.write_bytes(b"\x00corrupt")
    first = TimingCacheFile(path)
    config = FakeConfig()
    first.attach(config)  # unreadable: warned, build goes on with an empty cache
    assert not first.loaded and "cannot be read" in capsys.readouterr().err
    config.cache.entries.add("conv1")
    path.write_bytes(b"tc:H100:conv2")  # another build saved meanwhile
    first.save(config)
    assert path.read_bytes() == b"tc:H100:conv1,conv2"
    assert config.cache.ignore_mismatch_args == [False]  # never merges another device's timings
    second = TimingCacheFile(path)
    config2 = FakeConfig()
    second.attach(config2)
    assert second.loaded and config2.cache.entries == {"conv1", "conv2"}


def test_timing_cache_tensorrt_rejects_with_none_is_one_warning_and_an_empty_cache(tmp_path, capsys):
    """TensorRT 8.5 on Hopper: create_timing_cache logs a Myelin error and returns None (no exception)."""
    pytest.importorskip("fcntl")
    from edgekit.runtime.tensorrt.timing_cache import TimingCacheFile

    class RejectingConfig(FakeConfig):
        def create_timing_cache(self, data):
            return None if data else FakeCache(data, self.device)

    path = tmp_path / "timing.cache"
    path.write_bytes(b"tc:H100:from_an_earlier_build")
    config = RejectingConfig()
    cache = TimingCacheFile(path)
    cache.attach(config)
    assert not cache.loaded and config.cache is not None and config.cache.entries == set()
    config.cache.entries.add("conv1")
    cache.save(config)  # the file on disk is still unreadable: replaced by this build's, no second warning
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "rejected by this TensorRT" in err and "building without it" in err
    assert path.read_bytes() == b"tc:H100:conv1"


def test_timing_cache_from_another_device_is_replaced_not_merged(tmp_path, capsys):
    pytest.importorskip("fcntl")
    from edgekit.runtime.tensorrt.timing_cache import TimingCacheFile

    path = tmp_path / "timing.cache"
    path.write_bytes(b"tc:Orin:orin_conv")
    config = FakeConfig("H100")
    cache = TimingCacheFile(path)
    cache.attach(config)
    config.cache = FakeCache(b"tc:H100:h100_conv", "H100")  # what this build timed
    cache.save(config)
    assert path.read_bytes() == b"tc:H100:h100_conv"
    assert "another GPU or TensorRT" in capsys.readouterr().err


def test_rebuild_command_is_what_the_user_typed():
    from edgekit.runtime.tensorrt.prepare import rebuild_command

    cmd = rebuild_command("engines/m.onnx", "int8", "my frames", 8, 0, True, None, None, None)
    assert cmd == ("edgekit build engines/m.onnx --int8 --calib 'my frames' --calib-batches 8 --dla 0 "
                   "--allow-gpu-fallback")
    assert rebuild_command("m.onnx", None, None, None, None, False, None, 1024, "-CUDNN") == \
        "edgekit build m.onnx --workspace 1024 --tactic-sources -CUDNN"


def test_if_changed_finds_only_an_intact_engine_of_this_onnx_precision_and_device(tmp_path):
    from edgekit.runtime.tensorrt.engine_file import find_current_engine

    engine = fake_engine(tmp_path, onnx_sha256="a" * 64, precision="fp16")
    here = {"tensorrt": "8.5.2.2", "sm": "7.2"}
    assert find_current_engine(tmp_path, "a" * 64, "fp16", here) == engine
    assert find_current_engine(tmp_path, "a" * 64, None, here) == engine
    assert find_current_engine(tmp_path, "b" * 64, "fp16", here) is None  # the ONNX changed
    assert find_current_engine(tmp_path, "a" * 64, "int8", here) is None  # another precision
    assert find_current_engine(tmp_path, "a" * 64, "fp16", here, dla_core=0) is None
    assert find_current_engine(tmp_path, "a" * 64, "fp16", {"tensorrt": "10.3.0.30", "sm": "7.2"}) is None
    engine.write_bytes(engine.read_bytes()[:-1] + b"!")  # same size, other bytes
    assert find_current_engine(tmp_path, "a" * 64, "fp16", here) is None
    assert find_current_engine(tmp_path / "nowhere", "a" * 64, "fp16", here) is None


def test_engine_module_imports_the_calibrator_lazily():
    """TensorRT 11 has no IInt8EntropyCalibrator2 (read from its 11.4 bindings): runtime.tensorrt.builder must
    there, so the calibrator module (which subclasses it) is imported only for calibrated INT8 builds."""
    import ast
    from pathlib import Path

    builder = Path(__file__).resolve().parents[1] / "edgekit" / "runtime" / "tensorrt" / "builder.py"
    tree = ast.parse(builder.read_text())
    top = [n.module for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert "edgekit.runtime.tensorrt.calibrator" not in top


def test_inspect_table_says_what_runs_in_the_graph():
    from edgekit.host.graph import GraphOptions, graph_manifest
    from edgekit.runtime.tensorrt.inspect import graph_rows

    rows = dict(graph_rows(graph_manifest(GraphOptions(preprocess=True, letterbox=(480, 640), nms=True), 320)))
    assert "uint8 NHWC BGR" in rows["preprocess"] and "letterboxes 640x480 frames" in rows["preprocess"]
    assert "EfficientNMS_TRT" in rows["NMS"] and "conf 0.25" in rows["NMS"]
    assert graph_rows(graph_manifest(GraphOptions(), 320)) == []
    rows = dict(graph_rows({"head": "end2end", "max_det": 100}))  # export --end2end (YOLO26)
    assert "end-to-end head" in rows["NMS"] and "top-100" in rows["NMS"]
    assert graph_rows({"head": "one2many", "max_det": None}) == []
