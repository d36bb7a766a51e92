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


def report_row(r: dict, destination: str, in_flight: str) -> List[str]:
    """One row of edgekit report's table (stage means, as the report gives them)."""
    return [model_label(r), yes_no(r.get("pruned")), r["precision"], r["backend"], destination, in_flight,
            num(r["params"] / 1e6, 1), num(r["gflops"], 1), num(mean_ms(r, "preprocess")),
            num(mean_ms(r, "inference")), num(mean_ms(r, "postprocess")), num(mean_ms(r, "e2e")), num(r["fps"], 1)]
