"""ONNX surgery with onnx-graphsurgeon: preprocessing and TensorRT's EfficientNMS_TRT moved into the graph.

``add_preprocessing``: the input becomes the camera's pixels, ``uint8 [B, H, W, 3]`` BGR as OpenCV delivers
them; the graph does the Cast to float, HWC->CHW, BGR->RGB and the scaling to [0, 1] (and, with
``frame_hw``, the letterbox of a fixed-size frame: linear resize with half-pixel centres, as
``cv2.resize(INTER_LINEAR)``, and gray 114 borders split as ultralytics' ``LetterBox`` splits them). The channel
swap and the 1/255 are folded into the first Conv's weights when the image feeds one Conv (YOLOv8 does): the
convolution is linear and its zero padding is zero in both scales, so this is exact up to float rounding and
costs nothing at run time (as explicit Gather + Mul nodes they cost ONNX Runtime on a CPU more than the whole
host blob). On TensorRT that work runs on the GPU and the host->device copy is a quarter of the float32 tensor.

``add_efficient_nms``: YOLOv8's ``[B, 4+nc, N]`` output goes through ``EfficientNMS_TRT`` (boxes converted
from centre-size to corners in the graph, so ``box_coding`` is 0 and the boxes out are corners, as mmyolo's
and TensorRT-YOLO's exporters do; each anchor keeps only its best class, as the host NMS does), and the graph
returns ``num_dets [B,1] int32``, ``det_boxes [B,K,4]``,
``det_scores [B,K]``, ``det_classes [B,K] int32``. Only TensorRT runs it; the rest of the graph is untouched.

``edgekit export`` calls ``apply_graph_options`` with the ``GraphOptions`` its flags ask for, and records
``graph_manifest`` in the ONNX's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.lazy import lazy_import
from edgekit.runtime.tensorrt.qdq import opset
from edgekit.vision.preprocess import PAD_VALUE  # ultralytics' LetterBox gray

NMS_OUTPUTS = ("num_dets", "det_boxes", "det_scores", "det_classes")
NMS_DOMAIN = "TRT"  # a custom domain: onnx.checker skips its schema, TensorRT's parser finds the plugin by op name


@dataclass
class GraphOptions:
    """Surgery after the export: uint8 input with preprocessing in the graph, letterbox of a fixed frame size,
    EfficientNMS_TRT (TensorRT only)."""

    preprocess: bool = False
    letterbox: Optional[Tuple[int, int]] = None  # (h, w) of the camera frames; implies preprocess
    nms: bool = False
    conf: float = 0.25  # ultralytics predict's defaults
    iou: float = 0.7
    max_det: int = 300
    folded: Optional[bool] = None  # set by apply_graph_options: BGR->RGB and /255 folded into the first Conv

    @property
    def in_graph_preprocess(self) -> bool:
        return self.preprocess or self.letterbox is not None

    def suffix(self) -> str:
        parts = []
        if self.letterbox:
            parts.append("lb%dx%d" % (self.letterbox[1], self.letterbox[0]))
        elif self.preprocess:
            parts.append("u8")
        if self.nms:
            parts.append("nms")
        return "".join("-" + p for p in parts)


def parse_frame_size(text: str) -> Tuple[int, int]:
    """``1280x720`` (width x height, as cameras are spelled) -> (h, w)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise EdgekitError("--graph-letterbox %s: give the camera frame size as WIDTHxHEIGHT, e.g. 1280x720"
                           % text) from None
    if w < 1 or h < 1 or w > 16384 or h > 16384:
        raise EdgekitError("--graph-letterbox %s: width and height must be 1..16384" % text)
    return h, w


def apply_graph_options(proto, options: GraphOptions):
    """Graph surgery, then onnx.checker (full where no plugin is involved) and strict shape inference."""
    onnx = lazy_import("onnx")
    if options.in_graph_preprocess:
        options.folded = folds_into_first_conv(proto)
        proto = add_preprocessing(proto, options.letterbox)
    if options.nms:
        proto = add_efficient_nms(proto, options.conf, options.iou, options.max_det)
    onnx.checker.check_model(proto, full_check=not options.nms)  # the plugin has no ONNX schema
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    return proto


def graph_manifest(options: GraphOptions, imgsz: int) -> Dict[str, Any]:
    """What the surgery did, for the manifest (runners detect it from the model's input and outputs)."""
    pre: Dict[str, Any] = {"in_graph": options.in_graph_preprocess}
    if options.in_graph_preprocess:
        steps = ["cast float32", "transpose NHWC->NCHW"] + ([] if options.folded else ["BGR->RGB"])
        if options.letterbox:
            steps += ["resize linear half_pixel", "pad %d" % PAD_VALUE]
        steps += ["BGR->RGB and /255 folded into the first Conv's weights"] if options.folded else ["/255"]
        pre.update(input="uint8 NHWC BGR", steps=steps, folded_into_first_conv=bool(options.folded))
        if options.letterbox:
            pre["letterbox"] = dict(frame=list(options.letterbox),
                                    **letterbox_geometry(options.letterbox, (imgsz, imgsz)))
    nms: Dict[str, Any] = {"in_graph": options.nms}
    if options.nms:
        nms.update(plugin="EfficientNMS_TRT", conf=options.conf, iou=options.iou, max_det=options.max_det,
                   class_agnostic=False, multi_label=False, outputs=list(NMS_OUTPUTS), box_format="xyxy",
                   before_plugin=["xywh->xyxy pointwise (Slice, Mul, Sub, Add, Concat)",
                                  "best class per anchor (ReduceMax, Equal, Where)"],
                   attributes=nms_attributes(options.conf, options.iou, options.max_det))
    return {"preprocess": pre, "nms": nms}


def letterbox_geometry(frame_hw: Tuple[int, int], model_hw: Tuple[int, int]) -> Dict[str, Any]:
    """The resize and padding edgekit.vision.preprocess.letterbox applies to a frame of ``frame_hw``."""
    from edgekit.vision.preprocess import letterbox_plan

    plan = letterbox_plan(tuple(frame_hw), tuple(model_hw))
    top, bottom, left, right = plan.borders
    return {"resized": list(plan.resized), "pad": [top, left, bottom, right]}


def add_preprocessing(proto, frame_hw: Optional[Tuple[int, int]] = None):
    """The graph takes uint8 NHWC BGR pixels (of ``frame_hw`` when given: letterbox in the graph)."""
    gs = lazy_import("onnx_graphsurgeon")
    graph = gs.import_onnx(proto)
    (old,) = graph.inputs
    batch, channels, h, w = old.shape
    if channels != 3:
        raise ValueError("expected a [B, 3, H, W] image input, got %s" % (old.shape,))
    name = old.name
    old.name = name + "_rgb"  # the float tensor the original graph reads, now computed in the graph
    fh, fw = frame_hw if frame_hw else (h, w)
    pixels = gs.Variable(name, dtype=np.uint8, shape=[batch, fh, fw, 3])

    def op(kind, inputs, attrs=None, dtype=np.float32, out=None):
        out = out or gs.Variable("%s_%s" % (name, kind.lower()), dtype=dtype)
        graph.nodes.append(gs.Node(kind, name="preprocess/" + kind, attrs=attrs or {}, inputs=inputs,
                                   outputs=[out]))
        return out

    conv = _foldable_conv(gs, old)
    # Cast first: TensorRT takes a uint8 network input only into a Cast (its parser's Identity with a float
    # output type); a Transpose of bytes would be a little cheaper on ONNX Runtime (0.8 vs 1.6 ms at 640)
    x = op("Cast", [pixels], {"to": int(lazy_import("onnx").TensorProto.FLOAT)})
    x = op("Transpose", [x], {"perm": [0, 3, 1, 2]})
    if conv is None:
        x = op("Gather", [x, gs.Constant("bgr_to_rgb", np.array([2, 1, 0], np.int64))], {"axis": 1})
    if frame_hw:
        geo = letterbox_geometry(frame_hw, (h, w))
        sizes = gs.Constant("letterbox_size", np.array([batch, 3] + geo["resized"], np.int64))
        x = op("Resize", [x, gs.Variable.empty(), gs.Variable.empty(), sizes],
               {"mode": "linear", "coordinate_transformation_mode": "half_pixel"})
        top, left, bottom, right = geo["pad"]
        if top or left or bottom or right:
            pads = gs.Constant("letterbox_pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))
            x = op("Pad", [x, pads, gs.Constant("letterbox_value", np.array(PAD_VALUE, np.float32))],
                   {"mode": "constant"})
    if conv is not None:  # BGR->RGB and /255 folded into the first Conv: exact (linear; zero padding stays 0)
        weights = conv.inputs[1].values
        conv.inputs[1] = gs.Constant(conv.inputs[1].name + "_bgr_pixels",
                                     np.ascontiguousarray(weights[:, ::-1] / 255.0).astype(weights.dtype))
        conv.inputs[0] = x
    else:
        op("Mul", [x, gs.Constant("scale_1_255", np.array(1.0 / 255.0, np.float32))], out=old)
    graph.inputs = [pixels]
    graph.cleanup().toposort()
    return _export(gs, graph, proto)


def folds_into_first_conv(proto) -> bool:
    """Whether add_preprocessing folds the channel swap and /255 into the first Conv (YOLOv8: yes)."""
    gs = lazy_import("onnx_graphsurgeon")
    graph = gs.import_onnx(proto)
    return _foldable_conv(gs, graph.inputs[0]) is not None


def _foldable_conv(gs, image):
    """The one Conv reading ``image`` with constant, unshared 3-channel weights, or None."""
    consumers = list(image.outputs)
    if len(consumers) != 1 or consumers[0].op != "Conv" or consumers[0].inputs[0] is not image:
        return None
    conv = consumers[0]
    weights = conv.inputs[1] if len(conv.inputs) > 1 else None
    if not isinstance(weights, gs.Constant) or weights.values.ndim != 4 or weights.values.shape[1] != 3:
        return None
    if int(conv.attrs.get("group", 1)) != 1 or len(weights.outputs) != 1:
        return None
    return conv


def add_efficient_nms(proto, conf: float, iou: float, max_det: int):
    """Append EfficientNMS_TRT to YOLOv8's ``[B, 4+nc, N]`` output (class-aware, one label per box).

    Two steps before the plugin, both pointwise so TensorRT fuses them (no MatMul: with edgekit's default tactic
    sources TensorRT 8.5 may have no kernel for one, NVIDIA/TensorRT#1928):

    - corners: ``x1y1 = xy - wh/2``, ``x2y2 = xy + wh/2`` (Slice, Mul, Sub, Add, Concat);
    - one label per anchor: every class score but the anchor's best is set to 0 (ReduceMax, Equal, Where). The
      plugin scores every (anchor, class) pair at or above its threshold, so without this an anchor with two
      classes above conf gives two boxes; edgekit's host NMS (and ultralytics' predict) keep each anchor's best
      class. Exact ties keep both classes (float scores almost never tie).
    """
    gs = lazy_import("onnx_graphsurgeon")
    graph = gs.import_onnx(proto)
    (raw,) = graph.outputs
    batch, channels, anchors = raw.shape
    nc = channels - 4
    if not isinstance(nc, int) or nc < 1:
        raise ValueError("expected YOLOv8's [B, 4+nc, N] output, got %s" % (raw.shape,))

    def node(kind, inputs, shape, attrs=None, dtype=np.float32, out=None):
        out = out or gs.Variable("nms_%s_%d" % (kind.lower(), len(graph.nodes)), dtype, shape)
        graph.nodes.append(gs.Node(kind, name="nms/%s_%d" % (kind, len(graph.nodes)), attrs=attrs or {},
                                   inputs=inputs, outputs=[out]))
        return out

    def const(name, values, dtype=np.int64):
        return gs.Constant("nms_" + name, np.array(values, dtype))

    anchors_last = node("Transpose", [raw], [batch, anchors, channels], {"perm": [0, 2, 1]})

    def channel_slice(start, end, name):  # [B, N, start:end] of the anchors-last tensor
        return node("Slice", [anchors_last, const(name + "_start", [start]), const(name + "_end", [end]),
                              const(name + "_axis", [2])], [batch, anchors, end - start])

    xy, wh, scores = channel_slice(0, 2, "xy"), channel_slice(2, 4, "wh"), channel_slice(4, channels, "cls")
    half = node("Mul", [wh, const("half", [[[0.5]]], np.float32)], [batch, anchors, 2])
    corners = [node("Sub", [xy, half], [batch, anchors, 2]), node("Add", [xy, half], [batch, anchors, 2])]
    boxes = node("Concat", corners, [batch, anchors, 4], {"axis": 2},
                 out=gs.Variable("nms_boxes", np.float32, [batch, anchors, 4]))
    if opset(proto) >= 18:  # ReduceMax takes its axes as an input from opset 18 on
        best = node("ReduceMax", [scores, const("cls_axis_max", [2])], [batch, anchors, 1], {"keepdims": 1})
    else:
        best = node("ReduceMax", [scores], [batch, anchors, 1], {"axes": [2], "keepdims": 1})
    is_best = node("Equal", [scores, best], [batch, anchors, nc], dtype=np.bool_)
    single = node("Where", [is_best, scores, const("zero", [[[0.0]]], np.float32)], [batch, anchors, nc],
                  out=gs.Variable("nms_scores", np.float32, [batch, anchors, nc]))
    outputs = [gs.Variable(NMS_OUTPUTS[0], np.int32, [batch, 1]),
               gs.Variable(NMS_OUTPUTS[1], np.float32, [batch, max_det, 4]),
               gs.Variable(NMS_OUTPUTS[2], np.float32, [batch, max_det]),
               gs.Variable(NMS_OUTPUTS[3], np.int32, [batch, max_det])]
    plugin = gs.Node("EfficientNMS_TRT", name="nms/EfficientNMS_TRT", attrs=nms_attributes(conf, iou, max_det),
                     inputs=[boxes, single], outputs=outputs)
    plugin.domain = NMS_DOMAIN
    graph.nodes.append(plugin)
    graph.outputs = outputs
    graph.cleanup().toposort()
    model = _export(gs, graph, proto)
    if not any(o.domain == NMS_DOMAIN for o in model.opset_import):
        model.opset_import.add(domain=NMS_DOMAIN, version=1)
    return model


def nms_attributes(conf: float, iou: float, max_det: int) -> Dict[str, Any]:
    """EfficientNMS_TRT's attributes, as TensorRT's plugin README names them."""
    return {"plugin_version": "1", "background_class": -1, "max_output_boxes": int(max_det),
            "score_threshold": float(conf), "iou_threshold": float(iou), "score_activation": 0, "box_coding": 0}


def _export(gs, graph, original):
    """Back to a ModelProto that keeps the original's metadata props, producer and opsets."""
    model = gs.export_onnx(graph, do_type_check=True)
    model.ir_version = original.ir_version
    del model.opset_import[:]
    model.opset_import.extend(original.opset_import)
    model.producer_name, model.producer_version = original.producer_name, original.producer_version
    del model.metadata_props[:]
    model.metadata_props.extend(original.metadata_props)
    return model
