"""The model store on a box: content-addressed ONNX models, their engines keyed by what went into them, one
atomically switched ``current`` run, history, rollback and gc (``edgekit models``)."""

from edgekit.store.keys import home_dir, run_key
from edgekit.store.store import Store

__all__ = ["Store", "home_dir", "run_key"]
