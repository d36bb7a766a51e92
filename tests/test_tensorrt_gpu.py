"""TensorRT for real: build, load, run, compare with ONNX Runtime, bench. Marked ``gpu``: they skip without
TensorRT + pycuda + a CUDA GPU (CI) or without the host-built assets, and run on the device machine or a Jetson
through ``jetson/gpu-check.sh`` (or ``pytest -m gpu`` with ``EDGEKIT_GPU_ASSETS`` set).

No torch here: the trained YOLOv8n ONNX, its Q/DQ twin and the frames come from ``make gpu-assets`` on the host
(``tests/gpu_assets.py``). Each engine (FP16, calibrated INT8, Q/DQ INT8) is built once per session with
``--fast-build --if-changed`` into ``EDGEKIT_GPU_WORK``, so a second run on the same machine reuses it, and
with ``EDGEKIT_GPU_NO_BUILD=1`` (set by the check, whose own steps built them) a missing engine is a skip, not
a second build. Results that are reported rather than asserted (INT8 agreement, bench rows) are written as
JSON into ``EDGEKIT_GPU_RESULTS`` when it is set. The full-size YOLOv8m build is marked ``gpu_full`` instead:
one build per test, select one per call with ``-k``.
"""

import json
import os
import shutil

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from tests.gpu_assets import load_assets, results_dir, work_dir
from tests.helpers import assert_user_error, invoke

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="session")
def assets():
    found, missing = load_assets()
    if missing:
        pytest.skip("; ".join(missing))
    return found


def engine_for(assets, key):
    from edgekit.manifest import sha256_file
    from edgekit.runtime.tensorrt.builder import device_facts
    from edgekit.runtime.tensorrt.engine_file import find_current_engine

    work = work_dir()
    if os.environ.get("EDGEKIT_GPU_NO_BUILD"):
        found = find_current_engine(work, sha256_file(assets.onnx_for(key)), "fp16" if key == "fp16" else "int8",
                                    device_facts())
        if found is None:
            pytest.skip("no %s engine in %s: its build step failed or ran out of time (see the check's log)"
                        % (key, work))
        return found
    result = invoke(assets.build_args(key, work))
    assert result.exit_code == 0, result.output
    return next(p for p in reversed(result.output.split()) if p.endswith(".engine"))


@pytest.fixture(scope="session")
def fp16(assets):
    return _path(engine_for(assets, "fp16"))


@pytest.fixture(scope="session")
def int8(assets):
    return _path(engine_for(assets, "int8"))


@pytest.fixture(scope="session")
def qdq(assets):
    return _path(engine_for(assets, "qdq"))


def _path(p):
    from pathlib import Path

    return Path(p)


def manifest_of(engine):
    return json.loads(engine.with_name(engine.name + ".json").read_text())


def report(name, doc):
    """Keep a result for the check's results JSON (and print it for a plain pytest run)."""
    print("%s: %s" % (name, json.dumps(doc)))
    folder = results_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ("%s.json" % name)).write_text(json.dumps(doc, indent=2))


def agreement(assets, engine, cuda_graph=False):
    from edgekit.bench.frames import load_frames
    from edgekit.eval.compare import compare
    from edgekit.runtime import open_runner

    with open_runner(assets.model, "onnxruntime") as a, open_runner(engine, cuda_graph=cuda_graph) as b:
        result = compare(a, b, load_frames(assets.val, limit=32))
        assert b.clock == "cuda" and {"h2d", "compute", "d2h"} <= set(b.timings)
    return result


def test_fp16_engine_matches_onnxruntime(assets, fp16):
    result = agreement(assets, fp16)
    det = result["detections"]
    report("agreement-fp16", result)
    assert manifest_of(fp16)["build_speed"]["fast_build"] is True
    assert det["a"] > 0 and det["match_rate"] >= 0.95, det
    assert det["mean_iou"] > 0.9 and det["class_agreement"] >= 0.98, det


def test_calibrated_int8_engine_agreement_is_reported(assets, int8):
    manifest = manifest_of(int8)
    assert manifest["precision"] == "int8" and manifest["quantization"] == "calibrated"
    assert manifest["calibration"]["fed"] == manifest["calibration"]["batches"] > 0 or \
        manifest["calibration"]["from_cache"]
    result = agreement(assets, int8)
    report("agreement-int8", result)
    assert result["detections"]["a"] > 0


def test_qdq_engine_builds_without_calibration_images(assets, qdq):
    manifest = manifest_of(qdq)
    assert manifest["quantization"] == "qdq" and manifest["calibration"] is None and manifest["precision"] == "int8"
    result = agreement(assets, qdq)
    report("agreement-int8-qdq", result)
    assert result["detections"]["a"] > 0


def test_calibration_table_is_reused_without_rebuilding(assets, int8):
    """The table the INT8 build wrote is found again under the same key and read as reused: what a second INT8
    build of this ONNX, size and image set would do (checked without spending minutes on that build)."""
    from edgekit.runtime.tensorrt.calib import CalibrationCache, CalibrationFeed, CalibrationSet, cache_key

    calibration = manifest_of(int8)["calibration"]
    calib = CalibrationSet.from_folder(assets.calib, calibration["batch"], tuple(manifest_of(int8)["imgsz"]))
    key = cache_key(manifest_of(int8)["onnx_sha256"], calib)
    assert key == calibration["cache_key"]
    feed = CalibrationFeed(calib, CalibrationCache(calibration["cache"], key), None, lambda: None)
    assert feed.read_cache() and feed.used_cache
    result = invoke(assets.build_args("int8", work_dir()))  # --if-changed: nothing to build
    assert result.exit_code == 0 and "up to date" in result.output, result.output


def test_bench_engines_beside_the_onnx(assets, fp16, int8, qdq, tmp_path):
    out = tmp_path / "bench.json"
    result = invoke(["bench", assets.model, fp16, int8, qdq, "--iterations", 100, "--warmup", 20, "--json", out])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    report("bench", doc)
    rows = [r for r in doc["results"] if r["backend"] == "tensorrt"]
    assert [r["precision"] for r in rows] == ["fp16", "int8", "int8"]
    assert all({"h2d", "compute", "d2h", "e2e"} <= set(r["stages"]) for r in rows)


def test_cuda_graph_replays_the_same_work(assets, fp16, tmp_path):
    from edgekit.runtime.tensorrt.cuda import cuda_python_missing

    missing = cuda_python_missing()
    if missing:
        pytest.skip(missing)
    plain, graph = agreement(assets, fp16), agreement(assets, fp16, cuda_graph=True)
    assert graph["detections"] == plain["detections"]
    out = tmp_path / "bench-graph.json"
    result = invoke(["bench", fp16, "--cuda-graph", "--iterations", 100, "--warmup", 20, "--json", out])
    assert result.exit_code == 0, result.output
    report("bench-cuda-graph", json.loads(out.read_text()))


def test_engine_for_another_gpu_is_refused_before_loading(fp16, tmp_path):
    copy = tmp_path / fp16.name
    shutil.copy(fp16, copy)
    manifest = manifest_of(fp16)
    manifest["sm"] = "7.2" if manifest["sm"] != "7.2" else "8.7"
    (tmp_path / (copy.name + ".json")).write_text(json.dumps(manifest))
    assert_user_error(invoke(["bench", copy, "--no-save"]), "sm_%s" % manifest["sm"].replace(".", ""),
                      "rebuild it on this device")


def test_truncated_or_foreign_engine_is_one_line(fp16, tmp_path):
    from edgekit.runtime.tensorrt.runner import TensorRTRunner

    cut = tmp_path / fp16.name
    cut.write_bytes(fp16.read_bytes()[: fp16.stat().st_size // 2])
    shutil.copy(fp16.with_name(fp16.name + ".json"), tmp_path / (cut.name + ".json"))
    assert_user_error(invoke(["bench", cut, "--no-save"]), "truncated")
    (tmp_path / (cut.name + ".json")).unlink()  # no manifest: TensorRT itself must refuse it
    assert_user_error(invoke(["bench", cut, "--no-save"]), "cannot load")
    junk = tmp_path / "junk.engine"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(EdgekitError, match="cannot load"):
        TensorRTRunner(junk)


def test_inspect_shows_layer_precisions(fp16, int8):
    for engine, precision in ((fp16, "FP16"), (int8, "INT8")):
        result = invoke(["inspect", engine, "--json"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output[result.output.index("{"):])
        assert doc["tensors"][0]["mode"] == "input", doc.get("note")
        assert any(precision in (layer.get("precision") or "").upper() for layer in doc["layers"]), doc["layers"][:5]
