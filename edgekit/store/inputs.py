"""What ``edgekit models add`` takes in, checked before the store is touched: the ONNX and its evaluation set.

An evaluation set is a folder with a ``data.yaml`` (its split folder beside it) or one COCO ``*.json`` with an
``images/`` folder: what the accuracy gate (:mod:`edgekit.rollout.gates`) reads with :func:`eval_data`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Tuple

from edgekit.errors import EdgekitError

SPLITS = ("val", "test", "train")  # an evaluation set's split, the first one its data.yaml has


def check_onnx(path: Path) -> None:
    """``path`` parses as an ONNX model (its external data, if any, is not read)."""
    from edgekit.lazy import lazy_import

    onnx = lazy_import("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not an ONNX model
        raise EdgekitError("%s is not an ONNX model (%s): export it again (edgekit export) or copy it again"
                           % (path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)) from exc
    if not model.ir_version or not model.HasField("graph") or not model.opset_import:
        raise EdgekitError("%s is not an ONNX model (no IR version, graph or opset): export it again (edgekit "
                           "export) or copy it again" % path)


def eval_data(folder: Path) -> Tuple[Path, Optional[str]]:
    """The dataset file of a shipped evaluation set: its data.yaml (or the one .yaml) or its one COCO .json; with
    the COCO json, its images folder (None for a data.yaml)."""
    for pattern in ("data.yaml", "*.yaml", "*.yml", "*.json"):
        found = sorted(folder.glob(pattern))
        if len(found) > 1:
            raise EdgekitError("%s holds %d %s files: ship one data.yaml (or one COCO json + images/)"
                               % (folder, len(found), pattern))
        if found:
            return found[0], (str(folder / "images") if found[0].suffix == ".json" else None)
    raise EdgekitError("%s has no data.yaml or COCO json: ship the evaluation set as a data.yaml folder or a COCO "
                       "json with its images/ folder" % folder)


def check_eval_set(folder: Path) -> None:
    """``folder`` holds an evaluation set (see the module doc), or one line naming what is missing."""
    if not folder.is_dir():
        raise EdgekitError("--eval %s not found: give the folder of the evaluation set (data.yaml or COCO json + "
                           "images)" % folder)
    try:
        data, images = eval_data(folder)
    except EdgekitError as exc:
        raise EdgekitError("--eval %s" % exc) from exc
    if images is not None:
        _check_coco(folder, data, Path(images))
    else:
        _check_yaml(folder, data)


def _check_coco(folder: Path, data: Path, images: Path) -> None:
    try:
        doc = json.loads(data.read_text())
    except (OSError, ValueError) as exc:
        raise EdgekitError("--eval %s: %s is not valid JSON (%s)" % (folder, data.name, exc)) from exc
    missing = [k for k in ("images", "annotations") if not isinstance(doc, dict) or not isinstance(doc.get(k), list)]
    if missing:
        raise EdgekitError("--eval %s: %s is not a COCO json (no %s list)" % (folder, data.name, " or ".join(missing)))
    if not _has_files(images):
        raise EdgekitError("--eval %s: %s has no images/ folder with its images beside it" % (folder, data.name))


def _check_yaml(folder: Path, data: Path) -> None:
    try:
        import yaml
    except ImportError:  # the gate says how to install PyYAML; the folder has its data.yaml
        return
    try:
        cfg = yaml.safe_load(data.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise EdgekitError("--eval %s: %s is not valid YAML (%s)" % (folder, data.name, str(exc).splitlines()[0])
                           ) from exc
    if not isinstance(cfg, dict) or "names" not in cfg:
        raise EdgekitError("--eval %s: %s has no names: (a data.yaml names its classes and its val: split)"
                           % (folder, data.name))
    split = next((s for s in SPLITS if s in cfg), None)  # the gate's choice: the first split named
    if split is None or not cfg[split]:
        raise EdgekitError("--eval %s: %s names no val:, test: or train: split" % (folder, data.name))
    root = Path(str(cfg.get("path") or "."))
    root = root if root.is_absolute() else data.parent / root
    if not root.is_dir():  # a path: of the workstation it was made on; the gate reads from the shipped folder
        root = folder
    for item in _as_list(cfg[split]):
        where = Path(str(item)) if Path(str(item)).is_absolute() else root / str(item)
        if not (where.is_file() or _has_files(where)):
            raise EdgekitError("--eval %s: %s's %s: %s is not there (ship its images with it)"
                               % (folder, data.name, split, item))


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(True for _ in folder.iterdir())
