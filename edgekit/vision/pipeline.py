"""The per-frame work around a runner, picked from the model itself: what to feed it and how to read it.

Input (from the model's input dtype and shape):

- ``float``: ``[B, 3, H, W]`` float RGB in [0, 1]; the host letterboxes, swaps channels, scales and
  transposes (``edgekit.vision.preprocess``), as before.
- ``uint8``: ``[B, H, W, 3]`` uint8 BGR (``edgekit export --graph-preprocess``); the host only letterboxes,
  into a preallocated buffer; the graph does the rest.
- ``uint8-letterbox``: ``[B, Hf, Wf, 3]`` uint8 BGR of a fixed camera frame size other than the model's
  imgsz (``--graph-letterbox``); the graph letterboxes too, so the host passes the frame as it is.

Output (from the model's outputs): YOLOv8's raw ``[B, 4+nc, N]`` (decode + NMS on the host), or
EfficientNMS_TRT's ``num_dets, det_boxes, det_scores, det_classes`` (``--trt-nms``; read as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.vision.detections import Detections
from edgekit.vision.postprocess import postprocess, scale_boxes
from edgekit.vision.preprocess import PAD_VALUE, Letterbox, letterbox_plan, preprocess

NMS_OUTPUTS = ("num_dets", "det_boxes", "det_scores", "det_classes")
RING = 3  # uint8 buffers in turn: one in inference, one queued, one being written (the camera's pipeline)


class FrameSizeError(EdgekitError):
    """A frame of another size than a --graph-letterbox model takes; ``advice`` (from the caller, who knows the
    source: camera, file, bench) says how to feed the right size."""

    def __init__(self, model: str, want: Tuple[int, int], got: Tuple[int, int], advice: str = "") -> None:
        self.model, self.want, self.got = model, want, got
        super().__init__("%s letterboxes %dx%d frames in its graph; this frame is %dx%d: %s or export without "
                         "--graph-letterbox" % (model, want[0], want[1], got[0], got[1],
                                                advice or "feed %dx%d frames" % want))


@dataclass(frozen=True)
class InputFormat:
    kind: str  # "float", "uint8" or "uint8-letterbox"
    model_hw: Tuple[int, int]  # the size the network sees (its imgsz)
    frame_hw: Optional[Tuple[int, int]] = None  # uint8-letterbox: the frame size the graph takes

    @property
    def in_graph(self) -> bool:
        return self.kind != "float"


def input_format(runner) -> InputFormat:
    shape, dtype = list(runner.input_shape), np.dtype(runner.input_dtype)
    if dtype != np.uint8:
        return InputFormat("float", tuple(runner.input_hw()))
    if len(shape) != 4 or shape[3] != 3:
        raise EdgekitError("%s takes uint8 input %s; edgekit feeds uint8 as [B, H, W, 3] BGR pixels (edgekit "
                           "export --graph-preprocess)" % (runner.path.name, shape))
    model_hw = tuple(runner.input_hw())
    frame_hw = runner.static_hw
    if frame_hw and frame_hw != model_hw:
        return InputFormat("uint8-letterbox", model_hw, tuple(frame_hw))
    return InputFormat("uint8", model_hw)


def has_trt_nms(runner) -> bool:
    """True when the model's outputs are EfficientNMS_TRT's (``edgekit export --trt-nms``)."""
    return tuple(runner.output_names) == NMS_OUTPUTS


class Pipeline:
    """preprocess(frames) -> (batch, letterboxes); postprocess(outputs, letterboxes) -> Detections per frame."""

    def __init__(self, runner, conf: float = 0.25, iou: float = 0.7, max_det: int = 300,
                 multi_label: bool = False, agnostic: bool = False) -> None:
        self.runner = runner
        self.format = input_format(runner)
        self.nms = has_trt_nms(runner)
        self.conf, self.iou, self.max_det, self.multi_label, self.agnostic = conf, iou, max_det, multi_label, agnostic
        self.float_dtype = runner.input_dtype
        self._ring: List[np.ndarray] = []
        self._turn = 0
        self._geometry: List[Any] = []  # per ring buffer: the letterbox plans its borders were painted for
        # boxes that entered NMS, per frame of the last postprocess (None with NMS in the engine: not seen here)
        self.candidates: Optional[List[int]] = None
        if self.nms:
            self._check_nms_settings()

    @property
    def hw(self) -> Tuple[int, int]:
        return self.format.model_hw

    # --- preprocess -----------------------------------------------------------------------------------
    def preprocess(self, frames: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Letterbox]]:
        if self.format.kind == "float":
            return preprocess(frames, self.hw, dtype=self.float_dtype)
        for frame in frames:
            if frame is None or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError("preprocess expects BGR uint8 HxWx3 frames")
        if self.format.kind == "uint8-letterbox":
            return self._frames_as_they_are(frames)
        return self._letterbox_into_buffer(frames)

    def _frames_as_they_are(self, frames: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Letterbox]]:
        fh, fw = self.format.frame_hw or (0, 0)
        for frame in frames:
            if frame.shape[:2] != (fh, fw):
                raise FrameSizeError(self.runner.path.name, (fw, fh), (frame.shape[1], frame.shape[0]))
        plan = letterbox_plan((fh, fw), self.hw)
        boxes = [plan.letterbox] * len(frames)
        if len(frames) == 1 and frames[0].flags.c_contiguous:
            return frames[0][None], boxes  # a view: no copy at all
        return np.ascontiguousarray(np.stack(frames)), boxes

    def _letterbox_into_buffer(self, frames: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Letterbox]]:
        buf, painted = self._next_buffer(len(frames))
        h, w = self.hw
        boxes = []
        for i, frame in enumerate(frames):
            plan = letterbox_plan(frame.shape[:2], (h, w))
            top, _, left, _ = plan.borders
            nh, nw = plan.resized
            if painted[i] != plan:  # the borders only change when the frame size does
                buf[i] = PAD_VALUE
                painted[i] = plan
            dst = buf[i, top:top + nh, left:left + nw]
            if (nh, nw) == frame.shape[:2]:
                dst[...] = frame
            else:  # straight into the buffer (OpenCV writes into a strided view of the right size and type)
                out = cv2.resize(frame, (nw, nh), dst=dst, interpolation=cv2.INTER_LINEAR)
                if out is not dst:
                    dst[...] = out
            boxes.append(plan.letterbox)
        return buf, boxes

    def _next_buffer(self, batch: int) -> Tuple[np.ndarray, List[Any]]:
        h, w = self.hw
        if not self._ring or self._ring[0].shape[0] != batch:
            self._ring = [np.full((batch, h, w, 3), PAD_VALUE, np.uint8) for _ in range(RING)]
            self._geometry = [[None] * batch for _ in range(RING)]
        self._turn = (self._turn + 1) % RING
        return self._ring[self._turn], self._geometry[self._turn]

    def dummy_input(self, batch: int = 1) -> np.ndarray:
        """A zero batch of the model's input shape and dtype (engine-only timing)."""
        if self.format.kind == "float":
            return np.zeros((batch, 3) + tuple(self.hw), dtype=self.float_dtype)
        fh, fw = self.format.frame_hw or self.hw
        return np.zeros((batch, fh, fw, 3), np.uint8)

    # --- postprocess ----------------------------------------------------------------------------------
    def postprocess(self, outputs: Sequence[np.ndarray], letterboxes: Sequence[Letterbox]) -> List[Detections]:
        if not self.nms:
            self.candidates = []
            return postprocess(outputs[0], letterboxes, conf=self.conf, iou=self.iou, max_det=self.max_det,
                               agnostic=self.agnostic, multi_label=self.multi_label, candidates=self.candidates)
        return read_trt_nms(outputs, letterboxes, self.conf, self.max_det)

    def _check_nms_settings(self) -> None:
        """The NMS in the engine ran with the exported conf/IoU; asking for other values is an error."""
        baked: Dict[str, Any] = (self.runner.info.get("nms") if self.runner.info else None) or {}
        name = self.runner.path.name
        if baked.get("conf") is not None and self.conf < float(baked["conf"]) - 1e-9:
            raise EdgekitError("%s has NMS in the engine at conf %g; conf %g needs a re-export with "
                               "edgekit export --trt-nms --conf %g" % (name, baked["conf"], self.conf, self.conf))
        if baked.get("iou") is not None and abs(self.iou - float(baked["iou"])) > 1e-6:
            raise EdgekitError("%s has NMS in the engine at IoU %g: pass --iou %g, or re-export with "
                               "edgekit export --trt-nms --iou %g" % (name, baked["iou"], baked["iou"], self.iou))
        if self.agnostic or self.multi_label:
            raise EdgekitError("%s has EfficientNMS_TRT in the engine (class-aware): use the model exported "
                               "without --trt-nms for agnostic or multi-label NMS" % name)


def read_trt_nms(outputs: Sequence[np.ndarray], letterboxes: Sequence[Letterbox], conf: float = 0.0,
                 max_det: int = 300) -> List[Detections]:
    """EfficientNMS_TRT's outputs (num_dets, xyxy boxes, scores, classes) -> Detections in frame coordinates."""
    num, boxes, scores, classes = outputs[:4]
    results = []
    for b, lb in enumerate(letterboxes):
        n = min(int(num[b].reshape(-1)[0]), boxes.shape[1], max_det)
        keep = scores[b, :n] > conf  # the engine kept scores above its own threshold; a higher conf filters
        dets = Detections(boxes[b, :n][keep].astype(np.float32), scores[b, :n][keep].astype(np.float32),
                          classes[b, :n][keep].astype(np.int32))
        dets.xyxy = scale_boxes(dets.xyxy, lb)
        results.append(dets)
    return results
