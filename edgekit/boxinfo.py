"""``edgekit info``: what this box is, read from the files a Jetson (or any Linux PC) exposes.

Jetson model (device tree), L4T release and the JetPack it belongs to, TensorRT, ONNX Runtime (version and
execution providers), CUDA, cuDNN, OpenCV's GStreamer support, power mode, CPU/GPU clocks, DLA cores and free
memory. Every reading is optional: a missing file means "not here", never an error. The Jetson facts come from
:class:`edgekit.box.Box`; ``root`` lets tests read a fake filesystem.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional

from edgekit.box import Box
from edgekit.sysinfo import cpu_model, system_info


def _box(root) -> Box:
    return root if isinstance(root, Box) else Box(root)


def _read(root, path: str) -> Optional[str]:
    return _box(root).read(path)


def l4t(root) -> Optional[Dict[str, str]]:
    """'# R35 (release), REVISION: 2.1, ...' -> {'l4t': '35.2.1', 'jetpack': '5.1'}."""
    return _box(root).l4t()


def cuda_version(root) -> Optional[str]:
    text = _read(root, "/usr/local/cuda/version.json")
    if text:
        try:
            return json.loads(text)["cuda"]["version"]
        except (ValueError, KeyError):
            pass
    m = re.search(r"CUDA Version ([\d.]+)", _read(root, "/usr/local/cuda/version.txt") or "")
    return m.group(1) if m else None


def cudnn_version(root) -> Optional[str]:
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


def onnxruntime_info() -> Dict[str, Any]:
    """ONNX Runtime's version and execution providers (onnxruntime or onnxruntime-gpu: one module name)."""
    try:
        import onnxruntime as ort

        return {"version": ort.__version__, "providers": list(ort.get_available_providers())}
    except Exception:  # ImportError, or a broken install
        return {"version": None, "providers": []}


def opencv_info() -> Dict[str, Any]:
    try:
        import cv2
    except ImportError:
        return {"version": None, "gstreamer": False}
    build = cv2.getBuildInformation()
    return {"version": cv2.__version__,
            "gstreamer": any("GStreamer" in line and "YES" in line for line in build.splitlines()),
            "cuda": any(line.strip().startswith("NVIDIA CUDA") and "YES" in line for line in build.splitlines())}


def memory(root) -> Dict[str, Optional[int]]:
    info = {}
    for line in (_read(root, "/proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            info[key] = int(value.split()[0]) // 1024  # kB -> MB
    return {"total_mb": info.get("MemTotal"), "available_mb": info.get("MemAvailable")}


def box_info(root="/") -> Dict[str, Any]:
    box = _box(root)
    model = box.model()
    release = box.l4t()
    jetson = box.is_jetson()
    base = system_info(box)
    return {
        "hostname": base["hostname"],
        "jetson": jetson,
        "model": model if jetson else None,
        "l4t": release["l4t"] if release else None,
        "jetpack": release["jetpack"] if release else None,
        "cpu": cpu_model(box),
        "cpu_count": base["cpu_count"],
        "gpu": base["gpu"],
        "tensorrt": tensorrt_version(),
        "onnxruntime": onnxruntime_info(),
        "cuda": cuda_version(box),
        "cudnn": cudnn_version(box),
        "opencv": opencv_info(),
        "power_mode": box.power_mode() if jetson else None,
        "clocks": box.clocks_mhz(),
        "dla_cores": box.dla_cores(),
        "memory": memory(box),
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
        ["ONNX Runtime", onnxruntime_row(info.get("onnxruntime") or {})],
        ["CUDA / cuDNN", "%s / %s" % (show(info["cuda"]), show(info["cudnn"]))],
        ["OpenCV", "%s (GStreamer: %s)" % (show(cv["version"]), "yes" if cv["gstreamer"] else "no")],
        ["power mode", show(info["power_mode"])],
        ["clocks (MHz)", "CPU %s, GPU %s, EMC %s" % (
            "-" if not cpu_mhz else "%d-%d" % (min(cpu_mhz), max(cpu_mhz)), show(clk["gpu_mhz"]),
            show(clk.get("emc_mhz")))],
        ["DLA cores", str(info["dla_cores"])],
        ["memory (MB)", "%s available of %s" % (show(mem["available_mb"]), show(mem["total_mb"]))],
        ["python / edgekit", "%s / %s" % (info["python"], info["edgekit"])],
    ]


def onnxruntime_row(ort: Dict[str, Any]) -> str:
    """'1.18.0 (providers: TensorRT, CUDA, CPU)', or '-' when it is not installed."""
    if not ort.get("version"):
        return "-"
    short = [p[:-len("ExecutionProvider")] if p.endswith("ExecutionProvider") else p for p in ort.get("providers", [])]
    names = ["TensorRT" if name == "Tensorrt" else name for name in short]
    return "%s (providers: %s)" % (ort["version"], ", ".join(names) or "none")
