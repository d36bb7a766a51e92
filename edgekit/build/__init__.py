"""ONNX -> TensorRT engine on the device (``edgekit build``).

``plan``, ``prepare``, ``calib`` and ``qdq`` are plain Python (checked before TensorRT is imported, tested
without a GPU); ``engine``, ``calibrator``, ``progress`` and ``timing_cache`` drive TensorRT.
"""
