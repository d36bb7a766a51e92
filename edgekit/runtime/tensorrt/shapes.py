"""Input shapes and optimization profiles, in plain Python (tested without a GPU).

A dynamic-batch engine has buffers for its profile's largest shape; a batch above it would overrun them (a
numpy error at best), so it is refused here in one line that names the rebuild.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

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


Shape = Tuple[int, ...]


def profile_shapes(shape: Sequence[int], hw: Tuple[int, int], batch: int = 1,
                   channels_last: bool = False) -> Tuple[Shape, Shape, Shape]:
    """(min, opt, max) of an optimization profile for an input of ``shape`` (-1 where dynamic), built from the
    input's own shape: its static dimensions as they are, the batch 1..``batch`` (opt = max), the height and
    width at ``hw``. ``channels_last``: ``[B, H, W, 3]`` (edgekit export --graph-preprocess), else
    ``[B, 3, H, W]``."""
    if len(shape) != 4:
        raise EdgekitError("the model's input has shape %s; edgekit builds 4-D image inputs" % (list(shape),))
    h_axis, w_axis = (1, 2) if channels_last else (2, 3)
    lo, hi = [], []
    for axis, d in enumerate(shape):
        if d >= 0:
            lo.append(int(d))
            hi.append(int(d))
        elif axis == 0:
            lo.append(1)
            hi.append(max(1, batch))
        elif axis in (h_axis, w_axis):
            size = hw[0] if axis == h_axis else hw[1]
            lo.append(size)
            hi.append(size)
        else:
            raise EdgekitError("the model's input %s is dynamic in dimension %d (channels); edgekit builds "
                               "profiles for batch, height and width only: re-export it" % (list(shape), axis))
    return tuple(lo), tuple(hi), tuple(hi)
