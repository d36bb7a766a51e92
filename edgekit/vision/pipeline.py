"""The per-frame work around a runner, picked from the model itself: what to feed it and how to read it.

Input (from the model's input dtype and shape):

- ``float``: ``[B, 3, H, W]`` float RGB in [0, 1]; the host letterboxes, swaps channels, scales and
  transposes (``edgekit.vision.preprocess``), as before.
- ``uint8``: ``[B, H, W, 3]`` uint8 BGR (``edgekit export --graph-preprocess``); the host only letterboxes,
  into a preallocated buffer; the graph does the rest.
- ``uint8-letterbox``: ``[B, Hf, Wf, 3]`` uint8 BGR of a fixed camera frame size other than the model's
  imgsz (``--graph-letterbox``); the graph letterboxes too, so the host passes the frame as it is.

Output (from the model's outputs), ``Pipeline.output``:

- ``raw``: YOLOv8's ``[B, 4+nc, N]``; decode + NMS on the host.
- ``trt-nms``: EfficientNMS_TRT's ``num_dets, det_boxes, det_scores, det_classes`` (``--trt-nms``); read as they
  are, with the conf/IoU the engine was exported with.
- ``end2end``: an end-to-end head's ``[B, K, 6]`` (``--end2end``, YOLO26; ``edgekit.vision.end2end``): no NMS, conf
  filters on the host, at most K boxes (baked in at export); IoU does not apply and is not used.

``Pipeline.postprocess`` uses the settings the pipeline was made with; ``Pipeline.decode`` takes them per call
(``edgekit serve``: each request its own), after ``Pipeline.settings_problem`` has said they fit the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.vision.detections import Detections
from edgekit.vision.end2end import end2end_max_det, read_end2end
from edgekit.vision.postprocess import postprocess, scale_boxes
from edgekit.vision.preprocess import PAD_VALUE, Letterbox, check_frames, letterbox, letterbox_plan, preprocess

NMS_OUTPUTS = ("num_dets", "det_boxes", "det_scores", "det_classes")
DEFAULT_MAX_DET = 300  # ultralytics' predict and val
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


def output_format(runner) -> str:
    """``raw`` (YOLOv8 ``[B, 4+nc, N]``, host NMS), ``trt-nms`` (EfficientNMS_TRT's four outputs) or ``end2end``
    (an end-to-end head's ``[B, K, 6]``, no NMS)."""
    if has_trt_nms(runner):
        return "trt-nms"
    return "end2end" if end2end_max_det(runner) is not None else "raw"


class Pipeline:
    """preprocess(frames) -> (batch, letterboxes); postprocess(outputs, letterboxes) -> Detections per frame."""

    def __init__(self, runner, conf: Optional[float] = 0.25, iou: Optional[float] = 0.7,
                 max_det: Optional[int] = None, multi_label: bool = False, agnostic: bool = False) -> None:
        """A setting given as None is the model's default (``default_settings``: max_det 300, or an end-to-end
        model's K when it returns fewer; an NMS engine's own conf and IoU); a number is checked against the model."""
        self.runner = runner
        self.format = input_format(runner)
        self.output = output_format(runner)
        self.nms = self.output == "trt-nms"
        # end2end: the most boxes the model returns (its top-k, baked in at export; 0 when not static)
        self.end2end_k = end2end_max_det(runner) if self.output == "end2end" else None
        conf, iou, max_det = self.with_defaults(conf, iou, max_det)
        self.conf, self.iou, self.max_det, self.multi_label, self.agnostic = conf, iou, max_det, multi_label, agnostic
        self.float_dtype = runner.input_dtype
        self._ring: List[np.ndarray] = []
        self._turn = 0
        self._geometry: List[Any] = []  # per ring buffer: the letterbox plans its borders were painted for
        # boxes that entered NMS, per frame of the last postprocess (None with NMS in the engine: not seen here)
        self.candidates: Optional[List[int]] = None
        problem = self.settings_problem(conf, iou, max_det, agnostic, multi_label)
        if problem:
            raise EdgekitError(problem)

    @property
    def hw(self) -> Tuple[int, int]:
        return self.format.model_hw

    # --- preprocess -----------------------------------------------------------------------------------
    def preprocess(self, frames: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Letterbox]]:
        if self.format.kind == "float":
            return preprocess(frames, self.hw, dtype=self.float_dtype)
        check_frames(frames)
        if self.format.kind == "uint8-letterbox":
            return self._frames_as_they_are(frames)
        return self._letterbox_into_buffer(frames)

    def preprocess_owned(self, frames: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Letterbox]]:
        """As ``preprocess``, into a new array instead of the ring's buffers: for callers on several threads whose
        batches wait in a queue while more are made (``edgekit serve``)."""
        if self.format.kind != "uint8":
            return self.preprocess(frames)  # float: a new blob each call; uint8-letterbox: the frames themselves
        check_frames(frames)
        boxed = [letterbox(frame, self.hw) for frame in frames]
        batch = boxed[0][0][None] if len(boxed) == 1 else np.stack([b for b, _ in boxed])
        return np.ascontiguousarray(batch), [lb for _, lb in boxed]

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
        """With the pipeline's own settings; ``candidates`` records the boxes that entered host NMS per frame."""
        self.candidates = [] if self.output == "raw" else None
        return self.decode(outputs, letterboxes, self.conf, self.iou, self.max_det, self.agnostic,
                           self.multi_label, self.candidates)

    def decode(self, outputs: Sequence[np.ndarray], letterboxes: Sequence[Letterbox], conf: float, iou: float,
               max_det: int, agnostic: bool = False, multi_label: bool = False,
               candidates: Optional[List[int]] = None) -> List[Detections]:
        """The model's outputs -> Detections per frame with these settings (stateless: safe from any thread;
        check them first with ``settings_problem``)."""
        if self.output == "trt-nms":
            return read_trt_nms(outputs, letterboxes, conf, max_det)
        if self.output == "end2end":  # no NMS: iou, agnostic and multi_label do not apply
            return read_end2end(outputs, letterboxes, conf, max_det)
        return postprocess(outputs[0], letterboxes, conf=conf, iou=iou, max_det=max_det, agnostic=agnostic,
                           multi_label=multi_label, candidates=candidates)

    def baked(self) -> Dict[str, Any]:
        """The settings fixed in the model: EfficientNMS_TRT's conf/IoU/max_det from its manifest, an end-to-end
        head's max_det (its top-k), else {}."""
        if self.output == "end2end":
            return {"max_det": self.end2end_k} if self.end2end_k else {}
        if self.output != "trt-nms":
            return {}
        return dict((self.runner.info.get("nms") if self.runner.info else None) or {})

    def default_settings(self) -> Dict[str, float]:
        """conf, IoU and max_det when a caller gives none: ultralytics' 0.25/0.7/300, or what is fixed in the model
        (an NMS engine's conf and IoU; the boxes an NMS engine or an end-to-end head returns at most)."""
        baked = self.baked()
        conf = max(0.25, float(baked["conf"])) if baked.get("conf") is not None else 0.25
        iou = float(baked["iou"]) if baked.get("iou") is not None else 0.7  # (an end-to-end head uses none)
        max_det = min(DEFAULT_MAX_DET, int(baked["max_det"])) if baked.get("max_det") else DEFAULT_MAX_DET
        return {"conf": conf, "iou": iou, "max_det": max_det}

    def with_defaults(self, conf: Optional[float], iou: Optional[float],
                      max_det: Optional[int]) -> Tuple[float, float, int]:
        """conf, IoU and max_det with ``default_settings`` for each one given as None."""
        defaults = self.default_settings()
        return (float(defaults["conf"] if conf is None else conf), float(defaults["iou"] if iou is None else iou),
                int(defaults["max_det"] if max_det is None else max_det))

    def settings_problem(self, conf: float, iou: float, max_det: int = 300, agnostic: bool = False,
                         multi_label: bool = False) -> Optional[str]:
        """Why these settings cannot be honoured by this model (one line), or None. The NMS in an engine ran with
        the exported conf/IoU: a lower conf or another IoU would silently be something else. An end-to-end head
        returns at most its K boxes and runs no NMS (IoU is not used; class-agnostic NMS is refused)."""
        if self.output == "end2end":
            return self._end2end_problem(max_det, agnostic)
        if self.output != "trt-nms":
            return None
        baked = self.baked()
        name = self.runner.path.name
        if baked.get("conf") is not None and conf < float(baked["conf"]) - 1e-9:
            return ("%s has NMS in the engine at conf %g; conf %g needs a re-export with "
                    "edgekit export --trt-nms --conf %g" % (name, baked["conf"], conf, conf))
        if baked.get("iou") is not None and abs(iou - float(baked["iou"])) > 1e-6:
            return ("%s has NMS in the engine at IoU %g; IoU %g needs a re-export with edgekit export --trt-nms "
                    "--iou %g (or ask for IoU %g)" % (name, baked["iou"], iou, iou, baked["iou"]))
        if agnostic or multi_label:
            return ("%s has EfficientNMS_TRT in the engine (class-aware): use the model exported "
                    "without --trt-nms for agnostic or multi-label NMS" % name)
        return None

    def _end2end_problem(self, max_det: int, agnostic: bool) -> Optional[str]:
        name = self.runner.path.name
        if self.end2end_k and max_det > self.end2end_k:
            asked = ((self.runner.info.get("end2end") if self.runner.info else None) or {}).get("requested_max_det")
            more = ("a larger --imgsz (the input has only %d anchors)" % self.end2end_k
                    if isinstance(asked, int) and asked > self.end2end_k else "--max-det %d" % max_det)
            return ("%s returns at most %d boxes (its end-to-end head's top-k, fixed at export): ask for max_det %d "
                    "or less, or re-export with edgekit export --end2end and %s" % (name, self.end2end_k,
                                                                                 self.end2end_k, more))
        if agnostic:
            return ("%s has an end-to-end head, which runs no NMS: class-agnostic NMS does not apply (use the model "
                    "exported without --end2end for it)" % name)
        return None


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
