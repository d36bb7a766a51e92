"""edgekit build's decisions, without a GPU: precision rules (TensorRT 8.5/10/11), DLA, naming, tactic sources,
calibration data and cache keys, Q/DQ checks, engine manifest compatibility."""

import itertools
import json

import cv2
import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.runtime.tensorrt.calib import CalibrationCache, CalibrationSet, cache_key
from edgekit.runtime.tensorrt.plan import (
    PRECISIONS,
    BuildRequest,
    Caps,
    ModelFacts,
    engine_name,
    parse_tactic_sources,
    plan_build,
)
from edgekit.vision import preprocess

XAVIER = Caps(tensorrt="8.5.2.2", gpu="Xavier", sm="7.2", dla_cores=2)
ORIN_TRT10 = Caps(tensorrt="10.3.0.30", gpu="Orin", sm="8.7", dla_cores=2)
DESKTOP_TRT11 = Caps(tensorrt="11.0.0.114", gpu="RTX", sm="8.9", precision_flags=False, calibrators=False)
NO_FAST = Caps(tensorrt="8.5.2.2", gpu="GTX 1060", sm="6.1", fast_fp16=False, fast_int8=True)
FP32_ONNX, QDQ_ONNX = ModelFacts(), ModelFacts(qdq=True)


def plan(precision=None, caps=XAVIER, model=FP32_ONNX, **kw):
    return plan_build(BuildRequest(precision=precision, **kw), caps, model)


# --- precision ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision, calib, model, flags, quant", [
    (None, None, FP32_ONNX, ["FP16"], None),
    ("fp32", None, FP32_ONNX, [], None),
    ("fp16", None, FP32_ONNX, ["FP16"], None),
    ("int8", "calib/", FP32_ONNX, ["INT8"], "calibrated"),
    ("best", "calib/", FP32_ONNX, ["FP16", "INT8"], "calibrated"),
    ("int8", None, QDQ_ONNX, ["INT8"], "qdq"),
    ("best", None, QDQ_ONNX, ["FP16", "INT8"], "qdq"),
    (None, None, QDQ_ONNX, ["FP16", "INT8"], "qdq"),
])
def test_flag_plans(precision, calib, model, flags, quant):
    for caps in (XAVIER, ORIN_TRT10):
        p = plan(precision, caps, model, calib=calib)
        assert p.flags == flags and p.quantization == quant and not p.strongly_typed


@pytest.mark.parametrize("precision, calib, model, caps, fragments", [
    ("fp16", None, FP32_ONNX, NO_FAST, ["no fast FP16", "--fp32"]),
    ("best", "c", FP32_ONNX, NO_FAST, ["no fast FP16"]),
    ("int8", "c", FP32_ONNX, Caps(tensorrt="8.5.2", fast_int8=False), ["no fast INT8", "--fp16"]),
    ("int8", None, FP32_ONNX, XAVIER, ["--calib", "edgekit quantize"]),
    ("fp16", None, QDQ_ONNX, XAVIER, ["Q/DQ", "--int8"]),
    ("fp32", None, QDQ_ONNX, ORIN_TRT10, ["Q/DQ"]),
    ("fp8", None, FP32_ONNX, XAVIER, ["unknown precision"]),
    ("int8", "c", FP32_ONNX, Caps(tensorrt="10.9", calibrators=False), ["no INT8 calibrators", "Q/DQ"]),
])
def test_refusals(precision, calib, model, caps, fragments):
    with pytest.raises(EdgekitError) as err:
        plan(precision, caps, model, calib=calib)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_default_is_fp32_without_fast_fp16():
    assert plan(None, NO_FAST).precision == "fp32"


def test_never_another_precision_than_asked():
    """Over every request x device x model: a plan either matches the request exactly or is an error."""
    caps_list = [XAVIER, ORIN_TRT10, DESKTOP_TRT11, NO_FAST, Caps(tensorrt="8.5.2", fast_int8=False)]
    models = [FP32_ONNX, QDQ_ONNX, ModelFacts(float_type="fp16"), ModelFacts(qdq=True, float_type="fp16")]
    for precision, caps, model, calib in itertools.product(PRECISIONS, caps_list, models, [None, "c"]):
        try:
            p = plan(precision, caps, model, calib=calib)
        except EdgekitError:
            continue
        assert p.precision == precision
        if not p.strongly_typed:
            assert ("FP16" in p.flags) == (precision in ("fp16", "best"))
            assert ("INT8" in p.flags) == (precision in ("int8", "best"))


# --- TensorRT 11: strongly typed only ---------------------------------------------------------------------------
def test_trt11_fp16_from_fp32_onnx_is_refused_with_the_way_out():
    with pytest.raises(EdgekitError) as err:
        plan("fp16", DESKTOP_TRT11)
    assert "strongly typed" in str(err.value) and "edgekit quantize" in str(err.value) and "--fp16" in str(err.value)


def test_trt11_builds_what_the_model_is():
    assert plan(None, DESKTOP_TRT11).precision == "fp32"
    p = plan("fp16", DESKTOP_TRT11, ModelFacts(float_type="fp16"))
    assert p.strongly_typed and p.flags == [] and p.precision == "fp16"
    p = plan("int8", DESKTOP_TRT11, QDQ_ONNX)
    assert p.strongly_typed and p.quantization == "qdq"
    assert plan("best", DESKTOP_TRT11, ModelFacts(qdq=True, float_type="fp16")).precision == "best"


@pytest.mark.parametrize("precision, model, fragment", [
    ("int8", FP32_ONNX, "Q/DQ models (no calibrators)"),
    ("best", QDQ_ONNX, "--high-precision fp16"),
    ("int8", ModelFacts(qdq=True, float_type="fp16"), "--high-precision fp32"),
])
def test_trt11_int8_rules(precision, model, fragment):
    with pytest.raises(EdgekitError, match="TensorRT 11.0.0") as err:
        plan(precision, DESKTOP_TRT11, model, calib="c")
    assert fragment in str(err.value)


# --- DLA ------------------------------------------------------------------------------------------------------
def test_dla():
    p = plan("fp16", XAVIER, dla_core=1)
    assert p.dla_core == 1 and "GPU_FALLBACK" not in p.flags and any("fallback" in n for n in p.notes)
    assert "GPU_FALLBACK" in plan("int8", XAVIER, calib="c", dla_core=0, gpu_fallback=True).flags
    for kw, caps, fragment in [
        (dict(precision="fp16", dla_core=0), Caps(tensorrt="10.3", gpu="RTX"), "no DLA"),
        (dict(precision="fp16", dla_core=2), XAVIER, "numbered 0..1"),
        (dict(precision="fp32", dla_core=0), XAVIER, "FP16 or INT8"),
        (dict(precision="fp16", gpu_fallback=True), XAVIER, "only applies with --dla"),
    ]:
        with pytest.raises(EdgekitError, match=fragment):
            plan_build(BuildRequest(**kw), caps, FP32_ONNX)


# --- names, tactic sources ---------------------------------------------------------------------------------------
def test_engine_names_say_what_they_are():
    assert engine_name("yolov8m", plan("int8", calib="c"), XAVIER) == "yolov8m-int8-sm72-trt8.5.2.engine"
    assert engine_name("yolov8m", plan("best", model=QDQ_ONNX), ORIN_TRT10) == "yolov8m-best-qdq-sm87-trt10.3.0.engine"
    assert engine_name("n", plan("fp16", dla_core=0), XAVIER, batch=4) == "n-fp16-dla0-b4-sm72-trt8.5.2.engine"
    # edgekit quantize's output already says what it is: yolov8m-int8-qdq.onnx, not ...-int8-qdq-int8-qdq-...
    qdq_name = engine_name("yolov8m-int8-qdq", plan("int8", model=QDQ_ONNX), XAVIER)
    assert qdq_name == "yolov8m-int8-qdq-sm72-trt8.5.2.engine"


def test_tactic_sources():
    assert parse_tactic_sources(None) == ["EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS"]
    assert parse_tactic_sources("+CUDNN,-JIT_CONVOLUTIONS") == ["EDGE_MASK_CONVOLUTIONS", "CUDNN"]
    assert parse_tactic_sources("cublas,cudnn") == ["CUBLAS", "CUDNN"]
    for bad, fragment in [("CUBLAS,-CUDNN", "not both"), ("+FOO", "unknown source")]:
        with pytest.raises(EdgekitError, match=fragment):
            parse_tactic_sources(bad)


# --- calibration data and cache ----------------------------------------------------------------------------------
def _images(folder, n, shape=(90, 120)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / ("%03d.png" % i)), rng.integers(0, 255, shape + (3,), dtype=np.uint8))
    return folder


@pytest.mark.parametrize("setup, kwargs, fragment", [
    (lambda d: d / "missing", {}, "not found"),
    (lambda d: (d / "file.txt").write_text("x") and d / "file.txt", {}, "not a folder"),
    (lambda d: (d / "empty").mkdir() or d / "empty", {}, "no images"),
    (lambda d: _images(d / "few", 3), dict(batch_size=4), "has 3 decodable image(s)"),
    (lambda d: _images(d / "few2", 5), dict(batch_size=2, max_batches=3), "lower --calib-batches"),
])
def test_calibration_folder_errors(tmp_path, setup, kwargs, fragment):
    folder = setup(tmp_path)
    args = dict(batch_size=1, hw=(64, 64))
    args.update(kwargs)
    with pytest.raises(EdgekitError) as err:
        CalibrationSet.from_folder(folder, **args)
    assert fragment in str(err.value)


def test_calibration_batches_are_inference_preprocessing(tmp_path):
    folder = _images(tmp_path / "c", 7)
    (folder / "broken.jpg").write_bytes(b"not an image")
    calib = CalibrationSet.from_folder(folder, batch_size=2, hw=(64, 96))
    batches = list(calib.batches())
    # 8 files, one undecodable: it is named and left out before counting, so 7 frames -> 3 full batches
    assert calib.num_batches == 3 and len(batches) == 3 and calib.undecodable == [str(folder / "broken.jpg")]
    assert all(b.shape == (2, 3, 64, 96) and b.dtype == np.float32 and b.flags.c_contiguous for b in batches)
    frames = [cv2.imread(str(p)) for p in sorted(folder.glob("*.png"))[:2]]
    expected, _ = preprocess(frames, (64, 96))
    np.testing.assert_array_equal(batches[0], expected)
    assert len(list(CalibrationSet.from_folder(folder, 2, (64, 96), max_batches=1).batches())) == 1


def test_quantize_images_is_a_cap_not_a_demand(tmp_path):
    """quantize --images 256 (its default) on a folder of 5 uses the 5; build --calib-batches 256 still refuses."""
    folder = _images(tmp_path / "five", 5)
    assert CalibrationSet.from_folder(folder, 1, (64, 64), max_batches=256, at_most=True).num_batches == 5
    assert CalibrationSet.from_folder(folder, 1, (64, 64), max_batches=3, at_most=True).num_batches == 3
    with pytest.raises(EdgekitError, match="lower --calib-batches"):
        CalibrationSet.from_folder(folder, 1, (64, 64), max_batches=256)


def test_cache_key_covers_what_went_in(tmp_path):
    folder = _images(tmp_path / "c", 4)
    base = CalibrationSet.from_folder(folder, 1, (64, 64))
    key = cache_key("a" * 64, base)
    assert key == cache_key("a" * 64, CalibrationSet.from_folder(folder, 1, (64, 64)))
    others = [
        cache_key("b" * 64, base),
        cache_key("a" * 64, CalibrationSet.from_folder(folder, 1, (96, 96))),
        cache_key("a" * 64, CalibrationSet.from_folder(folder, 2, (64, 64))),
        cache_key("a" * 64, CalibrationSet.from_folder(folder, 1, (64, 64), max_batches=2)),
    ]
    _images(folder, 5)  # one more image
    others.append(cache_key("a" * 64, CalibrationSet.from_folder(folder, 1, (64, 64))))
    assert len(set(others + [key])) == len(others) + 1


def test_calibration_cache_is_never_read_under_another_key(tmp_path):
    cache = CalibrationCache.default(tmp_path / "calib", "yolov8n", "k1" * 32)
    assert cache.read() is None
    cache.write(b"TRT-8502-EntropyCalibration2\ndata")
    assert cache.read() == b"TRT-8502-EntropyCalibration2\ndata"
    assert json.loads(cache.meta_path.read_text())["key"] == "k1" * 32
    assert CalibrationCache(cache.path, "k2" * 32).read() is None  # stale: recalibrate
    assert not list((tmp_path / "calib").glob(".*tmp"))
