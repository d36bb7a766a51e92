"""Keep OpenCV's, FFmpeg's and libjpeg's own console lines out of edgekit's output.

A broken or missing source is one edgekit line (``error: cannot open empty.mp4: ...``); without this, the
libraries print first: FFmpeg's ``[mov,mp4,... @ 0x...] moov atom not found``, OpenCV's ``[ WARN:0@0.09]
global cap.cpp:212 ...`` and libjpeg's ``Premature end of JPEG file`` (written by C code straight to fd 2).

- :func:`quiet_opencv` silences OpenCV's log and FFmpeg's (``OPENCV_FFMPEG_LOGLEVEL``, read when OpenCV first
  uses FFmpeg, so it is set before any source opens). A user who sets ``OPENCV_LOG_LEVEL``,
  ``OPENCV_FFMPEG_LOGLEVEL`` or ``OPENCV_FFMPEG_DEBUG`` keeps their own levels (for debugging a camera).
- :func:`filtered_stderr` is for C code that prints whatever the log levels say (libjpeg): fd 2 goes to a
  temporary file during the block, and afterwards what was written there goes back to fd 2 minus the
  libraries' lines, so another thread's output in that moment is delayed, never lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from typing import Iterator

import cv2

NOISE = re.compile(
    r"^(\[ ?(WARN|ERROR|INFO|DEBUG|FATAL)[:\s]"  # OpenCV's log
    r"|\[[\w,.-]+ @ 0x[0-9a-fA-F]+\]"  # FFmpeg's av_log
    r"|Premature end of JPEG file|Corrupt JPEG data|Invalid SOS parameters|Unsupported marker type"  # libjpeg
    r"|libpng (warning|error))"
)
_LOCK = threading.Lock()
_quiet = False


def quiet_opencv() -> None:
    """Silence OpenCV's own log and FFmpeg's, unless the user set their levels; idempotent."""
    global _quiet
    if _quiet:
        return
    _quiet = True
    if not any(k in os.environ for k in ("OPENCV_FFMPEG_LOGLEVEL", "OPENCV_FFMPEG_DEBUG")):
        os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        logging = getattr(getattr(cv2, "utils", None), "logging", None)
        if logging is not None and hasattr(logging, "setLogLevel"):
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Run the block with fd 2 captured; then write back what it got, without the libraries' noise lines."""
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to filter
            yield
            return
        try:
            with tempfile.TemporaryFile() as tmp:
                os.dup2(tmp.fileno(), 2)
                try:
                    yield
                finally:
                    with contextlib.suppress(OSError, ValueError, AttributeError):
                        sys.stderr.flush()
                    os.dup2(saved, 2)
                    tmp.seek(0)
                    kept = [line for line in tmp.read().splitlines(True)
                            if not NOISE.match(line.decode("utf-8", "replace"))]
                    if kept:
                        os.write(2, b"".join(kept))
        finally:
            os.close(saved)
