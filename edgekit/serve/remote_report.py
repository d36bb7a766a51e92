"""The remote bench's results: a table per concurrency step (like trtexec's summary and perf_analyzer's),
CSV, a plot of throughput and p99 against frames in flight, and the one-line failure summary."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, List, Optional

from rich.table import Table

from edgekit.lazy import lazy_import
from edgekit.report.render import save_figure

COLUMNS = ("in flight", "requests", "ok", "errors", "status codes", "FPS", "p50 ms", "p90 ms", "p99 ms",
           "wait ms", "server ms", "overhead ms", "queue ms", "infer ms")


def _stat(step: Dict[str, Any], group: str, stage: str, key: str = "median") -> Optional[float]:
    block = step.get(group, {}) if group else step
    value = (block.get(stage) or {}).get(key) if isinstance(block, dict) else None
    return value


def _f(v) -> str:
    return "-" if v is None else "%.2f" % v


def step_label(step: Dict[str, Any]) -> str:
    return str(step["concurrency"]) if step.get("mode") == "closed" else "%g/s %s" % (step["rate"], step["arrivals"])


def step_cells(step: Dict[str, Any]) -> List[str]:
    codes = " ".join("%s:%d" % kv for kv in sorted(step["status_counts"].items()))
    return [step_label(step), str(step["requests"]), str(step["ok"]), str(step["errors"]), codes,
            "%.1f" % step["throughput_fps"],
            _f(_stat(step, "", "latency", "median")), _f(_stat(step, "", "latency", "p90")),
            _f(_stat(step, "", "latency", "p99")), _f(_stat(step, "client", "wait")),
            _f(_stat(step, "server", "total")), _f(_stat(step, "client", "overhead")),
            _f(_stat(step, "server", "queue")), _f(_stat(step, "server", "inference"))]


def steps_table(document: Dict[str, Any]) -> Table:
    model = document["model"]
    table = Table(title="edgekit bench %s: %s (%s), %s; latency from send to JSON decoded, medians unless p90/p99"
                  % (document["url"], model["name"], model.get("backend"), document["destination"]))
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("in flight", "status codes") else "right")
    for step in document["steps"]:
        table.add_row(*step_cells(step))
    return table


def to_csv(document: Dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["url", "destination", "model", "mode", "in_flight", "requests", "ok", "errors", "error_rate",
                     "throughput_fps", "group", "stage", "mean", "median", "p90", "p99", "min", "max"])
    for step in document["steps"]:
        head = [document["url"], document["destination"], document["model"]["name"], step["mode"],
                step_label(step), step["requests"], step["ok"], step["errors"], step["error_rate"],
                step["throughput_fps"]]
        blocks = [("client", "latency", step.get("latency"))]
        blocks += [("client", k, v) for k, v in (step.get("client") or {}).items()]
        blocks += [("server", k, v) for k, v in (step.get("server") or {}).items()]
        for group, stage, s in blocks:
            if s:
                writer.writerow(head + [group, stage] + [s[k] for k in ("mean", "median", "p90", "p99", "min",
                                                                         "max")])
        if not step["ok"]:
            writer.writerow(head + ["client", "latency"] + [""] * 6)
    return buf.getvalue()


def plot(document: Dict[str, Any], path) -> Path:
    """Throughput (frames/s) and p99 latency against frames in flight, closed-loop steps."""
    matplotlib = lazy_import("matplotlib")
    matplotlib.use("Agg")
    plt = lazy_import("matplotlib.pyplot")
    steps = [s for s in document["steps"] if s.get("mode") == "closed" and s["ok"]]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    x = [s["concurrency"] for s in steps]
    ax.plot(x, [s["throughput_fps"] for s in steps], "o-", color="tab:blue", label="throughput (frames/s)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x)
    ax.set_xticklabels([str(v) for v in x])
    ax.set_ylim(bottom=0, top=max(s["throughput_fps"] for s in steps) * 1.15 if steps else None)
    ax.set_xlabel("frames in flight")
    ax.set_ylabel("throughput (frames/s)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(x, [s["latency"]["p99"] for s in steps], "s--", color="tab:red", label="p99 latency (ms)")
    ax2.set_ylabel("p99 latency (ms)", color="tab:red")
    ax2.set_ylim(bottom=0)
    ax.set_title("%s %s (%s)" % (document["model"]["name"], document["destination"], document["url"]), fontsize=9)
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


def failure_line(document: Dict[str, Any]) -> str:
    """One line when requests failed to connect or time out (the server went away), or when a step got no
    successful answer at all (every request refused: 401, 413, 503 ...), else empty."""
    bad, refused = [], []
    for step in document["steps"]:
        lost = sum(n for code, n in step["status_counts"].items() if code in ("connection error", "timeout"))
        if lost:
            bad.append("%s: %d of %d" % (step_label(step), lost, step["requests"]))
        elif not step.get("ok"):
            codes = ", ".join("%s x%d" % (code, n) for code, n in sorted(step["status_counts"].items(), key=str))
            refused.append("%s: %s" % (step_label(step), codes))
    if bad:
        return ("requests got no answer (connection errors or timeouts) from %s in %s: is the server still "
                "running?" % (document["url"], "; ".join(bad)))
    if refused:
        return ("no request succeeded at %s (%s): see the server's JSON errors (e.g. curl one frame)"
                % (document["url"], "; ".join(refused)))
    return ""
