"""One URI string picks the video source (the grammar Jetson users know from jetson-utils' videoSource).

    csi://0                          MIPI CSI camera through GStreamer's nvarguscamerasrc (Jetson)
    /dev/video0, v4l2:///dev/video0  USB camera (V4L2), MJPG or YUYV
    rtsp://user:pass@host:554/path   network stream (GStreamer rtspsrc on Jetson, FFmpeg elsewhere)
    http://user:pass@host/video.mjpg IP camera: an MJPEG stream or a JPEG snapshot URL (https:// too)
    file://clip.mp4, clip.mp4        video file; a folder of images or one image works too
    synthetic://?width=1280&height=720&fps=30   generated moving shapes: demos and tests with no camera
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional
from urllib.parse import parse_qsl, urlsplit

from edgekit.errors import EdgekitError

SCHEMES = ("csi", "v4l2", "rtsp", "rtsps", "http", "https", "file", "synthetic")


def _text(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else "%g" % bound


def _number(kind: Callable[[str], Any], low: float, high: float, low_open: bool = False) -> Callable[[str], Any]:
    """A parser for one URI parameter: ``kind`` (int/float) within [low, high] ((low, high] if ``low_open``)."""

    def parse(text: str) -> Any:
        value = kind(text)  # ValueError for "abc"
        if not math.isfinite(value):  # nan passes every comparison below, inf an open end
            raise ValueError("must be a finite number")
        if value < low or value > high or (low_open and value == low):
            raise ValueError("must be %s %s and <= %s" % (">" if low_open else ">=", _text(low), _text(high)))
        return value

    parse.__name__ = kind.__name__
    return parse


# The query parameters each scheme takes, with their parsers: anything else is an error listing these.
# rtsp:// and http(s):// are not listed: their query string belongs to the camera's own URL and is passed on
# untouched (rtsp: only ``codec`` is read from it, for the Jetson hardware-decode pipeline).
URI_PARAMS: Dict[str, Dict[str, Callable[[str], Any]]] = {
    "synthetic": {"width": _number(int, 16, 16384), "height": _number(int, 16, 16384),
                  # fps 0: a frame whenever the loop takes one (an uncapped source, for measuring the loop)
                  "fps": _number(float, 0, 1000), "seed": _number(int, 0, 2 ** 32 - 1)},
    "csi": {}, "v4l2": {}, "file": {},
}
RTSP_CODECS = ("h264", "h265")


def parse_params(scheme: str, uri: str, query: str) -> Dict[str, Any]:
    """The URI's query parameters, typed and range-checked; an unknown key names the known ones."""
    if scheme in ("http", "https"):
        return {}
    if scheme == "rtsp":
        params: Dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        codec = params.get("codec")
        if codec is not None and codec.lower() not in RTSP_CODECS:
            raise EdgekitError("%s: codec=%s is not one of %s" % (uri, codec, ", ".join(RTSP_CODECS)))
        return params
    known = URI_PARAMS[scheme]
    params = {}
    for key, text in parse_qsl(query, keep_blank_values=True):
        if key in params:
            raise EdgekitError("%s: %s is given twice" % (uri, key))
        if key not in known:
            raise EdgekitError("%s: unknown parameter %r for %s:// (known: %s)" % (
                uri, key, scheme, ", ".join(known) if known else "none; use the command's options"))
        try:
            params[key] = known[key](text)
        except ValueError as exc:
            detail = str(exc) if "must be" in str(exc) else "not a valid %s" % (
                "whole number" if known[key].__name__ == "int" else "number")
            raise EdgekitError("%s: %s=%s: %s" % (uri, key, text, detail)) from exc
    return params


@dataclass
class SourceOptions:
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    flip: int = 0  # nvvidconv flip-method (0..7) for CSI cameras
    codec: str = "MJPG"  # V4L2 pixel format: MJPG or YUYV
    latency: int = 200  # RTSP jitter buffer, ms
    loop: bool = False  # restart files at their end
    realtime: bool = False  # files: play at their frame rate and drop late frames, like a camera


@dataclass
class SourceSpec:
    kind: str  # csi | v4l2 | rtsp | http | file | synthetic
    location: str  # sensor id, device path, URL or file path
    params: Dict[str, Any]

    @property
    def live(self) -> bool:
        """Live sources run at their own rate: the loop takes the newest frame and drops the rest."""
        return self.kind in ("csi", "v4l2", "rtsp", "http", "synthetic")


def parse_uri(uri: str) -> SourceSpec:
    if not uri:
        raise EdgekitError("empty source: give csi://0, /dev/video0, rtsp://..., http://.../video.mjpg, a file, "
                           "or synthetic://")
    if uri.startswith("/dev/video"):
        return SourceSpec("v4l2", uri, {})
    if "://" not in uri:
        return SourceSpec("file", uri, {})
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise EdgekitError("unknown source scheme %s:// in %s: use one of %s"
                           % (scheme, uri, ", ".join(s + "://" for s in SCHEMES)))
    params = parse_params("rtsp" if scheme == "rtsps" else scheme, uri, parts.query)
    if scheme in ("rtsp", "rtsps"):
        return SourceSpec("rtsp", uri, params)
    if scheme in ("http", "https"):
        if not parts.netloc:
            raise EdgekitError("%s: expected %s://HOST[:PORT]/PATH, e.g. http://192.168.1.20:8080/video.mjpg"
                               % (uri, scheme))
        return SourceSpec("http", uri, params)
    if scheme == "csi":
        sensor = parts.netloc or parts.path.strip("/") or "0"
        if not sensor.isdigit():
            raise EdgekitError("csi://%s: the sensor id must be a number, e.g. csi://0" % sensor)
        return SourceSpec("csi", sensor, params)
    location = parts.netloc + parts.path  # file://clip.mp4 (relative) and file:///abs/clip.mp4
    if scheme == "v4l2" and not location.startswith("/dev/"):
        raise EdgekitError("%s: expected v4l2:///dev/videoN" % uri)
    return SourceSpec(scheme, location, params)


def csi_pipeline(sensor: str, o: SourceOptions) -> str:
    """nvarguscamerasrc -> NVMM -> nvvidconv (flip, BGRx) -> BGR appsink that keeps only the newest frame."""
    return (
        "nvarguscamerasrc sensor-id=%s ! video/x-raw(memory:NVMM), width=%d, height=%d, framerate=%d/1 ! "
        "nvvidconv flip-method=%d ! video/x-raw, width=%d, height=%d, format=BGRx ! videoconvert ! "
        "video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
        % (sensor, o.width, o.height, int(round(o.fps)), o.flip, o.width, o.height)
    )


def rtsp_pipeline(url: str, o: SourceOptions, codec: Optional[str] = None) -> str:
    """rtspsrc with a bounded jitter buffer, hardware decode (nvv4l2decoder), newest-frame appsink."""
    codec = (codec or "h264").lower()
    return (
        "rtspsrc location=%s latency=%d drop-on-latency=true ! rtp%sdepay ! %sparse ! nvv4l2decoder ! "
        "nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
        "appsink drop=true max-buffers=1 sync=false" % (url, o.latency, codec, codec)
    )
