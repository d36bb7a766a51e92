"""The joined report as a rich table, Markdown, and a PNG plot (accuracy vs end-to-end latency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from rich.table import Table

from edgekit.bench.report import input_size_text
from edgekit.errors import EdgekitError
from edgekit.eval.gate import caption as gate_caption
from edgekit.lazy import lazy_import
from edgekit.manifest import atomic_path
from edgekit.report.join import pareto_front

COLUMNS = ("model", "input", "pruned", "precision", "backend", "destination", "in flight", "params (M)", "GFLOPs",
           "pre ms", "infer ms", "post ms", "e2e ms", "FPS", "dataset", "mAP50-95", "recall", "W", "mJ/frame")
# shown where a row of the table has a value (older results have none): by object size (COCO areas: small below
# 32x32 pixels), and the change against the model each row was made from (or --baseline), in points
OPTIONAL = ("mAP small", "mAP medium", "mAP large", "recall small", "vs", "mAP change", "small change")
MARKDOWN_ONLY = ("mAP medium", "mAP large")  # the terminal table is wide enough already
# the terminal table leaves these out where every row has the default (local runs, no power measured)
TERMINAL_DEFAULTS = {"destination": "local engine", "in flight": "-", "W": "-", "mJ/frame": "-"}
ORDER = COLUMNS[:COLUMNS.index("recall")] + ("mAP small", "mAP medium", "mAP large", "recall", "recall small", "vs",
                                             "mAP change", "small change") + COLUMNS[COLUMNS.index("W"):]
LEFT = ("model", "precision", "backend", "pruned", "destination", "dataset", "vs")


def _fmt(v, spec: str) -> str:
    return "-" if v is None else spec % v


def row_cells(row: Dict[str, Any], show_file: bool = False) -> Dict[str, str]:
    """One row's cells by column; ``show_file`` adds the model file to the name (two rows of one table share a
    name)."""
    lat = row.get("latency") or {}
    name = row.get("name", "?") + ("" if row.get("trained") else
                                    " (untrained)" if row.get("trained") is False else " (weights unknown)")
    if show_file and row.get("model"):
        name += " [%s]" % row["model"]
    power = row.get("power") or {}
    name += " (throttled)" if power.get("throttled") else ""
    cells = [name, input_size_text(row), "yes" if row.get("pruned") else "no",
             row.get("precision", "?"), row.get("backend", "?"),
             row.get("destination", "local engine"), str(row.get("in_flight", "-")) + (
                 " (%g/s sent)" % row["sent_rate"] if row.get("sent_rate") is not None else ""),
             _fmt(row["params"] / 1e6 if row.get("params") else None, "%.1f"), _fmt(row.get("gflops"), "%.1f"),
             _fmt(lat.get("preprocess"), "%.2f"), _fmt(lat.get("inference"), "%.2f"),
             _fmt(lat.get("postprocess"), "%.2f"), _fmt(lat.get("e2e"), "%.2f"), _fmt(row.get("fps"), "%.1f") + (
                 " (%.0f%% errors)" % (100 * row["error_rate"]) if row.get("failed") else ""),  # over --max-error-rate
             row.get("dataset_label") or "-", _fmt(row.get("map50_95"), "%.3f"), _fmt(row.get("recall"), "%.3f"),
             _fmt(power.get("mean_w"), "%.2f"), _fmt(power.get("energy_per_frame_mj"), "%.1f")]
    out = dict(zip(COLUMNS, cells))
    out.update({"mAP %s" % size: _fmt(row.get("map50_95_%s" % size), "%.3f") for size in ("small", "medium", "large")})
    out.update({"recall small": _fmt(row.get("recall_small"), "%.3f"), "vs": row.get("vs") or "-",
                "mAP change": _fmt(row.get("map50_95_change"), "%+.1f"),
                "small change": _fmt(row.get("map50_95_small_change"), "%+.1f")})
    return out


def columns(cells: List[Dict[str, str]], terminal: bool) -> List[str]:
    """The columns of one table: every column of COLUMNS (the terminal leaves out those where every row has the
    default), and each optional column some row has a value for."""
    def shown(col: str) -> bool:
        if col in OPTIONAL:
            return not (terminal and col in MARKDOWN_ONLY) and any(c[col] != "-" for c in cells)
        return not terminal or col not in TERMINAL_DEFAULTS or any(c[col] != TERMINAL_DEFAULTS[col] for c in cells)

    return [col for col in ORDER if shown(col)]


def shared_names(rows: List[Dict[str, Any]]) -> set:
    """Model names that more than one row of a table carries for the same destination, frames in flight and
    dataset (told apart by their file)."""
    keys = [(r.get("name"), r.get("destination"), r.get("in_flight"), r.get("dataset_label")) for r in rows]
    return {k[0] for k in keys if keys.count(k) > 1}


def notes(rows: List[Dict[str, Any]], cols: List[str]) -> List[str]:
    """Lines under a table: what the change columns compare, and each engine's accuracy gate."""
    lines = []
    if "mAP change" in cols:
        lines.append("%s against the model in vs, in points; vs: %s" % (
                         "mAP change, small change: mAP50-95 of all objects and of small ones" if "small change" in cols
                         else "mAP change: mAP50-95",
                         "the model chosen with --baseline" if any(r.get("vs") == "(baseline)" for r in rows) else
                         "the model each row was made from (an engine's ONNX, a Q/DQ ONNX's float ONNX, a pruned "
                         "model's baseline), the nearest one evaluated on the same data in this table"))
    gates = [gate_caption(r["accuracy_gate"], Path(str(r.get("model") or r.get("name"))).name)
             for r in rows if (r.get("accuracy_gate") or {}).get("candidate")]
    return lines + sorted(set(gates), key=gates.index)  # once per model, not once per dataset row


def tables(report: Dict[str, List[Dict[str, Any]]]) -> List[Table]:
    out = []
    for device, rows in report.items():
        shared = shared_names(rows)
        cells = [row_cells(row, row.get("name") in shared) for row in rows]
        cols = columns(cells, terminal=True)
        table = Table(title="edgekit report: %s (latency: mean ms per frame, end to end)" % device,
                      caption="\n".join(notes(rows, cols)) or None, caption_justify="left")
        for col in cols:
            # names wrap instead of being cut: two models must never read alike
            table.add_column(col, justify="left" if col in LEFT else "right",
                             overflow="fold" if col in ("model", "dataset", "vs") else "ellipsis")
        for c in cells:
            table.add_row(*(c[col] for col in cols))
        out.append(table)
    return out


def markdown(report: Dict[str, List[Dict[str, Any]]]) -> str:
    lines = []
    for device, rows in report.items():
        shared = shared_names(rows)
        cells = [row_cells(r, r.get("name") in shared) for r in rows]
        cols = columns(cells, terminal=False)
        lines += ["### %s" % device, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(c[col] for col in cols) + " |" for c in cells]
        below = notes(rows, cols)
        lines += [""] + ["- " + note for note in below] if below else []
        lines.append("")
    return "\n".join(lines)


def _latency(row: Dict[str, Any]):
    return (row.get("latency") or {}).get("e2e")


def _energy(row: Dict[str, Any]):
    return (row.get("power") or {}).get("energy_per_frame_mj")


def plot_problem(report: Dict[str, List[Dict[str, Any]]]) -> Optional[str]:
    """Why the report has nothing to plot (no row with both mAP and latency), or None."""
    rows = [r for rows in report.values() for r in rows]
    if not any(r.get("map50_95") is not None for r in rows):
        return "no eval results: the plot needs mAP (run edgekit eval MODEL --data DATA.yaml --json ... first)"
    if not any(r.get("map50_95") is not None and _latency(r) for r in rows):
        return ("no eval result has a bench result of the same model (file, backend, precision): the plot needs "
                "both mAP and latency (run edgekit bench on the evaluated model)")
    return None


def plot(report: Dict[str, List[Dict[str, Any]]], path) -> Path:
    """mAP50-95 against end-to-end latency, one series per device (and dataset, where several), Pareto front
    joined by a line; beside it mAP50-95 against energy per frame where the bench measured power. Nothing to
    plot (see ``plot_problem``) is an error, never an empty figure."""
    problem = plot_problem(report)
    if problem:
        raise EdgekitError(problem)
    matplotlib = lazy_import("matplotlib")
    matplotlib.use("Agg")
    plt = lazy_import("matplotlib.pyplot")
    energy = any(_energy(r) and r.get("map50_95") is not None for rows in report.values() for r in rows)
    fig, axes = plt.subplots(1, 2 if energy else 1, figsize=(15 if energy else 8, 5), dpi=120, squeeze=False)
    _scatter(axes[0][0], report, _latency, "end-to-end latency per frame (ms, lower is better)",
             "edgekit: accuracy vs practical speed")
    if energy:
        _scatter(axes[0][1], report, _energy, "energy per frame (mJ, lower is better)",
                 "edgekit: accuracy vs energy per frame")
    return save_figure(fig, path)


def save_figure(fig, path) -> Path:
    """A matplotlib figure as a PNG, written atomically (a temporary file renamed into place); closes it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(str(tmp), format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def _series(report: Dict[str, List[Dict[str, Any]]]) -> Dict[str, List[Dict[str, Any]]]:
    """Rows per plotted series: one per device, or per device and dataset when the report has several datasets
    (a Pareto front never mixes mAPs of different datasets)."""
    datasets = {r.get("dataset_label") for rows in report.values() for r in rows if r.get("map50_95") is not None}
    if len(datasets) <= 1:
        return dict(report)
    out: Dict[str, List[Dict[str, Any]]] = {}
    for device, rows in report.items():
        for r in rows:
            out.setdefault("%s, %s" % (device, r.get("dataset_label") or "-"), []).append(r)
    return out


def _scatter(ax, report: Dict[str, List[Dict[str, Any]]], x_of, xlabel: str, title: str) -> None:
    for device, rows in _series(report).items():
        rows = [r for r in rows if r.get("map50_95") is not None and x_of(r)]
        if not rows:
            continue
        pts = [(x_of(r), r["map50_95"]) for r in rows]
        sc = ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=device, zorder=3)
        front = pareto_front(pts)
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color=sc.get_facecolor()[0],
                alpha=0.7, zorder=2, label="Pareto front (%s)" % device.split(" @ ")[0][:30])
        ax.scatter([pts[i][0] for i in front], [pts[i][1] for i in front], s=120, facecolors="none",
                   edgecolors=sc.get_facecolor()[0], zorder=4)
        for k, (r, (x, y)) in enumerate(zip(rows, pts)):
            label = "%s %s%s%s" % (r["name"], r.get("precision", ""), " pruned" if r.get("pruned") else "",
                                   " (untrained)" if r.get("trained") is False else "")
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6 + 11 * (k % 3)), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mAP50-95 (higher is better)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.2, y=0.12)  # room for the point labels
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
