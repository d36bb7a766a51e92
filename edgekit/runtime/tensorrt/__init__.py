"""Everything TensorRT in one place (as Polygraphy's ``backend/trt/``): building engines and running them.

Plain Python, checked before TensorRT is imported and tested without a GPU:
  ``plan`` (precision/DLA rules), ``prepare`` (ONNX checks before TensorRT), ``calib`` (calibration images and
  cache keys), ``qdq`` (Q/DQ checks), ``engine_file`` (engine manifest vs file and device), ``manifest``.
Driving TensorRT/pycuda (imported only after ``edgekit.lazy.require_tensorrt()``):
  ``trtlib`` (logger, dtypes, device facts), ``builder`` (ONNX -> engine), ``calibrator``, ``timing_cache``,
  ``progress``, ``cuda`` (context, buffers, events, graphs), ``runner`` (the Runner), ``inspect``.
This package never imports ``tensorrt`` at import time, so ``edgekit.runtime.tensorrt.plan`` works anywhere.
"""
