"""TensorRT's log lines, kept: plain Python behind ``trtlib.CapturingLogger`` (tested without TensorRT).

A failed build is reported by the first error TensorRT logged *after* the build started (:meth:`mark`): on
TensorRT 8.5 the log often opens with an error that did not stop anything (a timing cache it could not
load, for one), and that line would hide the real cause.
"""

from __future__ import annotations

import threading
from typing import List

ERROR, WARNING, OTHER = "error", "warning", "other"


class LogKeeper:
    def __init__(self) -> None:
        self.errors: List[str] = []
        self.warnings: List[str] = []
        self._lock = threading.Lock()

    def add(self, kind: str, msg: str) -> None:
        with self._lock:
            if kind == ERROR:
                self.errors.append(msg)
            elif kind == WARNING:
                self.warnings.append(msg)

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
