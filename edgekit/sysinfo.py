"""What machine a result came from: CPU, GPU, Jetson model and power mode, library versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional

from edgekit import __version__
from edgekit.manifest import package_versions


def _read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip() or None
    except OSError:
        return None


def _run(cmd, timeout: float = 3.0) -> Optional[str]:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def jetson_info() -> Optional[Dict[str, Any]]:
    """Jetson model (device tree), L4T release, and nvpmodel power mode; None off a Jetson."""
    release = _read("/etc/nv_tegra_release")
    model = _read("/proc/device-tree/model")
    if not release and not (model and "jetson" in model.lower()):
        return None
    mode = _run(["nvpmodel", "-q"])
    return {
        "model": model,
        "l4t": release.splitlines()[0] if release else None,
        "power_mode": mode.splitlines()[0].split(":", 1)[-1].strip() if mode else None,
    }


def gpu_name() -> Optional[str]:
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    return out.splitlines()[0] if out else None


def system_info() -> Dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu_name(),
        "jetson": jetson_info(),
        "edgekit": __version__,
        "versions": package_versions(["numpy", "opencv-python", "onnxruntime", "onnxruntime-gpu", "tensorrt"]),
    }
