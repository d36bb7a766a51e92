"""The power block as text: table cells, one summary line per run and the throttle warning."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple


def has_power(result: Dict[str, Any]) -> bool:
    return bool((result.get("power") or {}).get("power_available"))


def cells(result: Dict[str, Any]) -> Tuple[str, str]:
    """('mean / peak W', 'mJ/frame') for a table row; '-' where there is no power reading."""
    p = result.get("power") or {}
    total = p.get("total")
    if not total:
        return "-", "-"
    mj = p.get("energy_per_frame_mj")
    return "%.2f / %.2f" % (total["mean_w"], total["peak_w"]), "-" if mj is None else "%.1f" % mj


def csv_cells(result: Dict[str, Any]) -> Tuple[Any, ...]:
    """power_w_mean, power_w_peak, energy_per_frame_mj, frames_per_joule, throttled ('' where not measured)."""
    p = result.get("power") or {}
    total = p.get("total") or {}
    return (total.get("mean_w", ""), total.get("peak_w", ""), p.get("energy_per_frame_mj", ""),
            p.get("frames_per_joule", ""), p["throttled"] if "throttled" in p else "")


def _range(d: Optional[Dict[str, float]], fmt: str = "%.0f") -> str:
    if not d:
        return "-"
    return (fmt % d["min"]) if d["min"] == d["max"] else "%s-%s" % (fmt % d["min"], fmt % d["max"])


def line(p: Optional[Dict[str, Any]]) -> Optional[str]:
    """One line: where power came from, mean/peak W, energy per frame, above idle, temperatures, clocks, cost."""
    if not p or not p.get("available"):
        return None
    parts: List[str] = []
    total = p.get("total")
    if total:
        parts.append("power %s: mean %.2f W, peak %.2f W" % (p["scope"], total["mean_w"], total["peak_w"]))
        if p.get("energy_per_frame_mj") is not None:
            parts.append("%.1f mJ/frame, %.2f frames/J" % (p["energy_per_frame_mj"], p["frames_per_joule"]))
        above = p.get("above_idle")
        if above:
            parts.append("above idle (%.2f W): +%.2f W, %s mJ/frame" % (
                p["idle"]["mean_w"], above["mean_w"], "-" if above["energy_per_frame_mj"] is None
                else "%.1f" % above["energy_per_frame_mj"]))
    temps = p.get("temperature_c") or {}
    if temps:
        hottest = max(temps, key=lambda z: temps[z]["max"])
        gpu = "GPU %s C, " % _range(temps["gpu"], "%.1f") if "gpu" in temps else ""
        parts.append("%shottest %s %.1f C" % (gpu, hottest, temps[hottest]["max"]))
    clocks = p.get("clocks_mhz") or {}
    if clocks:
        parts.append("clocks MHz min/median: " + ", ".join(
            "%s %.0f/%.0f" % (k.upper(), c["min"], c["median"]) for k, c in sorted(clocks.items())))
    cost = p.get("sampler_cost") or {}
    parts.append("%d samples every %d ms (%s), sampler cost %.2f ms CPU per sample (%.2f ms wall), %.2f%% of a core"
                 % (p["samples"], p["interval_ms"], p["source"], cost.get("cpu_ms_per_sample", 0.0),
                    cost.get("ms_per_sample", 0.0), cost.get("cpu_percent", 0.0)))
    return " | ".join(parts)


def throttle_warning(p: Optional[Dict[str, Any]], name: str) -> Optional[str]:
    if not p or not p.get("throttled"):
        return None
    return ("WARNING: %s was throttled during the timed run (%s): this number is not the box's steady speed"
            % (name, "; ".join(p["throttle_reasons"])))


def caption(results: List[Dict[str, Any]], name_key: str = "name") -> Optional[str]:
    """Lines under a table: one power line per result, then any throttle warnings."""
    lines = []
    for r in results:
        text = line(r.get("power"))
        if text:
            lines.append("%s: %s" % (r.get(name_key, "?"), text))
    lines += [w for w in (throttle_warning(r.get("power"), r.get(name_key, "?")) for r in results) if w]
    return "\n".join(lines) or None
