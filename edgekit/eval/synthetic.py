"""A small synthetic detection dataset: shapes of a few classes on textured backgrounds, with YOLO labels.

No dataset can be downloaded in CI or on many benches; this one is made in seconds and is learnable, so
accuracy numbers mean something in tests and demos. Real data (COCO128, your own) is the path for users.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np

CLASSES = ("circle", "square", "triangle")


def _background(rng, h: int, w: int) -> np.ndarray:
    base = rng.integers(0, 255, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    img += rng.normal(0, 25, (h, w, 3))  # texture
    gy, gx = np.mgrid[0:h, 0:w]
    img += (gx / w * rng.uniform(-60, 60) + gy / h * rng.uniform(-60, 60))[..., None]  # lighting gradient
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(2, 6)):  # clutter lines that are not objects
        p1 = tuple(int(v) for v in rng.integers(0, (w, h)))
        p2 = tuple(int(v) for v in rng.integers(0, (w, h)))
        cv2.line(img, p1, p2, tuple(int(c) for c in rng.integers(0, 255, 3)), int(rng.integers(1, 3)))
    return img


def _draw(img: np.ndarray, cls: int, cx: int, cy: int, r: int, color) -> Tuple[int, int, int, int]:
    if cls == 0:
        cv2.circle(img, (cx, cy), r, color, -1, cv2.LINE_AA)
    elif cls == 1:
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), color, -1)
    else:
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
    return cx - r, cy - r, cx + r, cy + r


def make_image(rng, size: Tuple[int, int]) -> Tuple[np.ndarray, List[Tuple[int, float, float, float, float]]]:
    """One image and its YOLO labels (class, cx, cy, w, h normalized)."""
    h, w = size
    img = _background(rng, h, w)
    labels = []
    boxes: List[Tuple[int, int, int, int]] = []
    for _ in range(rng.integers(1, 5)):
        r = int(rng.integers(min(h, w) // 14, min(h, w) // 5))
        cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
        if any(not (cx + r < a or cx - r > c or cy + r < b or cy - r > d) for a, b, c, d in boxes):
            continue  # no overlaps: every object stays fully visible
        cls = int(rng.integers(0, len(CLASSES)))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        x1, y1, x2, y2 = _draw(img, cls, cx, cy, r, color)
        boxes.append((x1, y1, x2, y2))
        labels.append((cls, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h))
    return img, labels


def make_dataset(root, n_train: int = 160, n_val: int = 48, size: Tuple[int, int] = (240, 320),
                 seed: int = 0) -> Path:
    """Write ``root/{images,labels}/{train,val}`` and ``root/data.yaml``; returns the data.yaml path."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, labels = make_image(rng, size)
            cv2.imwrite(str(root / "images" / split / ("%05d.jpg" % i)), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            (root / "labels" / split / ("%05d.txt" % i)).write_text(
                "".join("%d %.6f %.6f %.6f %.6f\n" % lab for lab in labels))
    names: Dict[int, str] = dict(enumerate(CLASSES))
    data = root / "data.yaml"
    data.write_text("path: %s\ntrain: images/train\nval: images/val\nnames:\n%s" % (
        root.resolve(), "".join("  %d: %s\n" % kv for kv in names.items())))
    return data
