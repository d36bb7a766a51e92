"""Device-side runtime (Python 3.8, no torch): the Runner protocol and its backends."""

from edgekit.runtime.base import Runner
from edgekit.runtime.loader import BACKENDS, open_runner

__all__ = ["BACKENDS", "Runner", "open_runner"]
