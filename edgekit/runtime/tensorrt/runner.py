"""TensorRT backend: a serialized engine run with pycuda, timed with CUDA events.

Buffers are allocated once per I/O tensor, found by name (pinned host + device memory); one stream; events
around host->device copy, compute and device->host copy, so every ``infer`` reports ``h2d``, ``compute`` and
``d2h`` on the GPU clock, plus ``stage`` (copying the batch into pinned memory) and ``inference`` (all of it,
host clock). ``cuda_graph=True`` captures the compute once, at load time, and replays it (static shapes only).
Everything the runner holds (graph, buffers, events, stream, TensorRT objects) is freed with the CUDA context
current, by ``close()`` or by a failed load.

Before TensorRT reads the file, ``engine_file.check_engine_file`` compares its manifest with this device.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional

import numpy as np
import tensorrt as trt

from edgekit.errors import EdgekitError
from edgekit.runtime.base import Runner
from edgekit.runtime.modelinfo import model_info
from edgekit.runtime.tensorrt import trtlib
from edgekit.runtime.tensorrt.cuda import CudaContext, CudaGraph, Events, HostDeviceMem, cuda_call, driver
from edgekit.runtime.tensorrt.engine_file import check_engine_file, rebuild_hint
from edgekit.runtime.tensorrt.shapes import check_profile


class TensorRTRunner(Runner):
    backend = "tensorrt"
    clock = "cuda"

    def __init__(self, path, gpu: int = 0, cuda_graph: bool = False, verbose: bool = False) -> None:
        super().__init__(path)
        trtlib.check_bindings()
        self.gpu = CudaContext(gpu)
        self.buffers: Dict[str, HostDeviceMem] = {}
        self.graph: Optional[CudaGraph] = None
        self.events: Optional[Events] = None
        self.use_graph = cuda_graph
        self.logs = trtlib.LogCapture(verbose)  # TensorRT's lines while this runner calls it
        try:
            with self.logs.active(), self.gpu.current():  # a failed load's frames are cleared inside the context
                self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        runtime = trtlib.runtime()
        device = {"tensorrt": trtlib.version(), "sm": self.gpu.sm, "gpu": self.gpu.name,
                  "dla_cores": str(getattr(runtime, "num_DLA_cores", 0))}
        manifest = check_engine_file(self.path, device)
        if manifest and manifest.get("dla_core") is not None:
            runtime.DLA_core = int(manifest["dla_core"])
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise EdgekitError("cannot load %s as a TensorRT %s engine (%s): %s" % (
                self.path, trtlib.version(), self.logs.first_error("not a TensorRT engine"),
                rebuild_hint(manifest, self.path)))
        self.runtime, self.engine = runtime, engine
        context = engine.create_execution_context()
        if context is None:
            raise EdgekitError("TensorRT could not create an execution context for %s (%s)"
                               % (self.path.name, self.logs.first_error("out of GPU memory?")))
        self.context = context
        tensors = trtlib.io_tensors(engine)
        inputs = [t for t in tensors if t[1]]
        if len(inputs) != 1:
            raise EdgekitError("%s has %d inputs; edgekit runs single-input YOLO engines" % (self.path, len(inputs)))
        self.input_name, _, shape, dtype = inputs[0]
        self.input_dtype = dtype
        self.input_shape = [d if d > 0 else None for d in shape]
        self.output_names = [t[0] for t in tensors if not t[1]]
        self.output_shapes = [[d if d > 0 else None for d in t[2]] for t in tensors if not t[1]]
        self.dynamic = any(d < 0 for d in shape)
        if self.dynamic and self.use_graph:
            raise EdgekitError("--cuda-graph needs static shapes; %s has a dynamic input" % self.path.name)
        self.engine_shape = shape
        self.max_shape = shape
        if self.dynamic:  # buffers for the largest shape the profile allows; set per call
            self.max_shape = trtlib.dims(engine.get_tensor_profile_shape(self.input_name, 0)[2])
            self._set_input_shape(self.max_shape)
        self.buffers[self.input_name] = HostDeviceMem(self.max_shape, dtype)
        for name, _, _, out_dtype in [t for t in tensors if not t[1]]:
            out_shape = trtlib.dims(context.get_tensor_shape(name))
            if any(d < 0 for d in out_shape):
                raise EdgekitError("%s: output %s has a data-dependent shape %s; edgekit expects YOLOv8's fixed "
                                   "output" % (self.path.name, name, out_shape))
            self.buffers[name] = HostDeviceMem(out_shape, out_dtype)
        for name, mem in self.buffers.items():
            context.set_tensor_address(name, mem.ptr)
        self.stream = cuda_call("creating a CUDA stream", driver().Stream)
        self.events = Events("start", "h2d", "compute", "d2h")
        self.info = model_info(self.path)
        self.onnx = (manifest or {}).get("onnx")
        self.device = self.gpu.name
        if self.use_graph:
            self._capture()

    def _capture(self) -> None:
        """Capture the compute as a CUDA graph now, at load time, not inside the first timed call."""
        inp = self.buffers[self.input_name]
        cuda_call("clearing the input buffer", driver().memset_d8, inp.device, 0, inp.nbytes)
        self._enqueue(self.stream)  # TensorRT does its deferred setup on the first enqueue, not in a graph
        cuda_call("waiting for the GPU", self.stream.synchronize)
        self.graph = CudaGraph(self.stream, self._enqueue)

    def _set_input_shape(self, shape) -> None:
        if not self.context.set_input_shape(self.input_name, trt.Dims(list(shape))):
            raise EdgekitError("TensorRT refused input shape %s for %s (%s)" % (
                list(shape), self.path.name, self.logs.first_error("outside the engine's optimization profile")))

    def _infer(self, batch: np.ndarray) -> List[np.ndarray]:
        with self.logs.active(), self.gpu.current():
            return self._run(batch)

    def _run(self, batch: np.ndarray) -> List[np.ndarray]:
        cuda = driver()
        events = self.events
        if events is None:
            raise EdgekitError("%s was closed: open it again" % self.path.name)
        t0 = time.perf_counter()
        inp = self.buffers[self.input_name]
        if self.dynamic:  # a batch above the profile's max would overrun the buffers
            check_profile(batch.shape, self.engine_shape, self.max_shape, self.path.name, self.onnx)
        host_in = inp.host.reshape(-1)[: batch.size].reshape(batch.shape)
        np.copyto(host_in, batch)  # pageable -> pinned, on the CPU
        t1 = time.perf_counter()
        if self.dynamic:
            self._set_input_shape(batch.shape)
        events.record("start", self.stream)
        cuda.memcpy_htod_async(inp.device, host_in, self.stream)
        events.record("h2d", self.stream)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._enqueue(self.stream)
        events.record("compute", self.stream)
        views = []
        for name in self.output_names:
            out = self.buffers[name]
            shape = trtlib.dims(self.context.get_tensor_shape(name)) if self.dynamic else out.shape
            view = out.host.reshape(-1)[: int(np.prod(shape))].reshape(shape)
            cuda.memcpy_dtoh_async(view, out.device, self.stream)
            views.append(view)
        events.record("d2h", self.stream)
        cuda_call("waiting for the GPU", self.stream.synchronize)
        outputs = [v.copy() for v in views]  # buffers are reused by the next call
        t2 = time.perf_counter()
        self.timings = {
            "stage": (t1 - t0) * 1e3, "h2d": events.ms("start", "h2d"),
            "compute": events.ms("h2d", "compute"), "d2h": events.ms("compute", "d2h"),
            "inference": (t2 - t0) * 1e3,
        }
        return outputs

    def _enqueue(self, stream) -> None:
        if not self.context.execute_async_v3(stream.handle):
            raise EdgekitError("TensorRT failed to run %s: %s"
                               % (self.path.name, self.logs.first_error("execute_async_v3 returned False")))

    def close(self) -> None:
        gpu = getattr(self, "gpu", None)
        if gpu is None or gpu.context is None:
            return
        logs = getattr(self, "logs", None) or trtlib.LogCapture()
        with logs.active(), gpu.current():  # everything goes while the context is current, graph and buffers first
            if self.graph is not None:
                self.graph.free()
                self.graph = None
            for mem in self.buffers.values():
                mem.free()
            self.buffers = {}
            if self.events is not None:
                self.events.free()
                self.events = None
            for attr in ("stream", "context", "engine", "runtime"):
                if hasattr(self, attr):
                    delattr(self, attr)
        gpu.release()

