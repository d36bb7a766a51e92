"""YOLO26's end-to-end head (edgekit export --end2end): the export, the fourth output format of the Pipeline, and
bench, camera, eval and compare on it; eval against ultralytics' own val of the same weights."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import pytest
from helpers import assert_user_error, detection_differences, invoke, random_init_checkpoint

from edgekit.errors import EdgekitError
from edgekit.runtime import open_runner
from edgekit.runtime.modelinfo import ModelInfo
from edgekit.vision.end2end import read_end2end
from edgekit.vision.pipeline import Pipeline, output_format
from edgekit.vision.preprocess import letterbox_plan

IMGSZ = 160


@pytest.fixture(scope="session")
def yolo26n_pt(tmp_path_factory):
    """A random-init YOLO26n saved as a checkpoint (both head branches)."""
    return random_init_checkpoint("yolo26n.yaml", tmp_path_factory.mktemp("weights26"))


@pytest.fixture(scope="session")
def yolo26n_exports(yolo26n_pt, tmp_path_factory):
    """(end-to-end ONNX, plain ONNX) of the untrained YOLO26n at 160, in one folder (the names must not collide)."""
    from edgekit.host.export import export

    out = tmp_path_factory.mktemp("onnx26")
    return (export(weights=str(yolo26n_pt), imgsz=IMGSZ, out=str(out), end2end=True),
            export(weights=str(yolo26n_pt), imgsz=IMGSZ, out=str(out)))


# --- export -------------------------------------------------------------------------------------------------------
def test_end2end_export_is_named_recorded_and_keeps_the_plain_one(yolo26n_exports):
    e2e, plain = yolo26n_exports
    assert e2e.name == "yolo26n-160-e2e.onnx" and plain.name == "yolo26n-160.onnx" and plain.exists()
    m = json.loads(Path(str(e2e) + ".json").read_text())
    assert (m["head"], m["max_det"], m["end2end_head"]) == ("end2end", 300, True)
    assert m["outputs"] == [{"name": "output0", "shape": [1, 300, 6], "dtype": "float32"}]
    assert m["end2end"]["columns"] == ["x1", "y1", "x2", "y2", "score", "class"] and not m["end2end"]["thresholded"]
    ops = {n.op_type for n in onnx.load(str(e2e)).graph.node}
    assert {"TopK", "Mod"} <= ops and "NonMaxSuppression" not in ops
    p = json.loads(Path(str(plain) + ".json").read_text())
    assert (p["head"], p["max_det"], p["end2end_head"]) == ("one2many", None, True)
    assert p["outputs"][0]["shape"] == [1, 4 + 80, 525]  # 20x20 + 10x10 + 5x5 anchors at 160
    assert m["params"] == p["params"] < 2.6e6  # the exported branch only, not both


def test_max_det_is_baked_and_capped_by_the_anchors(yolo26n_pt, tmp_path):
    result = invoke(["export", "--weights", yolo26n_pt, "--imgsz", IMGSZ, "--end2end", "--max-det", 50,
                     "--out", tmp_path])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "yolo26n-160-e2e.onnx.json").read_text())
    assert m["max_det"] == 50 and m["outputs"][0]["shape"] == [1, 50, 6]
    result = invoke(["export", "--weights", yolo26n_pt, "--imgsz", 64, "--end2end", "--out", tmp_path])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "yolo26n-64-e2e.onnx.json").read_text())
    assert m["max_det"] == 84 and m["end2end"]["requested_max_det"] == 300  # 8x8 + 4x4 + 2x2 anchors at 64
    with open_runner(tmp_path / "yolo26n-64-e2e.onnx", "onnxruntime") as runner:
        pipe = Pipeline(runner)  # the default max_det (300) is the model's 84
        assert (pipe.output, pipe.max_det, pipe.baked()) == ("end2end", 84, {"max_det": 84})
        with pytest.raises(EdgekitError, match=r"at most 84 boxes.*a larger --imgsz \(the input has only 84 anchors"):
            Pipeline(runner, max_det=300)
    assert invoke(["make-dataset", tmp_path / "ds", "--train", 1, "--val", 2]).exit_code == 0
    js = tmp_path / "eval.json"
    result = invoke(["eval", tmp_path / "yolo26n-64-e2e.onnx", "--data", tmp_path / "ds" / "data.yaml", "--json", js])
    assert result.exit_code == 0, result.output
    assert json.loads(js.read_text())["results"][0]["settings"]["max_det"] == 84  # eval's default, as applied
    assert_user_error(invoke(["eval", tmp_path / "yolo26n-64-e2e.onnx", "--data", tmp_path / "ds" / "data.yaml",
                              "--max-det", 100, "--no-save"]), "returns at most 84 boxes")


@pytest.mark.parametrize("weights", ["yolov8n.yaml", "yolo11n.yaml"])
def test_end2end_is_refused_for_models_without_a_one_to_one_head(weights, tmp_path):
    assert_user_error(invoke(["export", "--weights", weights, "--imgsz", IMGSZ, "--end2end", "--out", tmp_path]),
                      "--end2end", "no end-to-end (one-to-one) head", "export it without --end2end")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, fragment", [
    (["--trt-nms"], "an end-to-end head needs no NMS"),
    (["--conf", "0.3"], "an --end2end graph has none"),
    (["--iou", "0.5"], "no IoU applies"),
    (["--max-det", "5000"], "TopK takes k <= 3840"),
    (["--dynamic"], "--end2end needs static shapes"),
])
def test_end2end_option_conflicts_are_one_line(args, fragment, tmp_path):
    result = invoke(["export", "--weights", "yolo26n.yaml", "--end2end", "--out", tmp_path] + args)
    assert_user_error(result, fragment)
    assert not list(tmp_path.iterdir())


def test_max_det_without_trt_nms_or_end2end_names_both(tmp_path):
    assert_user_error(invoke(["export", "--weights", "yolo26n.yaml", "--max-det", 100, "--out", tmp_path]),
                      "--trt-nms", "--end2end")


# --- recognising and reading the output ------------------------------------------------------------------------
def fake_runner(shapes, names=None, manifest=None):
    names = names or ["output0"] * max(1, len(shapes))
    info = ModelInfo(Path("m.onnx"), {0: "a"}, (160, 160), None, "?", manifest)
    return SimpleNamespace(output_names=names, output_shapes=shapes, info=info, path=Path("m.onnx"),
                           input_shape=[1, 3, 160, 160], input_dtype=np.float32, static_hw=(160, 160),
                           input_hw=lambda default=640: (160, 160))


@pytest.mark.parametrize("shapes, manifest, kind", [
    ([[1, 300, 6]], None, "end2end"),  # an ultralytics export, no edgekit manifest: the shape says it
    ([[None, 300, 6]], None, "end2end"),  # dynamic batch
    ([[1, 6, 525]], None, "raw"),  # a 2-class YOLOv8 at 160: [B, 4+2, N], never taken for [B, K, 6]
    ([[1, 6, None]], None, "raw"),  # the same, dynamic size
    ([[1, 84, 8400]], None, "raw"),
    ([[1, 300, 6]], {"head": "one2many"}, "raw"),  # the manifest decides when it names the head
    ([[1, 100, 6]], {"head": "end2end", "max_det": 100}, "end2end"),
    ([], {"outputs": [{"name": "output0", "shape": [1, 300, 6]}]}, "end2end"),  # no shapes from the backend
    ([[1, 1], [1, 300, 4], [1, 300], [1, 300]], None, "trt-nms"),
])
def test_output_format_comes_from_the_model(shapes, manifest, kind):
    names = ["num_dets", "det_boxes", "det_scores", "det_classes"] if kind == "trt-nms" else None
    assert output_format(fake_runner(shapes, names, manifest)) == kind


def test_read_end2end_filters_by_conf_caps_max_det_and_maps_boxes_back():
    lb = letterbox_plan((120, 320), (160, 160)).letterbox  # gain 0.5, 50 px of padding above and below
    rows = np.array([[[20, 50, 60, 90, 0.9, 2], [0, 40, 160, 120, 0.5, 0], [10, 60, 30, 80, 0.25, 1],
                      [0, 0, 1, 1, 0.1, 1]]], np.float32)
    (dets,) = read_end2end([rows], [lb], conf=0.25, max_det=300)
    assert dets.class_id.tolist() == [2, 0] and dets.confidence.tolist() == pytest.approx([0.9, 0.5])  # > conf
    np.testing.assert_allclose(dets.xyxy, [[40, 0, 120, 80], [0, 0, 320, 120]], atol=1e-4)  # clipped to the frame
    (top,) = read_end2end([rows], [lb], conf=0.0, max_det=3)
    assert len(top) == 3 and top.class_id.dtype == np.int32
    with pytest.raises(ValueError, match=r"\[B, K, 6\]"):
        read_end2end([np.zeros((1, 84, 525), np.float32)], [lb])


def test_settings_for_an_end2end_model(yolo26n_exports):
    with open_runner(yolo26n_exports[0], "onnxruntime") as runner:
        pipe = Pipeline(runner, iou=0.3)  # IoU does not apply: not an error, not used
        assert (pipe.output, pipe.nms, pipe.max_det) == ("end2end", False, 300)
        assert pipe.settings_problem(0.01, 0.1, 300) is None and pipe.settings_problem(0.5, 0.9, 10) is None
        assert "at most 300 boxes" in pipe.settings_problem(0.25, 0.7, 301)
        assert "class-agnostic NMS does not apply" in pipe.settings_problem(0.25, 0.7, 300, agnostic=True)
        assert pipe.default_settings() == {"conf": 0.25, "iou": 0.7, "max_det": 300}
        frame = np.full((240, 320, 3), 90, np.uint8)
        blob, boxes = pipe.preprocess([frame])
        (out,) = runner.infer(blob)
        assert out.shape == (1, 300, 6) and np.all(np.diff(out[0, :, 4]) <= 0)  # highest score first
        (dets,) = pipe.postprocess([out], boxes)
        assert pipe.candidates is None  # no NMS ran
        assert len(pipe.decode([out], boxes, 0.0, 0.7, 300)[0]) == 300


def test_the_plain_export_still_reads_as_raw_with_host_nms(yolo26n_exports):
    with open_runner(yolo26n_exports[1], "onnxruntime") as runner:
        pipe = Pipeline(runner)
        assert pipe.output == "raw" and pipe.baked() == {}


def test_an_ultralytics_export_without_manifest_is_recognised(yolo26n_exports, tmp_path):
    for model in yolo26n_exports:
        bare = tmp_path / model.name
        shutil.copy(model, bare)  # no NAME.onnx.json beside it
        with open_runner(bare, "onnxruntime") as runner:
            assert output_format(runner) == ("end2end" if "e2e" in model.name else "raw")


def test_engine_manifests_carry_the_head():
    from edgekit.runtime.tensorrt.manifest import CARRIED

    assert {"head", "max_det", "end2end"} <= set(CARRIED)


# --- bench, camera, compare on an end-to-end model -----------------------------------------------------------------
def test_bench_of_an_end2end_model(yolo26n_exports, tmp_path):
    js = tmp_path / "bench.json"
    result = invoke(["bench", *yolo26n_exports, "--warmup", 1, "--iterations", 3, "--threads", 1, "--no-power",
                     "--json", js])
    assert result.exit_code == 0, result.output
    e2e, plain = json.loads(js.read_text())["results"]
    assert (e2e["output_format"], e2e["trt_nms"], e2e["candidates_per_frame"]) == ("end2end", False, None)
    assert plain["output_format"] == "raw" and plain["candidates_per_frame"] is not None
    assert e2e["stages"]["postprocess"]["count"] == 3


def test_camera_on_an_end2end_model(yolo26n_exports, tmp_path):
    js = tmp_path / "camera.json"
    result = invoke(["camera", "synthetic://?width=320&height=240&fps=0", "--model", yolo26n_exports[0],
                     "--frames", 5, "--headless", "--json", js, "--engine-iters", 2, "--conf", 0.001])
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(js.read_text())["results"]
    assert summary["frames"] == 5 and summary["output_format"] == "end2end" and summary["trt_nms"] is False


def test_compare_end2end_against_itself_and_against_the_plain_export(yolo26n_exports, tmp_path):
    e2e, plain = yolo26n_exports
    js = tmp_path / "c.json"
    result = invoke(["compare", e2e, e2e, "--frames", 2, "--json", js, "--conf", 0])  # untrained: scores ~1e-5
    assert result.exit_code == 0, result.output
    (same,) = json.loads(js.read_text())["results"]
    assert same["identical"] and same["detections"]["match_rate"] == 1.0
    # rows sorted by score are not comparable row by row: never a raw error between two end-to-end models
    assert same["raw"] is None and "end-to-end outputs" in same["raw_skipped"]
    result = invoke(["compare", plain, e2e, "--frames", 2, "--json", js, "--conf", 0])
    assert result.exit_code == 0, result.output
    (r,) = json.loads(js.read_text())["results"]
    assert r["raw"] is None and "different outputs (raw [1, 84, 525] vs end2end [1, 300, 6])" in r["raw_skipped"]
    assert r["output_format"] == {"a": "raw", "b": "end2end"} and r["detections"]["b"] > 0


# --- accuracy: a YOLO26n trained on the synthetic set (tests/conftest.py) ------------------------------------------
def val_kwargs(data):
    return dict(data=str(data), imgsz=IMGSZ, batch=1, conf=0.001, iou=0.7, device="cpu", plots=False, verbose=False,
                workers=0)


def test_eval_of_the_end2end_export_agrees_with_ultralytics_val(synthetic_yolo26, tmp_path):
    """ultralytics 8.4 validates a .pt on its one-to-many head unless nms=False (then the end-to-end head, read
    with no NMS, as its validator reads an end-to-end ONNX)."""
    from ultralytics import YOLO

    data, pt, e2e, _ = synthetic_yolo26
    js = tmp_path / "eval.json"
    result = invoke(["eval", e2e, "--data", data, "--json", js])
    assert result.exit_code == 0, result.output
    (r,) = json.loads(js.read_text())["results"]
    ours = r["metrics"]
    assert r["output_format"] == "end2end" and r["settings"]["nms"] == "none (end2end)"
    torch_e2e = YOLO(str(pt)).val(nms=False, **val_kwargs(data)).box
    onnx_e2e = YOLO(str(e2e)).val(**val_kwargs(data)).box
    assert ours["map50_95"] > 0.05, "the fixture model should have learned something (untrained: 0.0)"
    assert abs(ours["map50_95"] - torch_e2e.map) < 0.01 and abs(ours["map50_95"] - onnx_e2e.map) < 0.01
    assert abs(ours["map50"] - onnx_e2e.map50) < 0.015
    # the same detections on the same letterboxed input: the operating point is ultralytics' to the digit
    assert abs(ours["recall"] - onnx_e2e.mr) < 0.03 and abs(ours["precision"] - onnx_e2e.mp) < 0.03


def test_the_plain_export_of_the_same_weights_evaluates_like_ultralytics(synthetic_yolo26, tmp_path):
    from ultralytics import YOLO

    data, pt, _, plain = synthetic_yolo26
    js = tmp_path / "eval.json"
    assert invoke(["eval", plain, "--data", data, "--json", js]).exit_code == 0
    (r,) = json.loads(js.read_text())["results"]
    ours = r["metrics"]
    assert r["output_format"] == "raw" and r["settings"]["multi_label"] is True
    theirs = YOLO(str(pt)).val(**val_kwargs(data)).box  # the .pt's default: one-to-many head + NMS
    assert ours["map50_95"] > 0.05
    assert abs(ours["map50_95"] - theirs.map) < 0.01


def test_pipeline_detections_match_ultralytics_predict_on_the_end2end_onnx(synthetic_yolo26):
    from ultralytics import YOLO

    data, _, e2e, _ = synthetic_yolo26
    images = sorted((data.parent / "images" / "val").glob("*.jpg"))[:12]
    theirs_model = YOLO(str(e2e), task="detect")
    found = 0
    with open_runner(e2e, "onnxruntime") as runner:
        pipe = Pipeline(runner, conf=0.25)
        for path in images:
            frame = cv2.imread(str(path))
            blob, boxes = pipe.preprocess([frame])
            (ours,) = pipe.postprocess(runner.infer(blob), boxes)
            res = theirs_model.predict(frame, imgsz=IMGSZ, conf=0.25, verbose=False, device="cpu")[0].boxes
            theirs = type(ours)(res.xyxy.numpy().astype(np.float32), res.conf.numpy().astype(np.float32),
                                res.cls.numpy().astype(np.int32))
            assert not detection_differences(theirs, ours, conf=0.25, conf_tol=1e-3, box_atol=0.05), path.name
            found += len(ours)
    assert found > 0


def test_graph_letterbox_with_end2end_gives_the_float_models_detections(synthetic_yolo26, tmp_path):
    from edgekit.host.export import export
    from edgekit.host.graph import GraphOptions

    data, pt, e2e, _ = synthetic_yolo26
    lb = export(weights=str(pt), imgsz=IMGSZ, out=str(tmp_path), end2end=True, graph=GraphOptions(letterbox=(240, 320)))
    assert lb.name == "synthetic-yolo26n-160-lb320x240-e2e.onnx"
    m = json.loads(Path(str(lb) + ".json").read_text())
    assert m["head"] == "end2end" and m["preprocess"]["letterbox"]["frame"] == [240, 320]
    images = sorted((data.parent / "images" / "val").glob("*.jpg"))[:12]
    with open_runner(e2e, "onnxruntime") as a, open_runner(lb, "onnxruntime") as b:
        pa, pb = Pipeline(a), Pipeline(b)
        assert (pb.format.kind, pb.output) == ("uint8-letterbox", "end2end")
        found = 0
        for path in images:
            frame = cv2.imread(str(path))
            dets = []
            for pipe, runner in ((pa, a), (pb, b)):
                blob, boxes = pipe.preprocess([frame])
                dets.append(pipe.postprocess(runner.infer(blob), boxes)[0])
            assert not detection_differences(*dets), path.name
            found += len(dets[0])
    assert found > 0


def test_serve_answers_with_the_end2end_models_detections(synthetic_yolo26):
    """edgekit serve takes the format through the Pipeline: per request, conf filters, max_det up to the model's
    K, IoU is not used (ultralytics ignores it for end-to-end models too)."""
    from serve_helpers import Server

    data, _, e2e, _ = synthetic_yolo26
    image = sorted((data.parent / "images" / "val").glob("*.jpg"))[0]
    frame = cv2.imread(str(image))
    with open_runner(e2e, "onnxruntime") as runner:
        pipe = Pipeline(runner, conf=0.1)
        blob, boxes = pipe.preprocess([frame])
        (dets,) = pipe.postprocess(runner.infer(blob), boxes)
    server = Server(e2e)
    try:
        info = server.get("/v1/info").json()
        assert info["output"]["format"] == "end2end" and info["output"]["nms"] == {"max_det": 300}
        body = image.read_bytes()
        for params in ("?conf=0.1", "?conf=0.1&iou=0.05"):  # IoU changes nothing here
            got = server.post(body, params=params)
            assert got.status_code == 200, got.text
            found = got.json()["detections"]
            assert len(found) == len(dets)
            for d, box, score in zip(found, dets.xyxy, dets.confidence):
                assert d["xyxy"] == pytest.approx(box.tolist(), abs=0.02)
                assert d["confidence"] == pytest.approx(float(score), abs=1e-3)
        too_many = server.post(body, params="?max_det=301")
        assert too_many.status_code == 400 and "at most 300 boxes" in too_many.json()["error"]
    finally:
        server.stop()


@pytest.mark.gpu
def test_end2end_engine_matches_onnx_runtime(synthetic_yolo26, tmp_path):
    """On a GPU: TensorRT parses the top-k head (TopK, Mod, GatherElements), the engine's manifest carries the head,
    and its detections are ONNX Runtime's on the same frames."""
    from edgekit.bench.frames import load_frames

    data, _, e2e, _ = synthetic_yolo26
    result = invoke(["build", e2e, "--fp32", "--out", tmp_path])
    assert result.exit_code == 0, result.output
    engine = next(tmp_path.glob("*-e2e-fp32-sm*.engine"))
    m = json.loads(Path(str(engine) + ".json").read_text())
    assert (m["head"], m["max_det"]) == ("end2end", 300)
    with open_runner(e2e, "onnxruntime") as ref, open_runner(engine) as trt:
        a, b = Pipeline(ref), Pipeline(trt)
        assert (b.output, b.max_det) == ("end2end", 300)
        for frame in load_frames(data.parent / "images" / "val", limit=16):
            blob, boxes = a.preprocess([frame])
            da = a.postprocess(ref.infer(blob), boxes)[0]
            db = b.postprocess(trt.infer(blob), boxes)[0]
            assert not detection_differences(da, db, conf=0.25, conf_tol=0.02, box_atol=1.0)
