"""The end-to-end (NMS-free) head of YOLO26 and YOLOv10: which models have one, what an export of it records.

Such heads carry two branches: one-to-many (``cv2``/``cv3``, trained and read like YOLOv8's: ``[B, 4+nc, N]``
then NMS) and one-to-one (``one2one_cv2``/``one2one_cv3``: one box per object, no NMS). ultralytics' exporter
keeps the one-to-many branch by default (``nms=None``) and the one-to-one branch with ``nms=False``
(``edgekit export --end2end``); that graph ends in the head's own top-k (ReduceMax, TopK, Mod, GatherElements) and
returns one tensor ``[B, K, 6]``: x1, y1, x2, y2 in the input's (letterboxed) pixels, score, class index as a
float, highest score first, K = min(max_det, anchors) baked in at export, not thresholded (conf filters on the
host; no IoU applies). An anchor may appear once per class: the top-k runs over (anchor, class) pairs of the
best K anchors, as ultralytics' predict and val read it. YOLOv8 and YOLO11 have no one-to-one branch.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from edgekit.errors import EdgekitError
from edgekit.log import warn

TOPK_LIMIT = 3840  # TensorRT's TopK takes k <= 3840 (8.5 to 10.x)
COLUMNS = ["x1", "y1", "x2", "y2", "score", "class"]


def head_of(model) -> Any:
    """The detection head (last layer) of an ultralytics YOLO model."""
    return model.model.model[-1]


def has_one2one(model) -> bool:
    """Whether the model has an end-to-end (one-to-one) branch: YOLO26 and YOLOv10 yes, YOLOv8 and YOLO11 no."""
    return getattr(head_of(model), "one2one_cv2", None) is not None


def has_one2many(model) -> bool:
    """False for a checkpoint fused for inference that kept only its one-to-one branch."""
    return getattr(head_of(model), "cv2", None) is not None


def check_head(model, weights: str, end2end: bool) -> None:
    """Refuse --end2end for a model without a one-to-one branch, and a plain export of one that kept only it."""
    family = head_family(model)
    named = weights if family in weights else "%s (%s)" % (weights, family)
    if end2end and not has_one2one(model):
        raise EdgekitError("--end2end: %s has no end-to-end (one-to-one) head, only the one-to-many head read "
                           "with NMS: export it without --end2end (end-to-end heads: YOLO26, YOLOv10)" % named)
    if not end2end and not has_one2many(model):
        raise EdgekitError("%s holds only its end-to-end head (the one-to-many head was removed when it was fused): "
                           "export it with --end2end" % weights)


def head_family(model) -> str:
    """The model's YAML stem as ultralytics records it (``yolov8n``, ``yolo26n``), for messages."""
    yaml = getattr(model.model, "yaml", None) or {}
    name = str(yaml.get("yaml_file") or "")
    return name.rsplit("/", 1)[-1].rsplit(".", 1)[0] or type(head_of(model)).__name__


def check_request(max_det: int, dynamic: bool, trt_nms: bool) -> None:
    """What an end-to-end export cannot be, refused before the model is loaded."""
    if trt_nms:
        raise EdgekitError("--end2end and --trt-nms: an end-to-end head needs no NMS; give one of them")
    if dynamic:  # TensorRT 8.5's TopK takes a constant k; a dynamic graph computes it from the input size
        raise EdgekitError("--end2end needs static shapes (its top-k is min(max_det, anchors) of the input size, "
                           "and TensorRT 8.5 takes only a constant k): drop --dynamic")
    if max_det > TOPK_LIMIT:
        raise EdgekitError("--max-det %d: an end-to-end export bakes TopK k=max_det, and TensorRT's TopK takes k <= "
                           "%d: give --max-det %d or less" % (max_det, TOPK_LIMIT, TOPK_LIMIT))


def output_k(outputs: Sequence[Dict[str, Any]]) -> Optional[int]:
    """K of an end-to-end export's one ``[B, K, 6]`` output (from ``onnx_io``), or None when it is not one."""
    if len(outputs) != 1:
        return None
    shape = outputs[0]["shape"]
    if len(shape) != 3 or shape[2] != len(COLUMNS):
        return None
    return shape[1] if isinstance(shape[1], int) else None


def head_manifest(model, end2end: bool, outputs: Sequence[Dict[str, Any]], requested_max_det: int) -> Dict[str, Any]:
    """``head``: ``end2end`` or ``one2many``; ``max_det``: K of an end-to-end export (None otherwise);
    ``end2end_head``: whether the model has a one-to-one branch (a plain YOLO26 export could be end-to-end)."""
    doc: Dict[str, Any] = {"head": "end2end" if end2end else "one2many", "end2end_head": has_one2one(model),
                           "max_det": None}
    if end2end:
        k = output_k(outputs)
        if k is None:
            raise EdgekitError("the end-to-end export's outputs are %s, not one [B, K, 6] tensor: this ultralytics "
                               "version exports the head differently; export without --end2end"
                               % [o["shape"] for o in outputs])
        if k < requested_max_det:
            warn("--end2end: the top-k is %d, not --max-det %d: the input has only %d anchors at this --imgsz"
                 % (k, requested_max_det, k))
        doc.update(max_det=k, end2end={"output": outputs[0]["name"], "columns": list(COLUMNS), "boxes": "xyxy, input "
                                       "pixels (letterboxed)", "sorted": "score, descending", "thresholded": False,
                                       "requested_max_det": requested_max_det})
    return doc


def exported_branch(net, end2end: bool):
    """``net`` (a DetectionModel) holding only the head branch the export keeps, for its params and GFLOPs: a
    YOLO26 carries both branches, and its forward runs both, so counting it whole would add the unused one. A copy
    is fused down to one branch; a model with one branch is returned as it is."""
    head = net.model[-1]
    if getattr(head, "one2one_cv2", None) is None or getattr(head, "cv2", None) is None:
        return net
    import copy

    net = copy.deepcopy(net)
    net.model[-1].end2end = end2end
    net.model[-1].fuse()  # drops the other branch (ultralytics' Detect.fuse)
    return net
