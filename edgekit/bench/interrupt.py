"""Ctrl-C (SIGINT) and SIGTERM during a bench: stop measuring, keep what finished.

Python turns SIGINT into KeyboardInterrupt; :func:`sigterm_interrupts` makes SIGTERM do the same (as
:class:`Interrupted`, which remembers the signal), so one ``except KeyboardInterrupt`` handles both. The bench
then prints and saves what finished and exits 128 + the signal (130 for Ctrl-C, 143 for SIGTERM): the run was
cut short, so a script must not take it for a complete one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Dict, Iterator, List


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__("signal %d" % signum)
        self.signum = signum


class BenchStopped(KeyboardInterrupt):
    """A bench stopped by a signal, with what finished: callers that do not handle it see a KeyboardInterrupt."""

    def __init__(self, results: List[Dict[str, Any]], signum: int) -> None:
        super().__init__("stopped by signal %d" % signum)
        self.results, self.signum = results, signum

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)


def signal_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt: SIGTERM via :func:`sigterm_interrupts`, else SIGINT."""
    return getattr(exc, "signum", int(signal.SIGINT))


def signal_name(signum: int) -> str:
    return "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name


def exit_code(signum: int) -> int:
    return 128 + int(signum)


def stopped_line(signum: int, what: str, shown: bool) -> str:
    """The last line of an interrupted bench, on stderr."""
    return "stopped by %s: %s; %s (exit %d)" % (
        signal_name(signum), what, "the table holds what finished, saved as for a full run" if shown
        else "nothing finished, nothing saved", exit_code(signum))


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`Interrupted` while the block runs (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
