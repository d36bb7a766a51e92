"""One reader of the box: the Jetson facts and the sysfs sensors, read from a root folder.

``edgekit info``, the system block of every result document and the power sampler all read this box through
here: L4T release (``/etc/nv_tegra_release``), device-tree model, nvpmodel power mode, INA3221 power rails
(hwmon, by their label files), thermal zones, GPU/EMC devfreq and cpufreq clocks, over-current event counters.
Every reading is optional: a missing or unreadable file means "not here", never an error. ``Box(root)`` reads a
faked filesystem in tests; only the real root runs commands (``nvpmodel -q``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

# L4T release -> JetPack (NVIDIA's published pairs for the lines edgekit targets)
JETPACK = {
    "35.1": "5.0.2", "35.2": "5.1", "35.3": "5.1.1", "35.4": "5.1.2", "35.5": "5.1.3", "35.6": "5.1.4",
    "36.2": "6.0 DP", "36.3": "6.0", "36.4": "6.1/6.2",
}
# Jetson GPUs appear by their chip: gv11b (Xavier), ga10b (Orin on JetPack 5), gpu (Orin on JetPack 6), gp10b (TX2)
GPU_NAMES = ("gv11b", "ga10b", "gp10b", "gpu")
# Thermal zones that are not temperatures of the chip: PMIC-Die reads a fixed trip value (50 or 100 C)
SKIP_ZONES = ("pmic",)
OFFLINE_C = -40.0  # Orin reports absent sensors (e.g. cv0 on an Orin Nano) as -256 C


def run_command(cmd: List[str], timeout: float = 3.0) -> Optional[str]:
    """stdout of ``cmd`` when it exists and succeeds, else None."""
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


@dataclass
class Rail:
    """One INA3221 channel: its label and the files to read (mV and mA on hwmon; mW on the JetPack 4 iio)."""

    label: str
    volt: Optional[Path] = None
    curr: Optional[Path] = None
    power: Optional[Path] = None


class Box:
    def __init__(self, root="/", run: Optional[Callable[[List[str]], Optional[str]]] = None) -> None:
        self.root = Path(root)
        real = self.root.resolve() == Path("/")
        self.run = run if run is not None else (run_command if real else (lambda cmd: None))

    # --- files ----------------------------------------------------------------------------------------
    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def read(self, path) -> Optional[str]:
        p = path if isinstance(path, Path) else self.path(path)
        try:
            text = p.read_text(errors="replace")
        except OSError:  # missing, a folder, or no permission (debugfs without root)
            return None
        return text.replace("\x00", "").strip() or None

    def read_int(self, path) -> Optional[int]:
        text = self.read(path)
        try:
            return int(text.split()[0]) if text else None
        except ValueError:
            return None

    def glob(self, pattern: str) -> List[Path]:
        return sorted(self.root.glob(pattern.lstrip("/")))

    # --- what this box is -----------------------------------------------------------------------------
    def model(self) -> Optional[str]:
        return self.read("/proc/device-tree/model")

    def tegra_release(self) -> Optional[str]:
        """First line of /etc/nv_tegra_release, e.g. '# R35 (release), REVISION: 2.1, GCID: ...'."""
        text = self.read("/etc/nv_tegra_release")
        return text.splitlines()[0] if text else None

    def l4t(self) -> Optional[Dict[str, str]]:
        """'# R35 (release), REVISION: 2.1, ...' -> {'l4t': '35.2.1', 'jetpack': '5.1'}."""
        m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", self.tegra_release() or "")
        if not m:
            return None
        major, rev = m.group(1), m.group(2)
        version = "%s.%s" % (major, rev)
        return {"l4t": version, "jetpack": JETPACK.get("%s.%s" % (major, rev.split(".")[0]),
                                                        "unknown (L4T %s)" % version)}

    def is_jetson(self) -> bool:
        model = self.model()
        return bool(self.tegra_release()) or bool(model and "jetson" in model.lower())

    def power_mode(self) -> Optional[str]:
        """nvpmodel's mode name: from the files nvpmodel writes (no subprocess), else ``nvpmodel -q``."""
        status = re.search(r"pmode:0*(\d+)", self.read("/var/lib/nvpmodel/status") or "")
        if status:
            conf = self.read("/etc/nvpmodel.conf") or ""
            m = re.search(r"POWER_MODEL\s+ID=%s\s+NAME=(\S+?)\s*>" % status.group(1), conf)
            if m:
                return m.group(1)
        out = self.run(["nvpmodel", "-q"])
        for line in (out or "").splitlines():
            if "power mode" in line.lower():
                return line.split(":", 1)[-1].strip()
        return None

    def dla_cores(self) -> int:
        """NVDLA engines in the device tree / platform devices (Xavier NX and AGX Orin have two)."""
        names = set()
        for base in ("sys/devices/platform", "proc/device-tree"):
            for p in self.glob(base + "/*nvdla*"):
                names.add(p.name.split("@")[0] if "@" in p.name else p.name)
        return len(names)

    # --- sensors --------------------------------------------------------------------------------------
    def hwmon_dirs(self, name: str) -> List[Path]:
        """hwmon folders whose ``name`` file says ``name`` (one per chip, whichever link led to it)."""
        found: Dict[Path, Path] = {}
        for pattern in ("sys/class/hwmon/hwmon*", "sys/bus/i2c/drivers/%s/*/hwmon/hwmon*" % name):
            for d in self.glob(pattern):
                if self.read(d / "name") == name:
                    found.setdefault(d.resolve(), d)
        return [found[k] for k in sorted(found)]

    def rails(self) -> List[Rail]:
        """INA3221 channels by label (JetPack 5/6 hwmon; the JetPack 4 iio layout too). Unconnected channels
        (label NC) and the 'sum of shunt voltages' channel are left out; labels are never guessed from numbers."""
        rails: List[Rail] = []
        for d in self.hwmon_dirs("ina3221"):
            for label_file in sorted(d.glob("in*_label")):
                label = self.read(label_file)
                n = label_file.name[2:-len("_label")]
                if not label or label.upper() == "NC" or "sum of" in label.lower() or not n.isdigit():
                    continue
                if (d / ("curr%s_input" % n)).exists():
                    rails.append(Rail(label, volt=d / ("in%s_input" % n), curr=d / ("curr%s_input" % n)))
        for d in self.glob("sys/bus/i2c/drivers/ina3221x/*/iio:device*"):
            for name_file in sorted(d.glob("rail_name_*")):
                label, n = self.read(name_file), name_file.name[len("rail_name_"):]
                if label and (d / ("in_power%s_input" % n)).exists():
                    rails.append(Rail(label, power=d / ("in_power%s_input" % n)))
        return rails

    def rail_watts(self, rail: Rail) -> Optional[float]:
        if rail.power is not None:
            mw = self.read_int(rail.power)
            return None if mw is None else mw / 1e3
        mv, ma = self.read_int(rail.volt), self.read_int(rail.curr)
        return None if mv is None or ma is None else mv * ma / 1e6

    def thermal_zones(self) -> Dict[str, Path]:
        """zone name -> temp file: 'CPU-therm' -> cpu, 'gpu-thermal' -> gpu, 'Tboard_tegra' -> tboard."""
        zones: Dict[str, Path] = {}
        for d in self.glob("sys/class/thermal/thermal_zone*"):
            kind = self.read(d / "type")
            if not kind or any(s in kind.lower() for s in SKIP_ZONES) or not (d / "temp").exists():
                continue
            name = re.sub(r"([-_]therm(al)?|_tegra)$", "", kind.lower())
            zones[name if name not in zones else "%s.%s" % (name, d.name[len("thermal_zone"):])] = d / "temp"
        return zones

    def temperature(self, path: Path) -> Optional[float]:
        milli = self.read_int(path)
        if milli is None or milli / 1e3 <= OFFLINE_C:
            return None
        return milli / 1e3

    def gpu_devfreq(self) -> Optional[Path]:
        """The integrated GPU's devfreq folder (cur_freq, max_freq in Hz)."""
        patterns = ["sys/class/devfreq/*%s*" % n for n in GPU_NAMES] + [
            "sys/devices/*%s*/devfreq/*" % n for n in GPU_NAMES] + [
            "sys/devices/platform/*%s*/devfreq/*" % n for n in GPU_NAMES] + [
            "sys/devices/platform/bus@0/*%s*/devfreq/*" % n for n in GPU_NAMES]
        for pattern in patterns:
            for d in self.glob(pattern):
                if (d / "cur_freq").exists():
                    return d
        return None

    def emc_rate(self) -> Optional[Path]:
        """EMC (memory) clock in Hz: a devfreq entry where there is one, else BPMP debugfs (root only)."""
        for pattern in ("sys/class/devfreq/*emc*", "sys/class/devfreq/*bwmgr*"):
            for d in self.glob(pattern):
                if (d / "cur_freq").exists():
                    return d / "cur_freq"
        debugfs = self.path("sys/kernel/debug/bpmp/debug/clk/emc/rate")
        return debugfs if self.read(debugfs) else None

    def cpu_freq_files(self, name: str = "scaling_cur_freq") -> List[Path]:
        """Per-core cpufreq files (kHz): scaling_cur_freq, or scaling_max_freq for the ceiling."""
        return self.glob("sys/devices/system/cpu/cpu[0-9]*/cpufreq/%s" % name)

    def oc_event_files(self) -> List[Path]:
        """Over-current / under-voltage throttle event counters (soctherm, Orin and Xavier on JetPack 5/6)."""
        return [f for d in self.hwmon_dirs("soctherm_oc") for f in sorted(d.glob("oc*_event_cnt"))]

    def clocks_mhz(self) -> Dict[str, object]:
        """CPU per core, GPU and EMC clocks now, in MHz (what ``edgekit info`` shows)."""
        cpu = [v // 1000 for v in (self.read_int(p) for p in self.cpu_freq_files()) if v]
        gpu = self.gpu_devfreq()
        gpu_hz = self.read_int(gpu / "cur_freq") if gpu else None
        emc = self.emc_rate()
        emc_hz = self.read_int(emc) if emc else None
        return {"cpu_mhz": cpu or None, "gpu_mhz": gpu_hz // 1_000_000 if gpu_hz else None,
                "emc_mhz": emc_hz // 1_000_000 if emc_hz else None}
