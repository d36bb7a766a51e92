"""Import heavy optional modules only when a command needs them, with a message that says what to install."""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from types import ModuleType

from edgekit.errors import EdgekitError

# module -> what to tell the user when it is missing
_HINTS = {
    "torch": "the host tools need PyTorch: pip install 'edgekit[export]' (on this kind of machine: "
    "pip install -c constraints.txt -e '.[export]')",
    "ultralytics": "the host tools need ultralytics: pip install 'edgekit[export]'",
    "modelopt": "edgekit prune needs NVIDIA ModelOpt: pip install 'edgekit[export]' (nvidia-modelopt, "
    "torchprofile==0.0.4, huggingface_hub)",
    "onnx_graphsurgeon": "ONNX graph surgery (--graph-preprocess, --trt-nms) needs onnx-graphsurgeon: "
    "pip install 'edgekit[export]'",
    "onnxsim": "ONNX simplification needs onnxsim: pip install 'edgekit[export]'",
    "onnxruntime": "the ONNX Runtime backend needs onnxruntime: pip install onnxruntime "
    "(onnxruntime-gpu for the CUDA provider)",
    "pycocotools": "edgekit eval needs pycocotools: pip install 'edgekit[eval]'",
    "yaml": "reading data.yaml needs PyYAML: pip install 'edgekit[eval]' (JetPack: apt install python3-yaml)",
    "matplotlib": "plots need matplotlib: pip install 'edgekit[eval]'",
    "tensorrt": "TensorRT needs its Python bindings: JetPack ships them (apt install python3-libnvinfer)",
    "pycuda": "TensorRT needs pycuda: pip install 'edgekit[jetson]'",
}


# what works without TensorRT, said after the install hint: running needs another backend, building has none
_RUN_FALLBACK = "; meanwhile --backend onnxruntime runs the .onnx"
_BUILD_FALLBACK = "; engines are built on the device that runs them (a Jetson, or a PC with an NVIDIA GPU), and " \
                  "edgekit bench/eval/camera run the .onnx on ONNX Runtime meanwhile"


def lazy_import(name: str, fallback: str = "") -> ModuleType:
    """Import ``name`` or raise an :class:`EdgekitError` that says how to get it (and ``fallback``: what works
    without it)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        hint = _HINTS.get(top, "pip install %s" % top)
        raise EdgekitError("cannot import %s (%s): %s%s" % (name, exc, hint, fallback)) from exc


def require_tensorrt(building: bool = False) -> None:
    """TensorRT's bindings and pycuda, or the one-line install hint for whichever is missing (TensorRT first);
    ``building``: the hint names what works without TensorRT for ``edgekit build`` (not --backend)."""
    fallback = _BUILD_FALLBACK if building else _RUN_FALLBACK
    lazy_import("tensorrt", fallback)
    with warnings.catch_warnings():  # pycuda warns in two lines before it raises; the error below says it in one
        warnings.simplefilter("ignore")
        try:
            importlib.import_module("pycuda.driver")
        except ImportError as exc:
            if importlib.util.find_spec("pycuda") is None:
                lazy_import("pycuda.driver", fallback)  # not installed: the install hint
            raise EdgekitError("pycuda is installed but its CUDA driver interface cannot load (%s): this machine "
                               "needs an NVIDIA GPU and driver%s" % (str(exc).splitlines()[0][:200], fallback)) from exc


def require(*names: str) -> None:
    """Check that every module a command will need imports, before the command's slow part starts."""
    for name in names:
        lazy_import(name)
