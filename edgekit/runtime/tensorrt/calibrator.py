"""The INT8 entropy calibrator TensorRT calls during an INT8 build: batches in, calibration table cached.

TensorRT calls ``get_batch`` from inside ``build_serialized_network``; an exception raised there would be
lost in the C++ layers, so it is kept and re-raised by the builder after the build returns.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, List, Optional

import numpy as np
import tensorrt as trt

from edgekit.log import info
from edgekit.runtime.tensorrt.calib import CalibrationCache, CalibrationSet
from edgekit.runtime.tensorrt.cuda import HostDeviceMem, cuda_call, driver


class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
    def __init__(self, calib: CalibrationSet, cache: CalibrationCache,
                 on_batch: Optional[Callable[[], None]] = None) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        self.calib = calib
        self.cache = cache
        self.on_batch = on_batch
        self.error: Optional[BaseException] = None
        self.used_cache = False
        self.batches_fed = 0
        shape = (calib.batch_size, 3, calib.hw[0], calib.hw[1])
        self.buffer = HostDeviceMem(shape, np.dtype(np.float32))
        self._batches: Iterator[np.ndarray] = calib.batches()

    def get_batch_size(self) -> int:
        return self.calib.batch_size

    def get_batch(self, names: List[str]) -> Optional[List[int]]:  # type: ignore[override]  # None ends it
        try:
            batch = next(self._batches, None)
            if batch is None:
                return None
            np.copyto(self.buffer.host, batch)
            cuda_call("copying a calibration batch to the GPU", driver().memcpy_htod, self.buffer.device,
                      self.buffer.host)
            self.batches_fed += 1
            if self.on_batch:
                self.on_batch()
            return [self.buffer.ptr]
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised after the build (see module doc)
            self.error = exc
            return None

    def read_calibration_cache(self) -> Optional[bytes]:  # type: ignore[override]  # None: no cache
        data = self.cache.read()  # TensorRT asks once, before the first batch
        self.used_cache = data is not None
        if self.used_cache:
            info("reusing calibration table %s (same model, size and images)" % self.cache.path)
        else:
            info("calibrating on %d batches of %d" % (self.calib.num_batches, self.calib.batch_size))
        return data

    def write_calibration_cache(self, cache: Any) -> None:
        try:
            self.cache.write(bytes(cache))
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def free(self) -> None:
        self.buffer.free()


class Calibration:
    """The calibrator plus what the build reports about it: a progress bar, errors, a manifest summary."""

    def __init__(self, calib: CalibrationSet, cache: CalibrationCache) -> None:
        self.calib = calib
        self.cache = cache
        self.progress: Any = None
        self.task: Any = None
        self.trt = EntropyCalibrator(calib, cache, self._advance)

    def attach(self, progress: Any) -> None:
        self.progress = progress
        self.task = progress.add_task("calibrating INT8 (%d batches)" % self.calib.num_batches,
                                      total=self.calib.num_batches)

    def _advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def finish(self) -> None:
        """Free the GPU buffer; re-raise what went wrong inside TensorRT's callbacks."""
        error = self.trt.error
        self.trt.free()
        if error is not None:
            raise error

    def summary(self) -> dict:
        return {
            "images": len(self.calib.images), "batch": self.calib.batch_size, "batches": self.calib.num_batches,
            "fed": self.trt.batches_fed, "cache": str(self.cache.path), "cache_key": self.cache.key,
            "from_cache": self.trt.used_cache, "algorithm": "entropy2", "undecodable": self.calib.undecodable,
        }
