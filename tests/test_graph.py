"""Graph surgery (edgekit.host.graph): uint8 input with preprocessing in the graph, EfficientNMS_TRT appended.

The NMS plugin only runs on TensorRT: on the CPU the surgery itself is checked (node, attributes, output shapes,
the rest of the graph untouched) and ONNX Runtime's refusal is one line; the GPU test compares the engine's
detections with the host NMS on the same frames.
"""

import json

import numpy as np
import onnx
import pytest
from helpers import assert_same_detections, assert_user_error, invoke

from edgekit.errors import EdgekitError
from edgekit.host.graph import NMS_OUTPUTS, add_efficient_nms, add_preprocessing


@pytest.fixture(scope="module")
def float_proto(synthetic_model):
    return onnx.load(str(synthetic_model[2]))  # trained YOLOv8n, [1, 3, 160, 160] -> [1, 7, 525]


def by_name(proto):
    return {n.name: n for n in proto.graph.node}


def test_nms_node_attributes_and_outputs(float_proto):
    proto = add_efficient_nms(float_proto, conf=0.3, iou=0.6, max_det=50)
    onnx.checker.check_model(proto)
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    (nms,) = [n for n in proto.graph.node if n.op_type == "EfficientNMS_TRT"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nms.attribute}
    assert attrs == {"plugin_version": b"1", "background_class": -1, "max_output_boxes": 50,
                     "score_threshold": pytest.approx(0.3), "iou_threshold": pytest.approx(0.6),
                     "score_activation": 0, "box_coding": 0}
    assert nms.domain == "TRT" and any(o.domain == "TRT" for o in proto.opset_import)
    outputs = {o.name: (o.type.tensor_type.elem_type, [d.dim_value for d in o.type.tensor_type.shape.dim])
               for o in proto.graph.output}
    assert list(outputs) == list(NMS_OUTPUTS)
    assert outputs == {"num_dets": (onnx.TensorProto.INT32, [1, 1]),
                       "det_boxes": (onnx.TensorProto.FLOAT, [1, 50, 4]),
                       "det_scores": (onnx.TensorProto.FLOAT, [1, 50]),
                       "det_classes": (onnx.TensorProto.INT32, [1, 50])}
    # boxes reach the plugin as corners computed pointwise, scores with one label per anchor; no MatMul
    # (TensorRT 8.5 without cuBLAS tactics may have no kernel for it)
    producers = {o: n for n in proto.graph.node for o in n.output}
    assert producers[nms.input[0]].op_type == "Concat" and producers[nms.input[1]].op_type == "Where"
    assert "MatMul" not in {n.op_type for n in proto.graph.node}


def plugin_inputs(proto, tmp_path):
    """The NMS graph cut just before EfficientNMS_TRT (what ONNX Runtime can run): (boxes, scores) outputs."""
    (nms,) = [n for n in proto.graph.node if n.op_type == "EfficientNMS_TRT"]
    cut = onnx.helper.make_model(
        onnx.helper.make_graph([n for n in proto.graph.node if n is not nms], "cut", list(proto.graph.input),
                               [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                                for name in nms.input], list(proto.graph.initializer)),
        opset_imports=[o for o in proto.opset_import if o.domain != "TRT"])
    cut.ir_version = proto.ir_version
    path = tmp_path / "cut.onnx"
    onnx.save(cut, str(path))
    return path


@pytest.mark.parametrize("opset", [17, 18])
def test_what_the_plugin_gets_is_the_host_decode_corners_and_best_class(float_proto, synthetic_model, tmp_path,
                                                                        opset):
    """On the CPU, the graph up to the plugin: boxes are the host decode's corners, and each anchor keeps only
    its best class score (the host NMS's single label), also where two classes pass conf on one anchor."""
    import onnxruntime as ort

    from edgekit.bench.frames import load_frames
    from edgekit.vision.postprocess import decode
    from edgekit.vision.preprocess import preprocess

    src = float_proto
    if opset == 18:  # ReduceMax takes axes as an input from opset 18 on: the surgery writes what the opset wants
        src = onnx.version_converter.convert_version(float_proto, 18)
    proto = add_efficient_nms(src, conf=0.25, iou=0.7, max_det=100)
    cut = ort.InferenceSession(str(plugin_inputs(proto, tmp_path)), providers=["CPUExecutionProvider"])
    full = ort.InferenceSession(synthetic_model[2].read_bytes(), providers=["CPUExecutionProvider"])
    frames = load_frames(synthetic_model[0].parent / "images" / "val", limit=4)
    blob, _ = preprocess(frames[:1], (160, 160))
    (raw,) = full.run(None, {"images": blob})
    boxes, scores = cut.run(None, {"images": blob})
    xyxy, best, cls = decode(raw[0], conf=-1.0)  # every anchor, its best class
    np.testing.assert_allclose(boxes[0], xyxy, atol=1e-4)
    # one label per anchor: every score but the best is zeroed. Two classes whose scores tie exactly both stay
    # (the graph keeps scores equal to the max); which anchors tie depends on the training run (seeds 1 and 2
    # had ties on frame 0; 4 to 17 tied anchors on 48 frames, all scoring below 0.003: far below any conf)
    assert ((scores[0] == 0) | (scores[0] == scores[0].max(1, keepdims=True))).all()
    np.testing.assert_allclose(scores[0].max(1), best, rtol=1e-6)
    np.testing.assert_array_equal(scores[0].argmax(1), cls)
    # an anchor whose two classes both pass conf: the plugin sees only the better one
    two = np.zeros((1, 7, 525), np.float32)
    two[0, :4, 0] = [80, 80, 20, 20]
    two[0, 4:, 0] = [0.6, 0.9, 0.1]
    gs_model = add_efficient_nms(_identity_head(two.shape), conf=0.25, iou=0.7, max_det=10)
    cut = ort.InferenceSession(str(plugin_inputs(gs_model, tmp_path)), providers=["CPUExecutionProvider"])
    boxes, scores = cut.run(None, {"raw": two})
    np.testing.assert_allclose(boxes[0, 0], [70, 70, 90, 90])
    np.testing.assert_allclose(scores[0, 0], [0, 0.9, 0], rtol=1e-6)


def _identity_head(shape):
    """A model whose output is its input: YOLOv8's raw head shape, filled in by the test."""
    inp = onnx.helper.make_tensor_value_info("raw", onnx.TensorProto.FLOAT, list(shape))
    out = onnx.helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, list(shape))
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["raw"], ["output0"])], "head", [inp], [out])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def test_nms_leaves_the_rest_of_the_graph_untouched(float_proto):
    proto = add_efficient_nms(float_proto, conf=0.25, iou=0.7, max_det=300)
    before, after = by_name(float_proto), by_name(proto)
    assert set(before) <= set(after)
    for name, node in before.items():
        assert after[name].SerializeToString() == node.SerializeToString(), name
    old_init = {i.name: i.SerializeToString() for i in float_proto.graph.initializer}
    new_init = {i.name: i.SerializeToString() for i in proto.graph.initializer}
    assert all(new_init[k] == v for k, v in old_init.items())
    assert {n.op_type for n in after.values() if n.name not in before} == {
        "Transpose", "Slice", "Mul", "Sub", "Add", "Concat", "ReduceMax", "Equal", "Where", "EfficientNMS_TRT"}
    assert proto.graph.input[0].SerializeToString() == float_proto.graph.input[0].SerializeToString()
    assert {p.key: p.value for p in proto.metadata_props} == {p.key: p.value for p in float_proto.metadata_props}


def test_preprocessing_input_and_the_folded_first_conv(float_proto):
    proto = add_preprocessing(float_proto, frame_hw=(240, 320))
    onnx.checker.check_model(proto, full_check=True)
    (inp,) = proto.graph.input
    assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 240, 320, 3]
    ops = [n.op_type for n in proto.graph.node if n.name.startswith("preprocess/")]
    assert ops == ["Cast", "Transpose", "Resize", "Pad"]  # 240x320 -> 120x160, then 20 px borders top and bottom
    before, after = by_name(float_proto), by_name(proto)
    (first,) = [n for n in before.values() if "images" in n.input]
    assert first.op_type == "Conv" and after[first.name].input[0] == "images_pad"
    # BGR->RGB and /255 live in the first Conv's weights; every other node is as it was
    init = {i.name: onnx.numpy_helper.to_array(i) for i in list(float_proto.graph.initializer)}
    new_init = {i.name: onnx.numpy_helper.to_array(i) for i in list(proto.graph.initializer)}
    np.testing.assert_allclose(new_init[after[first.name].input[1]], init[first.input[1]][:, ::-1] / 255.0, rtol=1e-6)
    assert all(after[k].SerializeToString() == v.SerializeToString() for k, v in before.items() if k != first.name)


def test_preprocessing_without_a_foldable_conv_uses_explicit_nodes(tmp_path):
    import onnxruntime as ort

    from edgekit.vision import preprocess

    h = onnx.helper
    graph = h.make_graph([h.make_node("Relu", ["images"], ["out"])], "g",
                         [h.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, 32, 32])],
                         [h.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 3, 32, 32])])
    proto = add_preprocessing(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]))
    assert [n.op_type for n in proto.graph.node][:4] == ["Cast", "Transpose", "Gather", "Mul"]
    frame = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": frame[None]})
    np.testing.assert_allclose(got, preprocess([frame], (32, 32))[0], atol=1e-6)


def test_onnxruntime_refuses_trt_nms_in_one_line(float_proto, tmp_path):
    from edgekit.runtime import open_runner

    path = tmp_path / "nms.onnx"
    onnx.save(add_efficient_nms(float_proto, 0.25, 0.7, 100), str(path))
    with pytest.raises(EdgekitError, match="EfficientNMS_TRT.*ONNX Runtime cannot run.*edgekit build"):
        open_runner(path, "onnxruntime")
    # with an edgekit manifest the refusal comes before ONNX Runtime even parses the file
    (tmp_path / "nms.onnx.json").write_text(json.dumps({"nms": {"in_graph": True}}))
    result = invoke(["bench", path, "--iterations", 1, "--no-save"])
    assert_user_error(result, "EfficientNMS_TRT", "without --trt-nms")


def test_export_options_manifest_and_name(synthetic_model, tmp_path):
    pt = synthetic_model[1]
    result = invoke(["export", "--weights", pt, "--imgsz", 160, "--out", tmp_path, "--graph-letterbox", "320x240",
                     "--trt-nms", "--conf", 0.3, "--max-det", 20])
    assert result.exit_code == 0, result.output
    path = tmp_path / "synthetic-yolov8n-160-lb320x240-nms.onnx"
    manifest = json.loads((tmp_path / (path.name + ".json")).read_text())
    assert manifest["preprocess"]["in_graph"] is True and manifest["preprocess"]["input"] == "uint8 NHWC BGR"
    assert manifest["preprocess"]["letterbox"] == {"frame": [240, 320], "resized": [120, 160], "pad": [20, 0, 20, 0]}
    assert manifest["nms"] == {**manifest["nms"], "in_graph": True, "plugin": "EfficientNMS_TRT", "conf": 0.3,
                               "iou": 0.7, "max_det": 20}
    assert manifest["inputs"] == [{"name": "images", "shape": [1, 240, 320, 3], "dtype": "uint8"}]
    assert [o["name"] for o in manifest["outputs"]] == list(NMS_OUTPUTS)
    assert manifest["imgsz"] == [160, 160]


def test_graph_preprocess_dynamic_export_gets_an_nhwc_profile(synthetic_model, tmp_path):
    """export --graph-preprocess --dynamic takes uint8 [B, H, W, 3]: edgekit build's profile is made from that
    shape (it used to be NCHW [1, 3, h, w], which TensorRT refused with a misleading message)."""
    from edgekit.runtime.modelinfo import graph_inputs
    from edgekit.runtime.tensorrt.plan import BuildRequest
    from edgekit.runtime.tensorrt.prepare import prepare
    from edgekit.runtime.tensorrt.shapes import profile_shapes

    result = invoke(["export", "--weights", synthetic_model[1], "--imgsz", 160, "--out", tmp_path,
                     "--graph-preprocess", "--dynamic"])
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*.onnx")
    prepared = prepare(path, BuildRequest(precision="fp16", batch=4))
    dims = graph_inputs(prepared.proto)[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)  # as TensorRT reads it
    assert shape[0] == -1 and shape[3] == 3 and prepared.options["layout"] == "nhwc"
    lo, opt, hi = profile_shapes(shape, prepared.options["imgsz"], 4, prepared.options["layout"] == "nhwc")
    assert lo == (1, 160, 160, 3) and opt == hi == (4, 160, 160, 3)
    # INT8 calibration feeds float batches: a uint8 model is refused in one line that names what works
    for extra in ([], ["--calib", tmp_path]):
        assert_user_error(invoke(["build", path, "--int8"] + extra), "takes uint8 pixels", "--fp16", "Q/DQ")
    # the ONNX Runtime side runs it too (bench's table and JSON name its input as [B, H, W, 3] pixels)
    out = tmp_path / "bench.json"
    result = invoke(["bench", path, "--iterations", 3, "--warmup", 1, "--json", out])
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())["results"][0]
    assert row["input_shape"] == [1, 160, 160, 3] and row["input_format"] == "uint8"


def test_input_column_reads_nhwc_and_nchw_results():
    from edgekit.bench.report import input_size_text

    assert input_size_text({"input_shape": [1, 3, 256, 320], "input_format": "float"}) == "256x320"
    assert input_size_text({"input_shape": [1, 240, 320, 3], "input_format": "uint8-letterbox"}) == "240x320 frame"
    assert input_size_text({"input_shape": [1, None, None, 3], "input_format": "uint8"}) == "?x?"
    assert input_size_text({}) == "-"


def test_static_batch_hint_names_a_re_export_that_exists(synthetic_model, tmp_path):
    """--batch on a static letterbox+NMS model: the hint must not send the user to --dynamic, which export
    refuses with --graph-letterbox/--trt-nms."""
    result = invoke(["export", "--weights", synthetic_model[1], "--imgsz", 160, "--out", tmp_path,
                     "--graph-letterbox", "320x240", "--trt-nms"])
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*.onnx")
    assert_user_error(invoke(["build", path, "--fp16", "--batch", 4]), "static batch of 1",
                      "edgekit export --batch 4 (static)", "not with --graph-letterbox or --trt-nms")


@pytest.mark.parametrize("args, fragment", [
    (["--conf", "0.3"], "add --trt-nms"),
    (["--graph-letterbox", "1280by720"], "WIDTHxHEIGHT"),
    (["--trt-nms", "--dynamic"], "static shapes"),
])
def test_export_option_errors(args, fragment, tmp_path):
    result = invoke(["export", "--weights", "yolov8n.yaml", "--imgsz", 64, "--out", tmp_path] + args)
    assert_user_error(result, fragment)
    assert not list(tmp_path.iterdir())


@pytest.mark.gpu
def test_trt_nms_engine_matches_host_nms(synthetic_model, tmp_path):
    """On a GPU: the engine with EfficientNMS_TRT finds the boxes the host NMS finds on the float model."""
    from edgekit.bench.frames import load_frames
    from edgekit.runtime import open_runner
    from edgekit.vision.pipeline import Pipeline

    data, pt, onnx_path = synthetic_model
    result = invoke(["export", "--weights", pt, "--imgsz", 160, "--out", tmp_path, "--graph-preprocess", "--trt-nms"])
    assert result.exit_code == 0, result.output
    result = invoke(["build", tmp_path / "synthetic-yolov8n-160-u8-nms.onnx", "--fp32", "--out", tmp_path])
    assert result.exit_code == 0, result.output
    engine = next(tmp_path.glob("*-u8-nms-fp32-sm*.engine"))
    frames = load_frames(data.parent / "images" / "val", limit=16)
    per_frame = []
    with open_runner(onnx_path, "onnxruntime") as ref, open_runner(engine) as trt:
        a, b = Pipeline(ref), Pipeline(trt)
        assert b.nms and b.format.kind == "uint8" and trt.input_dtype == np.uint8
        for frame in frames:
            blob, boxes = b.preprocess([frame])
            db = b.postprocess(trt.infer(blob), boxes)[0]
            per_frame.append((a.postprocess(ref.infer(a.preprocess([frame])[0]), boxes)[0], db))
    # box by box: a box scoring at the threshold may cross it on the engine (TF32), whichever training run
    assert_same_detections(per_frame, conf_tol=0.02, box_atol=1.0)
