"""Signals during the camera loop: SIGTERM and a first Ctrl-C stop it between frames, so every output holds
whole frames and the counts in the summary match what was written; a second Ctrl-C interrupts as usual."""

from __future__ import annotations

import signal
import threading
from typing import Callable, Dict, Optional

from edgekit.bench.interrupt import signal_name

INTERRUPTED = signal_name(signal.SIGINT)  # the summary's "stopped by", worded as bench's


def stop_on_signals(stop: Callable[[str], None], stopping: threading.Event) -> Optional[Dict[int, object]]:
    """Route SIGTERM and SIGINT to ``stop(reason)``; SIGINT while ``stopping`` is set raises KeyboardInterrupt.
    Returns the previous handlers for :func:`restore_signals` (None off the main thread, where none can be set).
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_sigint(signum, frame):
        if stopping.is_set():
            raise KeyboardInterrupt
        stop(INTERRUPTED)

    return {signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, frame: stop("SIGTERM")),
            signal.SIGINT: signal.signal(signal.SIGINT, on_sigint)}


def restore_signals(previous: Optional[Dict[int, object]]) -> None:
    for signum, handler in (previous or {}).items():
        signal.signal(signum, handler)
