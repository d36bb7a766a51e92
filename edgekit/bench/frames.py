"""Frames to feed the pipeline: synthetic by default, or images/video/``synthetic://`` from ``--source``.

``--source`` takes still frames: an image, a folder of images, a video file (``file://`` too), or
``synthetic://?width=W&height=H&seed=N`` (camera's grammar; its fps means nothing here). A live camera or stream
(csi://, /dev/video0, rtsp://, http://) is edgekit camera's. A --graph-letterbox model gets synthetic frames
of the size its graph takes, and a --source of another size is refused with that size named.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.log import warn
from edgekit.video.uri import parse_uri
from edgekit.vision.images import IMAGE_SUFFIXES, read_image, undecodable_note
from edgekit.vision.pipeline import FrameSizeError

SYNTHETIC_HW = (720, 1280)  # bench's default frames: a 720p camera
SOURCE_FORMS = "an image, a folder of images, a video file or synthetic://?width=W&height=H"


def synthetic_frames(count: int = 8, shape: Tuple[int, int] = SYNTHETIC_HW, seed: int = 0) -> List[np.ndarray]:
    """Camera-sized BGR frames of filled shapes on a noisy background (deterministic; any size from 16x16)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    low = min(40, max(1, min(h, w) // 6))  # shape sizes: 40 .. min(h, w)/3 px at camera sizes
    frames = []
    for _ in range(count):
        frame = rng.integers(60, 110, size=(h, w, 3), dtype=np.uint8)
        for _ in range(6):
            c = tuple(int(v) for v in rng.integers(0, 255, 3))
            x, y = int(rng.integers(0, max(w - 80, 1))), int(rng.integers(0, max(h - 80, 1)))
            s = int(rng.integers(low, max(min(h, w) // 3, low + 1)))
            if rng.random() < 0.5:
                cv2.rectangle(frame, (x, y), (x + s, y + s // 2 + 20), c, -1)
            else:
                cv2.circle(frame, (x + s // 2, y + s // 2), s // 2, c, -1)
        frames.append(frame)
    return frames


def load_frames(source, limit: Optional[int] = None) -> List[np.ndarray]:
    """Up to ``limit`` BGR frames from an image, a folder of images, or a video file (default 32); undecodable
    images are skipped with a warning that names them; ``synthetic://?width=W&height=H`` makes them (default 8,
    as many as bench's own synthetic frames)."""
    if "://" in str(source) or str(source).startswith("/dev/video"):
        spec = parse_uri(str(source))  # camera's grammar: a bad parameter is its one-line error
        if spec.kind == "synthetic":
            p = spec.params
            return synthetic_frames(limit or 8, (p.get("height", SYNTHETIC_HW[0]), p.get("width", SYNTHETIC_HW[1])),
                                    p.get("seed", 0))
        if spec.kind != "file":
            raise EdgekitError("--source %s is a live source: this command takes %s (edgekit camera %s runs "
                               "live sources)" % (source, SOURCE_FORMS, source))
        source = spec.location
    limit = limit or 32
    path = Path(source)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
        frames: List[np.ndarray] = []
        bad: List[Path] = []
        for file in files:
            if len(frames) >= limit:
                break
            frame = read_image(file)
            if frame is None:
                bad.append(file)
            else:
                frames.append(frame)
        if bad:
            warn(undecodable_note(bad, len(frames) + len(bad)))
    elif path.is_file():
        frames = _video_frames(path, limit)
    else:
        raise EdgekitError("--source %s not found: give %s" % (source, SOURCE_FORMS))
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


def frames_for_model(pipe, frames: Sequence[np.ndarray], from_source: bool) -> Sequence[np.ndarray]:
    """The frames to feed ``pipe``'s model: a --graph-letterbox model takes one frame size only, so default
    synthetic frames are made at that size, and --source frames of another size are refused."""
    if pipe.format.kind != "uint8-letterbox" or not pipe.format.frame_hw:
        return frames
    fh, fw = pipe.format.frame_hw
    if not from_source:
        return frames if frames[0].shape[:2] == (fh, fw) else synthetic_frames(len(frames), (fh, fw))
    for frame in frames:
        if frame.shape[:2] != (fh, fw):
            raise FrameSizeError(pipe.runner.path.name, (fw, fh), (frame.shape[1], frame.shape[0]),
                                 "give --source with %dx%d frames (or synthetic://?width=%d&height=%d)"
                                 % (fw, fh, fw, fh))
    return frames
