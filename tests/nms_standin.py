"""A stand-in for an engine with EfficientNMS_TRT in it, on the CPU: ``edgekit serve`` of a --trt-nms model with
no GPU. ONNX Runtime cannot run the plugin (it refuses the model in one line), so this runner wraps the plain
float ONNX and returns what the plugin returns: ``num_dets [B, 1]``, ``det_boxes [B, K, 4]`` (xyxy in the
letterboxed input), ``det_scores [B, K]``, ``det_classes [B, K]``, from edgekit's host decode and NMS at the
conf/IoU/max_det "baked" into it (the single-label graph the export makes feeds the plugin one class per anchor).
The real engine is served by tests/test_tensorrt_gpu.py on a GPU.

Run as ``python tests/nms_standin.py serve MODEL.onnx [serve options]``: the edgekit CLI with the worker's
``open_runner`` swapped for this runner. The baked settings come from EDGEKIT_STANDIN_NMS (JSON).
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgekit.runtime import open_runner  # noqa: E402
from edgekit.runtime.base import Runner  # noqa: E402
from edgekit.runtime.modelinfo import ModelInfo  # noqa: E402
from edgekit.vision.pipeline import NMS_OUTPUTS  # noqa: E402
from edgekit.vision.postprocess import decode, nms  # noqa: E402

DEFAULT = {"conf": 0.25, "iou": 0.7, "max_det": 300}


class NmsStandIn(Runner):
    backend = "onnxruntime"

    def __init__(self, path, baked=None, **kwargs) -> None:
        self.inner = open_runner(path, "onnxruntime", **kwargs)
        super().__init__(Path(path).with_name(Path(path).stem + "-nms-standin.onnx"))
        self.baked = dict(DEFAULT, **(baked or {}))
        info = self.inner.info
        manifest = dict(info.manifest or {}, nms=dict(self.baked, in_graph=True, plugin="EfficientNMS_TRT"))
        self.info = ModelInfo(self.path, info.names, info.imgsz, info.trained, info.weights_label, manifest)
        self.input_name, self.input_dtype = self.inner.input_name, self.inner.input_dtype
        self.input_shape = ["batch"] + list(self.inner.input_shape[1:])  # any batch: the inner model runs per image
        self.output_names = list(NMS_OUTPUTS)
        self.device = self.inner.device

    def _infer(self, batch):
        k = int(self.baked["max_det"])
        num = np.zeros((len(batch), 1), np.int32)
        boxes = np.zeros((len(batch), k, 4), np.float32)
        scores = np.zeros((len(batch), k), np.float32)
        classes = np.zeros((len(batch), k), np.int32)
        for b in range(len(batch)):
            pred = self.inner.infer(batch[b:b + 1])[0][0]
            xyxy, conf, cls = decode(pred, float(self.baked["conf"]))
            keep = nms(xyxy, conf, cls, float(self.baked["iou"]))[:k]
            n = len(keep)
            num[b, 0] = n
            boxes[b, :n], scores[b, :n], classes[b, :n] = xyxy[keep], conf[keep], cls[keep]
        self.timings = dict(self.inner.timings)
        return [num, boxes, scores, classes]

    def close(self) -> None:
        self.inner.close()


def standin_runner(path, backend="auto", **kwargs):
    baked = json.loads(os.environ.get("EDGEKIT_STANDIN_NMS") or "{}")
    return NmsStandIn(path, baked, threads=kwargs.get("threads"))


if __name__ == "__main__":
    import edgekit.serve.worker as worker
    from edgekit.cli import main

    worker.open_runner = standin_runner
    sys.argv = ["edgekit"] + sys.argv[1:]
    main()
