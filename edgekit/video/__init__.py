"""Video in and out: one URI grammar for sources, a capture thread that always hands the newest frame,
and outputs (window, recording, web stream)."""

from edgekit.video.capture import Capture, EndOfStream, Frame
from edgekit.video.uri import SourceOptions, parse_uri

__all__ = ["Capture", "EndOfStream", "Frame", "SourceOptions", "parse_uri"]
