"""Tables and files for eval and compare results."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from rich.table import Table

from edgekit.bench.frames import load_frames, synthetic_frames
from edgekit.vision.images import read_image


def metrics_table(result: Dict[str, Any]) -> Table:
    from edgekit.eval.evaluate import metrics_rows

    label = "" if result["trained"] else " (%s)" % ("untrained" if result["trained"] is False else "weights unknown")
    table = Table(title="edgekit eval: %s%s on %s (%s/%s)" % (
        result["name"], label, result["dataset"], result["backend"], result["device"]))
    for col in ("class", "images", "instances", "P", "R", "mAP50", "mAP50-95"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for i, row in enumerate(metrics_rows(result)):
        table.add_row(*row, end_section=(i == 0))
    problems = result.get("problems") or {}
    notes = ["skipped: " + ", ".join("%d %s" % (n, k.replace("_", " ")) for k, n in problems.items())
             ] if problems else []
    if result.get("class_mismatch"):
        notes.append("classes differ: " + result["class_mismatch"])
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def to_csv(result: Dict[str, Any]) -> str:
    from edgekit.eval.evaluate import metrics_rows

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "backend", "class", "images", "instances", "precision", "recall", "map50", "map50_95"])
    for row in metrics_rows(result):
        writer.writerow([result["model"], result["backend"], *row])
    return buf.getvalue()


def compare_table(r: Dict[str, Any]) -> Table:
    raw, det = r["raw"], r["detections"]
    table = Table(title="edgekit compare: %s vs %s (%d frames)" % (Path(r["a"]).name, Path(r["b"]).name, r["frames"]))
    table.add_column("measure")
    table.add_column("value", justify="right")
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
    for k, v in rows:
        table.add_row(k, v)
    table.caption = "identical outputs" if r["identical"] else ""
    return table


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
