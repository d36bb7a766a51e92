"""What machine a result came from: CPU, GPU, Jetson model and power mode, library versions."""

from __future__ import annotations

import os
import platform
from typing import Any, Dict, Optional

from edgekit import __version__
from edgekit.box import Box, run_command
from edgekit.manifest import package_versions


def cpu_model(box: Optional[Box] = None) -> str:
    text = (box or Box()).read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def jetson_info(box: Optional[Box] = None) -> Optional[Dict[str, Any]]:
    """Jetson model (device tree), L4T release, and nvpmodel power mode; None off a Jetson."""
    box = box or Box()
    if not box.is_jetson():
        return None
    return {"model": box.model(), "l4t": box.tegra_release(), "power_mode": box.power_mode()}


def gpu_name() -> Optional[str]:
    out = run_command(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    return out.splitlines()[0] if out else None


def system_info(box: Optional[Box] = None) -> Dict[str, Any]:
    box = box or Box()
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(box),
        "cpu_count": os.cpu_count(),
        "gpu": gpu_name(),
        "jetson": jetson_info(box),
        "edgekit": __version__,
        "versions": package_versions(["numpy", "opencv-python", "onnxruntime", "onnxruntime-gpu", "tensorrt"]),
    }
