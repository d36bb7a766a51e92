"""Measurement: the whole pipeline per stage (preprocess, inference, postprocess, end to end)."""

from edgekit.bench.core import BenchConfig, bench_model, bench_models

__all__ = ["BenchConfig", "bench_model", "bench_models"]
