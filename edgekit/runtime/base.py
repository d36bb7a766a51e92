"""The Runner protocol: everything above it (bench, camera, eval) is written once against it.

A runner loads a model, takes a preprocessed NCHW batch and returns the raw outputs. After every
``infer`` call, ``timings`` holds what the backend measured for that call, in milliseconds:
ONNX Runtime reports ``inference`` on the host clock; TensorRT reports ``h2d``, ``compute`` and ``d2h``
from CUDA events. ``clock`` says which ("host" or "cuda").
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.modelinfo import ModelInfo

Dim = Union[int, str, None]  # a static size, or a symbolic/dynamic one


class Runner:
    backend = "base"
    clock = "host"

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.timings: Dict[str, float] = {}
        self.info: Optional[ModelInfo] = None
        self.input_name = ""
        self.input_shape: Sequence[Dim] = ()
        self.input_dtype: np.dtype = np.dtype(np.float32)
        self.output_names: List[str] = []
        self.output_shapes: List[Sequence[Dim]] = []  # in output_names order; None where dynamic
        self.device = "cpu"  # what actually runs it, e.g. "CPUExecutionProvider" or a GPU name

    # --- the protocol -------------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> List[np.ndarray]:
        """Run one preprocessed batch; returns outputs in ``output_names`` order and sets ``timings``."""
        self.check_input(batch)
        return self._infer(batch)

    def close(self) -> None:
        """Release the backend's resources; safe to call twice."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- helpers for all backends -------------------------------------------------------------------
    @property
    def static_batch(self) -> Optional[int]:
        return _static(self.input_shape[0]) if self.input_shape else None

    @property
    def nhwc(self) -> bool:
        """uint8 ``[B, H, W, 3]`` pixels (edgekit export --graph-preprocess) rather than float ``[B, 3, H, W]``."""
        return self.input_dtype == np.uint8 and len(self.input_shape) == 4 and self.input_shape[3] == 3

    @property
    def static_hw(self) -> Optional[tuple]:
        """(h, w) of the input tensor's images when static (for --graph-letterbox: the camera frame size)."""
        if len(self.input_shape) != 4:
            return None
        hw = self.input_shape[1:3] if self.nhwc else self.input_shape[2:4]
        h, w = _static(hw[0]), _static(hw[1])
        return (h, w) if h and w else None

    def input_hw(self, default: int = 640) -> tuple:
        """(h, w) the network sees: the static input size, else the exported imgsz (manifest/metadata), else
        ``default``; for uint8 pixels the exported imgsz comes first (the graph may letterbox to it)."""
        if self.nhwc and self.info and self.info.imgsz:
            return tuple(self.info.imgsz)
        if self.static_hw:
            return self.static_hw
        if self.info and self.info.imgsz:
            return tuple(self.info.imgsz)
        return (default, default)

    def check_input(self, batch: np.ndarray) -> None:
        expected = list(self.input_shape)
        if batch.dtype != self.input_dtype:
            raise EdgekitError("%s expects %s input, got %s" % (self.path.name, self.input_dtype, batch.dtype))
        mismatch = batch.ndim != len(expected) or any(
            _static(e) is not None and e != got for e, got in zip(expected, batch.shape)
        )
        if mismatch:
            raise EdgekitError(
                "input shape %s does not match %s's input %s %s: export the model at this size "
                "(edgekit export --imgsz/--batch) or feed it %s"
                % (list(batch.shape), self.path.name, self.input_name, expected, expected)
            )

    def _infer(self, batch: np.ndarray) -> List[np.ndarray]:
        raise NotImplementedError


def _static(dim: Dim) -> Optional[int]:
    return dim if isinstance(dim, int) and dim > 0 else None
