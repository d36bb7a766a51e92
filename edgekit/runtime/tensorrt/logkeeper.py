"""TensorRT's log lines, kept and routed: plain Python behind ``trtlib``'s one process-wide logger (tested
without TensorRT).

One logger per process: TensorRT keeps one logger pointer per process, and the plugin library keeps a raw
pointer to the logger that first initialised it (NVIDIA/TensorRT#1475), so a logger per build or runner would
leave TensorRT writing to one that may be gone. Polygraphy keeps one global logger for the same reason. Each
build or runner has its own :class:`LogKeeper` instead, and registers it with the :class:`LogRouter` while it
calls TensorRT (``with ROUTER.to(keeper):``): a message goes to the keeper registered on the thread that
logged it, else (a thread of TensorRT's own) to the most recently registered keeper still open, else to
``ROUTER.orphans``.

A failed build is reported by the first error TensorRT logged *after* the build started (:meth:`LogKeeper.mark`):
on TensorRT 8.5 the log often opens with an error that did not stop anything (a timing cache it could not
load, for one), and that line would hide the real cause.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator, List

ERROR, WARNING, OTHER = "error", "warning", "other"
KEEP = 1000  # lines kept per kind: the first ones explain a failure; a long-running runner must not grow forever


class LogKeeper:
    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose  # print every line as it comes (edgekit build --verbose)
        self.errors: List[str] = []
        self.warnings: List[str] = []
        self.dropped = 0
        self._lock = threading.Lock()

    def add(self, kind: str, msg: str) -> None:
        with self._lock:
            lines = self.errors if kind == ERROR else self.warnings if kind == WARNING else None
            if lines is None:
                return
            if len(lines) >= KEEP:
                self.dropped += 1
            else:
                lines.append(msg)

    def mark(self) -> int:
        """A point in the log: ``first_error(since=mark)`` looks only at errors logged after it."""
        with self._lock:
            return len(self.errors)

    def first_error(self, default: str, since: int = 0) -> str:
        """The most telling error line: the first error since ``since``, shortened, or ``default``."""
        with self._lock:
            errors = self.errors[since:]
        text = " ".join((errors[0] if errors else default).split())
        return text if len(text) < 300 else text[:297] + "..."

    def last_warning(self, default: str) -> str:
        """TensorRT 8.5 logs a CUDA start failure ("CUDA initialization failure with error: 35") as a warning."""
        with self._lock:
            return self.warnings[-1] if self.warnings else default


class LogRouter:
    """Where the one process-wide TensorRT logger sends each line (see the module doc)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: List[LogKeeper] = []
        self.orphans = LogKeeper()  # lines logged while no build or runner was calling TensorRT

    def push(self, keeper: LogKeeper) -> None:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(keeper)
        with self._lock:
            self._open.append(keeper)

    def pop(self, keeper: LogKeeper) -> None:
        stack = getattr(self._local, "stack", None) or []
        if stack and stack[-1] is keeper:
            stack.pop()
        with self._lock:
            for i in range(len(self._open) - 1, -1, -1):
                if self._open[i] is keeper:
                    del self._open[i]
                    break

    @contextlib.contextmanager
    def to(self, keeper: LogKeeper) -> Iterator[LogKeeper]:
        """TensorRT's lines logged inside the block (on this thread, or on one of TensorRT's) go to ``keeper``."""
        self.push(keeper)
        try:
            yield keeper
        finally:
            self.pop(keeper)

    def current(self) -> LogKeeper:
        """The keeper a line logged now, on this thread, goes to."""
        stack = getattr(self._local, "stack", None)
        if stack:
            return stack[-1]
        with self._lock:
            return self._open[-1] if self._open else self.orphans

    def route(self, kind: str, msg: str) -> LogKeeper:
        """Keep one line where it belongs; returns the keeper that took it."""
        keeper = self.current()
        keeper.add(kind, msg)
        return keeper
