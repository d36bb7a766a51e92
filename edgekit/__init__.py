"""edgekit: YOLOv8 from the workstation to NVIDIA Jetson, with honest numbers."""

__version__ = "0.1.0"
