"""Tables and files for eval and compare results."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from rich.table import Table

from edgekit.bench.frames import load_frames, synthetic_frames
from edgekit.eval.metrics import SIZES
from edgekit.vision.images import read_image

# the table's size columns (the CSV and JSON have all six figures): mAP50-95 of each size and small objects'
# recall, where accuracy is usually lost (INT8, pruning, a smaller input), in 100 columns
TABLE_SIZE_COLUMNS = [("mAP S", "map50_95_small"), ("R S", "recall_small"), ("mAP M", "map50_95_medium"),
                      ("mAP L", "map50_95_large")]
SIZE_LEGEND = "S, M, L: objects < 32², 32²-96², >= 96² pixels; mAP: mAP50-95; R S: recall of small objects at R's conf"


def metrics_table(result: Dict[str, Any]) -> Table:
    from edgekit.eval.evaluate import SIZE_COLUMNS, metrics_rows

    label = "" if result["trained"] else " (%s)" % ("untrained" if result["trained"] is False else "weights unknown")
    table = Table(title="edgekit eval: %s%s on %s (%s/%s)" % (
        result["name"], label, result["dataset"], result["backend"], result["device"]))
    picked = list(range(7)) + [7 + SIZE_COLUMNS.index(key) for _, key in TABLE_SIZE_COLUMNS]  # of metrics_rows
    for col in ["class", "images", "instances", "P", "R", "mAP50", "mAP50-95"] + [c for c, _ in TABLE_SIZE_COLUMNS]:
        table.add_column(col, justify="left" if col == "class" else "right")
    for i, row in enumerate(metrics_rows(result)):
        table.add_row(*[row[k] for k in picked], end_section=(i == 0))
    problems = result.get("problems") or {}
    notes = ["skipped: " + ", ".join("%d %s" % (n, k.replace("_", " ")) for k, n in problems.items())
             ] if problems else []
    if result.get("class_mismatch"):
        notes.append("classes differ: " + result["class_mismatch"])
    table.caption = "\n".join([SIZE_LEGEND] + notes)
    table.caption_justify = "left"
    return table


def to_csv(result: Dict[str, Any]) -> str:
    from edgekit.eval.evaluate import SIZE_COLUMNS, metrics_rows

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "backend", "class", "images", "instances", "precision", "recall", "map50", "map50_95"]
                    + SIZE_COLUMNS)
    for row in metrics_rows(result):
        writer.writerow([result["model"], result["backend"], *row])
    return buf.getvalue()


def compare_table(r: Dict[str, Any]) -> Table:
    table = Table(title="edgekit compare: %s vs %s (%d frames)" % (Path(r["a"]).name, Path(r["b"]).name, r["frames"]))
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in compare_rows(r):
        table.add_row(k, v)
    table.caption = "identical outputs" if r["identical"] else ""
    return table


def compare_csv(r: Dict[str, Any]) -> str:
    """compare's CSV: the agreement rows (measure, value), then with --data each accuracy figure of A and B and
    B's change in points."""
    from edgekit.eval.compare import accuracy_figures

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["measure", "a", "b", "value"])
    for k, v in compare_rows(r):
        writer.writerow([k, "", "", v])
    acc = r.get("accuracy")
    if acc:
        fa, fb = accuracy_figures(acc["a"]), accuracy_figures(acc["b"])
        for label, key in ACCURACY_ROWS:
            change = acc["change"][key]
            writer.writerow([label] + ["" if v is None else "%.5f" % v for v in (fa[key], fb[key])] +
                            ["" if change is None else "%.3f" % (100 * change)])
    return buf.getvalue()


def compare_rows(r: Dict[str, Any]) -> List[Tuple[str, str]]:
    """The agreement measures of a compare result as (measure, value) text."""
    raw, det = r["raw"], r["detections"]
    rows = [
        ("raw max |a-b|", "%.6g" % raw["max_abs"]), ("raw mean |a-b|", "%.6g" % raw["mean_abs"]),
        ("raw max |a-b| / max |a|", "%.4g" % raw["max_rel"]), ("raw min cosine", "%.6f" % raw["min_cosine"]),
    ] if raw else [("raw outputs", "not compared: %s" % r.get("raw_skipped"))]
    rows += [
        ("detections a / b", "%d / %d" % (det["a"], det["b"])), ("matched (IoU >= %g)" % r["settings"]["match_iou"],
                                                                  "%d" % det["matched"]),
        ("only in a / only in b", "%d / %d" % (det["only_a"], det["only_b"])),
        ("match rate", "no detections to compare (conf %g)" % r["settings"]["conf"] if det["match_rate"] is None
         else "%.1f%%" % (100 * det["match_rate"])),
        ("class agreement", "-" if det["class_agreement"] is None else "%.1f%%" % (100 * det["class_agreement"])),
        ("mean IoU of matches", "-" if det["mean_iou"] is None else "%.3f" % det["mean_iou"]),
        ("frames with a count difference", "%d (max %d)" % (det["frames_with_count_difference"],
                                                             det["max_count_difference"])),
    ]
    return rows


ACCURACY_ROWS = [("mAP50-95", "map50_95"), ("mAP50", "map50"), ("precision", "precision"), ("recall", "recall")] + [
    (label + " " + size, key + "_" + size) for size in SIZES
    for label, key in (("mAP50-95", "map50_95"), ("recall", "recall"))]


def accuracy_table(r: Dict[str, Any]) -> Table:
    """compare --data: A's and B's accuracy on the dataset side by side, and B's change in points."""
    from edgekit.eval.compare import accuracy_figures

    acc = r["accuracy"]
    fa, fb = accuracy_figures(acc["a"]), accuracy_figures(acc["b"])
    table = Table(title="edgekit compare: accuracy on %s (%s%d images, eval's settings)" % (
        acc["dataset"], "%s split, " % acc["split"] if acc.get("split") else "", acc["a"]["images"]))
    table.add_column("measure")
    table.add_column("A: " + Path(r["a"]).name, justify="right")
    table.add_column("B: " + Path(r["b"]).name, justify="right")
    table.add_column("change", justify="right")
    absent = []
    for label, key in ACCURACY_ROWS:
        if fa[key] is None and fb[key] is None:  # no object of that size in the split
            if label.startswith("mAP"):
                absent.append(label.split()[-1])
            continue
        table.add_row(label, *["-" if v is None else "%.3f" % v for v in (fa[key], fb[key])],
                      points(acc["change"][key]), end_section=(key == "recall"))
    if absent:
        table.caption = "no %s objects in the split (COCO's areas: small < 32², large >= 96² pixels)" % \
            " or ".join(absent)
    return table


def points(change: Optional[float]) -> str:
    """A change of a 0..1 figure in points: -0.054 -> '-5.4 pts'; tiny changes keep two decimals."""
    if change is None:
        return "-"
    pts = 100 * change
    if pts == 0:
        return "0.0 pts"
    return ("%+.1f pts" if abs(pts) >= 0.05 else "%+.2f pts") % pts


SYNTHETIC_COMPARE_FRAMES = 8  # compare's default on synthetic frames (deterministic: more add little)
COMPARE_FRAMES = 50  # compare's default on a dataset or a --source


def load_frames_for(data: Optional[str], images: Optional[str], source: Optional[str],
                    limit: Optional[int]) -> List[np.ndarray]:
    """Frames for compare: a dataset's images, a --source, or synthetic frames; ``limit`` None takes the
    default (50, or 8 synthetic frames), a number given is honoured for every kind."""
    if limit is None:
        limit = COMPARE_FRAMES if data or (source and not str(source).startswith("synthetic://")) \
            else SYNTHETIC_COMPARE_FRAMES
    if data:
        from edgekit.eval.dataset import load_dataset

        frames = []
        for sample in load_dataset(data, images=images).samples:
            img = read_image(sample.image)
            if img is not None:
                frames.append(img)
            if len(frames) >= limit:
                break
        return frames
    if source:
        return load_frames(source, limit)
    return synthetic_frames(limit)
