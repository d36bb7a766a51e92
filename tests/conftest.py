"""Shared fixtures: tiny models built from ultralytics YAML (no downloads), bad inputs made in code."""

import os

# Before anything imports ultralytics: never reach for the network, and keep thread counts explicit.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import pytest  # noqa: E402

TEST_IMGSZ = 320  # small inputs keep CPU tests fast; the code paths are the same as at 640


def _gpu_available() -> str:
    """Empty string when TensorRT + pycuda + a CUDA device are usable, else the reason to skip."""
    try:
        import pycuda.driver as cuda  # noqa: F401
        import tensorrt  # noqa: F401

        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA device"
    except Exception as exc:  # ImportError, or a driver error on a machine without a GPU
        return "no TensorRT/pycuda GPU stack (%s)" % type(exc).__name__
    return ""


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if "gpu" in item.keywords:
            if reason is None:
                reason = _gpu_available()
            if reason:
                item.add_marker(pytest.mark.skip(reason="gpu test: " + reason))


@pytest.fixture(scope="session")
def yolov8n_pt(tmp_path_factory):
    """A random-init YOLOv8n saved as a checkpoint, so torch and ONNX can be compared on the same weights."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "yolov8n.pt"
    YOLO("yolov8n.yaml").save(str(path))
    return path


@pytest.fixture(scope="session")
def yolov8n_onnx(yolov8n_pt, tmp_path_factory):
    from edgekit.host.export import export

    out = tmp_path_factory.mktemp("onnx")
    return export(weights=str(yolov8n_pt), imgsz=TEST_IMGSZ, out=str(out))
