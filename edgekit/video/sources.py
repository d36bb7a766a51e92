"""Frame sources behind the URI grammar: OpenCV captures (file, V4L2, CSI, RTSP), image folders, synthetic;
HTTP MJPEG cameras are in :mod:`edgekit.video.mjpeg`.

A source's ``read()`` returns a BGR frame, or None when it failed or ended (``ended`` tells which).
Opening failures raise :class:`SourceError` with a message that says what to check.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from edgekit.video.uri import SourceOptions, SourceSpec, csi_pipeline, rtsp_pipeline
from edgekit.vision.images import IMAGE_SUFFIXES, read_image
from edgekit.vision.quiet import quiet_opencv


class SourceError(Exception):
    """A source that cannot be opened or read; the message names the source and what to check."""


class FrameSource:
    finite = False  # files and folders end; cameras and streams do not

    def __init__(self, name: str, fps: Optional[float] = None) -> None:
        self.name = name
        self.fps = fps
        self.ended = False
        self.undecodable: List[str] = []  # files skipped because they are not decodable images
        self.last_wait = 0.0  # seconds the last read() slept to pace frames (not capture work)
        self.on_demand = False  # a frame whenever the loop takes one, at no frame rate of its own

    def open(self) -> None:
        self.ended = False

    def read(self) -> Optional[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def frame_size(self) -> Optional[Tuple[int, int]]:
        """(width, height) of its frames when known before the first frame (call after open()); None if not."""
        return None

    def frame_rate(self) -> Tuple[Optional[float], str]:
        """(the rate its frames stand for, in FPS, and where that comes from), for a recording that plays at the
        source's speed; None: the source does not say, measure it. Call after open()."""
        if self.fps and self.fps > 0:
            return float(self.fps), "the source's nominal rate"
        return None, "measured: the source does not say its rate"


class SyntheticSource(FrameSource):
    """Moving shapes on a textured background, paced at ``fps``: a camera that is always there. ``fps`` 0: no
    pacing, a new frame each time the loop takes one (the loop's own speed, with no source limit)."""

    def __init__(self, width: int, height: int, fps: float, seed: int = 0) -> None:
        # the seed in the name tells streams of one size and rate apart (several sources)
        super().__init__("synthetic://%dx%d@%g%s" % (width, height, fps, "?seed=%d" % seed if seed else ""), fps)
        rng = np.random.default_rng(seed)
        self.size = (width, height)
        self.background = cv2.GaussianBlur(rng.integers(40, 140, (height, width, 3), dtype=np.uint8), (0, 0), 3)
        n = 6
        self.pos = rng.random((n, 2)) * (width, height)
        self.vel = (rng.random((n, 2)) - 0.5) * (width / 40.0)
        self.radius = rng.integers(max(8, height // 20), max(9, height // 6), n)
        self.colors = [tuple(int(c) for c in rng.integers(0, 255, 3)) for _ in range(n)]
        self.index = 0
        self.next_time: Optional[float] = None
        self.on_demand = fps <= 0

    def open(self) -> None:
        super().open()
        self.next_time = None  # the clock starts at the first read, not at open (the engine runs in between)

    def read(self) -> Optional[np.ndarray]:
        if self.next_time is None:
            self.next_time = time.perf_counter()
        self.last_wait = max(self.next_time - time.perf_counter(), 0.0) if not self.on_demand else 0.0
        if self.last_wait > 0:
            time.sleep(self.last_wait)
        if not self.on_demand:
            period = 1.0 / self.fps
            self.next_time += period
            now = time.perf_counter()
            if self.next_time < now:  # a late reader gets the next slot, not a burst of the missed ones
                self.next_time += ((now - self.next_time) // period + 1) * period
        w, h = self.size
        self.pos += self.vel
        for axis, limit in ((0, w), (1, h)):
            out = (self.pos[:, axis] < 0) | (self.pos[:, axis] > limit)
            self.vel[out, axis] *= -1
            self.pos[:, axis] = self.pos[:, axis].clip(0, limit)
        frame = self.background.copy()
        for i, ((x, y), r, c) in enumerate(zip(self.pos.astype(int), self.radius, self.colors)):
            if i % 2:
                cv2.rectangle(frame, (x - r, y - r // 2), (x + r, y + r // 2), c, -1)
            else:
                cv2.circle(frame, (x, y), int(r), c, -1)
        cv2.putText(frame, "synthetic #%d" % self.index, (10, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (255, 255, 255), 1, cv2.LINE_AA)
        self.index += 1
        return frame

    def frame_size(self) -> Optional[Tuple[int, int]]:
        return self.size

    def frame_rate(self) -> Tuple[Optional[float], str]:
        if self.on_demand:
            return None, "measured: synthetic fps=0 has no rate of its own"
        return float(self.fps), "the source's rate"


class ImagesSource(FrameSource):
    """A folder of images (sorted by name) or a single image, one frame each."""

    finite = True

    def __init__(self, path: Path, fps: float, realtime: bool) -> None:
        super().__init__(str(path), fps)
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            self.files = [path]
        self.realtime = realtime
        self.index = 0

    def open(self) -> None:
        super().open()
        if not self.files:
            raise SourceError("%s has no images (%s)" % (self.name, ", ".join(IMAGE_SUFFIXES)))
        self.index = 0

    def read(self) -> Optional[np.ndarray]:
        while self.index < len(self.files):
            path = self.files[self.index]
            self.index += 1
            frame = read_image(path)  # without libjpeg's own "Premature end of JPEG file"
            if frame is None:
                if str(path) not in self.undecodable:  # once per file, also when looping
                    self.undecodable.append(str(path))
                continue
            self.last_wait = 1.0 / self.fps if self.realtime else 0.0
            if self.last_wait:
                time.sleep(self.last_wait)
            return frame
        self.ended = True
        return None

    def frame_rate(self) -> Tuple[Optional[float], str]:
        return float(self.fps), "--fps: images have no frame rate"

    def frame_size(self) -> Optional[Tuple[int, int]]:
        for path in self.files[:1]:
            frame = read_image(path)
            return (frame.shape[1], frame.shape[0]) if frame is not None else None
        return None


class CvSource(FrameSource):
    """A ``cv2.VideoCapture``: video files (FFmpeg), V4L2 cameras, GStreamer pipelines, network streams."""

    def __init__(self, name: str, target: str, api: int, finite: bool, hint: str, setup=None, realtime=False,
                 params=None) -> None:
        super().__init__(name)
        self.target, self.api, self.finite, self.hint, self.setup = target, api, finite, hint, setup
        self.params = params  # e.g. FFmpeg open/read timeouts
        self.realtime = realtime
        self.cap = None
        self.next_time: Optional[float] = None

    def open(self) -> None:
        super().open()
        self.close()
        if self.params:
            cap = cv2.VideoCapture(self.target, self.api, self.params)
        else:
            cap = cv2.VideoCapture(self.target, self.api)
        if self.setup:
            self.setup(cap)
        if not cap.isOpened():
            cap.release()
            raise SourceError("cannot open %s: %s" % (self.name, self.hint))
        self.cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else self.fps
        self.next_time = None  # --realtime's clock starts at the first frame read, not at open

    def read(self) -> Optional[np.ndarray]:
        if self.cap is None:
            return None
        ok, frame = self.cap.read()
        if not ok or frame is None:
            self.ended = self.finite
            return None
        if self.realtime and self.fps:  # play a file at its own rate, like a camera
            if self.next_time is None:
                self.next_time = time.perf_counter() - 1.0 / self.fps
            self.next_time += 1.0 / self.fps
            self.last_wait = max(self.next_time - time.perf_counter(), 0.0)
            if self.last_wait > 0:
                time.sleep(self.last_wait)
        return frame

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    def frame_size(self) -> Optional[Tuple[int, int]]:
        if self.cap is None:
            return None
        w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return (w, h) if w > 0 and h > 0 else None

    def frame_rate(self) -> Tuple[Optional[float], str]:
        if not self.finite:
            return super().frame_rate()
        if self.fps and self.fps > 0:
            return float(self.fps), "the file's rate"
        return None, "measured: the file does not say its rate"


def has_gstreamer() -> bool:
    return any("GStreamer" in line and "YES" in line for line in cv2.getBuildInformation().splitlines())


def make_source(spec: SourceSpec, o: SourceOptions) -> FrameSource:
    """The FrameSource for a parsed URI (not opened yet)."""
    quiet_opencv()  # edgekit's one-line errors, not OpenCV's/FFmpeg's own lines before them
    if spec.kind == "synthetic":
        p = spec.params
        return SyntheticSource(p.get("width", o.width), p.get("height", o.height), p.get("fps", o.fps),
                               p.get("seed", 0))
    if spec.kind == "file":
        path = Path(spec.location).expanduser()
        if not path.exists():
            raise SourceError("%s not found: give a video file, an image folder, or a camera URI" % path)
        if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
            return ImagesSource(path, o.fps, o.realtime)
        hint = "is it a video OpenCV/FFmpeg can decode?"
        return CvSource(str(path), str(path), cv2.CAP_ANY, True, hint, realtime=o.realtime)
    if spec.kind == "v4l2":
        def setup(cap):
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*o.codec[:4].ljust(4)))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, o.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, o.height)
            cap.set(cv2.CAP_PROP_FPS, o.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)

        hint = "check that the camera is plugged in (ls /dev/video*), not used by another program, and that " \
               "you may read it (group video)"
        return CvSource(spec.location, spec.location, cv2.CAP_V4L2, False, hint, setup)
    if spec.kind == "csi":
        if not has_gstreamer():
            raise SourceError("csi://%s needs OpenCV built with GStreamer (JetPack's OpenCV has it; pip's "
                              "opencv-python does not: pip uninstall opencv-python)" % spec.location)
        hint = "check the ribbon cable and sensor id, and restart nvargus-daemon (sudo systemctl restart " \
               "nvargus-daemon)"
        return CvSource("csi://" + spec.location, csi_pipeline(spec.location, o), cv2.CAP_GSTREAMER, False, hint)
    if spec.kind == "http":
        from edgekit.video.mjpeg import MjpegSource

        return MjpegSource(_redact(spec.location), spec.location)
    # rtsp: hardware decode through GStreamer on a Jetson, FFmpeg over TCP with timeouts elsewhere
    hint = "check the URL, credentials and that the host is reachable"
    if has_gstreamer() and os.path.exists("/etc/nv_tegra_release"):
        pipeline = rtsp_pipeline(spec.location, o, spec.params.get("codec"))
        return CvSource(_redact(spec.location), pipeline, cv2.CAP_GSTREAMER, False, hint)
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
    return CvSource(_redact(spec.location), spec.location, cv2.CAP_FFMPEG, False, hint, params=params)


def _redact(url: str) -> str:
    """rtsp://user:pass@host/... (or http://) -> rtsp://user:***@host/... for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.split("@", 1)
        if ":" in creds and "/" not in creds:  # user:pass before the host, not an @ in the path
            return "%s://%s:***@%s" % (scheme, creds.split(":", 1)[0], host)
    return url
