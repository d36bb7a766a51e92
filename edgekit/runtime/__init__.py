"""Device-side runtime (Python 3.8, no torch): the Runner protocol and its backends."""

from edgekit.runtime.base import Runner
from edgekit.runtime.loader import BACKENDS, open_runner
from edgekit.runtime.threads import ThreadPlan, ort_threading

__all__ = ["BACKENDS", "Runner", "ThreadPlan", "open_runner", "ort_threading"]
