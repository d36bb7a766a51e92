"""Where power, temperatures and clocks come from: sysfs on a Jetson (or any Linux box), tegrastats as the
fallback, NVML on desktop/server NVIDIA GPUs. Each source's ``read()`` returns one reading::

    {"rails_w": {label: W}, "total_w": W, "temps_c": {zone: C}, "clocks_mhz": {"gpu"|"emc"|"cpu": MHz},
     "ceilings_mhz": {"gpu"|"cpu": MHz}, "events": {counter: n}, "reasons": NVML bitmask, "energy_mj": counter}

Keys a source cannot read are absent; ``missing`` says what it could not read and why.
"""

from __future__ import annotations

import importlib
import os
import shutil
from typing import Any, Dict, List, Optional

from edgekit.box import Box

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")  # the module's input: what the box draws (jtop takes the same)


class SysfsSource:
    """INA3221 rails (hwmon, by label), thermal zones, devfreq/cpufreq clocks and their ceilings, and the
    soctherm over-current event counters, read straight from sysfs: no subprocess, about a file read each."""

    name = "sysfs"

    def __init__(self, box: Box) -> None:
        self.box = box
        self.rail_files = box.rails()
        self.zones = box.thermal_zones()
        self.gpu = box.gpu_devfreq()
        self.emc = box.emc_rate()
        self.cpu_cur = box.cpu_freq_files("scaling_cur_freq")
        self.cpu_max = box.cpu_freq_files("scaling_max_freq")
        self.oc = box.oc_event_files()
        self.rails = [r.label for r in self.rail_files]
        self.total = next((label for label in TOTAL_RAILS if label in self.rails), None)
        self.scope = ("module input (%s)" % self.total if self.total else
                      "sum of rails (%s)" % ", ".join(self.rails) if self.rails else "no power rails")
        jetson = box.is_jetson()
        self.missing = [what for what, have in (
            ("no INA3221 power rails in sysfs", self.rails),
            ("no thermal zones", self.zones),
            ("no cpufreq CPU clocks", self.cpu_cur),
            ("no GPU devfreq clock", self.gpu or not jetson),
            ("no EMC clock (BPMP debugfs needs root)", self.emc or not jetson),
        ) if not have]

    def has_power(self) -> bool:
        return bool(self.rails)

    def has_anything(self) -> bool:
        return bool(self.rails or self.zones or self.cpu_cur or self.gpu)

    def read(self) -> Dict[str, Any]:
        box = self.box
        rails = {}
        for rail in self.rail_files:
            watts = box.rail_watts(rail)
            if watts is not None:
                rails[rail.label] = watts
        total = rails.get(self.total) if self.total else (sum(rails.values()) if rails else None)
        temps = {name: c for name, c in ((n, box.temperature(p)) for n, p in self.zones.items()) if c is not None}
        clocks: Dict[str, float] = {}
        ceilings: Dict[str, float] = {}
        if self.gpu is not None:
            _put(clocks, "gpu", box.read_int(self.gpu / "cur_freq"), 1e6)
            _put(ceilings, "gpu", box.read_int(self.gpu / "max_freq"), 1e6)
        if self.emc is not None:
            _put(clocks, "emc", box.read_int(self.emc), 1e6)
        _put(clocks, "cpu", _max(box.read_int(p) for p in self.cpu_cur), 1e3)
        _put(ceilings, "cpu", _max(box.read_int(p) for p in self.cpu_max), 1e3)
        events = {}
        for f in self.oc:
            n = box.read_int(f)
            if n is not None:
                events[f.name[:-len("_event_cnt")]] = n
        reading: Dict[str, Any] = {"rails_w": rails, "total_w": total, "temps_c": temps, "clocks_mhz": clocks,
                                   "ceilings_mhz": ceilings}
        if events:
            reading["events"] = events
        return reading

    def close(self) -> None:
        pass


def _put(out: Dict[str, float], key: str, value: Optional[int], per_mhz: float) -> None:
    if value:
        out[key] = value / per_mhz


def _max(values) -> Optional[int]:
    present = [v for v in values if v]
    return max(present) if present else None


class NvmlSource:
    """One NVIDIA GPU through NVML (``nvidia-ml-py``): board power, the total energy counter where the GPU has one
    (Volta and newer), temperature, SM/memory clocks and the clock-throttle reasons bitmask."""

    name = "nvml"

    def __init__(self, nvml, index: int = 0) -> None:
        self.nvml = nvml
        nvml.nvmlInit()
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(self.handle)
        self.device = name.decode() if isinstance(name, bytes) else str(name)
        self.rails = ["GPU board"]
        self.scope = "GPU board power (NVML, %s)" % self.device
        self.missing = ["no CPU or rest-of-system power (NVML measures the GPU board only)"]
        self.counter = self._call("nvmlDeviceGetTotalEnergyConsumption") is not None
        if not self.counter:
            self.missing.append("no energy counter on this GPU (energy is integrated from power samples)")
        self.reasons_fn = next((f for f in ("nvmlDeviceGetCurrentClocksEventReasons",
                                            "nvmlDeviceGetCurrentClocksThrottleReasons") if hasattr(nvml, f)), None)

    def _call(self, fn: str, *args) -> Any:
        try:
            return getattr(self.nvml, fn)(self.handle, *args)
        except Exception:  # NVMLError_NotSupported and friends: this GPU does not say
            return None

    def has_power(self) -> bool:
        return True

    def read(self) -> Dict[str, Any]:
        nvml = self.nvml
        mw = self._call("nvmlDeviceGetPowerUsage")
        reading: Dict[str, Any] = {"rails_w": {}, "total_w": None, "temps_c": {}, "clocks_mhz": {}}
        if mw is not None:
            reading["rails_w"]["GPU board"] = reading["total_w"] = mw / 1e3
        temp = self._call("nvmlDeviceGetTemperature", getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
        if temp is not None:
            reading["temps_c"]["gpu"] = float(temp)
        for key, clock, default in (("gpu", "NVML_CLOCK_SM", 1), ("mem", "NVML_CLOCK_MEM", 2)):
            mhz = self._call("nvmlDeviceGetClockInfo", getattr(nvml, clock, default))
            if mhz:
                reading["clocks_mhz"][key] = float(mhz)
        if self.reasons_fn:
            reasons = self._call(self.reasons_fn)
            if reasons is not None:
                reading["reasons"] = int(reasons)
        if self.counter:
            energy = self._call("nvmlDeviceGetTotalEnergyConsumption")
            if energy is not None:
                reading["energy_mj"] = float(energy)
        return reading

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass


def open_nvml(module: str = "pynvml") -> Optional[NvmlSource]:
    """NVML's first GPU, or None: nvidia-ml-py not installed, no NVIDIA driver, or no GPU."""
    try:
        nvml = importlib.import_module(module)
    except ImportError:
        return None
    try:
        return NvmlSource(nvml)
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded / no device
        return None


def nvidia_gpu_present() -> bool:
    return os.path.exists("/proc/driver/nvidia/version") or bool(shutil.which("nvidia-smi"))


def open_sources(box: Box, interval_ms: int, nvml_module: str = "pynvml", tegrastats: str = "tegrastats"):
    """(source or None, what could not be read). Jetson: sysfs, else tegrastats. Elsewhere: NVML, else
    whatever sysfs has (thermal zones, cpufreq) without power."""
    from edgekit.power.tegrastats import TegrastatsSource

    sysfs = SysfsSource(box)
    missing: List[str] = list(sysfs.missing)
    if sysfs.has_power():
        return sysfs, missing
    if box.is_jetson() and shutil.which(tegrastats):
        source = TegrastatsSource(interval_ms, tegrastats)
        if source.has_power():
            return source, ["no INA3221 power rails in sysfs (read from tegrastats instead)"]
        source.close()
        missing.append("tegrastats printed no power rails")
    nvml = open_nvml(nvml_module)
    if nvml is not None:
        return nvml, nvml.missing
    if not box.is_jetson():
        missing.append("no NVML GPU power (pip install 'edgekit[nvml]' for nvidia-ml-py)"
                       if nvidia_gpu_present() else "no NVML GPU power (no NVIDIA driver or GPU)")
    return (sysfs if sysfs.has_anything() else None), missing
