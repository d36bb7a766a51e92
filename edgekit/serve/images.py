"""Request bodies to BGR frames: raw JPEG/PNG, multipart ``file``, or base64 in JSON (Roboflow's clients).

Every problem is a :class:`RequestError` with the HTTP status and a one-line message naming it. The image's
size is read from its header (Pillow, no pixel decoded) and checked against the pixel cap before OpenCV
decodes it; a JPEG or PNG without its end marker is reported as truncated before decoding.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

from edgekit.lazy import lazy_import

RAW_TYPES = ("image/jpeg", "image/jpg", "image/png")
JSON_TYPE = "application/json"
MULTIPART_TYPE = "multipart/form-data"
FORM_TYPE = "application/x-www-form-urlencoded"  # Roboflow's hosted API: the body is the base64 text
ACCEPTED = RAW_TYPES + (JSON_TYPE, MULTIPART_TYPE, FORM_TYPE)
FORMATS = ("JPEG", "PNG", "BMP", "WEBP")


class RequestError(Exception):
    """A request the server does not run: ``status`` and a one-line message, answered as JSON
    ``{"error": message}``; ``headers`` (e.g. Retry-After on a 503) and the ``reason`` label of
    edgekit_rejections_total (default: from the status)."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None,
                 reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.reason = reason


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def check_content_type(content_type: str) -> str:
    kind = media_type(content_type)
    if kind not in ACCEPTED:
        raise RequestError(415, "unsupported content type %r: send image/jpeg or image/png (raw body), "
                                "multipart/form-data with a 'file' part, or application/json with a base64 "
                                "'image'" % (kind or "none"))
    return kind


def image_from_json(body: bytes) -> bytes:
    """``{"image": "<base64>"}`` or ``{"image": {"type": "base64", "value": "<base64>"}}`` (Roboflow)."""
    try:
        doc: Any = json.loads(body)
    except ValueError as exc:
        raise RequestError(400, "body is not valid JSON: %s" % str(exc).splitlines()[0]) from None
    image = doc.get("image") if isinstance(doc, dict) else None
    if isinstance(image, dict):
        if image.get("type", "base64") != "base64":
            raise RequestError(400, "image.type %r: only base64 images are accepted" % image.get("type"))
        image = image.get("value")
    if not isinstance(image, str):
        raise RequestError(400, "JSON body needs 'image': a base64 string or {'type': 'base64', 'value': ...}")
    return b64decode(image)


def b64decode(text) -> bytes:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if text.startswith("data:"):
        text = text.partition(",")[2]  # data URL: data:image/jpeg;base64,....
    try:
        return base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(400, "image is not valid base64: %s" % exc) from None


def encoded_or_base64(body: bytes) -> bytes:
    """A body that is the encoded image itself (curl --data-binary @frame.jpg) or its base64 text (Roboflow's
    clients, whatever their Content-Type says): the image bytes."""
    return body if looks_encoded(body) else b64decode(body)


def looks_encoded(data: bytes) -> bool:
    """Raw JPEG or PNG bytes (not base64 text)."""
    return data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Encoded image -> BGR uint8 frame, or a RequestError (400 undecodable/truncated, 413 too many pixels)."""
    if not data:
        raise RequestError(400, "empty image: the request carried no image bytes")
    image_mod = lazy_import("PIL.Image")
    try:
        header = image_mod.open(io.BytesIO(data))  # reads the header only
        fmt, (width, height) = header.format, header.size
    except image_mod.DecompressionBombError as exc:  # Pillow's own cap (twice its MAX_IMAGE_PIXELS) came first
        raise RequestError(413, "image is too large (%s); this server decodes at most %d pixels (--max-pixels)"
                           % (str(exc).split(" exceeds")[0], max_pixels)) from None
    except Exception:  # UnidentifiedImageError, or a header cut short
        raise RequestError(400, "cannot decode the image (%d bytes): not a JPEG, PNG, BMP or WebP, or its "
                                "header is cut short" % len(data)) from None
    if fmt not in FORMATS:
        raise RequestError(400, "image format %s is not accepted: send JPEG or PNG" % fmt)
    if width * height > max_pixels:
        raise RequestError(413, "image is %dx%d = %d pixels; this server decodes at most %d (--max-pixels)"
                           % (width, height, width * height, max_pixels))
    if fmt == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise RequestError(400, "truncated JPEG (%d bytes, no end-of-image marker)" % len(data))
    if fmt == "PNG" and b"IEND" not in data[-12:]:
        raise RequestError(400, "truncated PNG (%d bytes, no IEND chunk)" % len(data))
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None or frame.size == 0:
        raise RequestError(400, "cannot decode the %s image (%dx%d, %d bytes): corrupt data"
                           % (fmt, width, height, len(data)))
    return frame


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def image_size(frame: np.ndarray) -> Tuple[int, int]:
    return int(frame.shape[1]), int(frame.shape[0])
