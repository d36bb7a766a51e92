"""The live camera loop for field demos: per-frame latency by stage, FPS, live view, recording."""

from edgekit.camera.loop import CameraConfig, run_camera

__all__ = ["CameraConfig", "run_camera"]
