"""Small objects for the synthetic dataset: some images made of four quarter-size scenes.

The plain synthetic scenes (edgekit.eval.synthetic) hold objects of 34-96 px at the default 240x320: all of
them COCO "medium". A mosaic image tiles four scenes drawn at half the size, so its objects are 17-48 px:
COCO "small" (under 32x32) and medium. A set with some mosaics shows where a pruned or INT8 model loses
accuracy by object size, as ``edgekit eval`` reports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np

from edgekit.eval.synthetic import make_dataset, make_image

Label = Tuple[int, float, float, float, float]


def make_mosaic_image(rng, size: Tuple[int, int]) -> Tuple[np.ndarray, List[Label]]:
    """One image of ``size`` (h, w) made of 2x2 scenes of half the size, and its YOLO labels."""
    h, w = size
    hh, hw = h // 2, w // 2
    img = np.zeros((hh * 2, hw * 2, 3), np.uint8)
    labels: List[Label] = []
    for row in range(2):
        for col in range(2):
            tile, tile_labels = make_image(rng, (hh, hw))
            img[row * hh:(row + 1) * hh, col * hw:(col + 1) * hw] = tile
            labels += [(c, (col + x) / 2, (row + y) / 2, bw / 2, bh / 2) for c, x, y, bw, bh in tile_labels]
    return img, labels


def add_small_objects(data_yaml: Path, share: float, seed: int = 0) -> int:
    """Replace ``share`` of each split's images (the first ones, by name) with mosaics; returns how many."""
    root = Path(data_yaml).parent
    rng = np.random.default_rng(seed + 1000)  # its own stream: the plain scenes stay those of the same seed
    replaced = 0
    for split in ("train", "val"):
        images = sorted((root / "images" / split).glob("*.jpg"))
        for image in images[:int(round(share * len(images)))]:
            h, w = cv2.imread(str(image)).shape[:2]
            img, labels = make_mosaic_image(rng, (h, w))
            cv2.imwrite(str(image), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            (root / "labels" / split / (image.stem + ".txt")).write_text(
                "".join("%d %.6f %.6f %.6f %.6f\n" % lab for lab in labels))
            replaced += 1
    return replaced


def make_dataset_with_small_objects(root, n_train: int, n_val: int, seed: int, share: float) -> Path:
    """The synthetic dataset (edgekit make-dataset), ``share`` of its images made of small-object mosaics."""
    data = make_dataset(root, n_train=n_train, n_val=n_val, seed=seed)
    if share > 0:
        add_small_objects(data, share, seed)
    return data
