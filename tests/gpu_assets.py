"""The GPU check's host-built assets (jetson/gpu-assets.py): where they are, what is missing (one line each), and
the exact engine builds the check and the GPU tests share. Plain Python 3.8 with no torch: it runs on the device."""

import json
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from edgekit.manifest import sha256_file

ROOT = Path(__file__).resolve().parents[1]
ASSETS_ENV, WORK_ENV, RESULTS_ENV = "EDGEKIT_GPU_ASSETS", "EDGEKIT_GPU_WORK", "EDGEKIT_GPU_RESULTS"
HINT = "run 'make gpu-assets' on the host (needs torch) and carry the folder, or point %s at it" % ASSETS_ENV
# the engines the check builds, most informative first (a short GPU session proves these in this order):
#   fp16  the trained YOLOv8n, FP16: the product's main path
#   qdq   its Q/DQ twin from edgekit quantize, INT8 without calibration images
#   nms   uint8 camera frames letterboxed in the graph + EfficientNMS_TRT (edgekit export --graph-letterbox
#         320x240 --trt-nms), FP16
#   int8  the float model, INT8 calibrated on CALIB_BATCHES frames (the slowest build: calibration first)
#   e2e   the trained YOLO26n's end-to-end head (edgekit export --end2end: TopK in the graph, no NMS), FP16; last,
#         so it only uses the time the others leave
ENGINES = ("fp16", "qdq", "nms", "int8", "e2e")
CALIB_BATCHES = 8
PRECISION = {"fp16": "fp16", "qdq": "int8", "nms": "fp16", "int8": "int8", "e2e": "fp16"}


def assets_dir() -> Path:
    return Path(os.environ.get(ASSETS_ENV) or ROOT / "gpu-assets")


def work_dir() -> Path:
    """Engines and calibration tables: kept across runs on one machine so --if-changed reuses them."""
    return Path(os.environ.get(WORK_ENV) or Path(tempfile.gettempdir()) / "edgekit-gpu-work")


def results_dir() -> Optional[Path]:
    value = os.environ.get(RESULTS_ENV)
    return Path(value) if value else None


class Assets:
    def __init__(self, root: Path, doc: Dict) -> None:
        self.root = root
        self.doc = doc
        self.model = root / doc["model"]
        self.qdq = root / doc["qdq"]
        # a KeyError: assets.json from before the NMS or the YOLO26n end-to-end model (load_assets says so)
        self.nms = root / doc["nms"]
        self.e2e = root / doc["e2e"]
        self.full = root / doc["full"] if doc.get("full") else None
        self.val = root / doc["val"]
        self.calib = root / doc["calib"]

    def onnx_for(self, key: str) -> Path:
        return {"qdq": self.qdq, "nms": self.nms, "e2e": self.e2e}.get(key, self.model)

    def build_args(self, key: str, work: Path) -> List[str]:
        """``edgekit build`` arguments for one of ENGINES, the same for jetson/gpu_check.py and the tests.

        No shared timing cache: on TensorRT 8.5/Hopper a cache saved by one build failed to load in the next
        (``myelinCache.h::deserializeFromBuffer``), and each engine here is built once anyway."""
        precision = {"fp16": ["--fp16"], "qdq": ["--int8"], "nms": ["--fp16"], "e2e": ["--fp16"],
                     "int8": ["--int8", "--calib", str(self.calib), "--calib-batches", str(CALIB_BATCHES)]}[key]
        return ["build", str(self.onnx_for(key))] + precision + ["--out", str(work), "--fast-build", "--if-changed"]


def load_assets(root: Optional[Path] = None, verify: bool = True) -> Tuple[Optional[Assets], List[str]]:
    """(assets, []) when everything is there and unchanged, else (None or the assets, one line per missing piece)."""
    root = Path(root or assets_dir())
    if not root.is_dir():
        return None, ["no GPU assets at %s: %s" % (root, HINT)]
    try:
        doc = json.loads((root / "assets.json").read_text())
        assets = Assets(root, doc)
    except KeyError as exc:
        return None, ["%s/assets.json has no %s entry (made by an older make gpu-assets): %s" % (root, exc, HINT)]
    except (OSError, ValueError) as exc:
        return None, ["%s/assets.json unreadable (%s): %s" % (root, exc, HINT)]
    missing, changed = [], []
    for rel, digest in sorted(doc.get("files", {}).items()):
        path = root / rel
        if not path.is_file():
            missing.append(rel)
        elif verify and sha256_file(path) != digest:
            changed.append(rel)
    lines = []
    for what, names in (("missing", missing), ("changed since made", changed)):
        if names:
            lines.append("%d GPU asset file(s) %s in %s (first: %s): %s" % (len(names), what, root, names[0], HINT))
    return assets, lines
