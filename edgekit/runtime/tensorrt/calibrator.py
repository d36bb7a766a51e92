"""The INT8 entropy calibrator TensorRT calls during an INT8 build: batches in, calibration table cached.

TensorRT 8.x calls these methods from ``noexcept`` C++, where an exception ends the process with no message:
each one forwards to :class:`edgekit.runtime.tensorrt.calib.CalibrationFeed`, which never raises and keeps the
first error for the builder to re-raise after the build returns (see there; tested without a GPU).
"""

from __future__ import annotations

from typing import Any, List, Optional

import numpy as np
import tensorrt as trt

from edgekit.errors import EdgekitError
from edgekit.runtime.tensorrt.calib import CalibrationCache, CalibrationFeed, CalibrationSet
from edgekit.runtime.tensorrt.cuda import HostDeviceMem, cuda_call, driver


class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
    def __init__(self, feed: CalibrationFeed) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        self.feed = feed

    def get_batch_size(self) -> int:
        return self.feed.calib.batch_size

    def get_batch(self, names: List[str]) -> Optional[List[int]]:  # type: ignore[override]  # None ends it
        return self.feed.next_batch()

    def read_calibration_cache(self) -> Optional[bytes]:  # type: ignore[override]  # None: no cache
        return self.feed.read_cache()

    def write_calibration_cache(self, cache: Any) -> None:
        try:
            self.feed.write_cache(bytes(cache))
        except BaseException as exc:  # noqa: BLE001 - bytes() of TensorRT's buffer; never raise into C++
            self.feed.error = self.feed.error or exc


class Calibration:
    """The calibrator plus what the build reports about it: a progress bar, errors, a manifest summary.

    Create it with the CUDA context current, and call ``free()`` there too (the builder does, in ``finally``).
    """

    def __init__(self, calib: CalibrationSet, cache: CalibrationCache) -> None:
        self.calib = calib
        self.cache = cache
        self.progress: Any = None
        self.task: Any = None
        self.buffer = HostDeviceMem((calib.batch_size, 3, calib.hw[0], calib.hw[1]), np.dtype(np.float32))
        self.feed = CalibrationFeed(calib, cache, self.buffer, self._upload, self._advance)
        self.trt = EntropyCalibrator(self.feed)

    def _upload(self) -> None:
        cuda_call("copying a calibration batch to the GPU", driver().memcpy_htod, self.buffer.device,
                  self.buffer.host)

    def attach(self, progress: Any) -> None:
        self.progress = progress
        self.task = progress.add_task("calibrating INT8 (%d batches)" % self.calib.num_batches,
                                      total=self.calib.num_batches)

    def _advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def check(self) -> None:
        """Re-raise what went wrong inside TensorRT's callbacks (a user error stays one line)."""
        error = self.feed.error
        if error is None:
            return
        if isinstance(error, (EdgekitError, KeyboardInterrupt)):
            raise error
        raise EdgekitError("INT8 calibration failed: %s: %s" % (type(error).__name__, error)) from error

    def free(self) -> None:
        """Free the GPU buffer (with the context current); twice is harmless."""
        self.buffer.free()

    def summary(self) -> dict:
        """The calibration set's record (``images``: how many calibrated, ``warnings``, ...) plus what the
        calibrator did: batches fed, or the cached table reused."""
        return dict(self.calib.record(), fed=self.feed.batches_fed, cache=str(self.cache.path),
                    cache_key=self.cache.key, from_cache=self.feed.used_cache, algorithm="entropy2")
