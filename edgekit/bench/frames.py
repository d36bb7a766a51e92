"""Frames to feed the pipeline: synthetic by default, or images/video from ``--source``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.log import warn
from edgekit.vision.images import IMAGE_SUFFIXES, undecodable_note


def synthetic_frames(count: int = 8, shape: Tuple[int, int] = (720, 1280), seed: int = 0) -> List[np.ndarray]:
    """Camera-sized BGR frames of filled shapes on a noisy background (deterministic)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    frames = []
    for _ in range(count):
        frame = rng.integers(60, 110, size=(h, w, 3), dtype=np.uint8)
        for _ in range(6):
            c = tuple(int(v) for v in rng.integers(0, 255, 3))
            x, y = int(rng.integers(0, w - 80)), int(rng.integers(0, h - 80))
            s = int(rng.integers(40, min(h, w) // 3))
            if rng.random() < 0.5:
                cv2.rectangle(frame, (x, y), (x + s, y + s // 2 + 20), c, -1)
            else:
                cv2.circle(frame, (x + s // 2, y + s // 2), s // 2, c, -1)
        frames.append(frame)
    return frames


def load_frames(source, limit: int = 32) -> List[np.ndarray]:
    """Up to ``limit`` BGR frames from an image, a folder of images, or a video file; undecodable images are
    skipped with a warning that names them."""
    path = Path(source)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
        frames: List[np.ndarray] = []
        bad: List[Path] = []
        for file in files:
            if len(frames) >= limit:
                break
            frame = cv2.imread(str(file))
            if frame is None:
                bad.append(file)
            else:
                frames.append(frame)
        if bad:
            warn(undecodable_note(bad, len(frames) + len(bad)))
    elif path.is_file():
        frames = _video_frames(path, limit)
    else:
        raise EdgekitError("--source %s not found: give an image, a folder of images or a video file" % source)
    if not frames:
        raise EdgekitError("--source %s has no readable images or video frames" % source)
    return frames


def _video_frames(path: Path, limit: int) -> List[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while cap.isOpened() and len(frames) < limit:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    return frames
