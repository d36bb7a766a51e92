"""The ONNX Runtime backend: runs the ONNX anywhere (CPU, or CUDA with onnxruntime-gpu); the accuracy reference."""
