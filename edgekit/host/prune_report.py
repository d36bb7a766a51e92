"""The pruning tradeoff, measured: baseline vs pruned side by side, each number with its change.

A FLOPs cut is not a latency cut: the table ends with latency-reduction / FLOPs-reduction (the reference
experiment: 19.6% / 34.4% = 0.58).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from rich.table import Table

from edgekit.bench import BenchConfig, bench_models
from edgekit.eval.dataset import load_dataset
from edgekit.eval.evaluate import evaluate
from edgekit.runtime import open_runner


def measure(baseline: str, pruned: str, data: str, threads: Optional[int], iterations: int = 50,
            warmup: int = 5) -> Dict[str, Any]:
    bench = bench_models([baseline, pruned], BenchConfig(backend="onnxruntime", warmup=warmup,
                                                         iterations=iterations, threads=threads))
    evals = []
    for model in (baseline, pruned):
        with open_runner(model, "onnxruntime", threads=threads) as runner:
            evals.append(evaluate(runner, load_dataset(data)))
    rows = {}
    for name, b, e in zip(("baseline", "pruned"), bench, evals):
        rows[name] = {"params": b["params"], "gflops": b["gflops"], "latency_ms": b["stages"]["inference"]["mean"],
                      "e2e_ms": b["stages"]["e2e"]["mean"], "map50_95": e["metrics"]["map50_95"],
                      "recall": e["metrics"]["recall"]}
    base, new = rows["baseline"], rows["pruned"]
    flops_cut = 1 - new["gflops"] / base["gflops"]
    latency_cut = 1 - new["latency_ms"] / base["latency_ms"]
    return {"rows": rows, "flops_reduction": round(flops_cut, 4), "latency_reduction": round(latency_cut, 4),
            "latency_per_flops_reduction": round(latency_cut / flops_cut, 3) if flops_cut > 0 else None,
            "bench": bench, "eval": evals}


def table(m: Dict[str, Any], title: str) -> Table:
    base, new = m["rows"]["baseline"], m["rows"]["pruned"]
    t = Table(title=title)
    for col in ("", "baseline", "pruned", "change"):
        t.add_column(col, justify="left" if not col else "right")

    def add(label, key, fmt, scale=1.0):
        a, b = base[key] * scale, new[key] * scale
        change = "%+.1f%%" % (100 * (b / a - 1)) if a else "-"
        t.add_row(label, fmt % a, fmt % b, change)

    add("params (M)", "params", "%.2f", 1e-6)
    add("GFLOPs", "gflops", "%.2f")
    add("inference (ms)", "latency_ms", "%.2f")
    add("end to end (ms)", "e2e_ms", "%.2f")
    add("mAP50-95", "map50_95", "%.3f")
    add("recall", "recall", "%.3f")
    ratio = m["latency_per_flops_reduction"]
    shown = "-" if ratio is None else "%.2f" % ratio
    t.caption = "latency reduction / FLOPs reduction = %s (reference: 0.58)" % shown
    return t
