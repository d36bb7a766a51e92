"""Is a calibration set worth its name? How many images calibrate, and are they all alike?

INT8 scales come from the activations the calibration images produce: a few images, or one frame repeated,
give scales that fit those pixels and clip everything else, and the engine loses accuracy without a sign
(reports of mAP 0.77 -> 0.42 are common). Both checks run on small gray thumbnails made while the folder is
checked for decodable images (JPEG decoders skip most of the work at 1/8 size), so they cost nothing extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from edgekit.vision.images import read_image

# NVIDIA's TensorRT guide: about 500 representative images suffice for calibration. Below FEW_IMAGES edgekit warns
# (edgekit quantize takes 256 at most by default, so its default never warns on a folder of 256 or more).
FEW_IMAGES = 200
THUMB = 16  # thumbnails are THUMB x THUMB gray
SAME_MAD = 2.0  # mean absolute difference (0..255 gray) under which two thumbnails are the same picture
MIN_SPREAD = 2.0  # mean per-pixel standard deviation across the thumbnails under which the set is one scene


def decode_thumbnails(files: Sequence[Path]) -> Tuple[List[Path], List[Path], List[np.ndarray]]:
    """(decodable, undecodable, a thumbnail per decodable file), decoding each at 1/8 size in gray."""
    good: List[Path] = []
    bad: List[Path] = []
    thumbs: List[np.ndarray] = []
    for path in files:
        small = read_image(path, cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if small is None:
            bad.append(path)
            continue
        good.append(path)
        thumbs.append(cv2.resize(small, (THUMB, THUMB), interpolation=cv2.INTER_AREA))
    return good, bad, thumbs


def sameness(thumbs: Sequence[np.ndarray]) -> Dict[str, Any]:
    """``distinct``: how many different pictures (thumbnails closer than SAME_MAD count as one); ``spread``: the
    mean per-pixel standard deviation across them (0 for one frame repeated)."""
    if not thumbs:
        return {"distinct": 0, "spread": 0.0}
    stack = np.stack([t.astype(np.float32).ravel() for t in thumbs])
    representatives: List[np.ndarray] = []
    for row in stack:  # greedy: a picture is new when no earlier one is within SAME_MAD
        if not representatives or float(np.abs(np.stack(representatives) - row).mean(1).min()) >= SAME_MAD:
            representatives.append(row)
    return {"distinct": len(representatives), "spread": round(float(stack.std(0).mean()), 2)}


def calibration_warnings(used: int, folder: Any, alike: Optional[Dict[str, Any]]) -> List[str]:
    """One line per problem with the ``used`` images of ``folder``: too few, or nearly all alike."""
    lines = []
    if used < FEW_IMAGES:
        lines.append("only %d image%s calibrate%s this INT8 model (%s): scales from fewer than %d are noisy and can "
                     "cost mAP points; NVIDIA suggests ~500 frames of the camera's own scenes"
                     % (used, "" if used == 1 else "s", "s" if used == 1 else "", folder, FEW_IMAGES))
    if alike and alike.get("distinct") and used > 1:  # no thumbnails: nothing to compare
        if alike["distinct"] * 2 <= used:
            lines.append("the %d calibration images in %s are only %d different picture%s (the rest are copies): "
                         "INT8 scales fit those and clip the rest; calibrate on frames of everything the camera sees"
                         % (used, folder, alike["distinct"], "" if alike["distinct"] == 1 else "s"))
        elif alike["spread"] < MIN_SPREAD:
            lines.append("the %d calibration images in %s are nearly identical (pixels vary by %.1f of 255 across "
                         "them): INT8 scales fit that one scene; calibrate on frames of everything the camera sees"
                         % (used, folder, alike["spread"]))
    return lines
