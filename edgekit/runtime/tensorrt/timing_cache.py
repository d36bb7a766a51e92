"""A timing cache file reused across builds (trtexec --timingCacheFile): loaded if it can be, merged on save.

Builds of different models on one device share tactic timings, which makes later builds faster. A cache
TensorRT cannot read (another version, or a corrupt file; seen with TensorRT 8.5 on Hopper) is reported in one
warning, whether TensorRT raises or returns None, and the build goes on without it. Saving re-reads the file
under a lock and merges into it, so two builds running at once never drop each other's timings, and the file is
replaced atomically. Timings from another device are never merged (``combine(..., ignore_mismatch=False)``): a
cache made elsewhere is replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Any, Iterator

from edgekit.log import info, warn
from edgekit.manifest import atomic_path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class TimingCacheFile:
    def __init__(self, path) -> None:
        self.path = Path(path)
        self.loaded = False
        self.warned = False  # one warning per file and build, not one at load and another at save

    def _read(self, config: Any) -> Any:
        """A timing cache object from the file, or None when it is missing or unreadable (warned once)."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return None
        try:
            cache = config.create_timing_cache(self.path.read_bytes())
        except Exception as exc:  # TensorRT raises its own types for a foreign/corrupt cache
            self._warn("timing cache %s cannot be read by this TensorRT (%s): building without it"
                       % (self.path, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__))
            return None
        if cache is None:  # TensorRT 8.5 logs the reason (e.g. myelinCache.h::deserializeFromBuffer) and returns None
            self._warn("timing cache %s was rejected by this TensorRT (made by another version or GPU, or "
                       "damaged): building without it" % self.path)
        return cache

    def _warn(self, text: str) -> None:
        if not self.warned:
            warn(text)
        self.warned = True

    def attach(self, config: Any) -> None:
        with locked(self.path):
            cache = self._read(config)
        self.loaded = cache is not None
        if cache is None:
            cache = config.create_timing_cache(b"")
        else:
            info("using timing cache %s" % self.path)
        if not config.set_timing_cache(cache, False):
            self._warn("TensorRT refused timing cache %s: building without it" % self.path)
            config.set_timing_cache(config.create_timing_cache(b""), False)

    def save(self, config: Any) -> None:
        ours = config.get_timing_cache()
        with locked(self.path):
            on_disk = self._read(config)  # another build may have saved since we loaded
            # ignore_mismatch=False: timings from another GPU or TensorRT are refused, never mixed into ours
            if on_disk is not None and not ours.combine(on_disk, False):
                warn("timing cache %s was made on another GPU or TensorRT: replacing it with this build's" % self.path)
            with atomic_path(self.path) as tmp:
                tmp.write_bytes(bytes(memoryview(ours.serialize())))
        info("saved timing cache %s" % self.path)
