"""The per-frame pipeline picked from the model (edgekit.vision.pipeline) and the camera's bottleneck line.

In-graph preprocessing must find what host preprocessing finds on the same frames (ONNX Runtime, the trained
synthetic YOLOv8n); with the options off the code path is the one it always was.
"""

import json

import cv2
import numpy as np
import onnx
import pytest
from helpers import assert_same_detections, invoke

from edgekit.camera.loop import CameraConfig, run_camera
from edgekit.camera.stats import bottleneck
from edgekit.errors import EdgekitError
from edgekit.host.graph import add_preprocessing
from edgekit.runtime import open_runner
from edgekit.video.capture import Capture
from edgekit.video.sources import SyntheticSource
from edgekit.vision import postprocess, preprocess
from edgekit.vision.pipeline import Pipeline, read_trt_nms
from edgekit.vision.preprocess import Letterbox, letterbox


@pytest.fixture(scope="module")
def models(synthetic_model, tmp_path_factory):
    """The trained float ONNX (160), its uint8 twin and its in-graph-letterbox twin for 320x240 frames."""
    data, _, onnx_path = synthetic_model
    work = tmp_path_factory.mktemp("graph")
    proto = onnx.load(str(onnx_path))
    u8, lb = work / "u8.onnx", work / "lb.onnx"
    onnx.save(add_preprocessing(proto), str(u8))
    onnx.save(add_preprocessing(proto, (240, 320)), str(lb))
    frames = [cv2.imread(str(p)) for p in sorted((data.parent / "images" / "val").glob("*.jpg"))[:12]]
    assert all(f is not None and f.shape == (240, 320, 3) for f in frames)
    return onnx_path, u8, lb, frames


def detect(model, frames):
    with open_runner(model, "onnxruntime", threads=1) as runner:
        pipe = Pipeline(runner)
        out = []
        for frame in frames:
            blob, boxes = pipe.preprocess([frame])
            out.append(pipe.postprocess(runner.infer(blob), boxes)[0])
        return pipe.format.kind, out


def test_in_graph_preprocessing_finds_the_same_detections(models):
    float_model, u8, lb, frames = models
    kinds = {}
    results = {}
    for key, model in (("float", float_model), ("u8", u8), ("lb", lb)):
        kinds[key], results[key] = detect(model, frames)
    assert kinds == {"float": "float", "u8": "uint8", "lb": "uint8-letterbox"}
    # something to compare: boxes that score clear of the threshold. An untrained YOLOv8 finds none here (its
    # class scores start near 0.01: Detect.bias_init); how many a trained one finds depends on the run that
    # trained the fixture (6 to 27 boxes on these 12 frames: seed 0 on 2 threads and on 1, seeds 1 and 2)
    assert any((d.confidence >= 0.25 + 0.02).any() for d in results["float"]), "the trained fixture finds no shape"
    # box by box: each one found again with its class, score and corners (within a pixel for the letterbox in the
    # graph; uint8 with the letterbox on the host is the float pipeline's arithmetic: to 1e-3 px), but for boxes
    # that score at the threshold, which may cross it
    assert_same_detections(list(zip(results["float"], results["lb"])), conf_tol=0.02, box_atol=1.0)
    assert_same_detections(list(zip(results["float"], results["u8"])), conf_tol=1e-4, box_atol=1e-3)


def test_uint8_buffers_hold_the_host_letterbox_for_any_frame_size(models):
    _, u8, _, _ = models
    rng = np.random.default_rng(0)
    with open_runner(u8, "onnxruntime", threads=1) as runner:
        pipe = Pipeline(runner)
        seen = []
        for shape in [(240, 320), (240, 320), (100, 300), (300, 100), (160, 160), (240, 320)]:
            frame = rng.integers(0, 255, shape + (3,), dtype=np.uint8)
            blob, (lb,) = pipe.preprocess([frame])
            expected, expected_lb = letterbox(frame, (160, 160))
            assert blob.shape == (1, 160, 160, 3) and blob.dtype == np.uint8
            np.testing.assert_array_equal(blob[0], expected)  # borders repainted when the frame size changes
            assert lb == expected_lb
            seen.append(blob)
        assert len({id(b) for b in seen}) == 3  # a ring of preallocated buffers, not one per frame


def test_in_graph_letterbox_takes_the_frame_as_it_is_and_only_that_size(models):
    _, _, lb, frames = models
    with open_runner(lb, "onnxruntime", threads=1) as runner:
        pipe = Pipeline(runner)
        assert pipe.format.frame_hw == (240, 320) and pipe.hw == (160, 160)
        blob, (box,) = pipe.preprocess([frames[0]])
        assert np.shares_memory(blob, frames[0])  # no copy
        assert box == letterbox(frames[0], (160, 160))[1]
        with pytest.raises(EdgekitError, match="letterboxes 320x240 frames in its graph; this frame is 640x480: "
                                               "feed 320x240 frames"):
            pipe.preprocess([np.zeros((480, 640, 3), np.uint8)])


def test_options_off_is_the_float_path_unchanged(models):
    float_model, _, _, frames = models
    with open_runner(float_model, "onnxruntime", threads=1) as runner:
        pipe = Pipeline(runner)
        assert pipe.format.kind == "float" and not pipe.nms
        blob, boxes = pipe.preprocess(frames[:1])
        ref_blob, ref_boxes = preprocess(frames[:1], (160, 160))
        np.testing.assert_array_equal(blob, ref_blob)
        assert boxes == ref_boxes
        out = runner.infer(blob)
        for a, b in zip(pipe.postprocess(out, boxes), postprocess(out[0], ref_boxes)):
            np.testing.assert_array_equal(a.xyxy, b.xyxy)


def test_read_trt_nms_outputs():
    lb = Letterbox(shape=(240, 320), gain=(0.5, 0.5), pad=(0, 20))
    num = np.array([[3]], np.int32)
    boxes = np.zeros((1, 5, 4), np.float32)
    boxes[0, :3] = [[10, 30, 50, 70], [0, 20, 160, 140], [5, 25, 15, 35]]
    scores = np.array([[0.9, 0.6, 0.3, 0.0, 0.0]], np.float32)
    classes = np.array([[1, 0, 2, 0, 0]], np.int32)
    (dets,) = read_trt_nms([num, boxes, scores, classes], [lb], conf=0.5)
    assert dets.class_id.tolist() == [1, 0] and dets.confidence.tolist() == pytest.approx([0.9, 0.6])
    np.testing.assert_allclose(dets.xyxy, [[20, 20, 100, 100], [0, 0, 320, 240]])
    (all_dets,) = read_trt_nms([num, boxes, scores, classes], [lb], max_det=2)
    assert len(all_dets) == 2


# --- the camera's bottleneck line ---------------------------------------------------------------------------
def stages(**ms):
    return {k: {"mean": v} for k, v in ms.items()}


@pytest.mark.parametrize("summary, stage", [
    (dict(fps=9.8, source_fps=10.0, stages=stages(inference=12.0, preprocess=1.0)), "source"),
    (dict(fps=20.0, source_fps=30.0, stages=stages(inference=48.0, preprocess=1.0, postprocess=0.5)), "inference"),
    (dict(fps=40.0, source_fps=None, stages=stages(capture=24.0, inference=10.0)), "capture"),
    (dict(fps=40.0, source_fps=None, stages=stages(inference=10.0, draw=8.0, output=7.0)), "output"),
    (dict(fps=40.0, stages=stages(inference=10.0, postprocess=11.0, preprocess=1.0)), "postprocess"),
    # a short run at 26.5 of 30 FPS whose slowest stage takes 7.5 of the 33 ms per frame: startup, not inference
    (dict(fps=26.5, source_fps=30.0, stages=stages(inference=7.5, preprocess=1.0)), "source"),
    # run one after another, 20 + 15 ms do not fit in 33 ms: the largest share is named
    (dict(fps=25.0, source_fps=30.0, pipelined=False, stages=stages(inference=20.0, preprocess=15.0)), "inference"),
])
def test_bottleneck_rules(summary, stage):
    result = bottleneck(summary)
    assert result["stage"] == stage
    assert result["line"].startswith("limited by " + ("the source" if stage == "source" else stage))


def test_camera_summary_says_source_on_a_capped_source(yolov8n_onnx):
    with open_runner(yolov8n_onnx, "onnxruntime", threads=1) as runner:
        capture = Capture(SyntheticSource(320, 240, fps=10), live=True)
        summary = run_camera(runner, capture, [], CameraConfig(duration=2.5, engine_iters=2))
    assert summary["source_fps"] == 10.0 and summary["frames"] >= 15
    assert summary["bottleneck"]["stage"] == "source", summary["bottleneck"]
    assert "limited by the source: " in summary["bottleneck"]["line"]


def test_camera_summary_names_a_stage_on_an_uncapped_source(yolov8n_onnx, tmp_path):
    js = tmp_path / "s.json"
    result = invoke(["camera", "synthetic://?width=320&height=240&fps=0", "--model", yolov8n_onnx, "--frames", 20,
                     "--headless", "--engine-iters", 2, "--json", js])
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(js.read_text())["results"]
    assert summary["source_fps"] is None and summary["dropped"] <= 1  # at most the one left when it stopped
    assert summary["bottleneck"]["stage"] in ("capture", "preprocess", "inference", "postprocess", "output")
    assert summary["bottleneck"]["line"] in result.output
    assert summary["stages"]["capture"]["count"] == 20
