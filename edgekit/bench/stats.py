"""Latency statistics, as trtexec reports them (mean, median, percentiles, min, max), in ms."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

STAT_KEYS = ("mean", "median", "p90", "p99", "min", "max")


def summarize(samples_ms: Sequence[float]) -> Dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no samples")
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "mean": round(float(a.mean()), 4),
        "median": round(float(p50), 4),
        "p90": round(float(p90), 4),
        "p99": round(float(p99), 4),
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
        "count": int(a.size),
    }
