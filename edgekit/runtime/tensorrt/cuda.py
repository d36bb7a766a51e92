"""CUDA through pycuda, in one place: context, pinned/device buffers, events, CUDA graphs, error checks.

Every pycuda call that can fail goes through :func:`cuda_call`, which turns a driver error into one
:class:`EdgekitError` line. Buffers own their memory and ``free()`` twice is harmless (TensorRT's
``samples/python/common.py`` pattern). The runner uses the device's *primary* context, the one TensorRT's
runtime API uses too, and pushes it around each call so inference may run on any thread (the camera loop's).

Lifetimes: the primary context is retained once per process and never released (pycuda's ``detach()`` of a
primary context that is not current pushes it and releases it without popping, which leaves it on the thread's
stack), so a pycuda object freed late still finds its context alive. Everything else (buffers, events, graphs,
TensorRT objects) is freed while the context is current: ``with ctx.current():`` also clears the frames of an
exception raised inside it, so TensorRT/pycuda objects those frames held go before the context is popped.
"""

from __future__ import annotations

import contextlib
import traceback
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, TypeVar

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.lazy import lazy_import

T = TypeVar("T")
_PRIMARY: Dict[int, Any] = {}  # GPU index -> its retained primary context, once per process


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
    """The primary context of GPU ``index`` (retained once per process); ``with ctx.current():`` makes it
    current on this thread."""

    def __init__(self, index: int = 0) -> None:
        cuda = driver()
        cuda_call("initialising CUDA (is there an NVIDIA GPU and driver?)", cuda.init)
        count = cuda_call("counting GPUs", cuda.Device.count)
        if count == 0:
            raise EdgekitError("no CUDA GPU found: run with --backend onnxruntime")
        if not 0 <= index < count:
            raise EdgekitError("GPU %d not found (this machine has %d)" % (index, count))
        self.device = cuda.Device(index)
        if index not in _PRIMARY:
            _PRIMARY[index] = cuda_call("retaining the GPU's primary context", self.device.retain_primary_context)
        self.context: Optional[Any] = _PRIMARY[index]
        self.name = self.device.name()
        major, minor = self.device.compute_capability()
        self.sm = "%d.%d" % (major, minor)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        if self.context is None:
            raise EdgekitError("CUDA context used after release (a bug in edgekit)")
        self.context.push()
        try:
            yield
        except BaseException as exc:
            # the frames below the with-block hold TensorRT/pycuda objects (builder, network, buffers): free
            # them now, while the context is current, not when the exception is finally dropped
            traceback.clear_frames(exc.__traceback__)
            raise
        finally:
            driver().Context.pop()

    def release(self) -> None:
        """This user is done; the primary context itself stays retained for the process (see module doc)."""
        self.context = None


class HostDeviceMem:
    """A pinned host array and a device allocation of the same size, for one I/O tensor."""

    def __init__(self, shape: Tuple[int, ...], dtype: np.dtype) -> None:
        cuda = driver()
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.host: Any = cuda_call("allocating pinned host memory", cuda.pagelocked_empty,
                                                    self.shape, self.dtype)
        self.nbytes = int(self.host.nbytes)
        self.device: Optional[Any] = cuda_call("allocating %d bytes on the GPU" % self.nbytes, cuda.mem_alloc,
                                               max(self.nbytes, 1))

    @property
    def ptr(self) -> int:
        return int(self.device) if self.device is not None else 0

    def free(self) -> None:
        """Free both now (call with the context current); twice is harmless."""
        if self.device is not None:
            self.device.free()
            self.device = None
        if self.host is not None:
            free = getattr(getattr(self.host, "base", None), "free", None)  # pycuda's pinned allocation
            self.host = None
            if free is not None:
                free()


class Events:
    """CUDA events at named points of a stream; ``ms(a, b)`` is the GPU-clock time between two of them."""

    def __init__(self, *names: str) -> None:
        cuda = driver()
        self.events = {name: cuda_call("creating a CUDA event", cuda.Event) for name in names}

    def record(self, name: str, stream: Any) -> None:
        self.events[name].record(stream)

    def ms(self, start: str, end: str) -> float:
        return float(self.events[end].time_since(self.events[start]))

    def free(self) -> None:
        """Destroy the events now (call with the context current)."""
        self.events = {}


class CudaGraph:
    """Capture the work ``launch(stream)`` queues on a pycuda stream once, then replay it with one call.

    pycuda has no capture API; cuda-python's driver bindings capture work on a pycuda stream by its handle.
    Replays reuse the same buffers and shapes, so a graph is only valid while those stay fixed. An error inside
    the capture is the one reported (the capture is ended and its partial graph destroyed), never masked by
    the end-capture call failing after it.
    """

    def __init__(self, stream: Any, launch: Callable[[Any], None]) -> None:
        drv = _cuda_python_driver()
        self._drv = drv
        self._graph: Any = None
        self._exec: Any = None
        self._stream = drv.CUstream(stream.handle)
        _check(drv, drv.cuStreamBeginCapture(self._stream, drv.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_GLOBAL),
               "starting CUDA graph capture")
        try:
            launch(stream)
        except BaseException:
            result = drv.cuStreamEndCapture(self._stream)  # end the broken capture; its error is secondary
            partial = result[1] if isinstance(result, tuple) and len(result) > 1 else None
            if partial is not None and result[0] == drv.CUresult.CUDA_SUCCESS:
                drv.cuGraphDestroy(partial)
            raise
        self._graph = _check(drv, drv.cuStreamEndCapture(self._stream), "ending CUDA graph capture", CAPTURE_HINT)
        try:
            self._exec = _check(drv, drv.cuGraphInstantiateWithFlags(self._graph, 0), "instantiating the CUDA graph")
        except BaseException:
            self.free()
            raise

    def replay(self) -> None:
        _check(self._drv, self._drv.cuGraphLaunch(self._exec, self._stream), "launching the CUDA graph")

    def free(self) -> None:
        if self._exec is not None:
            self._drv.cuGraphExecDestroy(self._exec)
            self._exec = None
        if self._graph is not None:
            self._drv.cuGraphDestroy(self._graph)
            self._graph = None


def cuda_python_missing() -> Optional[str]:
    """None when --cuda-graph can work here, else why not (one line)."""
    try:
        _cuda_python_driver()
    except EdgekitError as exc:
        return str(exc)
    return None


def _cuda_python_driver() -> Any:
    try:
        from cuda.bindings import driver as drv  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cuda as drv  # older cuda-python (11.x on JetPack 5)
        except ImportError as exc:
            raise EdgekitError("--cuda-graph needs cuda-python: pip install 'edgekit[jetson]' (cuda-python 11.x on "
                               "JetPack 5, 12.x on JetPack 6); bench without --cuda-graph meanwhile") from exc
    return drv


# only where a capture itself failed: the work queued could not be recorded as a graph (an error launching or
# instantiating a captured graph is a CUDA fault like any other, and gets no such guess)
CAPTURE_HINT = ("a TensorRT engine with data-dependent shapes or host-side work cannot be captured; bench without "
                "--cuda-graph")


def _check(drv: Any, result: Any, what: str, hint: Optional[str] = None) -> Any:
    """cuda-python returns (error, value...) tuples; raise on error (one line), return the value."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != drv.CUresult.CUDA_SUCCESS:
        raise EdgekitError("CUDA error while %s: %s%s" % (what, err, " (%s)" % hint if hint else ""))
    return values[0] if len(values) == 1 else (values or None)
