"""ONNX Runtime backend: runs everywhere (CPU, or the CUDA execution provider when installed).

It is edgekit's fallback where TensorRT is missing and the accuracy reference for engines.
Timings are host-clock (``clock = "host"``): ``inference`` covers copies and compute together.
"""

from __future__ import annotations

import time
from typing import List, Optional, Sequence

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.lazy import lazy_import
from edgekit.manifest import read_manifest
from edgekit.runtime.base import Runner
from edgekit.runtime.modelinfo import model_info
from edgekit.runtime.threads import spin_entries, spinning_override

TRT_NMS_HINT = ("%s has TensorRT's EfficientNMS_TRT plugin, which ONNX Runtime cannot run: build an engine "
                "(edgekit build) or use the model exported without --trt-nms here")
# execution providers edgekit picks from, best first; others (Azure, TensorRT EP) only when asked for
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"
    clock = "host"

    def __init__(self, path, providers: Optional[Sequence[str]] = None, threads: Optional[int] = None,
                 spinning: Optional[bool] = None) -> None:
        """``threads``: intra-op threads (None: ONNX Runtime's choice, one per physical core). ``spinning``:
        whether idle pool threads spin (edgekit.runtime.threads picks it per command); None: sleep, unless
        EDGEKIT_ORT_SPINNING=1."""
        super().__init__(path)
        ort = lazy_import("onnxruntime")
        available = ort.get_available_providers()
        providers = list(providers) if providers else [p for p in PREFERRED_PROVIDERS if p in available]
        if spinning is None:
            spinning = bool(spinning_override())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        for key, value in spin_entries(spinning).items():
            options.add_session_config_entry(key, value)
        options.log_severity_level = 3  # errors only: ours are reported as one line
        manifest_nms = (read_manifest(self.path) or {}).get("nms") or {}
        if manifest_nms.get("in_graph"):
            raise EdgekitError(TRT_NMS_HINT % self.path.name)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # ORT raises its own types for corrupt/invalid graphs
            if "EfficientNMS_TRT" in str(exc):
                raise EdgekitError(TRT_NMS_HINT % self.path.name) from exc
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgekitError(
                "cannot load %s with ONNX Runtime: %s: re-export it with edgekit export" % (self.path, first[:300])
            ) from exc
        self.threads = int(threads) if threads else None  # None: ONNX Runtime's default
        self.spinning = spinning
        self.session_options = options  # what the session was opened with (tests read the entries back)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise EdgekitError("%s has %d inputs; edgekit runs single-input YOLO models" % (self.path, len(inputs)))
        self.input_name = inputs[0].name
        self.input_shape = [d if isinstance(d, int) else (d or None) for d in inputs[0].shape]
        self.input_dtype = np.dtype(_ORT_TYPES.get(inputs[0].type, np.float32))
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_shapes = [[d if isinstance(d, int) else None for d in o.shape] for o in self.session.get_outputs()]
        self.device = self.session.get_providers()[0]
        self.info = model_info(self.path, self.session.get_modelmeta().custom_metadata_map)

    def _infer(self, batch: np.ndarray) -> List[np.ndarray]:
        t0 = time.perf_counter()
        outputs = self.session.run(self.output_names, {self.input_name: batch})
        self.timings = {"inference": (time.perf_counter() - t0) * 1e3}
        return outputs

    def close(self) -> None:
        self.session = None


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}
