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


def offered_load(step: Dict[str, Any]) -> str:
    """Closed loop: frames in flight; open loop: the arrival process and its rate (``poisson 20/s``)."""
    if step.get("mode") == "closed":
        return str(step["concurrency"])
    return "%s %g/s" % (step.get("arrivals", "constant"), step["rate"])


def step_label(step: Dict[str, Any]) -> str:
    """The offered load with the rate the open loop realised, and a mark on a step a signal cut short."""
    label = offered_load(step)
    if step.get("mode") != "closed" and step.get("sent_rate") is not None:
        label += " (%g/s sent)" % step["sent_rate"]
    return label + (" (interrupted)" if step.get("interrupted") else "")


def errors_cell(step: Dict[str, Any], limit: Optional[float]) -> str:
    if not step["errors"]:
        return "0"
    text = "%d (%.1f%%)" % (step["errors"], 100.0 * step["error_rate"])
    return text + (" over %g%%" % (100.0 * limit) if step.get("failed") and limit is not None else "")


def step_cells(step: Dict[str, Any], limit: Optional[float] = None) -> List[str]:
    codes = " ".join("%s:%d" % kv for kv in sorted(step["status_counts"].items()))
    return [step_label(step), str(step["requests"]), str(step["ok"]), errors_cell(step, limit), codes,
            "%.1f" % step["throughput_fps"],
            _f(_stat(step, "", "latency", "median")), _f(_stat(step, "", "latency", "p90")),
            _f(_stat(step, "", "latency", "p99")), _f(_stat(step, "client", "wait")),
            _f(_stat(step, "server", "total")), _f(_stat(step, "client", "overhead")),
            _f(_stat(step, "server", "queue")), _f(_stat(step, "server", "inference"))]


def steps_table(document: Dict[str, Any]) -> Table:
    model = document["model"]
    limit = document.get("plan", {}).get("max_error_rate")
    failed = [s for s in document["steps"] if s.get("failed")]
    caption = ("errors over --max-error-rate %g%% (non-200 answers and requests with no answer, of all sent): the "
               "FPS of those steps counts only the frames answered" % (100.0 * limit)) if failed else None
    table = Table(title="edgekit bench %s: %s (%s), %s; latency from send to JSON decoded, medians unless p90/p99"
                  % (document["url"], model["name"], model.get("backend"), document["destination"]),
                  caption=caption, caption_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("in flight", "status codes") else "right")
    for step in document["steps"]:
        table.add_row(*step_cells(step, limit), style="red" if step.get("failed") else None)
    return table


def served_input_shape(model: Dict[str, Any], hw) -> Optional[List[int]]:
    """One frame's input as the served model takes it (``/v1/info``: ``[B, 3, H, W]`` float, ``[B, H, W, 3]``
    uint8); a server from before it said so: float NCHW of ``input_hw``."""
    shape = model.get("input_shape")
    if isinstance(shape, list) and len(shape) == 4:
        return [1] + [int(d) for d in shape[1:]]
    return [1, 3] + list(hw) if hw and len(hw) == 2 else None


def report_rows(steps: List[Dict[str, Any]], server: Dict[str, Any], where: str,
                max_error_rate: float) -> List[Dict[str, Any]]:
    """A row per step with answered frames, for ``edgekit report``: the model's facts, the server's input size,
    the offered load, stage means and FPS, and the error rate (``failed`` past --max-error-rate)."""
    model, hw = server["model"], server.get("input_hw")
    rows = []
    for step in steps:
        if not step["ok"]:
            continue
        server_stages = step["server"]
        stages = {k: server_stages[k] for k in ("decode", "preprocess", "queue", "inference", "postprocess")
                  if k in server_stages}
        stages["e2e"] = step["latency"]
        rows.append({
            "name": model["name"], "model": model.get("file"), "sha256": model.get("sha256"),
            "backend": model.get("backend"), "device": model.get("device"), "precision": model.get("precision"),
            "trained": model.get("trained"), "params": model.get("params"), "gflops": model.get("gflops"),
            "pruned": bool(model.get("pruned")), "destination": where, "batch": 1,
            "input_shape": served_input_shape(model, hw),
            "in_flight": step["concurrency"] if step["mode"] == "closed" else offered_load(step),
            "sent_rate": step.get("sent_rate"), "requests": step["requests"], "errors": step["errors"],
            "error_rate": step["error_rate"], "max_error_rate": max_error_rate, "failed": step["failed"],
            "interrupted": bool(step.get("interrupted")), "stages": stages, "fps": step["throughput_fps"]})
    return rows


def to_csv(document: Dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["url", "destination", "model", "mode", "in_flight", "requests", "ok", "errors", "error_rate",
                     "failed", "throughput_fps", "group", "stage", "mean", "median", "p90", "p99", "min", "max"])
    for step in document["steps"]:
        head = [document["url"], document["destination"], document["model"]["name"], step["mode"],
                step_label(step), step["requests"], step["ok"], step["errors"], step["error_rate"],
                bool(step.get("failed")), step["throughput_fps"]]
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
            bad.append("%s: %d of %d" % (step_name(step), lost, step["requests"]))
        elif not step.get("ok"):
            refused.append("%s: %s" % (step_name(step), codes_text(step)))
    if bad:
        return ("requests got no answer (connection errors or timeouts) from %s in %s: is the server still "
                "running?" % (document["url"], "; ".join(bad)))
    if refused:
        examples = [e for step in document["steps"] for e in (step.get("error_examples") or {})]
        said = ("; the server said: %s" % examples[0] if examples
                else ": see the server's JSON errors (e.g. curl one frame)")
        return "no request succeeded at %s (%s)%s" % (document["url"], "; ".join(refused), said)
    over = ["%s %.1f%% (%s)" % (step_name(s), 100.0 * s["error_rate"], codes_text(s))
            for s in document["steps"] if s.get("failed")]
    if over:
        return ("error rate over --max-error-rate %g%% at %s: %s: the FPS of such a step counts only the frames "
                "answered, it is not the server's capacity (lower the load, or raise --max-error-rate)"
                % (100.0 * document["plan"]["max_error_rate"], document["url"], "; ".join(over)))
    return ""


def step_name(step: Dict[str, Any]) -> str:
    return "%s in flight" % step["concurrency"] if step.get("mode") == "closed" else step_label(step)


def codes_text(step: Dict[str, Any]) -> str:
    return ", ".join("%s x%d" % (code, n) for code, n in sorted(step["status_counts"].items(), key=str)
                     if code != "200")
