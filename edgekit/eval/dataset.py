"""Evaluation datasets: ultralytics/YOLO format (data.yaml + images + txt labels) or a COCO json.

Problems are reported and counted, never fatal one by one: an image whose labels name a class out of range or
cannot be parsed is skipped (as ultralytics does), a missing label file means an image with no objects.
A missing data.yaml, a split with no images, or a json that is not COCO is a one-line error.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.lazy import lazy_import
from edgekit.vision.images import IMAGE_SUFFIXES


@dataclass
class Sample:
    image: Path
    xywhn: np.ndarray  # (n, 4) normalized center x, y, width, height (YOLO); or absolute xywh with ``absolute``
    classes: np.ndarray  # (n,) int
    absolute: bool = False  # COCO boxes are absolute [x, y, w, h] (top-left corner)
    iscrowd: Optional[np.ndarray] = None

    def boxes_xyxy(self, width: int, height: int) -> np.ndarray:
        b = self.xywhn.astype(np.float64).reshape(-1, 4)
        if self.absolute:
            return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)
        scale = np.array([width, height, width, height], np.float64)
        return np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1) * scale


@dataclass
class Dataset:
    source: str
    names: Dict[int, str]
    samples: List[Sample]
    problems: Counter = field(default_factory=Counter)
    messages: Dict[str, List[str]] = field(default_factory=dict)  # kind -> its first few messages
    split: Optional[str] = None  # the data.yaml split (None for a COCO json)

    def problem(self, kind: str, message: str) -> None:
        self.problems[kind] += 1
        examples = self.messages.setdefault(kind, [])
        if len(examples) < 5:
            examples.append(message)


def load_dataset(data, split: str = "val", images: Optional[str] = None) -> Dataset:
    path = Path(data)
    if path.is_dir():
        raise EdgekitError("--data %s is a folder: give its data.yaml (YOLO format) or a COCO json" % data)
    if not path.is_file():
        raise EdgekitError("dataset %s not found: give a data.yaml (YOLO format) or a COCO json" % data)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise EdgekitError("--data %s is an image: give a data.yaml (YOLO format) or a COCO json" % data)
    if path.suffix.lower() == ".json":
        return load_coco(path, images)
    if images:  # never silently ignored: a data.yaml names its own image folders
        raise EdgekitError("an image folder (%s) goes with a COCO json; %s names its own images: leave the folder "
                           "out (pick a data.yaml split instead)" % (images, data))
    return load_yolo(path, split)


def _read_text(path: Path) -> str:
    """A dataset file's text; a binary file (an image, a model) is a one-line error, not a UnicodeDecodeError."""
    try:
        return path.read_text()
    except UnicodeDecodeError as exc:
        raise EdgekitError("--data %s is not a text file: give a data.yaml (YOLO format) or a COCO json"
                           % path) from exc


def load_yolo(data_yaml: Path, split: str = "val") -> Dataset:
    yaml = lazy_import("yaml")
    try:
        cfg = yaml.safe_load(_read_text(data_yaml)) or {}
    except yaml.YAMLError as exc:
        raise EdgekitError("%s is not valid YAML: %s" % (data_yaml, str(exc).splitlines()[0])) from exc
    if not isinstance(cfg, dict) or "names" not in cfg:
        raise EdgekitError("%s needs '%s:' (images) and 'names:' keys, as ultralytics data.yaml files have"
                           % (data_yaml, split))
    if split not in cfg:
        splits = [k for k in ("train", "val", "test") if k in cfg]
        raise EdgekitError("%s has no split '%s'%s" % (data_yaml, split, " (it has: %s; choose with --split)"
                                                        % ", ".join(splits) if splits else
                                                        ": it needs '%s:' (images) and 'names:' keys, as ultralytics "
                                                        "data.yaml files have" % split))
    names = cfg["names"]
    names = dict(enumerate(names)) if isinstance(names, list) else {int(k): str(v) for k, v in names.items()}
    root = Path(cfg.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = data_yaml.parent / root
    files = _image_files(root, cfg[split])
    if not files:
        raise EdgekitError("%s: no images found for '%s' (%s)" % (data_yaml, split, cfg[split]))
    ds = Dataset(str(data_yaml), names, [], split=split)
    for image in files:
        sample = _yolo_sample(image, len(names), ds)
        if sample is not None:
            ds.samples.append(sample)
    return ds


def _image_files(root: Path, entry) -> List[Path]:
    files: List[Path] = []
    for item in entry if isinstance(entry, list) else [entry]:
        p = Path(item)
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.suffix == ".txt" and p.is_file():  # a list of image paths, relative to the dataset root
            for line in p.read_text().splitlines():
                if line.strip():
                    f = Path(line.strip())
                    files.append(f if f.is_absolute() else root / f)
    return files


def label_path(image: Path) -> Path:
    """ultralytics' convention: .../images/x.jpg -> .../labels/x.txt (the last 'images' folder)."""
    parts = list(image.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        parts[i] = "labels"
    return Path(*parts).with_suffix(".txt")


def _yolo_sample(image: Path, nc: int, ds: Dataset) -> Optional[Sample]:
    lp = label_path(image)
    if not lp.exists():
        return Sample(image, np.zeros((0, 4), np.float32), np.zeros((0,), np.int64))  # background image
    try:
        lines = lp.read_text().splitlines()
    except UnicodeDecodeError:
        ds.problem("bad_labels", "%s: not a text file; image skipped" % lp)
        return None
    boxes, classes = [], []
    for n, line in enumerate(lines, 1):
        values = line.split()
        if not values:
            continue
        try:
            nums = [float(v) for v in values]
        except ValueError:
            ds.problem("bad_labels", "%s:%d: not numbers; image skipped" % (lp, n))
            return None
        reason = label_problem(nums, nc)
        if reason:
            ds.problem("bad_labels", "%s:%d: %s; image skipped" % (lp, n, reason))
            return None
        if len(nums) == 5:
            boxes.append(nums[1:5])
        else:  # segment polygon -> its bounding box, as ultralytics does
            xy = np.array(nums[1:]).reshape(-1, 2)
            (x1, y1), (x2, y2) = xy.min(0), xy.max(0)
            boxes.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        classes.append(int(nums[0]))
    return Sample(image, np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64))


def label_problem(nums: List[float], nc: int) -> Optional[str]:
    """Why a YOLO label line ('class x y w h' or 'class x1 y1 x2 y2 ...', normalised) is unusable, or None.

    As ultralytics' label check: coordinates must lie in 0..1 (a centre at 1.5 or a negative width is not a
    normalised label); a box must also have a width and height above 0 (it could never be matched).
    """
    if len(nums) < 5 or len(nums) % 2 == 0:
        return "expected 'class x y w h' or a polygon"
    cls, coords = nums[0], np.array(nums[1:], np.float64)
    if not (np.isfinite(cls) and cls == int(cls) and 0 <= cls < nc):
        return "class %s is out of range 0..%d" % (_num(cls), nc - 1)
    if not np.all(np.isfinite(coords) & (coords >= 0) & (coords <= 1)):
        bad = coords[~(np.isfinite(coords) & (coords >= 0) & (coords <= 1))]
        return "coordinate %s is out of 0..1 (labels are normalised to the image size)" % _num(bad[0])
    xy = coords.reshape(-1, 2)
    size = coords[2:4] if len(nums) == 5 else xy.max(0) - xy.min(0)
    if not np.all(size > 0):
        return "box of width %s and height %s is empty" % (_num(size[0]), _num(size[1]))
    return None


def _num(v: float) -> str:
    return "%g" % v


def load_coco(path: Path, images: Optional[str]) -> Dataset:
    try:
        coco = json.loads(_read_text(path))
        cats = sorted(coco["categories"], key=lambda c: c["id"])
        coco_images = coco["images"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EdgekitError("%s is not a COCO annotation file (%s)" % (path, exc)) from exc
    if not images:
        raise EdgekitError("a COCO json needs --images DIR, the folder holding its images")
    if not Path(images).is_dir():
        raise EdgekitError("--images %s %s: give the folder holding the COCO json's images" % (
            images, "is not a folder" if Path(images).exists() else "not found"))
    index = {c["id"]: i for i, c in enumerate(cats)}  # COCO ids (1..90 for COCO) -> contiguous model classes
    names = {i: c["name"] for i, c in enumerate(cats)}
    per_image: Dict[int, list] = {im["id"]: [] for im in coco_images}
    ds = Dataset(str(path), names, [])
    for a in coco.get("annotations", []):
        if a.get("image_id") in per_image and a.get("category_id") in index and "bbox" in a:
            if _coco_box_ok(a.get("bbox")):
                per_image[a["image_id"]].append(a)
            else:  # ultralytics' COCO converter drops these boxes too
                ds.problem("bad_labels", "%s: annotation %s of image %s has bbox %s (needs [x, y, w, h] with w, h "
                           "> 0); box skipped" % (path.name, a.get("id"), a["image_id"], a.get("bbox")))
    for im in coco_images:
        anns = per_image[im["id"]]
        ds.samples.append(Sample(
            Path(images) / im["file_name"], np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4),
            np.array([index[a["category_id"]] for a in anns], np.int64), absolute=True,
            iscrowd=np.array([a.get("iscrowd", 0) for a in anns], np.int64)))
    if not ds.samples:
        raise EdgekitError("%s lists no images" % path)
    return ds


def _coco_box_ok(box) -> bool:
    try:
        b = np.asarray(box, np.float64)
    except (TypeError, ValueError):
        return False
    return b.shape == (4,) and bool(np.all(np.isfinite(b))) and b[2] > 0 and b[3] > 0
