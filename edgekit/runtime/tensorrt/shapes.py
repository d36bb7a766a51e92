"""Input shapes against an engine's optimization profile, in plain Python (tested without a GPU).

A dynamic-batch engine has buffers for its profile's largest shape; a batch above it would overrun them (a
numpy error at best), so it is refused here in one line that names the rebuild.
"""

from __future__ import annotations

from typing import Optional, Sequence

from edgekit.errors import EdgekitError


def check_profile(batch_shape: Sequence[int], engine_shape: Sequence[int], max_shape: Sequence[int], engine: str,
                  onnx: Optional[str] = None) -> None:
    """``engine_shape`` has -1 where the engine's input is dynamic; ``max_shape`` is its profile's max."""
    for axis, (got, fixed, top) in enumerate(zip(batch_shape, engine_shape, max_shape)):
        if fixed < 0 and got > top:
            what = "batch" if axis == 0 else "input dimension %d" % axis
            hint = ("rebuild it with edgekit build %s --batch %d" % (onnx or "MODEL.onnx", got) if axis == 0
                    else "rebuild it for this size")
            raise EdgekitError("%s of %d is above the most engine %s was built for (%d): feed at most %d, or %s"
                               % (what, got, engine, top, top, hint))
