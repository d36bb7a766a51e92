"""Vision pieces shared by bench, camera and eval: preprocess, decode + NMS, Detections, drawing."""

from edgekit.vision.detections import Detections
from edgekit.vision.postprocess import postprocess
from edgekit.vision.preprocess import Letterbox, letterbox, preprocess

__all__ = ["Detections", "Letterbox", "letterbox", "postprocess", "preprocess"]
