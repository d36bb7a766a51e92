"""Shared fixtures: tiny models built from ultralytics YAML (no downloads), bad inputs made in code."""

import os

# Before anything imports ultralytics: never reach for the network, and keep thread counts explicit.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import pytest  # noqa: E402

TEST_IMGSZ = 320  # small inputs keep CPU tests fast; the code paths are the same as at 640


GPU_MARKS = ("gpu", "gpu_full")


def _gpu_available() -> str:
    """Empty string when TensorRT + pycuda + a CUDA device are usable, else the one missing piece."""
    try:
        import tensorrt
    except ImportError as exc:
        return "no TensorRT Python bindings (%s)" % exc
    if not hasattr(tensorrt, "Builder"):
        return "the tensorrt module here is type stubs only"
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        return "pycuda cannot load (%s): no NVIDIA driver here?" % str(exc).splitlines()[0][:120]
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA device"
    except Exception as exc:  # a driver error on a machine without a GPU
        return "CUDA cannot start (%s)" % str(exc).splitlines()[0][:120]
    return ""


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if any(mark in item.keywords for mark in GPU_MARKS):
            if reason is None:
                reason = _gpu_available()
            if reason:
                item.add_marker(pytest.mark.skip(reason="gpu test: " + reason))


@pytest.fixture(scope="session")
def yolov8n_pt(tmp_path_factory):
    """A random-init YOLOv8n saved as a checkpoint, so torch and ONNX can be compared on the same weights."""
    from helpers import random_init_checkpoint

    return random_init_checkpoint("yolov8n.yaml", tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def yolov8n_onnx(yolov8n_pt, tmp_path_factory):
    from edgekit.host.export import export

    out = tmp_path_factory.mktemp("onnx")
    return export(weights=str(yolov8n_pt), imgsz=TEST_IMGSZ, out=str(out))


@pytest.fixture(scope="session")
def letterbox_onnx(yolov8n_onnx, tmp_path_factory):
    """yolov8n_onnx with the letterbox in its graph, for 160x120 frames."""
    import onnx

    from edgekit.host.graph import add_preprocessing

    path = tmp_path_factory.mktemp("lb") / "lb160x120.onnx"
    onnx.save(add_preprocessing(onnx.load(str(yolov8n_onnx)), (120, 160)), str(path))
    return path


# --- a YOLOv8n trained on the synthetic dataset: accuracy numbers that mean something, cached on disk ----------
# Training is deterministic for one seed *and one thread count*: ultralytics trains on min(8, cores - 1) CPU
# threads, so machines with other core counts get slightly different weights. Tests must hold for any honest
# training run, never for one machine's figures; check a change with another seed or thread count:
#   EDGEKIT_FIXTURE_SEED=1 EDGEKIT_FIXTURE_THREADS=4 python -m pytest tests/test_pipeline.py
# Both enter the cache key, so each setting trains once into its own folder beside the default one.
FIXTURE_SEED = int(os.environ.get("EDGEKIT_FIXTURE_SEED", "0"))
FIXTURE_THREADS = int(os.environ.get("EDGEKIT_FIXTURE_THREADS", "0"))  # 0: ultralytics' default
TRAIN = dict(epochs=40, imgsz=160, batch=16, workers=0, device="cpu", plots=False, amp=False, seed=FIXTURE_SEED,
             deterministic=True, val=False, mosaic=0.0, optimizer="AdamW", lr0=0.003, warmup_epochs=1)
DATA = dict(n_train=160, n_val=48, size=(240, 320), seed=0)


def _cache_key() -> str:
    import hashlib
    import importlib.metadata as md
    import inspect

    from edgekit.eval import synthetic

    text = inspect.getsource(synthetic) + repr(sorted(TRAIN.items())) + repr(sorted(DATA.items()))
    text += md.version("ultralytics") + md.version("torch")
    if FIXTURE_THREADS:  # unset keeps the key (and the cache) of the default settings
        text += "threads=%d" % FIXTURE_THREADS
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_synthetic_model():
    """(data.yaml, trained .pt, its ONNX at 160) — trained once per machine (~4 min on 2 cores), then reused.

    The cache key covers the dataset generator, the training settings and the ultralytics/torch versions.
    Also used by jetson/gpu-assets.py, which carries this model to the GPU machine.
    """
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from edgekit.eval.synthetic import make_dataset
    from edgekit.host.export import export

    root = Path(os.environ.get("EDGEKIT_TEST_CACHE", Path.home() / ".cache" / "edgekit-tests"))
    final = root / ("synthetic-" + _cache_key())
    if not (final / "done.json").exists():
        import torch
        from ultralytics import YOLO

        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".building-", dir=str(root)))
        data = make_dataset(work / "ds", **DATA)
        torch.manual_seed(FIXTURE_SEED)
        if FIXTURE_THREADS:
            import ultralytics.utils.torch_utils as tu

            tu.NUM_THREADS = FIXTURE_THREADS  # select_device() sets torch's thread count from it
        model = YOLO("yolov8n.yaml")
        model.train(data=str(data), project=str(work / "runs"), name="train", exist_ok=True, verbose=False, **TRAIN)
        shutil.copy(work / "runs" / "train" / "weights" / "last.pt", work / "synthetic-yolov8n.pt")
        shutil.rmtree(work / "runs")
        (work / "done.json").write_text(json.dumps({"train": TRAIN, "data": DATA}))
        if final.exists():
            shutil.rmtree(final)
        # the dataset's data.yaml holds an absolute path: rewrite it for the final folder
        work.rename(final)
        (final / "ds" / "data.yaml").write_text((final / "ds" / "data.yaml").read_text().replace(str(work), str(final)))
    data = final / "ds" / "data.yaml"
    pt = final / "synthetic-yolov8n.pt"
    onnx = final / "synthetic-yolov8n-160.onnx"
    if not onnx.exists():
        export(weights=str(pt), imgsz=160, out=str(final), name=onnx.name)
    return data, pt, onnx


# --- a YOLO26n trained the same way on the same images: its end-to-end head against ultralytics' val ---------
TRAIN_YOLO26 = dict(TRAIN)


def build_synthetic_yolo26():
    """(data.yaml, trained YOLO26n .pt, its end-to-end ONNX at 160, its plain (host NMS) ONNX at 160): trained
    once per machine on the YOLOv8n fixture's dataset (that folder's images, not a second copy), then reused.

    The cache key is the YOLOv8n fixture's (dataset generator, its settings, ultralytics/torch versions, thread
    count) plus this model's settings, so the dataset it names is the one it was trained on.
    Also used by jetson/gpu-assets.py, which carries the end-to-end ONNX to the GPU machine.
    """
    import hashlib
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from edgekit.host.export import export

    data, _, _ = build_synthetic_model()
    key = hashlib.sha256((_cache_key() + "yolo26n" + repr(sorted(TRAIN_YOLO26.items()))).encode()).hexdigest()[:12]
    final = data.parent.parent.parent / ("yolo26n-synthetic-" + key)  # not synthetic-*: that glob finds the YOLOv8n
    pt = final / "synthetic-yolo26n.pt"
    if not (final / "done.json").exists():
        import torch
        from ultralytics import YOLO

        work = Path(tempfile.mkdtemp(prefix=".building-", dir=str(final.parent)))
        torch.manual_seed(FIXTURE_SEED)
        if FIXTURE_THREADS:
            import ultralytics.utils.torch_utils as tu

            tu.NUM_THREADS = FIXTURE_THREADS
        model = YOLO("yolo26n.yaml")
        model.train(data=str(data), project=str(work / "runs"), name="train", exist_ok=True, verbose=False,
                    **TRAIN_YOLO26)
        shutil.copy(work / "runs" / "train" / "weights" / "last.pt", work / pt.name)
        shutil.rmtree(work / "runs")
        (work / "done.json").write_text(json.dumps({"train": TRAIN_YOLO26, "data": str(data)}))
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    end2end = final / "synthetic-yolo26n-160-e2e.onnx"
    plain = final / "synthetic-yolo26n-160.onnx"
    if not end2end.exists():
        export(weights=str(pt), imgsz=160, out=str(final), name=end2end.name, end2end=True)
    if not plain.exists():
        export(weights=str(pt), imgsz=160, out=str(final), name=plain.name)
    return data, pt, end2end, plain


@pytest.fixture(scope="session")
def synthetic_yolo26():
    """(data.yaml, trained YOLO26n .pt, end-to-end ONNX at 160, plain ONNX at 160): see build_synthetic_yolo26."""
    return build_synthetic_yolo26()


@pytest.fixture(scope="session")
def synthetic_model():
    """(data.yaml, trained .pt, its ONNX at 160): see build_synthetic_model."""
    return build_synthetic_model()


@pytest.fixture(scope="session")
def synthetic_calib(synthetic_model, tmp_path_factory):
    """32 training images of the synthetic set in a folder of their own: INT8 calibration input."""
    import shutil

    data = synthetic_model[0]
    folder = tmp_path_factory.mktemp("calib")
    for image in sorted((data.parent / "images" / "train").glob("*.jpg"))[:32]:
        shutil.copy(image, folder / image.name)
    return folder
