"""TensorRT for real: build, load, run, compare with ONNX Runtime, bench. Marked ``gpu``: they skip without
TensorRT + pycuda + a CUDA GPU (CI) or without the host-built assets, and run on the device machine or a Jetson
through ``jetson/gpu-check.sh`` (or ``pytest -m gpu`` with ``EDGEKIT_GPU_ASSETS`` set).

No torch here: the trained YOLOv8n ONNX, its Q/DQ twin, its letterbox + NMS twin, the trained YOLO26n's
end-to-end ONNX and the frames come from ``make gpu-assets`` on the host (``tests/gpu_assets.py``). Tests are named
by the engine they need (``test_fp16_``, ``test_qdq_``, ``test_nms_``, ``test_int8_``, ``test_e2e_``), so the check
runs them engine by engine, most informative first (``-k test_fp16_``). Each engine is built once per session
with ``--fast-build --if-changed`` into ``EDGEKIT_GPU_WORK``, so a second run on the same machine reuses it, and
with ``EDGEKIT_GPU_NO_BUILD=1`` (set by the check, whose own steps built them) a missing engine is a skip, not a
second build.

Agreement with ONNX Runtime is asserted box by box on 32 frames of a weakly trained 160 px model: every box that
scores clear of the threshold is found again, close; boxes at the threshold may flip (how many sit there depends
on the run that trained the fixture, so no match-rate floor). The figures themselves are written as JSON into
``EDGEKIT_GPU_RESULTS`` when it is set (the check's summary table reads them). The full-size
YOLOv8m build is marked ``gpu_full`` instead: one build per test, select one per call with ``-k``.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from tests.gpu_assets import ENGINES, PRECISION, load_assets, results_dir, work_dir
from tests.helpers import assert_same_detections, assert_user_error, invoke

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
        found = find_current_engine(work, sha256_file(assets.onnx_for(key)), PRECISION[key], device_facts())
        if found is None:
            pytest.skip("no %s engine in %s: its build step failed or ran out of time (see the check's log)"
                        % (key, work))
        return found
    result = invoke(assets.build_args(key, work))
    assert result.exit_code == 0, result.output
    return next(p for p in reversed(result.output.split()) if p.endswith(".engine"))


# a correct FP16 engine against ONNX Runtime (FP32): scores within 0.05, corners within 2 px (FP16 at 160 px, x2
# to the frame); a box within 0.05 of the threshold may come and go
TOL = dict(conf_tol=0.05, box_atol=2.0)  # for tests/helpers.py assert_same_detections


def _engine_fixture(key):
    """A session fixture for one of the check's engines (built once, or found built by the check)."""
    @pytest.fixture(scope="session", name=key)
    def engine(assets):
        return Path(engine_for(assets, key))
    return engine


fp16, qdq, nms, int8, e2e = (_engine_fixture(key) for key in ENGINES)


def manifest_of(engine):
    return json.loads(engine.with_name(engine.name + ".json").read_text())


def report(name, doc):
    """Keep a result for the check's results JSON (and print it for a plain pytest run)."""
    print("%s: %s" % (name, json.dumps(doc)))
    folder = results_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (".%s.json.tmp" % name)  # whole or not at all: the check may be stopped at any moment
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(folder / ("%s.json" % name))


def agreement(assets, engine, cuda_graph=False, reference=None):
    """edgekit compare of ``reference`` (default: the float YOLOv8n) on ONNX Runtime and the engine."""
    from edgekit.bench.frames import load_frames
    from edgekit.eval.compare import compare
    from edgekit.runtime import open_runner

    with open_runner(reference or assets.model, "onnxruntime") as a, open_runner(engine, cuda_graph=cuda_graph) as b:
        result = compare(a, b, load_frames(assets.val, limit=32))
        assert b.clock == "cuda" and {"h2d", "compute", "d2h"} <= set(b.timings)
    return result


def detections(assets, engine, cuda_graph=False, reference=None):
    """[(ONNX Runtime's detections, the engine's)] on the 32 val frames, host pre- and postprocessing on both;
    ``reference`` is the ONNX the engine was built from when it is not the float YOLOv8n."""
    from edgekit.bench.frames import load_frames
    from edgekit.runtime import open_runner
    from edgekit.vision.pipeline import Pipeline

    out, reference = [], reference or assets.model
    with open_runner(reference, "onnxruntime") as ref, open_runner(engine, cuda_graph=cuda_graph) as trt:
        a, b = Pipeline(ref), Pipeline(trt)
        for frame in load_frames(assets.val, limit=32):
            blob, boxes = a.preprocess([frame])
            da = a.postprocess(ref.infer(blob), boxes)[0]
            blob, boxes = b.preprocess([frame])
            out.append((da, b.postprocess(trt.infer(blob), boxes)[0]))
    return out


def bench(assets, key, *models, graph=False):
    """Bench on the validation frames (what the letterbox engine takes as they are); kept as bench-KEY."""
    out = Path(tempfile.mkdtemp()) / "bench.json"
    args = ["bench", *models, "--source", assets.val, "--iterations", 200, "--warmup", 50, "--json", out]
    result = invoke(args + (["--cuda-graph"] if graph else []))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    report("bench-%s%s" % (key, "-graph" if graph else ""), doc)
    rows = [r for r in doc["results"] if r["backend"] == "tensorrt"]
    assert rows and all({"h2d", "compute", "d2h", "e2e"} <= set(r["stages"]) for r in rows)
    return rows


def camera_record(summary):
    """What the check keeps of a camera summary (jetson/gpu_report.py reads it)."""
    return {k: summary.get(k) for k in ("source", "frames", "fps", "engine_fps", "loop_vs_engine", "bottleneck",
                                        "stages", "clock")}


def camera_loop(key, engine, width, height, frames=600):
    """edgekit camera on a synthetic source as fast as it goes (fps=0), headless: the live loop's FPS against the
    engine alone (the summary's loop_vs_engine; the docs' target on a GPU is >= 0.95), kept as camera-KEY."""
    out = Path(tempfile.mkdtemp()) / "camera.json"
    result = invoke(["camera", "synthetic://?width=%d&height=%d&fps=0" % (width, height), "--model", engine,
                     "--headless", "--frames", frames, "--json", out])
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(out.read_text())["results"]
    report("camera-%s" % key, camera_record(summary))
    assert summary["backend"] == "tensorrt" and summary["frames"] == frames and summary["clock"] == "cuda"
    assert summary["fps"] > 0 and 0 < summary["loop_vs_engine"] <= 1.5, summary
    return summary


def layer_precisions(engine):
    result = invoke(["inspect", engine, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output[result.output.index("{"):])
    assert doc["tensors"][0]["mode"] == "input", doc.get("note")
    return {(layer.get("precision") or "").upper() for layer in doc["layers"]}


# --- FP16: the main path ---------------------------------------------------------------------------------------
def test_fp16_engine_matches_onnxruntime(assets, fp16):
    report("manifest-fp16", manifest_of(fp16))
    result = agreement(assets, fp16)
    report("agreement-fp16", result)
    assert manifest_of(fp16)["build_speed"]["fast_build"] is True
    assert_same_detections(detections(assets, fp16), **TOL)


def test_fp16_bench_beside_onnxruntime_with_and_without_cuda_graph(assets, fp16):
    from edgekit.runtime.tensorrt.cuda import cuda_python_missing

    (row,) = bench(assets, "fp16", assets.model, fp16)
    assert row["precision"] == "fp16"
    missing = cuda_python_missing()
    if missing:
        pytest.skip(missing)
    (graph,) = bench(assets, "fp16", fp16, graph=True)
    assert graph["config"]["cuda_graph"] is True


def test_fp16_bench_reads_the_gpus_power(assets, fp16):
    """edgekit bench --power on the engine: board power and energy per frame while it runs, from NVML on a desktop
    or data-centre GPU (nvidia-ml-py, which the device kit of ``make gpu-kit`` carries) or the INA3221 rails on a
    Jetson; kept as power-fp16."""
    out = Path(tempfile.mkdtemp()) / "power.json"
    result = invoke(["bench", fp16, "--source", assets.val, "--duration", 3, "--warmup", 20, "--power",
                     "--power-interval", 50, "--json", out])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["results"]
    power = row["power"]
    if not power.get("power_available"):
        pytest.skip("no power source here: %s" % "; ".join(power.get("missing") or ["none named"]))
    report("power-fp16", power)
    assert power["samples"] >= 10 and power["total"]["mean_w"] > 0 and power["total"]["energy_j"] > 0, power
    assert power.get("energy_per_frame_mj", 0) > 0 and power["frames"] > 0, power


def test_fp16_streams_through_the_multi_source_loop(assets, fp16):
    """edgekit streams (the multi-source loop: muxer, batches, CUDA-event stages) on the engine; kept as
    streams-fp16."""
    out = Path(tempfile.mkdtemp()) / "streams.json"
    result = invoke(["streams", fp16, "--width", 640, "--height", 360, "--fps", 30, "--seconds", 2, "--warmup", 0.5,
                     "--json", out])
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(out.read_text())["results"]
    report("streams-fp16", doc)
    assert doc["backend"] == "tensorrt" and len(doc["steps"]) == 1 and doc["steps"][0]["inference_ms"] > 0


def test_fp16_camera_tracks_and_counts_on_the_engine(fp16):
    """The camera with ByteTrack and a counting line on the engine's detections (supervision: edgekit[track],
    which the lent machine's kit does not carry, so there it skips)."""
    cam = Path(tempfile.mkdtemp()) / "camera.json"
    result = invoke(["camera", "synthetic://?width=640&height=360&fps=0", "--model", fp16, "--headless",
                     "--frames", 30, "--count-line", "320,0,320,360", "--json", cam])
    if "supervision" in result.output and result.exit_code == 2:
        pytest.skip("supervision is not installed here (edgekit[track])")
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(cam.read_text())["results"]
    assert {"track", "count", "compute"} <= set(summary["stages"]) and summary["counts"]["line"] is not None


def test_fp16_camera_loop_against_the_engine_alone(fp16):
    """Host letterbox and NMS around the engine, 640x360 frames."""
    camera_loop("fp16", fp16, 640, 360)


def test_fp16_cuda_graph_replays_the_same_work(assets, fp16):
    from edgekit.runtime.tensorrt.cuda import cuda_python_missing

    missing = cuda_python_missing()
    if missing:
        pytest.skip(missing)
    plain, graph = agreement(assets, fp16)["detections"], agreement(assets, fp16, cuda_graph=True)["detections"]
    report("graph-vs-plain-fp16", {"plain": plain, "graph": graph})
    assert_same_detections(detections(assets, fp16, cuda_graph=True), **TOL)
    assert abs(graph["b"] - plain["b"]) <= max(1, 0.02 * plain["b"]), (plain, graph)


def test_fp16_two_runners_on_two_threads_keep_their_own_log(assets, fp16):
    """One process-wide TensorRT logger, two engines in use at once from two threads (the camera loop's case)."""
    import threading

    from edgekit.bench.frames import load_frames
    from edgekit.runtime import open_runner
    from edgekit.vision.pipeline import Pipeline

    frame = load_frames(assets.val, limit=1)[0]
    counts, errors = [], []

    def run():
        try:
            with open_runner(fp16) as runner:
                pipe = Pipeline(runner)
                for _ in range(20):
                    blob, boxes = pipe.preprocess([frame])
                    counts.append(len(pipe.postprocess(runner.infer(blob), boxes)[0]))
                errors.extend(runner.logs.errors)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(counts) == 40 and len(set(counts)) == 1, (errors, set(counts))


def test_fp16_engine_for_another_gpu_is_refused_before_loading(fp16, tmp_path):
    copy = tmp_path / fp16.name
    shutil.copy(fp16, copy)
    manifest = manifest_of(fp16)
    manifest["sm"] = "7.2" if manifest["sm"] != "7.2" else "8.7"
    (tmp_path / (copy.name + ".json")).write_text(json.dumps(manifest))
    assert_user_error(invoke(["bench", copy, "--no-save"]), "sm_%s" % manifest["sm"].replace(".", ""),
                      "rebuild it on this device")


def test_fp16_truncated_or_foreign_engine_is_one_line(fp16, tmp_path):
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


def test_fp16_inspect_shows_layer_precisions(fp16):
    assert any("FP16" in p for p in layer_precisions(fp16))


# --- INT8 from edgekit quantize's Q/DQ model: no calibration images on the device --------------------------------
def test_qdq_engine_builds_without_calibration_images(assets, qdq):
    manifest = manifest_of(qdq)
    report("manifest-qdq", manifest)
    assert manifest["quantization"] == "qdq" and manifest["calibration"] is None and manifest["precision"] == "int8"
    result = agreement(assets, qdq)
    report("agreement-qdq", result)
    assert result["detections"]["a"] > 0 and result["detections"]["b"] > 0, result["detections"]


def test_qdq_bench_and_int8_layers(assets, qdq):
    (row,) = bench(assets, "qdq", qdq)
    assert row["precision"] == "int8"
    assert any("INT8" in p for p in layer_precisions(qdq))


# --- uint8 frames letterboxed in the graph, EfficientNMS_TRT: the boxes of the host NMS -----------------------
def test_nms_engine_finds_the_host_nms_boxes(assets, nms):
    """The NMS engine takes the val frames as they are (uint8 320x240) and returns boxes in frame coordinates;
    they match what the float model + host letterbox + host NMS find on ONNX Runtime (one label per box on
    both sides: the graph keeps each anchor's best class before the plugin)."""
    from edgekit.bench.frames import load_frames
    from edgekit.eval.compare import match
    from edgekit.runtime import open_runner
    from edgekit.vision.pipeline import Pipeline

    manifest = manifest_of(nms)
    report("manifest-nms", manifest)
    assert manifest["nms"]["in_graph"] and manifest["nms"]["multi_label"] is False
    n_a = n_b = matched = same = 0
    ious, per_frame = [], []
    with open_runner(assets.model, "onnxruntime") as ref, open_runner(nms) as trt:
        a, b = Pipeline(ref), Pipeline(trt)
        assert b.nms and b.format.kind == "uint8-letterbox" and trt.input_dtype == np.uint8
        for frame in load_frames(assets.val, limit=32):
            blob, boxes = a.preprocess([frame])
            da = a.postprocess(ref.infer(blob), boxes)[0]
            blob, boxes = b.preprocess([frame])
            db = b.postprocess(trt.infer(blob), boxes)[0]
            per_frame.append((da, db))
            pairs = match(da, db, 0.5)
            n_a, n_b, matched = n_a + len(da), n_b + len(db), matched + len(pairs)
            same += sum(int(da.class_id[i] == db.class_id[j]) for i, j, _ in pairs)
            ious += [iou for _, _, iou in pairs]
    det = {"a": n_a, "b": n_b, "matched": matched, "match_rate": round(matched / max(n_a, n_b, 1), 5),
           "class_agreement": round(same / matched, 5) if matched else None,
           "mean_iou": round(float(np.mean(ious)), 5) if ious else None}
    report("agreement-nms", {"a": str(assets.model), "b": str(nms), "frames": 32, "detections": det})
    assert_same_detections(per_frame, **TOL)


def test_nms_engine_served_answers_what_its_pipeline_finds(assets, nms):
    """edgekit serve of the NMS engine (uint8 frames, letterbox and EfficientNMS_TRT in the graph): each answer is
    the engine's own detections; a conf below the exported one is a 400 naming it. Needs the serve extra."""
    for module in ("httpx", "starlette", "uvicorn"):
        pytest.importorskip(module, reason="edgekit serve needs the serve extra: pip install 'edgekit[serve]'")
    from serve_helpers import Server

    from edgekit.bench.frames import load_frames
    from edgekit.runtime import open_runner
    from edgekit.vision.pipeline import Pipeline

    paths = sorted(Path(assets.val).glob("*.jpg"))[:8]
    expected = []
    with open_runner(nms) as trt:
        pipe = Pipeline(trt)
        for path in paths:
            blob, boxes = pipe.preprocess(load_frames(path))
            expected.append(pipe.postprocess(trt.infer(blob), boxes)[0])
    server = Server(nms)
    try:
        info = server.get("/v1/info").json()
        assert info["input"]["format"] == "uint8-letterbox" and info["output"]["format"] == "trt-nms"
        for path, dets in zip(paths, expected):
            got = server.post(path.read_bytes()).json()["detections"]
            assert len(got) == len(dets)
            assert np.allclose(np.array([d["xyxy"] for d in got]).reshape(-1, 4), dets.xyxy, atol=0.02)
        r = server.post(paths[0].read_bytes(), params="?conf=0.01")
        assert r.status_code == 400 and "NMS in the engine at conf" in r.json()["error"], r.text
    finally:
        code, out = server.stop()
    assert code == 0, out


def test_nms_bench(assets, nms):
    (row,) = bench(assets, "nms", nms)
    assert row["input_format"].startswith("uint8") and row["trt_nms"] is True


def test_nms_camera_loop_against_the_engine_alone(nms):
    """The camera-shaped engine (the frame goes in as the camera gives it, letterbox and NMS in the graph): what
    the live loop keeps of the engine's FPS."""
    camera_loop("nms", nms, 320, 240)


# --- INT8 calibrated on the device (the slowest build: calibration runs first) ---------------------------------
def test_int8_calibrated_engine_agreement_is_reported(assets, int8):
    manifest = manifest_of(int8)
    report("manifest-int8", manifest)
    assert manifest["precision"] == "int8" and manifest["quantization"] == "calibrated"
    assert manifest["calibration"]["fed"] == manifest["calibration"]["batches"] > 0 or \
        manifest["calibration"]["from_cache"]
    result = agreement(assets, int8)
    report("agreement-int8", result)
    assert result["detections"]["a"] > 0 and result["detections"]["b"] > 0, result["detections"]


def test_int8_calibration_table_is_reused_without_rebuilding(assets, int8):
    """The table the INT8 build wrote is found again under the same key and read as reused: what a second INT8
    build of this ONNX, size and image set would do (checked without spending minutes on that build)."""
    from edgekit.runtime.tensorrt.calib import CalibrationCache, CalibrationFeed, CalibrationSet, cache_key

    calibration = manifest_of(int8)["calibration"]
    calib = CalibrationSet.from_folder(assets.calib, calibration["batch"], tuple(manifest_of(int8)["imgsz"]),
                                       calibration["batches"])
    key = cache_key(manifest_of(int8)["onnx_sha256"], calib)
    assert key == calibration["cache_key"]
    feed = CalibrationFeed(calib, CalibrationCache(calibration["cache"], key), None, lambda: None)
    assert feed.read_cache() and feed.used_cache
    result = invoke(assets.build_args("int8", work_dir()))  # --if-changed: nothing to build
    assert result.exit_code == 0 and "up to date" in result.output, result.output


def test_int8_bench_and_int8_layers(assets, int8):
    (row,) = bench(assets, "int8", int8)
    assert row["precision"] == "int8"
    assert any("INT8" in p for p in layer_precisions(int8))


# --- YOLO26n's end-to-end head (export --end2end: ReduceMax/TopK/Mod/GatherElements, no NMS), FP16: last -------
def test_e2e_engine_matches_onnxruntime_box_by_box(assets, e2e):
    """TensorRT parses and runs the end-to-end graph: the engine keeps the ONNX's head and K, and its [1, K, 6]
    rows, read by the same Pipeline (conf on the host, no NMS), are ONNX Runtime's boxes on the same ONNX."""
    from edgekit.runtime import open_runner
    from edgekit.vision.pipeline import Pipeline

    manifest = manifest_of(e2e)
    report("manifest-e2e", manifest)
    assert manifest["head"] == "end2end" and manifest["precision"] == "fp16", manifest
    k = manifest["max_det"]
    assert isinstance(k, int) and k > 0 and manifest["outputs"][0]["shape"][1:] == [k, 6], manifest["outputs"]
    with open_runner(e2e) as trt:
        pipe = Pipeline(trt)
        assert pipe.output == "end2end" and pipe.end2end_k == k
    result = agreement(assets, e2e, reference=assets.e2e)
    report("agreement-e2e", result)
    assert result["output_format"] == {"a": "end2end", "b": "end2end"}, result["output_format"]
    assert_same_detections(detections(assets, e2e, reference=assets.e2e), **TOL)


def test_e2e_bench(assets, e2e):
    (row,) = bench(assets, "e2e", e2e)
    assert row["precision"] == "fp16" and row["output_format"] == "end2end" and row["trt_nms"] is False
