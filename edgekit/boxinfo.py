"""``edgekit info``: what this box is, read from the files a Jetson (or any Linux PC) exposes.

Jetson model (device tree), L4T release and the JetPack it belongs to, TensorRT, CUDA, cuDNN, OpenCV's
GStreamer support, power mode, CPU/GPU clocks, DLA cores and free memory. Every reading is optional: a missing
file means "not here", never an error. ``root`` lets tests read a fake filesystem.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

from edgekit.sysinfo import _run, cpu_model, system_info

# L4T release -> JetPack (NVIDIA's published pairs for the lines edgekit targets)
JETPACK = {
    "35.1": "5.0.2", "35.2": "5.1", "35.3": "5.1.1", "35.4": "5.1.2", "35.5": "5.1.3", "35.6": "5.1.4",
    "36.2": "6.0 DP", "36.3": "6.0", "36.4": "6.1/6.2",
}


def _read(root: Path, path: str) -> Optional[str]:
    try:
        text = (root / path.lstrip("/")).read_text(errors="replace")
    except OSError:
        return None
    return text.replace("\x00", "").strip() or None


def l4t(root: Path) -> Optional[Dict[str, str]]:
    """'# R35 (release), REVISION: 2.1, ...' -> {'l4t': '35.2.1', 'jetpack': '5.1'}."""
    text = _read(root, "/etc/nv_tegra_release")
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text or "")
    if not m:
        return None
    major, rev = m.group(1), m.group(2)
    version = "%s.%s" % (major, rev)
    key = "%s.%s" % (major, rev.split(".")[0])
    return {"l4t": version, "jetpack": JETPACK.get(key, "unknown (L4T %s)" % version)}


def cuda_version(root: Path) -> Optional[str]:
    text = _read(root, "/usr/local/cuda/version.json")
    if text:
        try:
            return json.loads(text)["cuda"]["version"]
        except (ValueError, KeyError):
            pass
    m = re.search(r"CUDA Version ([\d.]+)", _read(root, "/usr/local/cuda/version.txt") or "")
    return m.group(1) if m else None


def cudnn_version(root: Path) -> Optional[str]:
    for header in ("/usr/include/cudnn_version.h", "/usr/include/aarch64-linux-gnu/cudnn_version_v8.h",
                   "/usr/include/x86_64-linux-gnu/cudnn_version_v9.h"):
        text = _read(root, header) or ""
        parts = [re.search(r"#define CUDNN_%s\s+(\d+)" % k, text) for k in ("MAJOR", "MINOR", "PATCHLEVEL")]
        if all(parts):
            return ".".join(p.group(1) for p in parts)
    return None


def tensorrt_version() -> Optional[str]:
    try:
        import tensorrt  # noqa: F401 (JetPack's system bindings)

        return tensorrt.__version__
    except Exception:  # ImportError, or a broken install
        return None


def opencv_info() -> Dict[str, Any]:
    try:
        import cv2
    except ImportError:
        return {"version": None, "gstreamer": False}
    build = cv2.getBuildInformation()
    return {"version": cv2.__version__,
            "gstreamer": any("GStreamer" in line and "YES" in line for line in build.splitlines()),
            "cuda": any(line.strip().startswith("NVIDIA CUDA") and "YES" in line for line in build.splitlines())}


GPU_NAMES = ("gv11b", "ga10b", "gp10b", "gpu")


def clocks(root: Path) -> Dict[str, Any]:
    cpu = []
    for path in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq")):
        value = _read(root, str(path.relative_to(root)))
        if value and value.isdigit():
            cpu.append(int(value) // 1000)  # kHz -> MHz
    gpu = None
    # Jetson GPUs appear by their chip: gv11b (Xavier), ga10b (Orin), gp10b (TX2); older kernels use gpu.0
    patterns = ["sys/devices/*%s*/devfreq/*/cur_freq" % n for n in GPU_NAMES] + [
        "sys/devices/platform/*%s*/devfreq/*/cur_freq" % n for n in GPU_NAMES] + [
        "sys/class/devfreq/*%s*/cur_freq" % n for n in GPU_NAMES]
    for path in [p for pattern in patterns for p in sorted(root.glob(pattern))]:
        value = _read(root, str(path.relative_to(root)))
        if value and value.isdigit():
            gpu = int(value) // 1_000_000  # Hz -> MHz
            break
    return {"cpu_mhz": cpu or None, "gpu_mhz": gpu}


def dla_cores(root: Path) -> int:
    """NVDLA engines in the device tree / platform devices (Xavier NX and AGX Orin have two)."""
    names = set()
    for base in ("sys/devices/platform", "proc/device-tree"):
        for p in (root / base).glob("*nvdla*"):
            names.add(p.name.split("@")[0] if "@" in p.name else p.name)
    return len(names)


def memory(root: Path) -> Dict[str, Optional[int]]:
    info = {}
    for line in (_read(root, "/proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            info[key] = int(value.split()[0]) // 1024  # kB -> MB
    return {"total_mb": info.get("MemTotal"), "available_mb": info.get("MemAvailable")}


def power_mode() -> Optional[str]:
    out = _run(["nvpmodel", "-q"])
    return out.splitlines()[0].split(":", 1)[-1].strip() if out else None


def box_info(root="/") -> Dict[str, Any]:
    root = Path(root)
    model = _read(root, "/proc/device-tree/model")
    release = l4t(root)
    jetson = bool(release) or bool(model and "jetson" in model.lower())
    base = system_info()
    return {
        "hostname": base["hostname"],
        "jetson": jetson,
        "model": model if jetson else None,
        "l4t": release["l4t"] if release else None,
        "jetpack": release["jetpack"] if release else None,
        "cpu": cpu_model(),
        "cpu_count": base["cpu_count"],
        "gpu": base["gpu"],
        "tensorrt": tensorrt_version(),
        "cuda": cuda_version(root),
        "cudnn": cudnn_version(root),
        "opencv": opencv_info(),
        "power_mode": power_mode() if jetson else None,
        "clocks": clocks(root),
        "dla_cores": dla_cores(root),
        "memory": memory(root),
        "python": base["python"],
        "edgekit": base["edgekit"],
        "versions": base["versions"],
    }


def info_rows(info: Dict[str, Any]) -> List[List[str]]:
    def show(v) -> str:
        return "-" if v in (None, [], {}) else str(v)

    cv = info["opencv"]
    clk = info["clocks"]
    mem = info["memory"]
    cpu_mhz = clk["cpu_mhz"]
    return [
        ["host", info["hostname"]],
        ["device", show(info["model"]) if info["jetson"] else "not a Jetson"],
        ["L4T / JetPack", "%s / %s" % (show(info["l4t"]), show(info["jetpack"]))],
        ["CPU", "%s (%s cores)" % (info["cpu"], info["cpu_count"])],
        ["GPU", show(info["gpu"])],
        ["TensorRT", show(info["tensorrt"])],
        ["CUDA / cuDNN", "%s / %s" % (show(info["cuda"]), show(info["cudnn"]))],
        ["OpenCV", "%s (GStreamer: %s)" % (show(cv["version"]), "yes" if cv["gstreamer"] else "no")],
        ["power mode", show(info["power_mode"])],
        ["clocks (MHz)", "CPU %s, GPU %s" % ("-" if not cpu_mhz else "%d-%d" % (min(cpu_mhz), max(cpu_mhz)),
                                             show(clk["gpu_mhz"]))],
        ["DLA cores", str(info["dla_cores"])],
        ["memory (MB)", "%s available of %s" % (show(mem["available_mb"]), show(mem["total_mb"]))],
        ["python / edgekit", "%s / %s" % (info["python"], info["edgekit"])],
    ]
