"""``edgekit tradeoff``: the one command to choose a model for a device.

For each model (baseline and pruned weights) and precision: export, bench and eval on the same frames and
data, then one report (table, Markdown, plot). Results land in one folder so ``edgekit report`` can re-read
them and join them with results from other devices.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from edgekit.bench import BenchConfig, bench_models
from edgekit.bench import report as bench_report
from edgekit.errors import EdgekitError
from edgekit.eval.dataset import load_dataset
from edgekit.eval.evaluate import evaluate
from edgekit.host.export import export, resolve_weights
from edgekit.lazy import require
from edgekit.log import info, phase, warn
from edgekit.manifest import read_manifest, sha256_file, write_json_atomic, write_text_atomic
from edgekit.report import join_results, load_documents
from edgekit.report.render import markdown, plot, plot_problem
from edgekit.runtime import open_runner

ENGINE_PRECISIONS = ("fp16", "int8", "best")
PRECISIONS = ("fp32",) + ENGINE_PRECISIONS


def check_precisions(precisions: Sequence[str], calib: Optional[str] = None) -> None:
    """Only what can be measured as asked: FP16/INT8 need TensorRT engines built here; nothing is silently
    swapped for another precision."""
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise EdgekitError("--precisions %s: choose from %s" % (" ".join(unknown), ", ".join(PRECISIONS)))
    needs_engine = [p for p in precisions if p in ENGINE_PRECISIONS]
    if not needs_engine:
        return
    if any(p in ("int8", "best") for p in needs_engine) and not calib:
        raise EdgekitError("--precisions int8/best needs calibration images: --calib DIR")
    try:
        from edgekit.lazy import require_tensorrt

        require_tensorrt(building=True)
    except EdgekitError as exc:
        raise EdgekitError("--precisions %s needs TensorRT engines built on this machine's GPU (%s): run on a "
                           "machine with TensorRT, or --precisions fp32 (ONNX Runtime)"
                           % (" ".join(needs_engine), str(exc).split(":")[0])) from exc


def build_engines(onnx_paths: Sequence[str], precisions: Sequence[str], calib: Optional[str], out: Path) -> List[str]:
    """One TensorRT engine per ONNX and engine precision, built here with edgekit build's defaults."""
    if not any(p in ENGINE_PRECISIONS for p in precisions):
        return []
    from edgekit.runtime.tensorrt.builder import build_engine
    from edgekit.runtime.tensorrt.plan import BuildRequest
    from edgekit.runtime.tensorrt.prepare import prepare

    engines = []
    for onnx_path in onnx_paths:
        for precision in [p for p in precisions if p in ENGINE_PRECISIONS]:
            request = BuildRequest(precision=precision, calib=calib if precision in ("int8", "best") else None)
            engines.append(str(build_engine(prepare(onnx_path, request), request, out=str(out),
                                            timing_cache=str(out / "timing.cache"))))
    return engines


def baseline_of(pruned: str, models: Sequence[str]) -> Optional[int]:
    """Which of ``models`` the pruned weights were pruned from: the only one, else the one whose file stem
    begins the pruned stem (the longest such), else None (shown without a baseline, never guessed)."""
    if len(models) == 1:
        return 0
    stem = Path(pruned).stem
    matches = [i for i, m in enumerate(models) if stem.startswith(Path(m).stem)]
    return max(matches, key=lambda i: len(Path(models[i]).stem)) if matches else None


def pruned_extra(pruned: str, models: Sequence[str], onnx_paths: Sequence[str]) -> Dict[str, Any]:
    """The pruned ONNX's manifest fields: pruned, and the baseline ONNX it derives from (as edgekit prune records
    it), so edgekit report shows its change in mAP against that baseline."""
    i = baseline_of(pruned, models)
    if i is None:
        return {"pruned": True}
    onnx = onnx_paths[i]
    sha = (read_manifest(onnx) or {}).get("sha256") or sha256_file(onnx)
    return {"pruned": True, "prune": {"baseline_sha256": sha, "baseline_onnx": str(onnx)}}


def tradeoff(models: Sequence[str], data: str, pruned: Sequence[str] = (), precisions: Sequence[str] = ("fp32",),
             imgsz: int = 640, out: Optional[str] = None, warmup: int = 5, iterations: int = 50,
             threads: Optional[int] = None, download: bool = False, calib: Optional[str] = None,
             trust_weights: bool = False) -> Dict[str, Path]:
    check_precisions(precisions, calib)
    if not models and not pruned:
        raise EdgekitError("give at least one model: --models yolov8n.pt yolov8m.pt [--pruned pruned.pt]")
    # before any export starts: what eval and the report need, every weights file, the dataset
    require("pycocotools.cocoeval", "yaml", "matplotlib", "torch", "ultralytics", "onnxsim")
    for weights in list(models) + list(pruned):
        resolve_weights(weights, download)
    load_dataset(data)
    out_dir = Path(out or Path("benchmarks") / ("tradeoff-%s" % time.strftime("%Y%m%d-%H%M%S")))
    onnx_paths: List[str] = []
    for weights in models:
        onnx_paths.append(str(export(weights=weights, imgsz=imgsz, out=str(out_dir / "models"),
                                     name=Path(weights).stem + ".onnx", download=download, extra={"pruned": False},
                                     trust_weights=trust_weights)))
    for weights in pruned:
        name = Path(weights).stem + ("-pruned" if "prun" not in Path(weights).stem else "")
        onnx_paths.append(str(export(weights=weights, imgsz=imgsz, out=str(out_dir / "models"), name=name + ".onnx",
                                     download=download, extra=pruned_extra(weights, models, onnx_paths),
                                     trust_weights=trust_weights)))
    models_run = (onnx_paths if "fp32" in precisions else []) + build_engines(onnx_paths, precisions, calib,
                                                                               out_dir / "models")
    with phase("benchmarking %d models" % len(models_run)):
        results = bench_models(models_run, BenchConfig(warmup=warmup, iterations=iterations, threads=threads))
    write_json_atomic(out_dir / "bench.json", bench_report.result_document("bench", results))
    evals, failed = [], []
    for model in models_run:  # one model's failure never loses the others' figures, nor the bench's
        try:
            with open_runner(model, threads=threads) as runner:
                evals.append(evaluate(runner, load_dataset(data)))  # fresh: evaluate counts problems per run
        except Exception as exc:  # noqa: BLE001 - said in one line, and again when the command ends
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            warn("eval of %s failed: %s" % (Path(model).name, reason))
            failed.append("%s (%s)" % (Path(model).name, reason))
    write_json_atomic(out_dir / "eval.json", bench_report.result_document("eval", evals))
    joined = join_results(load_documents([str(out_dir)]))
    md = write_text_atomic(out_dir / "report.md", markdown(joined))
    png = None if plot_problem(joined) else plot(joined, out_dir / "report.png")
    info("tradeoff results in %s: bench.json, eval.json, report.md%s" % (out_dir, ", report.png" if png else ""))
    return {"dir": out_dir, "markdown": md, "plot": png, "report": joined, "failed": failed}
