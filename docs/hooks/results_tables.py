"""Measured tables of the docs, rendered from the JSON committed under benchmarks/ (never typed by hand).

Each renderer takes the repository root and returns a Markdown table; a page asks for one with
``<!-- results: NAME -->`` (docs/hooks/edgekit_docs.py). tests/test_docs.py renders every one and checks that the
README's headline figures are the ones these tables give (``headline``).

Rounding follows the tables the README had: ``"%.Nf"`` of the stored float. Labels (row names, column titles) are
written here; every number comes from the file a renderer's docstring names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict

import tables_accuracy as accuracy
import tables_gpu as gpu
import tables_speed as speed
from tables_format import load

# --- the README's headline ---------------------------------------------------------------------------------------

def headline(root: Path) -> Dict[str, float]:
    """The figures the README's front page quotes, unrounded, from the files the tables above read; keys are stable
    (tests/test_docs.py formats them and looks for the phrases in README.md)."""
    bench = {r["name"]: r for r in load(root, "benchmarks/cpu2-onnxruntime-yolov8n-m.json")["results"]}
    budget = load(root, "benchmarks/thread_budget-cpu2-yolov8n-640.json")["summary"]
    serve = load(root, "benchmarks/serve-overhead-cpu2.json")["summary"]
    prune = load(root, "benchmarks/prune-synthetic-small-cpu2/prune.json")["measured"]
    return {
        "yolov8n_cpu2_fps": bench["yolov8n"]["fps"],
        "yolov8m_cpu2_fps": bench["yolov8m"]["fps"],
        "yolov8n_cpu2_e2e_mean_ms": bench["yolov8n"]["stages"]["e2e"]["mean"],
        "yolov8m_cpu2_e2e_mean_ms": bench["yolov8m"]["stages"]["e2e"]["mean"],
        "serve_overhead_ms": serve["http_json_overhead_ms"],
        "camera_vs_bench_ratio": budget["c_camera_fps_vs_bench_e2e_fps"]["median"],
        "bench_vs_ultralytics_ratio": budget["b_bench_e2e_vs_ultralytics_predict"]["median"],
        "prune_flops_change_pct": prune["changes"]["gflops"]["percent"],
        "prune_latency_change_pct": prune["changes"]["latency_ms"]["percent"],
        "prune_e2e_change_pct": prune["changes"]["e2e_ms"]["percent"],
        "prune_latency_per_flops": prune["latency_per_flops_reduction"],
    }


RENDERERS: Dict[str, Callable[[Path], str]] = {
    "bench-cpu2": speed.bench_cpu2,
    "yolo26-cpu2": speed.yolo26_cpu2,
    "vision-speed-cpu2": speed.vision_speed_cpu2,
    "peer-overhead-cpu2": speed.peer_overhead_cpu2,
    "camera-vs-bench-cpu2": speed.camera_vs_bench_cpu2,
    "camera-soak-cpu2": speed.camera_soak_cpu2,
    "multi-soak-cpu2": speed.multi_soak_cpu2,
    "multi-soak-memory-cpu2": speed.multi_soak_memory_cpu2,
    "thread-budget-cpu2": speed.thread_budget_cpu2,
    "track-count-cpu2": speed.track_count_cpu2,
    "track-count-cpu2-py38": speed.track_count_cpu2_py38,
    "streams-cpu2": speed.streams_cpu2,
    "serve-loopback-cpu2": speed.serve_loopback_cpu2,
    "serve-overhead-cpu2": speed.serve_overhead_cpu2,
    "serve-concurrency-cpu2": speed.serve_concurrency_cpu2,
    "power-overhead-cpu2": speed.power_overhead_cpu2,
    "trainings": accuracy.trainings,
    "eval-graph-preprocess-cpu2": accuracy.eval_graph_preprocess_cpu2,
    "yolo26-accuracy-cpu2": accuracy.yolo26_accuracy_cpu2,
    "prune-synthetic-small-cpu2": accuracy.prune_synthetic_small_cpu2,
    "prune-yolov8m-cpu2": accuracy.prune_yolov8m_cpu2,
    "quantize-synthetic-cpu2": accuracy.quantize_synthetic_cpu2,
    "tradeoff-synthetic-cpu2": accuracy.tradeoff_synthetic_cpu2,
    "tradeoff-synthetic-small-cpu2": accuracy.tradeoff_synthetic_small_cpu2,
    "gpu-check": gpu.gpu_check,
}
