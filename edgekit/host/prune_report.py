"""The pruning tradeoff, measured: baseline vs pruned side by side, each number with its change.

Speed is read end to end, NMS included: a pruned (fine-tuned) model can pass many more boxes to NMS than its
baseline, so a faster network need not make a faster pipeline (the reference experiment on YOLOv8n: inference
0.775x, but postprocess 3.1 ms vs 0.3 ms, end to end equal). The table shows each stage with the boxes into
NMS per frame, and accuracy (mAP50-95, mAP50, recall, and for small objects, where pruning hurts most) with its
change in points.

A FLOPs cut is not a latency cut: the caption gives latency-reduction / FLOPs-reduction (the reference
experiment: 19.6% / 34.4% = 0.58) and the same for end to end.

Each measurement (bench and eval of each model) runs on its own: one that fails leaves the others, which are
shown ("-" for what is missing) and saved; the caller then ends with one line naming what failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from rich.table import Table

from edgekit.errors import EdgekitError
from edgekit.eval.metrics import size_figures

# (key in a row, label, format, scale for display, change: "percent" relative or "points" for accuracy)
FIGURES: Tuple[Tuple[str, str, str, float, str], ...] = (
    ("params", "params (M)", "%.2f", 1e-6, "percent"),
    ("gflops", "GFLOPs", "%.2f", 1.0, "percent"),
    ("preprocess_ms", "preprocess (ms)", "%.2f", 1.0, "percent"),
    ("latency_ms", "inference (ms)", "%.2f", 1.0, "percent"),
    ("postprocess_ms", "NMS/postprocess (ms)", "%.2f", 1.0, "percent"),
    ("e2e_ms", "end to end (ms)", "%.2f", 1.0, "percent"),
    ("candidates_per_frame", "boxes into NMS per frame", "%.1f", 1.0, "percent"),
    ("map50_95", "mAP50-95", "%.3f", 1.0, "points"),
    ("map50", "mAP50", "%.3f", 1.0, "points"),
    ("recall", "recall", "%.3f", 1.0, "points"),
    ("map50_95_small", "mAP50-95 small objects", "%.3f", 1.0, "points"),
    ("recall_small", "recall small objects", "%.3f", 1.0, "points"),
)
STAGES = {"preprocess_ms": "preprocess", "latency_ms": "inference", "postprocess_ms": "postprocess", "e2e_ms": "e2e"}


def measure(baseline: str, pruned: str, data: str, threads: Optional[int], iterations: int = 50,
            warmup: int = 5) -> Dict[str, Any]:
    """Bench both, then eval both, each step on its own: a failed step is recorded in ``failed`` and the rest
    still run. Ctrl-C stops the measuring (``stopped``: the signal), keeping what finished."""
    from edgekit.bench import BenchConfig, bench_models
    from edgekit.bench.interrupt import signal_name, signal_of
    from edgekit.eval.dataset import load_dataset
    from edgekit.eval.evaluate import evaluate
    from edgekit.host.finetune import reason
    from edgekit.runtime import open_runner

    source = bench_source(data, load_dataset)

    def bench(model):
        return bench_models([model], BenchConfig(backend="onnxruntime", warmup=warmup, iterations=iterations,
                                                 threads=threads, source=source))[0]

    def evaluate_one(model):
        with open_runner(model, "onnxruntime", threads=threads) as runner:
            return evaluate(runner, load_dataset(data))

    models = {"baseline": baseline, "pruned": pruned}
    done: Dict[str, Dict[str, Any]] = {"bench": {}, "eval": {}}
    failed: List[Dict[str, Any]] = []
    stopped = None
    for step, run in (("bench", bench), ("eval", evaluate_one)):
        for name, model in models.items():
            if stopped is not None:
                break
            try:
                done[step][name] = run(model)
            except KeyboardInterrupt as exc:  # Ctrl-C: what finished is shown and saved, the rest is not run
                stopped = signal_of(exc)
                partial = getattr(exc, "results", None)  # a bench cut short keeps the iterations it timed
                if partial:
                    done[step][name] = partial[0]
                failed.append(failure(step, model, "stopped by %s" % signal_name(stopped)))
            except Exception as exc:  # noqa: BLE001 - a late failure must not lose the other measurements
                failed.append(failure(step, model, reason(exc), exc))
    m = figures(done["bench"], done["eval"])
    m.update(failed=failed, stopped=stopped, bench=[done["bench"][n] for n in models if n in done["bench"]],
             eval=[done["eval"][n] for n in models if n in done["eval"]])
    return m


def bench_source(data: str, load_dataset) -> Optional[str]:
    """The folder of the dataset's validation images: NMS time depends on what the frames hold (a trained model
    finds next to nothing in synthetic frames), so the speed is measured on real ones. None (synthetic frames)
    when the dataset cannot be read: its eval then says why."""
    try:
        samples = load_dataset(data).samples
    except Exception:  # noqa: BLE001 - the eval step names the problem
        return None
    folder = next((s.image.parent for s in samples if s.image.is_file()), None)
    return str(folder) if folder is not None else None


def failure(step: str, model: str, why: str, exc: Optional[BaseException] = None) -> Dict[str, Any]:
    """One entry of ``failed``; a bug (not a user error) keeps its traceback here, in the JSON, not on screen."""
    entry = {"step": step, "model": model, "name": Path(model).name, "reason": why}
    if exc is not None and not isinstance(exc, EdgekitError):
        import traceback

        entry["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return entry


def row(b: Optional[Dict[str, Any]], e: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """One model's figures from its bench and eval results (either may be None: its figures are None)."""
    r: Dict[str, Any] = {"params": None, "gflops": None}
    for source in (e, b):  # the manifest's counts, from whichever result there is
        if source:
            r["params"], r["gflops"] = source.get("params"), source.get("gflops")
    stages = (b or {}).get("stages") or {}
    for key, stage in STAGES.items():
        r[key] = stages[stage]["mean"] if stage in stages else None
    r["candidates_per_frame"] = (b or {}).get("candidates_per_frame")
    metrics = (e or {}).get("metrics") or {}
    for key in ("map50_95", "map50", "recall"):
        r[key] = metrics.get(key)
    r.update(size_figures(metrics))  # all None without an eval (or one without figures by size)
    return r


def change(a: Optional[float], b: Optional[float], kind: str) -> Optional[float]:
    """Percent change of ``b`` against ``a``, or the difference in points (x100) for accuracy; None if unknown."""
    if a is None or b is None:
        return None
    if kind == "points":
        return round(100 * (b - a), 2)
    return round(100 * (b / a - 1), 2) if a else None


def reduction(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(1 - b / a, 4) if a and b is not None else None


def ratio(x: Optional[float], y: Optional[float]) -> Optional[float]:
    return round(x / y, 3) if x is not None and y else None


def figures(bench: Dict[str, Dict[str, Any]], evals: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Rows, changes and reductions from what was measured (``bench``/``evals``: "baseline"/"pruned" -> result)."""
    rows = {name: row(bench.get(name), evals.get(name)) for name in ("baseline", "pruned")}
    base, new = rows["baseline"], rows["pruned"]
    changes = {}
    for key, _, _, _, kind in FIGURES:
        changes[key] = {kind: change(base[key], new[key], kind)}
    flops_cut = reduction(base["gflops"], new["gflops"])
    latency_cut = reduction(base["latency_ms"], new["latency_ms"])
    e2e_cut = reduction(base["e2e_ms"], new["e2e_ms"])
    positive = flops_cut if flops_cut and flops_cut > 0 else None
    return {"rows": rows, "changes": changes, "flops_reduction": flops_cut, "latency_reduction": latency_cut,
            "e2e_reduction": e2e_cut, "latency_per_flops_reduction": ratio(latency_cut, positive),
            "e2e_per_flops_reduction": ratio(e2e_cut, positive)}


def table(m: Dict[str, Any], title: str, baseline_label: str = "baseline", baseline_note: str = "") -> Table:
    base, new = m["rows"]["baseline"], m["rows"]["pruned"]
    t = Table(title=title)
    for col in ("", baseline_label, "pruned", "change"):
        t.add_column(col, justify="left" if not col else "right")
    for key, label, fmt, scale, kind in FIGURES:
        a, b = base.get(key), new.get(key)
        if key == "preprocess_ms" and a is None and b is None:
            continue  # optional: shown when measured
        moved = m["changes"][key][kind]
        shown = "-" if moved is None else ("%+.1f pts" % moved if kind == "points" else "%+.1f%%" % moved)
        t.add_row(label, "-" if a is None else fmt % (a * scale), "-" if b is None else fmt % (b * scale), shown)

    def shown(x):
        return "-" if x is None else "%.2f" % (round(x, 2) or 0.0)  # never "-0.00"

    lines = ["latency reduction / FLOPs reduction = %s (inference alone; reference: 0.58); end to end, NMS "
             "included: %s" % (shown(m["latency_per_flops_reduction"]), shown(m["e2e_per_flops_reduction"])),
             "accuracy changes in points (x100); boxes into NMS: above the confidence threshold, mean per frame"
             " of the bench's frames (%s)" % bench_frames(m)]
    if baseline_note:
        lines.append(baseline_note)
    for f in m.get("failed") or []:
        lines.append("-: not measured, %s of %s did not finish: %s" % (f["step"], f["name"], f["reason"]))
    t.caption = "\n".join(lines)
    t.caption_justify = "left"
    return t


def bench_frames(m: Dict[str, Any]) -> str:
    sources = sorted({str(r.get("source")) for r in m.get("bench") or []})
    return ", ".join(sources) if sources else "not benched"


def failure_line(result: Dict[str, Any], m: Dict[str, Any], saved: List[str], no_save: bool = False) -> str:
    """The last line of a prune whose measuring failed: what is written, what failed and why, where the rest is."""
    what = " and ".join("%s of %s: %s" % (f["step"], f["name"], f["reason"]) for f in m["failed"])
    have = " and ".join(k for k in ("bench", "eval") if m.get(k))
    if not have:
        where = "nothing was measured"
    elif no_save:
        where = "the %s figures are in the table above (--no-save)" % have
    elif saved:
        where = "the %s figures above are saved in %s" % (have, ", ".join(saved))
    else:
        where = "the %s figures above could not be saved" % have
    return "pruned model written (%s; baseline %s); measuring failed in %s; %s" % (
        result["pruned"], result["baseline"], what, where)
