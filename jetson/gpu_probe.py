"""What this machine has for the GPU check, as one JSON line (run by jetson/gpu_check.py with the Python it
checks): facts (Python, numpy, TensorRT, pycuda, the GPU and its SM, cuda-python) and one line per missing piece.
Standard library first: it must report, not crash, on a machine that has none of them."""

import json
import platform

facts, missing = {"python": platform.python_version()}, []
try:
    import numpy
    facts["numpy"] = numpy.__version__
except ImportError as exc:
    missing.append("numpy: %s" % exc)
try:
    import tensorrt
    facts["tensorrt"] = getattr(tensorrt, "__version__", None)
    if not hasattr(tensorrt, "Builder"):
        missing.append("tensorrt: the module here is type stubs only (JetPack: apt install python3-libnvinfer)")
except ImportError as exc:
    missing.append("tensorrt: not importable (%s): JetPack ships it (python3-libnvinfer)" % exc)
try:
    import pycuda.driver as cuda
    facts["pycuda"] = __import__("pycuda").VERSION_TEXT
    try:
        cuda.init()
        count = cuda.Device.count()
        facts["gpus"] = count
        if count:
            dev = cuda.Device(0)
            facts["gpu"], facts["sm"] = dev.name(), "%d.%d" % dev.compute_capability()
            facts["cuda_driver_api"] = cuda.get_driver_version()
        else:
            missing.append("GPU: CUDA sees no device")
    except Exception as exc:
        missing.append("GPU: CUDA cannot start (%s)" % str(exc).splitlines()[0][:160])
except ImportError as exc:
    why = str(exc).splitlines()[0][:160]
    if getattr(exc, "name", None) == "pycuda":  # not installed at all
        missing.append("pycuda: not installed (pip install pycuda, or the checkout's jetson extra: pip install -e "
                       "'.[jetson]')")
    else:  # installed, but its CUDA library does not load: no NVIDIA driver (libcuda), or another CUDA
        missing.append("pycuda: installed but cannot load (%s): it needs the NVIDIA driver's libcuda (no driver "
                       "here?)" % why)
try:
    try:
        from cuda.bindings import driver  # noqa: F401 - cuda-python >= 12.6
    except ImportError:
        from cuda import cuda as driver  # noqa: F401 - older cuda-python (11.x on JetPack 5)
    facts["cuda_python"] = True
except ImportError:
    facts["cuda_python"] = False
    missing.append("cuda-python: absent, so the CUDA-graph tests skip (pip install 'cuda-python>=12,<13', or "
                   "the checkout's jetson extra)")
print(json.dumps({"facts": facts, "missing": missing}))
