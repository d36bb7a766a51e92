"""``edgekit info --watch``: live power rails, temperatures, clocks and throttling, like a small jtop.

On a terminal a table refreshes in place; piped (or ``--json``) it prints one line per refresh, so it can feed a
log. The readings come from the same sources as the bench sampler (sysfs, tegrastats, NVML).
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

from rich.table import Table

from edgekit.box import Box
from edgekit.log import info, out
from edgekit.power.sources import open_sources
from edgekit.power.summary import NVML_THROTTLE, throttle_reasons


def rows(reading: Dict[str, Any], reasons: List[str]) -> List[Tuple[str, str]]:
    """(what, value) rows of one reading: total and per-rail power, temperatures, clocks, throttling."""
    out_rows = []
    if reading.get("total_w") is not None:
        out_rows.append(("power total", "%.2f W" % reading["total_w"]))
    for label, watts in sorted((reading.get("rails_w") or {}).items()):
        out_rows.append(("  " + label, "%.2f W" % watts))
    for zone, c in sorted((reading.get("temps_c") or {}).items()):
        out_rows.append(("temp " + zone, "%.1f C" % c))
    for name, mhz in sorted((reading.get("clocks_mhz") or {}).items()):
        ceiling = (reading.get("ceilings_mhz") or {}).get(name)
        out_rows.append(("clock " + name.upper(), "%.0f MHz%s" % (mhz, " (max %.0f)" % ceiling if ceiling else "")))
    for counter, n in sorted((reading.get("events") or {}).items()):
        out_rows.append(("events " + counter, str(n)))
    bits = int(reading.get("reasons") or 0)
    if "reasons" in reading:
        out_rows.append(("NVML throttle", ", ".join(n for b, n in NVML_THROTTLE.items() if bits & b) or "none"))
    out_rows.append(("throttling since start", "; ".join(reasons) or "none"))
    return out_rows


def table(reading: Dict[str, Any], reasons: List[str], title: str) -> Table:
    t = Table(title=title, show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    for what, value in rows(reading, reasons):
        t.add_row(what, value)
    return t


def one_line(reading: Dict[str, Any], reasons: List[str]) -> str:
    return time.strftime("%H:%M:%S ") + " | ".join("%s %s" % (w.strip(), v) for w, v in rows(reading, reasons))


def watch(interval_ms: int = 1000, count: Optional[int] = None, as_json: bool = False, box: Optional[Box] = None,
          console=None, **source_kwargs) -> int:
    """Refresh every ``interval_ms`` until Ctrl-C (or ``count`` refreshes); returns the refreshes shown."""
    console = console or out
    source, missing = open_sources(box or Box(), interval_ms, **source_kwargs)
    if source is None:
        info("nothing to watch: no power rails, thermal zones or clocks readable here (%s)" % "; ".join(missing))
        return 0
    if not source.has_power():
        info("power: not available (%s)" % "; ".join(m for m in missing if "power" in m.lower()))
    history: Deque[Tuple[float, Dict[str, Any]]] = deque(maxlen=3600)
    title = "edgekit info --watch (%s, every %d ms; Ctrl-C stops)" % (source.name, interval_ms)
    live = None
    shown = 0
    try:
        if console.is_terminal and not as_json:
            from rich.live import Live

            live = Live(console=console, auto_refresh=False)
            live.start()
        while count is None or shown < count:
            t = time.perf_counter()
            reading = source.read()
            history.append((t, reading))
            reasons = throttle_reasons(list(history))
            if as_json:
                console.out(json.dumps(dict(reading, time=round(time.time(), 3), throttle_reasons=reasons)))
            elif live is not None:
                live.update(table(reading, reasons, title), refresh=True)
            else:
                console.out(one_line(reading, reasons))
            shown += 1
            if count is None or shown < count:
                time.sleep(max(0.0, interval_ms / 1e3 - (time.perf_counter() - t)))
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
        source.close()
    return shown
