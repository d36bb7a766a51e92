"""TensorRT for real: build, load, run, compare with ONNX Runtime, bench. Marked ``gpu``: they skip without
TensorRT + pycuda + a CUDA GPU (CI) and run on the device machine or a Jetson (``pytest -m gpu``).

Engine builds take minutes on TensorRT 8.5, so one module-scoped build per precision is shared by the tests.
"""

import json
import shutil

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from tests.helpers import assert_user_error, invoke

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def engines(synthetic_model, synthetic_calib, tmp_path_factory):
    """FP16 and calibrated INT8 engines of the trained synthetic YOLOv8n (160x160)."""
    data, _, onnx_path = synthetic_model
    work = tmp_path_factory.mktemp("trt")
    calib = synthetic_calib
    out = {}
    for key, args in [("fp16", ["--fp16"]), ("int8", ["--int8", "--calib", calib])]:
        result = invoke(["build", onnx_path, "--out", work, "--timing-cache", work / "timing.cache"] + args)
        assert result.exit_code == 0, result.output
        out[key] = next(work.glob("*-%s-sm*.engine" % key))
    return data, onnx_path, calib, out


def test_fp16_engine_matches_onnxruntime(engines):
    from edgekit.bench.frames import load_frames
    from edgekit.eval.compare import compare
    from edgekit.runtime import open_runner

    data, onnx_path, _, out = engines
    frames = load_frames(data.parent / "images" / "val", limit=32)
    with open_runner(onnx_path, "onnxruntime") as a, open_runner(out["fp16"]) as b:
        result = compare(a, b, frames)
        assert b.clock == "cuda" and {"h2d", "compute", "d2h"} <= set(b.timings)
    det = result["detections"]
    assert det["match_rate"] > 0.95 and det["class_agreement"] == 1.0 and det["mean_iou"] > 0.9, det


def test_int8_engine_agreement_is_reported(engines):
    from edgekit.bench.frames import load_frames
    from edgekit.eval.compare import compare
    from edgekit.runtime import open_runner

    data, onnx_path, _, out = engines
    manifest = json.loads(out["int8"].with_name(out["int8"].name + ".json").read_text())
    assert manifest["precision"] == "int8" and manifest["quantization"] == "calibrated"
    assert manifest["calibration"]["fed"] == manifest["calibration"]["batches"] > 0
    with open_runner(onnx_path, "onnxruntime") as a, open_runner(out["int8"]) as b:
        result = compare(a, b, load_frames(data.parent / "images" / "val", limit=32))
    print("INT8 vs ONNX Runtime FP32:", result["detections"])
    assert result["detections"]["match_rate"] > 0.5


def test_second_int8_build_reuses_the_calibration_cache(engines, tmp_path):
    _, onnx_path, calib, out = engines
    result = invoke(["build", onnx_path, "--int8", "--calib", calib, "--out", out["int8"].parent,
                     "--name", "again.engine"])
    assert result.exit_code == 0 and "reusing calibration table" in result.output


def test_bench_engine_and_onnx_side_by_side_with_cuda_graph(engines, tmp_path):
    _, onnx_path, _, out = engines
    result = invoke(["bench", onnx_path, out["fp16"], "--iterations", 20, "--json", tmp_path / "b.json"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "b.json").read_text())
    trt = [r for r in doc["results"] if r["backend"] == "tensorrt"][0]
    assert {"h2d", "compute", "d2h", "e2e"} <= set(trt["stages"]) and trt["precision"] == "fp16"
    result = invoke(["bench", out["fp16"], "--cuda-graph", "--iterations", 20, "--no-save"])
    assert result.exit_code == 0, result.output


def test_engine_for_another_tensorrt_is_refused_before_loading(engines, tmp_path):
    _, _, _, out = engines
    copy = tmp_path / out["fp16"].name
    shutil.copy(out["fp16"], copy)
    manifest = json.loads(out["fp16"].with_name(out["fp16"].name + ".json").read_text())
    manifest["tensorrt"] = "7.1.3.0"
    (tmp_path / (copy.name + ".json")).write_text(json.dumps(manifest))
    assert_user_error(invoke(["bench", copy, "--no-save"]), "TensorRT 7.1.3.0", "rebuild it on this device")


def test_foreign_file_is_a_clear_error(tmp_path):
    from edgekit.runtime.tensorrt.runner import TensorRTRunner

    junk = tmp_path / "junk.engine"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(EdgekitError, match="cannot load"):
        TensorRTRunner(junk)


def test_inspect_engine_shows_layer_precisions(engines):
    _, _, _, out = engines
    result = invoke(["inspect", out["fp16"], "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["tensors"][0]["mode"] == "input" and any(layer.get("precision") == "FP16" for layer in doc["layers"])


def test_qdq_engine_builds_without_calibration_images(engines, tmp_path):
    pytest.importorskip("modelopt.onnx.quantization")
    _, onnx_path, calib, out = engines
    result = invoke(["quantize", onnx_path, "--calib", calib, "--images", 16, "--out", tmp_path])
    assert result.exit_code == 0, result.output
    qdq = tmp_path / (onnx_path.stem + "-int8-qdq.onnx")
    result = invoke(["build", qdq, "--int8", "--out", tmp_path])
    assert result.exit_code == 0, result.output
    manifest = json.loads(next(tmp_path.glob("*-int8-qdq-*.engine.json")).read_text())
    assert manifest["quantization"] == "qdq" and manifest["calibration"] is None


@pytest.mark.yolov8m
@pytest.mark.parametrize("name", ["yolov8n", "yolov8m"])
def test_full_size_fp16_and_int8_engines_build_and_bench(name, synthetic_calib, tmp_path):
    """The sizes the reference measured: 640 px, FP16 and calibrated INT8 engines of YOLOv8n and YOLOv8m (random
    init: speed only), benched beside their ONNX; the results JSON is what benchmarks/ keeps."""
    from edgekit.host.export import export

    onnx_path = export(weights=name + ".yaml", imgsz=640, out=str(tmp_path))
    engines = []
    for args in (["--fp16"], ["--int8", "--calib", synthetic_calib]):
        result = invoke(["build", onnx_path, "--out", tmp_path, "--timing-cache", tmp_path / "timing.cache"] + args)
        assert result.exit_code == 0, result.output
        engines.append(next(tmp_path.glob("%s-%s-sm*.engine" % (name, args[0][2:]))))
    out = tmp_path / "bench.json"
    result = invoke(["bench", onnx_path, *engines, "--iterations", 200, "--warmup", 50, "--json", out])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["results"]
    assert [r["precision"] for r in rows] == ["fp32", "fp16", "int8"]
    assert all(r["stages"]["compute"]["median"] > 0 for r in rows[1:])
