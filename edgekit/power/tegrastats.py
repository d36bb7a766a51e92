"""The fallback when the sysfs files are missing: ``tegrastats`` output, parsed line by line.

A line (JetPack 5/6) looks like::

    07-09-2024 13:31:31 RAM 3168/6851MB (lfb 2x4MB) SWAP 161/3426MB (cached 0MB) CPU [23%@1397,17%@1192,...]
    EMC_FREQ 2%@204 GR3D_FREQ 0%@[114] ... AUX@45C CPU@46.5C thermal@45.6C AO@45C GPU@45.5C PMIC@50C
    VDD_IN 2763mW/2846mW VDD_CPU_GPU_CV 650mW/670mW VDD_SOC 650mW/711mW

Rails are ``NAME instant/average`` (mW; JetPack 4 leaves out the unit): the instant value is taken, because the
average runs over tegrastats' whole lifetime. Temperatures are ``name@C`` (-256 C means an absent sensor; PMIC
reads a fixed trip value and is left out, as jtop does). Clocks: the fastest CPU core, ``GR3D_FREQ`` and
``EMC_FREQ`` MHz where tegrastats prints them (it needs root for some).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from typing import Any, Dict, List, Optional

from edgekit.box import OFFLINE_C

RAIL = re.compile(r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
TEMP = re.compile(r"(?<![\w@])([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C(?=\s|$)")
CPU = re.compile(r"\bCPU \[([^\]]*)\]")
GR3D = re.compile(r"\bGR3D_FREQ (?:\d+%)?(?:@\[?([\d,]+)\]?)?")
EMC = re.compile(r"\bEMC_FREQ (?:\d+%)?(?:@(\d+))?")
NOT_RAILS = ("RAM", "SWAP", "IRAM")
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")


def parse_line(line: str) -> Dict[str, Any]:
    """One tegrastats line -> a reading (the same keys as the sysfs reader's)."""
    rails = {name: int(now) / 1e3 for name, now, _avg in RAIL.findall(line) if name not in NOT_RAILS}
    temps = {}
    for name, value in TEMP.findall(line):
        c = float(value)
        if c > OFFLINE_C and not name.lower().startswith("pmic"):
            temps[name.lower()] = c
    clocks: Dict[str, float] = {}
    cpu = CPU.search(line)
    if cpu:
        mhz = [int(core.split("@")[1]) for core in cpu.group(1).split(",") if "@" in core]
        if mhz:
            clocks["cpu"] = float(max(mhz))
    gpu = GR3D.search(line)
    if gpu and gpu.group(1):
        clocks["gpu"] = float(max(int(v) for v in gpu.group(1).split(",") if v))
    emc = EMC.search(line)
    if emc and emc.group(1):
        clocks["emc"] = float(emc.group(1))
    total = next((rails[name] for name in TOTAL_RAILS if name in rails), None)
    if total is None and rails:
        total = sum(rails.values())
    return {"rails_w": rails, "total_w": total, "temps_c": temps, "clocks_mhz": clocks}


class TegrastatsSource:
    """Runs ``tegrastats --interval MS`` and keeps its newest line; ``read()`` returns that line's reading."""

    name = "tegrastats"

    def __init__(self, interval_ms: int, command: str = "tegrastats") -> None:
        self.command = shutil.which(command) or command
        self.proc = subprocess.Popen([self.command, "--interval", str(max(int(interval_ms), 1))],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.latest: Optional[Dict[str, Any]] = None
        self.first = threading.Event()
        self.thread = threading.Thread(target=self._pump, name="edgekit-tegrastats", daemon=True)
        self.thread.start()
        self.first.wait(timeout=max(2.0, 3 * interval_ms / 1e3))  # a reading before the run starts
        self.rails: List[str] = sorted((self.latest or {}).get("rails_w", {}))
        total = next((r for r in TOTAL_RAILS if r in self.rails), None)
        self.scope = "module input (%s)" % total if total else "sum of rails"
        self.missing = [] if self.latest else ["tegrastats printed no line"]

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.latest = parse_line(line)
                self.first.set()

    def has_power(self) -> bool:
        return bool(self.rails)

    def read(self) -> Dict[str, Any]:
        return dict(self.latest or {})

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.thread.join(timeout=2.0)
