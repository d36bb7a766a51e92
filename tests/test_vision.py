"""Preprocess, decode + NMS and box mapping against independent references (torchvision, ultralytics)."""

import cv2
import numpy as np
import pytest

from edgekit.vision import Detections, letterbox, postprocess, preprocess
from edgekit.vision.draw import draw_detections, draw_panel
from edgekit.vision.postprocess import nms


def random_boxes(rng, n, classes=3, size=400.0):
    xy = rng.random((n, 2)) * size
    wh = rng.random((n, 2)) * size / 4 + 1
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    return boxes, (rng.random(n) + 1e-3).astype(np.float32), rng.integers(0, classes, n).astype(np.int32)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iou", [0.3, 0.5, 0.7])
def test_nms_matches_torchvision_batched_nms(seed, iou):
    import torch
    import torchvision

    boxes, scores, classes = random_boxes(np.random.default_rng(seed), 600)
    expected = torchvision.ops.batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), iou
    ).numpy()
    np.testing.assert_array_equal(nms(boxes, scores, classes, iou), expected)


def test_agnostic_nms_matches_torchvision_nms():
    import torch
    import torchvision

    boxes, scores, classes = random_boxes(np.random.default_rng(7), 400)
    expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5).numpy()
    np.testing.assert_array_equal(nms(boxes, scores, classes, 0.5, agnostic=True), expected)


def raw_output(rng, batch=2, nc=5, n=2100, size=320):
    """YOLOv8-like raw output [B, 4+nc, N]: xywh boxes and sparse high class scores."""
    xy = rng.random((batch, 2, n)) * size
    wh = rng.random((batch, 2, n)) * size / 5 + 2
    scores = rng.random((batch, nc, n)) ** 6  # mostly low, a few confident
    return np.concatenate([xy, wh, scores], 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("frame_shape", [(320, 320), (480, 640), (720, 1280), (1000, 300)])
@pytest.mark.parametrize("multi_label, conf", [(False, 0.25), (True, 0.25), (True, 0.001)])
def test_postprocess_matches_ultralytics(seed, frame_shape, multi_label, conf):
    import torch
    from ultralytics.utils import ops
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(seed)
    out = raw_output(rng)
    frames = [np.zeros(frame_shape + (3,), np.uint8)] * out.shape[0]
    _, boxes = preprocess(frames, (320, 320))
    ours = postprocess(out, boxes, conf=conf, iou=0.7, multi_label=multi_label)
    theirs = non_max_suppression(torch.from_numpy(out), conf_thres=conf, iou_thres=0.7, multi_label=multi_label)
    for dets, ref in zip(ours, theirs):
        ref = ref.numpy()
        ref[:, :4] = ops.scale_boxes((320, 320), ref[:, :4].copy(), frame_shape)
        assert len(dets) == len(ref) > 0
        np.testing.assert_allclose(dets.xyxy, ref[:, :4], atol=1e-3)
        np.testing.assert_allclose(dets.confidence, ref[:, 4], rtol=1e-6)
        np.testing.assert_array_equal(dets.class_id, ref[:, 5].astype(int))


def test_postprocess_respects_max_det_and_handles_no_boxes():
    rng = np.random.default_rng(0)
    out = raw_output(rng, batch=1)
    _, boxes = preprocess([np.zeros((320, 320, 3), np.uint8)], (320, 320))
    assert len(postprocess(out, boxes, conf=0.0, max_det=7)[0]) == 7
    out[:, 4:] = 0.0
    empty = postprocess(out, boxes)[0]
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4)


@pytest.mark.parametrize("shape", [(480, 640), (720, 1280), (640, 640), (100, 37), (1, 500), (333, 777)])
@pytest.mark.parametrize("size", [(320, 320), (640, 640)])
def test_letterbox_matches_ultralytics(shape, size):
    from ultralytics.data.augment import LetterBox

    frame = np.random.default_rng(0).integers(0, 255, shape + (3,), dtype=np.uint8)
    ours, lb = letterbox(frame, size)
    theirs = LetterBox(size, auto=False)(image=frame)
    np.testing.assert_array_equal(ours, theirs)
    assert lb.shape == shape


def test_preprocess_is_normalized_rgb_nchw():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(3)]
    blob, boxes = preprocess(frames, (320, 320))
    assert blob.shape == (3, 3, 320, 320) and blob.dtype == np.float32 and blob.flags.c_contiguous
    for i, frame in enumerate(frames):
        boxed, _ = letterbox(frame, (320, 320))
        np.testing.assert_allclose(blob[i], boxed[..., ::-1].transpose(2, 0, 1) / 255.0, atol=1e-6)
    assert preprocess(frames, (320, 320), dtype=np.float16)[0].dtype == np.float16


def test_preprocess_rejects_bad_frames():
    with pytest.raises(ValueError):
        preprocess([np.zeros((10, 10), np.uint8)], (32, 32))


def test_detections_filtering_and_json():
    dets = Detections(
        np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 2, 3, 4]], np.float32),
        np.array([0.9, 0.3, 0.6], np.float32),
        np.array([0, 1, 0], np.int32),
    )
    kept = dets[dets.confidence > 0.5]
    assert len(kept) == 2 and kept.class_id.tolist() == [0, 0]
    assert dets[1:].to_list({1: "car"})[0] == {
        "xyxy": [5.0, 5.0, 20.0, 20.0], "confidence": 0.3, "class_id": 1, "class_name": "car"
    }
    assert len(Detections.empty()) == 0


def test_drawing_changes_pixels_in_place():
    frame = np.zeros((100, 200, 3), np.uint8)
    dets = Detections(np.array([[10, 20, 90, 80]], np.float32), np.array([0.8], np.float32),
                      np.array([2], np.int32))
    out = draw_detections(frame, dets, {2: "car"})
    assert out is frame and frame[20, 50].any()
    before = frame.copy()
    draw_panel(frame, ["FPS 30.0", "e2e 12.3 ms"])
    assert not np.array_equal(before, frame)
    assert cv2.countNonZero(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)) > 0
