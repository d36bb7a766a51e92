"""INT8 calibration data, the classic way: a folder of images fed through inference's own letterbox.

:class:`CalibrationSet` lists and checks the images before any build starts; :meth:`CalibrationSet.batches`
yields NCHW float32 batches made by :func:`edgekit.vision.preprocess` (so calibration sees exactly what
inference sees). :class:`CalibrationCache` stores TensorRT's calibration table under a key made of everything
that went into it (ONNX sha256, input size, batch, preprocessing, the images), so a changed model, size or
image set never reuses a stale table.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.log import info, warn
from edgekit.manifest import atomic_path, write_json_atomic
from edgekit.runtime.tensorrt.calib_check import calibration_warnings, decode_thumbnails, sameness
from edgekit.vision import preprocess
from edgekit.vision.images import IMAGE_SUFFIXES, read_image, undecodable_note

# bump when edgekit.vision.preprocess changes what it feeds the network
PREPROCESS_ID = "letterbox-center-pad114-rgb-div255-nchw-v1"


@dataclass
class CalibrationSet:
    images: List[Path]
    batch_size: int
    hw: Tuple[int, int]
    max_batches: Optional[int] = None
    undecodable: List[str] = field(default_factory=list)  # files in the folder that are not decodable images
    alike: Optional[Dict[str, Any]] = None  # calib_check.sameness of the images used: distinct, spread
    warnings: List[str] = field(default_factory=list)  # too few images, nearly all alike (said when checked)

    @classmethod
    def from_folder(cls, folder, batch_size: int, hw: Tuple[int, int], max_batches: Optional[int] = None,
                    at_most: bool = False):
        """Check the folder now, so a bad one fails before a build that can take many minutes.

        ``max_batches`` is what ``build --calib-batches`` asks for, all of it; with ``at_most`` (``quantize
        --images``) it is a cap, and a smaller folder is used whole."""
        folder = Path(folder)
        if not folder.exists():
            raise EdgekitError("calibration folder %s not found: give --calib a folder of images" % folder)
        if not folder.is_dir():
            raise EdgekitError("--calib %s is not a folder: give a folder of images (jpg/png/...)" % folder)
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise EdgekitError("calibration folder %s has no images (%s): add frames like the camera's"
                               % (folder, "/".join(s.lstrip(".") for s in IMAGE_SUFFIXES)))
        if max_batches is not None and max_batches < 1:
            raise EdgekitError("--calib-batches %d: must be at least 1" % max_batches)
        images, bad, thumbs = decode_thumbnails(files)  # a broken file is named now, not counted as calibration
        if bad:
            warn("calibration folder %s: %s" % (folder, undecodable_note(bad, len(files))))
        needed = batch_size * (1 if at_most else (max_batches or 1))
        if len(images) < needed:
            raise EdgekitError(
                "calibration folder %s has %d decodable image(s)%s; %s needs %d: add images%s"
                % (folder, len(images), " (%d more cannot be decoded: %s)" % (len(bad), bad[0].name) if bad else "",
                   "--calib-batches %d x batch %d" % (max_batches, batch_size)
                   if max_batches else "one batch of %d" % batch_size, needed,
                   " or lower --calib-batches" if max_batches else "")
            )
        calib = cls(images=images, batch_size=batch_size, hw=hw, max_batches=max_batches,
                    undecodable=[str(p) for p in bad])
        calib.alike = sameness(thumbs[: calib.used])
        calib.warnings = calibration_warnings(calib.used, folder, calib.alike)
        for line in calib.warnings:
            warn(line)
        return calib

    @property
    def num_batches(self) -> int:
        full = len(self.images) // self.batch_size
        return min(full, self.max_batches) if self.max_batches else full

    @property
    def used(self) -> int:
        """How many images calibrate: whole batches only, up to --calib-batches / --images."""
        return self.num_batches * self.batch_size

    def record(self) -> Dict[str, Any]:
        """What manifests and build summaries say about the calibration images."""
        return {"images": self.used, "folder_images": len(self.images), "batch": self.batch_size,
                "batches": self.num_batches, "distinct": (self.alike or {}).get("distinct"),
                "spread": (self.alike or {}).get("spread"), "warnings": list(self.warnings),
                "undecodable": list(self.undecodable)}

    @property
    def nbytes(self) -> int:
        return self.batch_size * 3 * self.hw[0] * self.hw[1] * 4

    def batches(self) -> Iterator[np.ndarray]:
        """Contiguous float32 NCHW batches; unreadable images are skipped (and counted), never fatal alone."""
        skipped = 0
        pending: List[np.ndarray] = []
        produced = 0
        for path in self.images:
            if produced >= self.num_batches:
                break
            frame = read_image(path)
            if frame is None:
                skipped += 1
                continue
            pending.append(frame)
            if len(pending) == self.batch_size:
                blob, _ = preprocess(pending, self.hw)
                pending = []
                produced += 1
                yield np.ascontiguousarray(blob, dtype=np.float32)
        if skipped:
            warn("%d calibration image(s) could not be read and were skipped" % skipped)
        if produced == 0:
            raise EdgekitError("none of the %d calibration images could be read" % len(self.images))

    def fingerprint(self) -> str:
        """Which images, in which order (names and sizes; contents are not hashed, sizes catch most edits)."""
        h = hashlib.sha256()
        for p in self.images[: self.num_batches * self.batch_size]:
            h.update(("%s:%d;" % (p.name, p.stat().st_size)).encode())
        return h.hexdigest()


def cache_key(onnx_sha256: str, calib: CalibrationSet, algorithm: str = "entropy2") -> str:
    text = json.dumps({
        "onnx_sha256": onnx_sha256, "imgsz": list(calib.hw), "batch": calib.batch_size,
        "batches": calib.num_batches, "preprocess": PREPROCESS_ID, "images": calib.fingerprint(),
        "algorithm": algorithm,
    }, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class CalibrationCache:
    """A calibration table file plus ``FILE.json`` holding its key; a table under another key is never read."""

    def __init__(self, path, key: str) -> None:
        self.path = Path(path)
        self.key = key
        self.meta_path = self.path.with_name(self.path.name + ".json")

    @classmethod
    def default(cls, folder, onnx_stem: str, key: str) -> CalibrationCache:
        return cls(Path(folder) / ("%s-%s.calib" % (onnx_stem, key[:12])), key)

    def read(self) -> Optional[bytes]:
        if not self.path.is_file():
            return None
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("key") != self.key:
            warn("calibration cache %s was made for another model, size or image set: calibrating again"
                 % self.path)
            return None
        data = self.path.read_bytes()
        if not data:  # an interrupted write or a calibration that wrote nothing: no table, never "reused"
            warn("calibration cache %s is empty: calibrating again" % self.path)
            return None
        return data

    def write(self, data: bytes) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(data)
            write_json_atomic(self.meta_path, {"key": self.key, "bytes": len(data)})


class CalibrationFeed:
    """What the INT8 calibrator does, in plain Python (``calibrator.EntropyCalibrator`` only forwards to it).

    TensorRT 8.x calls the calibrator's Python methods from ``noexcept`` C++: an exception escaping one of them
    ends the process with no message. So no method here raises: the first error is kept in ``error`` (and every
    later call stops the calibration), and the builder re-raises it after ``build_serialized_network`` returns.
    The table is read once: the first read decides ``used_cache``; when TensorRT asks again (it may, after
    ``write_cache``) it gets what it has, and a fresh calibration is never recorded as reused.

    ``buffer`` has ``host`` (a float32 array of one batch) and ``ptr`` (its device address); ``upload()``
    copies host to device.
    """

    def __init__(self, calib: CalibrationSet, cache: CalibrationCache, buffer: Any, upload: Callable[[], None],
                 on_batch: Optional[Callable[[], None]] = None) -> None:
        self.calib = calib
        self.cache = cache
        self.buffer = buffer
        self.upload = upload
        self.on_batch = on_batch
        self.error: Optional[BaseException] = None
        self.used_cache = False
        self.batches_fed = 0
        self._table: Optional[bytes] = None
        self._read = False
        self._batches: Optional[Iterator[np.ndarray]] = None

    def next_batch(self) -> Optional[List[int]]:
        """Device pointers of the next batch, or None at the end (or after an error)."""
        if self.error is not None:
            return None
        try:
            if self._batches is None:
                self._batches = self.calib.batches()
            batch = next(self._batches, None)
            if batch is None:
                return None
            np.copyto(self.buffer.host, batch)
            self.upload()
            self.batches_fed += 1
            if self.on_batch:
                self.on_batch()
            return [self.buffer.ptr]
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised after the build (see class doc)
            self.error = exc
            return None

    def read_cache(self) -> Optional[bytes]:
        if self._read or self.error is not None:
            return self._table
        self._read = True
        try:
            self._table = self.cache.read()
        except BaseException as exc:  # noqa: BLE001
            self.error = EdgekitError("cannot read calibration table %s (%s): delete it or give another "
                                      "--calib-cache" % (self.cache.path, exc))
            return None
        if not self._table:
            self._table = None  # an empty table is no table: TensorRT calibrates
        self.used_cache = self._table is not None
        if self.used_cache:
            info("reusing calibration table %s (same model, size and images)" % self.cache.path)
        else:
            info("calibrating on %d batches of %d" % (self.calib.num_batches, self.calib.batch_size))
        return self._table

    def write_cache(self, data: bytes) -> None:
        self._table = bytes(data)
        try:
            self.cache.write(self._table)
        except BaseException as exc:  # noqa: BLE001
            if self.error is None:
                self.error = EdgekitError("cannot write calibration table %s (%s)" % (self.cache.path, exc))
