"""Formatting shared by the results tables: loading a committed file, Markdown tables, numbers as the README
printed them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional, Sequence


def load(root: Path, rel: str):
    with open(root / rel, encoding="utf-8") as f:
        return json.load(f)


def table(header: Sequence[str], rows: List[Sequence[object]], align: str = "") -> str:
    """A Markdown table; ``align`` is one letter per column (l/r), default left."""
    marks = ["---:" if (align[i:i + 1] == "r") else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def num(value, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals; ``-`` for a missing value."""
    return "-" if value is None else "%.*f" % (digits, value)


ms = num  # stage times in ms: the same formatting


def pct(value, digits: int = 1) -> str:
    """A signed percentage change: ``-24.6%``, ``+0.0%``."""
    return "%+.*f%%" % (digits, value)


def millions(n) -> str:
    return "%.1fM" % (n / 1e6)


def span(values: Sequence[float], digits: int = 2) -> str:
    """``low-high`` of per-round values."""
    return "%s-%s" % (num(min(values), digits), num(max(values), digits))


def model_label(result: dict) -> str:
    return result["name"] + ("" if result.get("trained", True) else " (untrained)")


def pretty(name: str) -> str:
    """``yolov8n`` -> ``YOLOv8n``."""
    return re.sub(r"^yolo", "YOLO", name)


def yes_no(flag) -> str:
    return "yes" if flag else "no"


def mean_ms(result: dict, stage: str) -> Optional[float]:
    st = result.get("stages", {}).get(stage)
    return None if st is None else st["mean"]


def report_table(root: Path, folder: str, columns: Sequence[str], align: str) -> str:
    """The rows ``edgekit report`` makes of one committed results folder (its join of bench and eval by model, its
    lineage columns, its cell formats), in the given columns of its Markdown."""
    from edgekit.report import join_results, load_documents
    from edgekit.report.render import row_cells, shared_names

    (rows,) = join_results(load_documents([str(root / folder)])).values()  # one device per folder
    shared = shared_names(rows)
    cells = [row_cells(r, r.get("name") in shared) for r in rows]
    return table(columns, [[c[col] for col in columns] for c in cells], align)


def bench_cells(result: dict) -> List[str]:
    """A bench result's params, GFLOPs, stage medians, e2e mean / p99 and FPS, as the README's bench tables
    gave them."""
    st = result["stages"]
    return [millions(result["params"]), "%.1f" % result["gflops"], ms(st["preprocess"]["median"]),
            ms(st["inference"]["median"], 1), ms(st["postprocess"]["median"]),
            "%s / %s" % (ms(st["e2e"]["mean"], 1), ms(st["e2e"]["p99"], 1)), "%.1f" % result["fps"]]
