"""edgekit serve takes every model edgekit export makes, through the Pipeline that bench, camera and eval use:
uint8 input (--graph-preprocess), the letterbox in the graph (--graph-letterbox: its frame size only, 400 naming
it for others), NMS in the engine (--trt-nms: per-request conf/IoU checked against the exported ones), with
dynamic batching for each; /v1/info says which input and output format the model has.

ONNX Runtime cannot run EfficientNMS_TRT: on the CPU the --trt-nms model is served through tests/nms_standin.py
(the float model with the plugin's outputs made by the host NMS); tests/test_tensorrt_gpu.py serves the engine.
"""

import asyncio
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from helpers import assert_same_detections, invoke  # noqa: E402
from serve_helpers import Server  # noqa: E402

STANDIN = Path(__file__).with_name("nms_standin.py")


@pytest.fixture(scope="module")
def exports(synthetic_model, tmp_path_factory):
    """The trained fixture exported with the letterbox in the graph (320x240 frames, static batch 4: the val
    images' size) and with uint8 input at a dynamic batch."""
    from edgekit.host.export import export
    from edgekit.host.graph import GraphOptions

    out = tmp_path_factory.mktemp("formats")
    pt = str(synthetic_model[1])
    return {"u8": export(weights=pt, imgsz=160, dynamic=True, out=str(out), graph=GraphOptions(preprocess=True)),
            "lb": export(weights=pt, imgsz=160, batch=4, out=str(out), graph=GraphOptions(letterbox=(240, 320)))}


def _val(synthetic_model, n=8):
    return sorted((synthetic_model[0].parent / "images" / "val").glob("*.jpg"))[:n]


def _reference(synthetic_model, paths, conf=0.25):
    """The float model's detections through the pipeline bench uses."""
    from edgekit.runtime import open_runner
    from edgekit.vision.pipeline import Pipeline

    with open_runner(synthetic_model[2], "onnxruntime", threads=1) as runner:
        pipe = Pipeline(runner, conf=conf)
        out = []
        for path in paths:
            blob, boxes = pipe.preprocess([cv2.imread(str(path))])
            out.append(pipe.postprocess(runner.infer(blob), boxes)[0])
        return out


def _dets(body):
    from edgekit.vision import Detections

    got = body["detections"]
    return Detections(np.array([d["xyxy"] for d in got], np.float32).reshape(-1, 4),
                      np.array([d["confidence"] for d in got], np.float32),
                      np.array([d["class_id"] for d in got], np.int32))


def _send_all(server, bodies, params=""):
    async def run():
        async with httpx.AsyncClient(timeout=120) as client:
            return await asyncio.gather(*(client.post(server.url + "/v1/detect" + params, content=b,
                                                      headers={"Content-Type": "image/jpeg"}) for b in bodies))
    return asyncio.run(run())


def _serve_and_compare(server, synthetic_model, conf_tol, box_atol):
    """Two rounds of the 8 val images at once: every answer is the float model's, some ran in batches > 1."""
    paths = _val(synthetic_model)
    responses = _send_all(server, [p.read_bytes() for p in paths] * 2)
    for r in responses:
        assert r.status_code == 200, r.text
    reference = _reference(synthetic_model, paths) * 2
    assert_same_detections([(ref, _dets(r.json())) for ref, r in zip(reference, responses)],
                           conf_tol=conf_tol, box_atol=box_atol)
    assert max(r.json()["batch_size"] for r in responses) > 1  # dynamic batching ran
    return responses


def test_uint8_model_serves_the_float_models_detections_in_batches(exports, synthetic_model):
    server = Server(exports["u8"], "--max-batch", "4", "--max-queue-delay-ms", "30")
    try:
        info = httpx.get(server.url + "/v1/info").json()
        assert info["input"]["format"] == "uint8" and info["input"]["dtype"] == "uint8"
        assert info["output"]["format"] == "raw" and info["output"]["nms"] is None
        assert info["model"]["input_shape"] == [4, 160, 160, 3]
        # the graph normalizes what the host letterboxed: the same boxes as the float model, to rounding
        _serve_and_compare(server, synthetic_model, conf_tol=0.02, box_atol=1.0)
    finally:
        code, out = server.stop()
    assert code == 0, out


def test_letterbox_model_takes_its_frame_size_and_names_it_for_others(exports, synthetic_model, tmp_path):
    server = Server(exports["lb"], "--max-queue-delay-ms", "30")
    try:
        info = httpx.get(server.url + "/v1/info").json()
        assert info["input"]["format"] == "uint8-letterbox" and info["input"]["frame_size"] == [320, 240]
        assert info["model"]["input_shape"] == [4, 240, 320, 3] and info["max_batch"] == 4
        _serve_and_compare(server, synthetic_model, conf_tol=0.02, box_atol=1.0)
        frame = cv2.imread(str(_val(synthetic_model, 1)[0]))
        for size in ((640, 480), (240, 320)):  # another size, and the right pixels turned sideways
            ok, jpeg = cv2.imencode(".jpg", cv2.resize(frame, size))
            r = server.post(jpeg.tobytes())
            assert r.status_code == 400, r.text
            message = r.json()["error"]
            assert "takes 320x240 images only" in message and "this image is %dx%d" % size in message, message
            assert "\n" not in message
        assert server.post(_val(synthetic_model, 1)[0].read_bytes()).status_code == 200  # and it goes on
        # Roboflow's client reads the size to send from the registry (and may downsize images to it)
        (entry,) = httpx.get(server.url + "/model/registry").json()["models"]
        assert (entry["input_width"], entry["input_height"]) == (320, 240)
        # the remote bench sends synthetic frames of the size the model takes
        js = tmp_path / "remote.json"
        result = invoke(["bench", server.url, "--concurrency", 2, "--requests", 4, "--warmup", 1, "--json", js])
        assert result.exit_code == 0, result.output
        doc = json.loads(js.read_text())
        assert doc["image"]["width"] == 320 and doc["results"][0]["input_shape"] == [1, 240, 320, 3]
    finally:
        code, out = server.stop()
    assert code == 0, out


@pytest.fixture(scope="module")
def nms_server(synthetic_model):
    server = Server(synthetic_model[2], "--max-batch", "4", "--max-queue-delay-ms", "30", launcher=[STANDIN],
                    env={"EDGEKIT_STANDIN_NMS": json.dumps({"conf": 0.25, "iou": 0.6, "max_det": 100})})
    yield server
    server.stop()


def test_nms_engine_outputs_are_read_as_they_are_in_batches(nms_server, synthetic_model):
    info = httpx.get(nms_server.url + "/v1/info").json()
    assert info["output"]["format"] == "trt-nms"
    assert info["output"]["nms"]["conf"] == 0.25 and info["output"]["nms"]["iou"] == 0.6
    # a request without conf/iou/max_det gets these
    assert info["output"]["defaults"] == {"conf": 0.25, "iou": 0.6, "max_det": 100}
    paths = _val(synthetic_model)
    responses = _send_all(nms_server, [p.read_bytes() for p in paths] * 2)
    assert max(r.json()["batch_size"] for r in responses) > 1
    from edgekit.runtime import open_runner
    from edgekit.vision.pipeline import Pipeline

    with open_runner(synthetic_model[2], "onnxruntime", threads=1) as runner:
        pipe = Pipeline(runner, iou=0.6)
        reference = []
        for p in paths:
            blob, boxes = pipe.preprocess([cv2.imread(str(p))])
            reference.append(pipe.postprocess(runner.infer(blob), boxes)[0])
    for r, ref in zip(responses, reference * 2):  # the engine's boxes, mapped back to the image: exactly these
        assert r.status_code == 200, r.text
        got = _dets(r.json())
        assert len(got) == len(ref)
        assert np.allclose(got.xyxy, ref.xyxy, atol=0.02) and np.allclose(got.confidence, ref.confidence, atol=1e-4)


@pytest.mark.parametrize("params,fragment", [
    ("?conf=0.1", "NMS in the engine at conf 0.25; conf 0.1 needs a re-export with edgekit export --trt-nms"),
    ("?iou=0.7", "NMS in the engine at IoU 0.6; IoU 0.7 needs a re-export"),
    ("?conf=0.5&iou=0.45", "IoU 0.45 needs a re-export"),
])
def test_nms_engine_refuses_settings_it_did_not_run_with(nms_server, synthetic_model, params, fragment):
    r = nms_server.post(_val(synthetic_model, 1)[0].read_bytes(), params=params)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"] and "\n" not in r.json()["error"]


def test_nms_engine_filters_above_its_conf_and_caps_max_det(nms_server, synthetic_model):
    body = _val(synthetic_model, 1)[0].read_bytes()
    everything = nms_server.post(body, params="?iou=0.6").json()["detections"]
    assert everything, "the trained fixture finds nothing on the first val image"
    high = nms_server.post(body, params="?conf=0.6").json()["detections"]
    assert high == [d for d in everything if d["confidence"] > 0.6]
    assert nms_server.post(body, params="?max_det=1").json()["detections"] == everything[:1]
    rf = nms_server.post(body, params="?format=roboflow").json()["predictions"]
    assert len(rf) == len(everything)


def test_end2end_model_serves_its_heads_boxes_in_batches(synthetic_yolo26, tmp_path):
    """YOLO26's end-to-end head (export --end2end) at a static batch of 4: the answers are the head's own top-k rows
    above conf (no NMS: iou changes nothing), max_det is capped at the exported top-k with a 400 saying so."""
    from edgekit.host.export import export
    from edgekit.runtime import open_runner
    from edgekit.vision.pipeline import Pipeline

    data, pt, e2e, _ = synthetic_yolo26
    b4 = export(weights=str(pt), imgsz=160, batch=4, out=str(tmp_path), end2end=True, max_det=100)
    paths = sorted((data.parent / "images" / "val").glob("*.jpg"))[:8]
    with open_runner(e2e, "onnxruntime", threads=1) as runner:
        pipe = Pipeline(runner)
        reference = []
        for p in paths:
            blob, boxes = pipe.preprocess([cv2.imread(str(p))])
            reference.append(pipe.postprocess(runner.infer(blob), boxes)[0])
    assert sum(len(r) for r in reference), "the trained YOLO26n finds nothing on 8 val images"
    server = Server(b4, "--max-queue-delay-ms", "30")
    try:
        info = httpx.get(server.url + "/v1/info").json()
        assert info["output"]["format"] == "end2end" and info["output"]["nms"] == {"max_det": 100}
        responses = _send_all(server, [p.read_bytes() for p in paths] * 2)
        assert max(r.json()["batch_size"] for r in responses) > 1
        # top-300 at batch 1 against top-100 at batch 4: the same boxes above conf (a few dozen at most)
        assert_same_detections([(ref, _dets(r.json())) for ref, r in zip(reference * 2, responses)],
                               conf_tol=1e-3, box_atol=0.05)
        body = paths[0].read_bytes()
        assert server.post(body, params="?iou=0.1").json()["detections"] == server.post(body).json()["detections"]
        r = server.post(body, params="?max_det=101")
        assert r.status_code == 400 and "returns at most 100 boxes" in r.json()["error"], r.text
        high = server.post(body, params="?conf=0.5").json()["detections"]
        assert high == [d for d in server.post(body).json()["detections"] if d["confidence"] > 0.5]
    finally:
        code, out = server.stop()
    assert code == 0, out
