"""CUDA through pycuda, in one place: context, pinned/device buffers, events, CUDA graphs, error checks.

Every pycuda call that can fail goes through :func:`cuda_call`, which turns a driver error into one
:class:`EdgekitError` line. Buffers own their memory and ``free()`` twice is harmless (TensorRT's
``samples/python/common.py`` pattern). The runner uses the device's *primary* context, the one TensorRT's
runtime API uses too, and pushes it around each call so inference may run on any thread (the camera loop's).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional, Tuple, TypeVar

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.lazy import lazy_import

T = TypeVar("T")


def driver() -> Any:
    return lazy_import("pycuda.driver")


def cuda_call(what: str, fn: Callable[..., T], *args: Any) -> T:
    """Run a pycuda call; a CUDA error becomes one line naming what was being done."""
    cuda = driver()
    try:
        return fn(*args)
    except cuda.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgekitError("CUDA error while %s: %s" % (what, first)) from exc


class CudaContext:
    """The primary context of GPU ``index``, retained once; ``with ctx:`` makes it current on this thread."""

    def __init__(self, index: int = 0) -> None:
        cuda = driver()
        cuda_call("initialising CUDA (is there an NVIDIA GPU and driver?)", cuda.init)
        count = cuda_call("counting GPUs", cuda.Device.count)
        if count == 0:
            raise EdgekitError("no CUDA GPU found: run with --backend onnxruntime")
        if not 0 <= index < count:
            raise EdgekitError("GPU %d not found (this machine has %d)" % (index, count))
        self.device = cuda.Device(index)
        self.context = cuda_call("retaining the GPU's primary context", self.device.retain_primary_context)
        self.name = self.device.name()
        major, minor = self.device.compute_capability()
        self.sm = "%d.%d" % (major, minor)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        self.context.push()
        try:
            yield
        finally:
            driver().Context.pop()

    def release(self) -> None:
        if self.context is not None:
            self.context.detach()
            self.context = None


class HostDeviceMem:
    """A pinned host array and a device allocation of the same size, for one I/O tensor."""

    def __init__(self, shape: Tuple[int, ...], dtype: np.dtype) -> None:
        cuda = driver()
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.host = cuda_call("allocating pinned host memory", cuda.pagelocked_empty, self.shape, self.dtype)
        self.nbytes = int(self.host.nbytes)
        self.device: Optional[Any] = cuda_call("allocating %d bytes on the GPU" % self.nbytes, cuda.mem_alloc,
                                               max(self.nbytes, 1))

    @property
    def ptr(self) -> int:
        return int(self.device) if self.device is not None else 0

    def free(self) -> None:
        if self.device is not None:
            self.device.free()
            self.device = None
        self.host = None


class Events:
    """CUDA events at named points of a stream; ``ms(a, b)`` is the GPU-clock time between two of them."""

    def __init__(self, *names: str) -> None:
        cuda = driver()
        self.events = {name: cuda.Event() for name in names}

    def record(self, name: str, stream: Any) -> None:
        self.events[name].record(stream)

    def ms(self, start: str, end: str) -> float:
        return float(self.events[end].time_since(self.events[start]))


class CudaGraph:
    """Capture the work ``launch(stream)`` queues on a pycuda stream once, then replay it with one call.

    pycuda has no capture API; cuda-python's driver bindings capture work on a pycuda stream by its handle.
    Replays reuse the same buffers and shapes, so a graph is only valid while those stay fixed.
    """

    def __init__(self, stream: Any, launch: Callable[[Any], None]) -> None:
        drv = _cuda_python_driver()
        self._drv = drv
        self._stream = drv.CUstream(stream.handle)
        _check(drv, drv.cuStreamBeginCapture(self._stream, drv.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_GLOBAL),
               "starting CUDA graph capture")
        try:
            launch(stream)
        finally:
            graph = _check(drv, drv.cuStreamEndCapture(self._stream), "ending CUDA graph capture")
        self._graph = graph
        self._exec = _check(drv, drv.cuGraphInstantiateWithFlags(graph, 0), "instantiating the CUDA graph")

    def replay(self) -> None:
        _check(self._drv, self._drv.cuGraphLaunch(self._exec, self._stream), "launching the CUDA graph")

    def free(self) -> None:
        if self._exec is not None:
            self._drv.cuGraphExecDestroy(self._exec)
            self._drv.cuGraphDestroy(self._graph)
            self._exec = None


def _cuda_python_driver() -> Any:
    try:
        from cuda.bindings import driver as drv  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cuda as drv  # older cuda-python (11.x on JetPack 5)
        except ImportError as exc:
            raise EdgekitError("--cuda-graph needs cuda-python (pip install cuda-python matching your CUDA, e.g. "
                               "'cuda-python<12' on JetPack 5); bench without --cuda-graph meanwhile") from exc
    return drv


def _check(drv: Any, result: Any, what: str) -> Any:
    """cuda-python returns (error, value...) tuples; raise on error, return the value."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != drv.CUresult.CUDA_SUCCESS:
        raise EdgekitError("CUDA error while %s: %s (a TensorRT engine with data-dependent shapes or "
                           "host-side work cannot be captured; bench without --cuda-graph)" % (what, err))
    return values[0] if len(values) == 1 else (values or None)
