"""Image files: which suffixes count as images, and which files really decode. Below both the measuring layer
(``edgekit.bench.frames``, eval, camera sources) and the device runtime (INT8 calibration), so neither reaches
into the other for them."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from edgekit.vision.quiet import filtered_stderr

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path, flags: int = cv2.IMREAD_COLOR) -> Optional[np.ndarray]:
    """cv2.imread without libjpeg's own "Premature end of JPEG file" on the console (a broken file is edgekit's
    to name, once, in its own words); None when the file does not decode."""
    with filtered_stderr():
        return cv2.imread(str(path), flags)


def decodable(files: Sequence[Path]) -> Tuple[List[Path], List[Path]]:
    """Split image files into (decodable, undecodable), decoding each at 1/8 size in gray (JPEG decoders skip
    most of the work): enough to find files that are not images at all before a long job starts."""
    good, bad = [], []
    for path in files:
        (good if read_image(path, cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None else bad).append(path)
    return good, bad


def undecodable_note(bad: Sequence[Path], total: int) -> str:
    """'2 of 40 images cannot be decoded and are skipped: a.jpg, b.png' (the first three named)."""
    names = ", ".join(p.name for p in bad[:3]) + (", ..." if len(bad) > 3 else "")
    return "%d of %d images cannot be decoded and are skipped: %s" % (len(bad), total, names)
