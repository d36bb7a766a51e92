"""The streams figure as a table, CSV and a plot (per-stream FPS and p99 end-to-end latency against K)."""

from __future__ import annotations

import csv
import io
from typing import Any, Dict

from rich.table import Table

COLUMNS = ("streams", "held", "batch", "fps_min", "fps_mean", "fps_total", "e2e_p50_max", "e2e_p99_max", "dropped",
           "inference_ms", "mux_wait_ms", "mean_frames", "padded", "why", "limited_by", "limited_line")


def steps_table(result: Dict[str, Any]) -> Table:
    table = Table(title="edgekit streams: %s, %dx%d at %g FPS per stream (%s, %s)" % (
        result["model_name"], result["width"], result["height"], result["fps"], result["backend"], result["precision"]))
    for col in ("K", "held", "FPS min", "FPS mean", "total FPS", "e2e p50", "e2e p99", "dropped", "inference ms",
                "mux wait ms", "frames/batch", "limited by"):
        table.add_column(col, justify="left" if col in ("held", "limited by") else "right")
    for s in result["steps"]:
        table.add_row(str(s["streams"]), "yes" if s["held"] else "no", "%.1f" % s["fps_min"],
                      "%.1f" % s["fps_mean"], "%.1f" % s["fps_total"], "%.0f" % s["e2e_p50_max"],
                      "%.0f" % s["e2e_p99_max"], str(s["dropped"]), "%.1f" % s["inference_ms"],
                      "%.1f" % s["mux_wait_ms"], "%.2f" % (s["mean_frames"] or 0), s["limited_by"])
    failed = [s for s in result["steps"] if not s["held"]]
    if failed:
        table.caption = "K=%d not held: %s" % (failed[-1]["streams"], failed[-1]["why"])
    return table


def to_csv(result: Dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "backend", "precision", "width", "height", "fps", *COLUMNS])
    for s in result["steps"]:
        writer.writerow([result["model_name"], result["backend"], result["precision"], result["width"],
                         result["height"], result["fps"], *(s.get(c) for c in COLUMNS)])
    return buf.getvalue()


def plot(result: Dict[str, Any], path: str):
    """Two panels against K: each stream's FPS (and the 95% line), each stream's p99 e2e (and the limit)."""
    from edgekit.lazy import lazy_import
    from edgekit.report.render import save_figure

    matplotlib = lazy_import("matplotlib")
    matplotlib.use("Agg")
    plt = lazy_import("matplotlib.pyplot")
    fig, (ax_fps, ax_p99) = plt.subplots(1, 2, figsize=(10, 4))
    for s in result["steps"]:
        ks = [s["streams"]] * len(s["per_stream"])  # one dot per stream (dots of equal streams overlap)
        ax_fps.scatter(ks, [p["fps"] for p in s["per_stream"]], s=14, color="tab:blue", alpha=0.6)
        ax_p99.scatter(ks, [p["e2e_p99"] or 0 for p in s["per_stream"]], s=14, color="tab:orange", alpha=0.6)
    ks = [s["streams"] for s in result["steps"]]
    ax_fps.plot(ks, [s["fps_min"] for s in result["steps"]], color="tab:blue", label="slowest stream")
    ax_fps.axhline(0.95 * result["fps"], color="gray", ls="--", label="95%% of %g FPS" % result["fps"])
    ax_p99.plot(ks, [s["e2e_p99_max"] for s in result["steps"]], color="tab:orange", label="worst stream")
    ax_p99.axhline(result["max_p99_ms"], color="gray", ls="--", label="limit %g ms" % result["max_p99_ms"])
    ax_fps.set(xlabel="streams (K)", ylabel="FPS per stream", title="FPS of each stream")
    ax_p99.set(xlabel="streams (K)", ylabel="p99 end to end (ms)", title="p99 latency of each stream")
    ax_fps.set_ylim(0, 1.1 * max([result["fps"]] + [s["fps_mean"] for s in result["steps"]]))
    ax_p99.set_ylim(0, 1.1 * max([result["max_p99_ms"]] + [s["e2e_p99_max"] for s in result["steps"]]))
    for ax in (ax_fps, ax_p99):
        ax.set_xticks(ks)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(result["headline"], fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
