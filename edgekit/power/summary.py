"""From samples to figures: mean/peak power per rail and total, energy per frame, frames per joule, temperatures,
clocks and the throttle verdict.

Energy is the trapezoid integral of total power over the samples' span (the timed run), or the difference of
NVML's energy counter where the GPU has one. Mean power = energy / span (time-weighted).

Throttled when, during the timed run, any of:
- the GPU (or EMC) clock fell more than ``CLOCK_DROP`` below its value at the start, two samples in a row;
- a clock ceiling (GPU devfreq max_freq, CPU scaling_max_freq) was lowered below its start;
- an over-current / under-voltage event counter (Jetson soctherm) went up;
- NVML set a throttle reason: SW power cap, HW slowdown, SW/HW thermal slowdown, HW power brake.
CPU clocks themselves are recorded but not judged: their governor moves them with load, throttled or not.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

CLOCK_DROP = 0.10
JUDGED_CLOCKS = ("gpu", "emc")
# NVML clocks-event (throttle) reasons that mean "slower than it could be"; GPU idle, application clocks,
# sync boost and display clock settings are not throttling (nvidia-smi -q lists them all).
NVML_THROTTLE = {0x4: "SW power cap", 0x8: "HW slowdown", 0x20: "SW thermal slowdown",
                 0x40: "HW thermal slowdown", 0x80: "HW power brake slowdown"}

Sample = Tuple[float, Dict[str, Any]]


def integrate(times: Sequence[float], watts: Sequence[float]) -> float:
    """Joules: trapezoid rule over (s, W) points."""
    if len(times) < 2:
        return 0.0
    t, w = np.asarray(times, dtype=np.float64), np.asarray(watts, dtype=np.float64)
    return float(np.sum((w[1:] + w[:-1]) * np.diff(t)) / 2.0)


def _series(samples: Sequence[Sample], group: str, key: Optional[str] = None) -> Tuple[List[float], List[float]]:
    times, values = [], []
    for t, r in samples:
        v = r.get(group) if key is None else (r.get(group) or {}).get(key)
        if v is not None:
            times.append(t)
            values.append(float(v))
    return times, values


def _keys(samples: Sequence[Sample], group: str) -> List[str]:
    seen: Dict[str, None] = {}
    for _, r in samples:
        for k in r.get(group) or {}:
            seen.setdefault(k, None)
    return list(seen)


def _power(times: List[float], watts: List[float]) -> Dict[str, Any]:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    energy = integrate(times, watts)
    mean = energy / span if span > 0 else float(np.mean(watts))
    return {"mean_w": round(mean, 4), "peak_w": round(max(watts), 4), "energy_j": round(energy, 6)}


def idle_summary(samples: Sequence[Sample]) -> Optional[Dict[str, Any]]:
    times, watts = _series(samples, "total_w")
    if not watts:
        return None
    out = _power(times, watts)
    out.update(seconds=round(times[-1] - times[0], 3), samples=len(watts))
    out["rails"] = {k: _power(*_series(samples, "rails_w", k))["mean_w"] for k in _keys(samples, "rails_w")}
    return out


def throttle_reasons(samples: Sequence[Sample]) -> List[str]:
    reasons = []
    for clock in JUDGED_CLOCKS:
        _, mhz = _series(samples, "clocks_mhz", clock)
        if len(mhz) < 3 or not mhz[0]:
            continue
        low = [v < mhz[0] * (1 - CLOCK_DROP) for v in mhz]
        if any(a and b for a, b in zip(low, low[1:])):
            reasons.append("%s clock fell from %.0f to %.0f MHz" % (clock.upper(), mhz[0], min(mhz)))
    for ceiling in ("gpu", "cpu"):
        _, mhz = _series(samples, "ceilings_mhz", ceiling)
        if mhz and min(mhz) < mhz[0]:
            reasons.append("%s clock ceiling lowered from %.0f to %.0f MHz" % (ceiling.upper(), mhz[0], min(mhz)))
    for counter in _keys(samples, "events"):
        _, n = _series(samples, "events", counter)
        if n and n[-1] > n[0]:
            reasons.append("%d %s over-current/under-voltage events" % (n[-1] - n[0], counter))
    bits = 0
    for _, r in samples:
        bits |= int(r.get("reasons") or 0)
    reasons += ["NVML: %s" % name for bit, name in NVML_THROTTLE.items() if bits & bit]
    return reasons


def summarize(samples: Sequence[Sample], frames: int, source: str, scope: str, interval_ms: int,
              cost: Dict[str, float], idle: Optional[Dict[str, Any]] = None,
              missing: Sequence[str] = ()) -> Dict[str, Any]:
    """The ``power`` block of a bench or camera result."""
    times, watts = _series(samples, "total_w")
    span = samples[-1][0] - samples[0][0] if len(samples) > 1 else 0.0
    out: Dict[str, Any] = {"available": True, "power_available": bool(watts), "source": source, "scope": scope,
                           "interval_ms": interval_ms, "samples": len(samples), "duration_s": round(span, 4),
                           "frames": frames, "sampler_cost": cost, "missing": list(missing)}
    if watts:
        total = _power(times, watts)
        _, counter = _series(samples, "energy_mj")
        if len(counter) > 1 and counter[-1] >= counter[0]:
            total["energy_j"] = round((counter[-1] - counter[0]) / 1e3, 6)
            total["energy_source"] = "NVML energy counter"
            if span > 0:
                total["mean_w"] = round(total["energy_j"] / span, 4)
        else:
            total["energy_source"] = "trapezoid over %d samples" % len(watts)
        out["total"] = total
        out["rails"] = {k: _power(*_series(samples, "rails_w", k)) for k in _keys(samples, "rails_w")}
        if frames > 0 and total["energy_j"] > 0:
            out["energy_per_frame_mj"] = round(total["energy_j"] * 1e3 / frames, 4)
            out["frames_per_joule"] = round(frames / total["energy_j"], 4)
        if idle:
            above = total["mean_w"] - idle["mean_w"]
            out["idle"] = idle
            out["above_idle"] = {"mean_w": round(above, 4),
                                 "energy_per_frame_mj": round(above * span * 1e3 / frames, 4) if frames else None}
    temps = {}
    for zone in _keys(samples, "temps_c"):
        _, c = _series(samples, "temps_c", zone)
        temps[zone] = {"min": round(min(c), 2), "max": round(max(c), 2)}
    out["temperature_c"] = temps
    clocks = {}
    for name in _keys(samples, "clocks_mhz"):
        _, mhz = _series(samples, "clocks_mhz", name)
        clocks[name] = {"start": mhz[0], "min": min(mhz), "median": float(np.median(mhz)), "max": max(mhz)}
    out["clocks_mhz"] = clocks
    reasons = throttle_reasons(samples)
    out["throttled"] = bool(reasons)
    out["throttle_reasons"] = reasons
    return out
