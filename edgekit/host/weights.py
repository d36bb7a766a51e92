"""Loading .pt weights without running code from them.

A ``.pt`` file is a pickle: unpickling it fully runs whatever callables it names, so a crafted file executes a
command before any error appears. By default edgekit has ultralytics load checkpoints through its restricted
loader (``torch.load(weights_only=True)`` plus ultralytics' allow-list of the classes a real checkpoint holds:
its model and layer classes, torch.nn layers, numpy scalars, its argument namespace). A file naming anything else
is refused with one line. ``--trust-weights`` (``trust=True``) opts into ultralytics' ordinary full unpickling,
which runs code from the file: only for files whose author you trust.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Iterator, Optional

from edgekit.errors import EdgekitError

TRUST_HINT = "if you trust the file's author, pass --trust-weights (it runs code from the file)"


def restricted_loader_available(tasks) -> bool:
    """ultralytics >= 8.4.67 on torch >= 2.6 can load checkpoints with weights_only and its allow-list."""
    return hasattr(tasks, "SAFE_LOAD") and bool(getattr(getattr(tasks, "_SafeLoad", None), "SUPPORTED", False))


@contextlib.contextmanager
def weights_loading(weights: str, trust: bool = False) -> Iterator[None]:
    """Run the ultralytics load inside this: restricted unpickling unless ``trust``; a refused file is one line."""
    if trust:
        yield
        return
    tasks = importlib.import_module("ultralytics.nn.tasks")
    if not restricted_loader_available(tasks):
        import ultralytics

        raise EdgekitError("ultralytics %s here cannot load %s without running code from it (its restricted loader "
                           "needs ultralytics >= 8.4.67 and torch >= 2.6): upgrade them, or %s"
                           % (ultralytics.__version__, weights, TRUST_HINT))
    previous = tasks.SAFE_LOAD
    tasks.SAFE_LOAD = True  # read by torch_safe_load and model construction at call time
    try:
        yield
    except TypeError as exc:  # ultralytics reports a global outside its allow-list as a TypeError
        name = refused_global(exc)
        if "outside the supported" not in str(exc) or name is None:
            raise  # a corrupt or truncated file: the caller says it cannot be loaded
        raise EdgekitError("refused to load %s: it names %s, which no YOLOv8 checkpoint holds, so unpickling it "
                           "could run code from the file; %s" % (weights, name, TRUST_HINT)) from exc
    finally:
        tasks.SAFE_LOAD = previous


def refused_global(exc: BaseException) -> Optional[str]:
    """'posix.system' from torch's 'Unsupported global: GLOBAL posix.system was not an allowed global ...';
    None when the load failed for another reason (a file that is not a checkpoint at all)."""
    cause = exc.__cause__ or exc.__context__
    text = str(cause or "")
    marker = "GLOBAL "
    if marker in text:
        return text.split(marker, 1)[1].split()[0]
    return None
