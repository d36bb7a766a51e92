"""``edgekit tradeoff``: the one command to choose a model for a device.

For each model (baseline and pruned weights) and precision: export, bench and eval on the same frames and
data, then one report (table, Markdown, plot). Results land in one folder so ``edgekit report`` can re-read
them and join them with results from other devices.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from edgekit.bench import BenchConfig, bench_models
from edgekit.bench import report as bench_report
from edgekit.errors import EdgekitError
from edgekit.eval.dataset import load_dataset
from edgekit.eval.evaluate import evaluate
from edgekit.host.export import export
from edgekit.log import info, phase
from edgekit.manifest import write_json_atomic, write_text_atomic
from edgekit.report import join_results, load_documents
from edgekit.report.render import markdown, plot
from edgekit.runtime import open_runner

ENGINE_PRECISIONS = ("fp16", "int8", "best")


def check_precisions(precisions: Sequence[str]) -> None:
    """Only what can be measured as asked: FP16/INT8 need TensorRT engines; nothing is silently swapped."""
    needs_engine = [p for p in precisions if p in ENGINE_PRECISIONS]
    if needs_engine:
        raise EdgekitError(
            "--precisions %s needs TensorRT engines from edgekit build, which this edgekit does not have yet: "
            "run --precisions fp32 (ONNX Runtime) for now" % " ".join(needs_engine))


def tradeoff(models: Sequence[str], data: str, pruned: Sequence[str] = (), precisions: Sequence[str] = ("fp32",),
             imgsz: int = 640, out: Optional[str] = None, warmup: int = 5, iterations: int = 50,
             threads: Optional[int] = None, download: bool = False) -> Dict[str, Path]:
    check_precisions(precisions)
    if not models and not pruned:
        raise EdgekitError("give at least one model: --models yolov8n.pt yolov8m.pt [--pruned pruned.pt]")
    load_dataset(data)  # a bad dataset fails before any export starts
    out_dir = Path(out or Path("benchmarks") / ("tradeoff-%s" % time.strftime("%Y%m%d-%H%M%S")))
    onnx_paths: List[str] = []
    for weights, is_pruned in [(m, False) for m in models] + [(p, True) for p in pruned]:
        name = Path(weights).stem + ("-pruned" if is_pruned and "prun" not in Path(weights).stem else "")
        onnx_paths.append(str(export(weights=weights, imgsz=imgsz, out=str(out_dir / "models"), name=name + ".onnx",
                                     download=download, extra={"pruned": is_pruned})))
    with phase("benchmarking %d models" % len(onnx_paths)):
        results = bench_models(onnx_paths, BenchConfig(backend="onnxruntime", warmup=warmup, iterations=iterations,
                                                       threads=threads))
    write_json_atomic(out_dir / "bench.json", bench_report.result_document("bench", results))
    evals = []
    for model in onnx_paths:
        with open_runner(model, "onnxruntime", threads=threads) as runner:
            evals.append(evaluate(runner, load_dataset(data)))  # fresh: evaluate counts problems per run
    write_json_atomic(out_dir / "eval.json", bench_report.result_document("eval", evals))
    joined = join_results(load_documents([str(out_dir)]))
    md = write_text_atomic(out_dir / "report.md", markdown(joined))
    png = plot(joined, out_dir / "report.png")
    info("tradeoff results in %s: bench.json, eval.json, report.md, report.png" % out_dir)
    return {"dir": out_dir, "markdown": md, "plot": png, "report": joined}
