"""The camera loop's summary: a table of per-stage percentiles and the loop's numbers, JSON and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any, Dict

from rich.table import Table

from edgekit.power import report as power_report

COLUMNS = ("mean", "median", "p90", "p99", "max")


def summary_table(s: Dict[str, Any]) -> Table:
    clock = "CUDA events" if s.get("clock") == "cuda" else "host clock"
    table = Table(title="edgekit camera: %s on %s (ms, %s)" % (s["model_name"], s["source"], clock))
    table.add_column("stage")
    for col in COLUMNS + ("frames",):
        table.add_column(col, justify="right")
    for stage, st in s["stages"].items():
        table.add_row(stage, *("%.2f" % st[c] for c in COLUMNS), str(st["count"]))
    return table


def summary_lines(s: Dict[str, Any]) -> str:
    engine = ("%.1f" % s["engine_fps"]) if s.get("engine_fps") else "-"
    ratio = ("%.2f" % s["loop_vs_engine"]) if s.get("loop_vs_engine") else "-"
    power = [line for line in (power_report.line(s.get("power")),
                               power_report.throttle_warning(s.get("power"), s.get("model_name", "the model")))
             if line]
    return "\n".join([_loop_lines(s, engine, ratio)] + power)


def _loop_lines(s: Dict[str, Any], engine: str, ratio: str) -> str:
    bad = s.get("bad_files") or []
    named = " (%s%s)" % (", ".join(bad[:3]), ", ..." if len(bad) > 3 else "") if bad else ""
    return (
        "loop FPS %.1f | engine-only FPS %s | loop/engine %s | %s\n"
        "%d frames in %.1f s | captured %d | dropped %d | bad frames %d%s | reconnects %d | stalls %d\n"
        "jitter %.1f ms | RSS %.0f -> %.0f MB | stopped by %s"
        % (s["fps"], engine, ratio, "pipelined" if s["pipelined"] else "sequential", s["frames"], s["duration_s"],
           s["captured"], s["dropped"], s["bad_frames"], named, s["reconnects"], s["stalls"], s["jitter_ms"],
           s["rss_mb"]["start"], s["rss_mb"]["end"], s["stopped_by"])
        + ("\n" + s["bottleneck"]["line"] if s.get("bottleneck") else "")
    )


def to_csv(summary: Dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "source", "backend", "stage", *COLUMNS, "count", "loop_fps", "engine_fps",
                     "power_w_mean", "power_w_peak", "energy_per_frame_mj", "frames_per_joule", "throttled"])
    for stage, st in summary["stages"].items():
        writer.writerow([summary["model"], summary["source"], summary["backend"], stage, *(st[c] for c in COLUMNS),
                         st["count"], summary["fps"], summary.get("engine_fps"),
                         *(power_report.csv_cells(summary) if stage == "e2e" else ("",) * 5)])
    return buf.getvalue()

