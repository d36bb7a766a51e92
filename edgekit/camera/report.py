"""The camera loop's summary: a table of per-stage percentiles and the loop's numbers, JSON and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any, Dict

from rich.table import Table

from edgekit.camera.analytics import count_line
from edgekit.power import report as power_report
from edgekit.runtime.threads import ThreadPlan

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


def streams_table(s: Dict[str, Any]) -> Table:
    """One row per stream and the total: what users of several cameras read first."""
    batch = s["batch"]
    table = Table(title="%d sources, batch %s (%s frames per batch on average, %d padded, %d pushed by the %.0f ms "
                  "timeout)" % (s["sources"], batch["size"] or "dynamic", batch["mean_frames"], batch["padded"],
                                batch["timeouts"], batch["timeout_ms"]))
    for col in ("#", "source", "status", "FPS", "e2e p50", "e2e p99", "mux wait", "frames", "dropped", "reconnects",
                "stalls", "batches (frames: count)", "counts"):
        table.add_column(col, justify="left" if col in ("source", "status", "counts", "batches (frames: count)")
                         else "right")
    for st in s["streams"]:
        table.add_row(str(st["index"]), st["name"], st["status"], "%.1f" % st["fps"], _ms(st["e2e_p50"]),
                      _ms(st["e2e_p99"]), _ms(_mean(st, "mux_wait")), str(st["frames"]), str(st["dropped"]),
                      str(st["reconnects"]),
                      str(st["stalls"]), " ".join("%s:%d" % kv for kv in st["batch_frames"].items()),
                      count_line(st.get("counts")))
    e2e = s["stages"].get("e2e") or {}
    table.add_row("", "total", "", "%.1f" % s["fps"], _ms(e2e.get("median")), _ms(e2e.get("p99")),
                  _ms((s["stages"].get("mux_wait") or {}).get("mean")), str(s["frames"]),
                  str(s["dropped"]), str(s["reconnects"]), str(s["stalls"]), "%d batches" % batch["batches"], "")
    return table


def _mean(stream: Dict[str, Any], stage: str):
    st = (stream.get("stages") or {}).get(stage)
    return st["mean"] if st else None


def _ms(v) -> str:
    return "-" if v is None else "%.1f" % v


def summary_lines(s: Dict[str, Any]) -> str:
    engine = ("%.1f" % s["engine_fps"]) if s.get("engine_fps") else "-"
    ratio = ("%.2f" % s["loop_vs_engine"]) if s.get("loop_vs_engine") else "-"
    power = [line for line in (power_report.line(s.get("power")),
                               power_report.throttle_warning(s.get("power"), s.get("model_name", "the model")))
             if line]
    threads = [ThreadPlan(**s["ort_threads"]).line()] if s.get("ort_threads") else []
    return "\n".join([_loop_lines(s, engine, ratio)] + threads + power)


def _loop_lines(s: Dict[str, Any], engine: str, ratio: str) -> str:
    bad = s.get("bad_files") or []
    named = " (%s%s)" % (", ".join(bad[:3]), ", ..." if len(bad) > 3 else "") if bad else ""
    return (
        "loop FPS %.1f | engine-only FPS %s | loop/engine %s | %s\n"
        "%d frames in %.1f s | captured %d | dropped %d | bad frames %d%s | reconnects %d | stalls %d\n"
        "jitter %.1f ms | RSS %.0f -> %.0f MB | stopped by %s%s"
        % (s["fps"], engine, ratio, "pipelined" if s["pipelined"] else "sequential", s["frames"], s["duration_s"],
           s["captured"], s["dropped"], s["bad_frames"], named, s["reconnects"], s["stalls"], s["jitter_ms"],
           s["rss_mb"]["start"], s["rss_mb"]["end"], s["stopped_by"],
           " | " + count_line(s["counts"]) if s.get("counts") and not s.get("streams") else "")
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
    for st in summary.get("streams") or []:  # several sources: each stream's end-to-end latency and FPS
        e2e = st["stages"].get("e2e")
        if e2e:
            writer.writerow([summary["model"], st["name"], summary["backend"], "e2e[stream %d]" % st["index"],
                             *(e2e[c] for c in COLUMNS), e2e["count"], st["fps"], summary.get("engine_fps"),
                             *("",) * 5])
    return buf.getvalue()

