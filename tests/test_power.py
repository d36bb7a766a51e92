"""Power, energy per frame, temperatures, clocks and throttling: faked Jetson sysfs trees, recorded tegrastats
lines, a fake NVML module, energy arithmetic against hand-computed values, throttling traces, and a box with no
sensors (this CI machine has none)."""

import csv
import json
import stat
import sys
import types

import pytest
from fake_boxes import (
    ORIN_NANO_TEGRASTATS,
    XAVIER_NX_TEGRASTATS,
    fake_agx_orin_rails,
    fake_orin_nano,
    fake_xavier_nx,
    zones,
)
from helpers import invoke

from edgekit.bench import BenchConfig, bench_models
from edgekit.bench.report import results_table, to_csv
from edgekit.box import Box
from edgekit.log import out
from edgekit.power import report, sampler, sources
from edgekit.power.sampler import PowerMeter, Sampler, measure
from edgekit.power.sources import SysfsSource, open_sources
from edgekit.power.summary import integrate, summarize, throttle_reasons
from edgekit.power.tegrastats import parse_line

NO_NVML = {"nvml_module": "no_such_nvml_module"}


# --- the box's sensors, read by label ----------------------------------------------------------------------------
def test_xavier_nx_rails_zones_and_clocks(tmp_path):
    source = SysfsSource(Box(fake_xavier_nx(tmp_path)))
    # one INA3221, reached through class/hwmon and bus/i2c/drivers: read once; channel 7 (sum) and pwmfan left out
    assert source.rails == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"] and source.scope == "module input (VDD_IN)"
    r = source.read()
    # mV x mA: 5072 x 545, 5064 x 128, 5064 x 129 (what tegrastats showed: 2763, 650, 650 mW)
    assert r["rails_w"] == pytest.approx({"VDD_IN": 2.76424, "VDD_CPU_GPU_CV": 0.648192, "VDD_SOC": 0.653256})
    assert r["total_w"] == pytest.approx(2.76424)  # VDD_IN is the module's input: the rails are inside it
    assert r["temps_c"] == {"cpu": 46.5, "gpu": 45.5, "aux": 45.0, "ao": 45.0, "thermal-fan-est": 45.6}  # no PMIC
    assert r["clocks_mhz"] == {"gpu": 1109.25, "cpu": 1907.2}
    assert r["ceilings_mhz"] == {"gpu": 1109.25, "cpu": 1907.2}
    assert source.missing == ["no EMC clock (BPMP debugfs needs root)"]


def test_orin_nano_on_jetpack_6(tmp_path):
    source = SysfsSource(Box(fake_orin_nano(tmp_path)))
    assert source.rails == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"] and source.missing == []
    r = source.read()
    assert r["total_w"] == pytest.approx(16.32) and r["rails_w"]["VDD_CPU_GPU_CV"] == pytest.approx(7.105)
    assert "cv0" not in r["temps_c"] and r["temps_c"]["tj"] == 58.312 and r["temps_c"]["gpu"] == 58.625
    assert r["clocks_mhz"] == {"gpu": 1020.0, "emc": 3199.0, "cpu": 1728.0}
    assert r["events"] == {"oc1": 0, "oc2": 0, "oc3": 0}


def test_agx_orin_has_no_vdd_in_so_the_rails_are_summed(tmp_path):
    source = SysfsSource(Box(fake_agx_orin_rails(tmp_path)))
    assert source.rails == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"]  # NC channels skipped
    assert source.scope.startswith("sum of rails")
    # 843x6170 + 780x3437 + 4968x953 + 1800x341 uW
    assert source.read()["total_w"] == pytest.approx(5.20131 + 2.68086 + 4.734504 + 0.6138)


# --- tegrastats, the fallback ---------------------------------------------------------------------------------------
def test_tegrastats_lines_of_both_boards():
    nx = parse_line(XAVIER_NX_TEGRASTATS)
    assert nx["rails_w"] == {"VDD_IN": 2.763, "VDD_CPU_GPU_CV": 0.65, "VDD_SOC": 0.65} and nx["total_w"] == 2.763
    assert nx["temps_c"] == {"aux": 45.0, "cpu": 46.5, "thermal": 45.6, "ao": 45.0, "gpu": 45.5}  # PMIC left out
    assert nx["clocks_mhz"] == {"cpu": 1397.0, "gpu": 114.0, "emc": 204.0}
    orin = parse_line(ORIN_NANO_TEGRASTATS)
    assert orin["total_w"] == 16.321 and orin["rails_w"]["VDD_SOC"] == 3.12  # the instant value, not the average
    assert orin["clocks_mhz"] == {"cpu": 1497.0, "gpu": 612.0, "emc": 2133.0}
    assert orin["temps_c"]["tj"] == 58.312 and "RAM" not in orin["rails_w"]
    # JetPack 4 prints no unit; AGX Orin has no VDD_IN (summed); -256 C is an absent sensor
    old = parse_line("RAM 2586/7846MB CPU [0%@960,off] GR3D_FREQ 53%@140 CV0@-256C GPU@39C POM_5V_IN 3014/3014 "
                     "POM_5V_GPU 0/0")
    assert old["total_w"] == 3.014 and old["temps_c"] == {"gpu": 39.0} and old["clocks_mhz"]["gpu"] == 140.0
    agx = parse_line("GR3D_FREQ 14%@[407,407] VDD_GPU_SOC 3150mW/2971mW VDD_CPU_CV 14312mW/12415mW")
    assert agx["total_w"] == pytest.approx(17.462) and agx["clocks_mhz"] == {"gpu": 407.0}


def test_tegrastats_is_used_when_the_sysfs_rails_are_missing(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text("# R35 (release), REVISION: 4.1, GCID: 1")
    zones(root, [("GPU-therm", 40000)])
    fake = tmp_path / "tegrastats"  # prints the recorded line every --interval, as the real one does
    fake.write_text("#!%s\nimport sys, time\nms = int(sys.argv[sys.argv.index('--interval') + 1])\n"
                    "while True:\n    print(%r, flush=True)\n    time.sleep(ms / 1000)\n"
                    % (sys.executable, XAVIER_NX_TEGRASTATS))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    source, missing = open_sources(Box(root), 20, tegrastats=str(fake), **NO_NVML)
    try:
        assert source.name == "tegrastats" and source.scope == "module input (VDD_IN)"
        assert missing == ["no INA3221 power rails in sysfs (read from tegrastats instead)"]
        assert source.read()["total_w"] == 2.763
    finally:
        source.close()
    assert source.proc.poll() is not None  # the tegrastats process is gone


# --- arithmetic ----------------------------------------------------------------------------------------------------
def trace(watts, gpu=None, t=0.1, **extra):
    """Samples every t seconds with these total watts (and GPU clocks)."""
    out_ = []
    for i, w in enumerate(watts):
        r = {"total_w": w, "rails_w": {"VDD_IN": w}, "temps_c": {"gpu": 40.0 + i}, "clocks_mhz": {}}
        if gpu:
            r["clocks_mhz"]["gpu"] = gpu[i]
        for key, values in extra.items():
            r[key] = values[i]
        out_.append((round(i * t, 6), r))
    return out_


def power_of(samples, frames=12, idle=None):
    return summarize(samples, frames, source="sysfs", scope="module input (VDD_IN)", interval_ms=100,
                     cost={"ms_per_sample": 0.1, "cpu_ms_per_sample": 0.05, "cpu_percent": 0.2}, idle=idle)


def test_energy_per_frame_against_hand_computed_values():
    # 5, 7, 7, 5, 5 W every 0.1 s: (6 + 7 + 6 + 5) x 0.1 = 2.4 J over 0.4 s -> mean 6 W; 12 frames -> 200 mJ/frame
    p = power_of(trace([5, 7, 7, 5, 5]), frames=12, idle={"mean_w": 4.0})
    assert integrate([0, 0.1, 0.2, 0.3, 0.4], [5, 7, 7, 5, 5]) == pytest.approx(2.4)
    assert p["total"] == {"mean_w": 6.0, "peak_w": 7.0, "energy_j": 2.4, "energy_source": "trapezoid over 5 samples"}
    assert p["energy_per_frame_mj"] == 200.0 and p["frames_per_joule"] == 5.0
    # above an idle of 4 W: 2 W x 0.4 s / 12 frames = 66.667 mJ/frame
    assert p["above_idle"] == {"mean_w": 2.0, "energy_per_frame_mj": 66.6667}
    assert p["rails"]["VDD_IN"]["mean_w"] == 6.0 and p["temperature_c"]["gpu"] == {"min": 40.0, "max": 44.0}
    assert p["duration_s"] == 0.4 and p["samples"] == 5 and not p["throttled"]


def test_nvml_energy_counter_wins_over_integration():
    # the counter says 2.5 J (mJ: 1_000_000 -> 1_002_500) where the samples integrate to 2.4 J
    p = power_of(trace([5, 7, 7, 5, 5], energy_mj=[1e6, 1e6 + 600, 1e6 + 1300, 1e6 + 1900, 1e6 + 2500]), frames=10)
    assert p["total"]["energy_j"] == 2.5 and p["total"]["energy_source"] == "NVML energy counter"
    assert p["total"]["mean_w"] == 6.25 and p["energy_per_frame_mj"] == 250.0 and p["frames_per_joule"] == 4.0


# --- throttling ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, expected", [
    (dict(gpu=[1109, 1109, 905, 905, 905]), ["GPU clock fell from 1109 to 905 MHz"]),
    (dict(gpu=[1109, 905, 1109, 905, 1109]), []),  # single dips: the governor, not a cap
    (dict(clocks_mhz=[{"cpu": 1907}, {"cpu": 729}, {"cpu": 729}, {"cpu": 1190}, {"cpu": 729}]), []),  # CPU governor
    (dict(ceilings_mhz=[{"cpu": 1907}] * 3 + [{"cpu": 1420}] * 2), ["CPU clock ceiling lowered from 1907 to 1420 MHz"]),
    (dict(events=[{"oc3": 0}, {"oc3": 0}, {"oc3": 4}, {"oc3": 9}, {"oc3": 9}]),
     ["9 oc3 over-current/under-voltage events"]),
    (dict(reasons=[0x1, 0x1, 0x1, 0x2, 0x1]), []),  # GPU idle, application clocks: not throttling
    (dict(reasons=[0, 0, 0x40, 0x4, 0]), ["NVML: SW power cap", "NVML: HW thermal slowdown"]),
])
def test_throttle_verdict(extra, expected):
    samples = trace([5] * 5, **extra)
    assert throttle_reasons(samples) == expected
    p = power_of(samples)
    assert p["throttled"] is bool(expected) and p["throttle_reasons"] == expected
    warning = report.throttle_warning(p, "yolov8n")
    assert (warning is not None) is bool(expected)
    if expected:
        assert warning.startswith("WARNING: yolov8n was throttled during the timed run (")


def test_a_clock_drop_read_from_sysfs_sets_the_flag(tmp_path):
    root = fake_orin_nano(tmp_path)
    source = SysfsSource(Box(root))
    cur = root / "sys/class/devfreq/17000000.gpu/cur_freq"
    samples = []
    for i, hz in enumerate(["1020000000", "1020000000", "816000000", "612000000", "612000000"]):
        cur.write_text(hz)  # the thermal governor capping the GPU mid-run
        samples.append((i * 0.1, source.read()))
    p = power_of(samples, frames=50)
    assert p["throttled"] and p["throttle_reasons"] == ["GPU clock fell from 1020 to 612 MHz"]
    assert p["clocks_mhz"]["gpu"] == {"start": 1020.0, "min": 612.0, "median": 816.0, "max": 1020.0}


# --- the sampler ---------------------------------------------------------------------------------------------------
class Scripted:
    """A source that returns a scripted trace, one reading per read(), then repeats the last."""

    name, scope, missing = "scripted", "module input (VDD_IN)", []

    def __init__(self, readings):
        self.readings, self.reads = readings, 0

    def has_power(self):
        return True

    def read(self):
        self.reads += 1
        return dict(self.readings[min(self.reads, len(self.readings)) - 1])

    def close(self):
        pass


def test_sampler_takes_a_reading_at_start_and_at_stop_and_measures_its_cost():
    source = Scripted([{"total_w": 5.0}])
    s = Sampler(source, 0.005).start()
    s.stop()
    assert len(s.samples) >= 2 and source.reads == len(s.samples)
    cost = s.cost()
    assert set(cost) == {"ms_per_sample", "cpu_ms_per_sample", "cpu_percent"} and cost["ms_per_sample"] >= 0
    meter = PowerMeter(None, ["no sensors"], 100)
    with measure(meter) as run:
        pass
    assert run.summary(10) == {"available": False, "power_available": False, "missing": ["no sensors"]}
    with measure(None) as run:
        pass
    assert run.summary(10) is None  # --no-power: no power block at all


def test_open_says_power_not_available_once_and_measures_idle(tmp_path):
    said = []
    meter = PowerMeter.open(50, idle_s=0.05, box=Box(tmp_path), say=said.append, **NO_NVML)
    assert meter.source is None and meter.idle is None
    assert said[0].startswith("power: not available (no INA3221 power rails in sysfs; no NVML GPU power")
    assert said[1] == "--idle 0.05: no power readings on this box, so no idle baseline"
    said.clear()
    meter = PowerMeter.open(10, idle_s=0.05, box=Box(fake_xavier_nx(tmp_path / "nx")), say=said.append, **NO_NVML)
    assert said == ["measuring the idle baseline for 0.05 s (keep the box otherwise idle)"]
    assert meter.idle["mean_w"] == pytest.approx(2.76424, abs=1e-4) and meter.idle["samples"] >= 2


# --- bench and camera --------------------------------------------------------------------------------------------
@pytest.fixture
def on_box(monkeypatch):
    """Make the commands read this fake root (and no NVML) instead of the real box."""

    def use(root, nvml=False):
        monkeypatch.setattr(sampler, "Box", lambda: Box(root))
        if not nvml:
            monkeypatch.setattr(sources, "open_nvml", lambda module="pynvml": None)

    return use


def test_bench_on_a_xavier_nx_prints_power_and_energy_per_frame(synthetic_model, tmp_path, on_box):
    on_box(fake_xavier_nx(tmp_path / "nx"))
    onnx = synthetic_model[2]
    js, cs = tmp_path / "bench.json", tmp_path / "bench.csv"
    result = invoke(["bench", onnx, "--warmup", 1, "--iterations", 8, "--threads", 1, "--power-interval", 10,
                     "--idle", 0.05, "--json", js, "--csv", cs])
    assert result.exit_code == 0, result.output
    assert "W mean/peak" in result.output and "mJ/frame" in result.output and "2.76 / 2.76" in result.output
    assert "power module input (VDD_IN): mean 2.76 W" in result.output
    assert "above idle (2.76 W): +0.00 W" in result.output
    assert "not available" not in result.output and "WARNING" not in result.output
    (r,) = json.loads(js.read_text())["results"]
    p = r["power"]
    assert p["source"] == "sysfs" and p["frames"] == 8 and p["samples"] >= 2 and not p["throttled"]
    assert p["total"]["mean_w"] == pytest.approx(2.76424, abs=1e-4)  # watts kept to 0.1 mW
    assert p["rails"]["VDD_SOC"]["peak_w"] == pytest.approx(0.653256, abs=1e-4)
    # constant power: energy per frame = P x sampled time / frames
    assert p["energy_per_frame_mj"] == pytest.approx(2.76424 * p["duration_s"] * 1e3 / 8, rel=1e-3)
    assert p["frames_per_joule"] == pytest.approx(1e3 / p["energy_per_frame_mj"], rel=1e-3)
    assert p["temperature_c"]["gpu"] == {"min": 45.5, "max": 45.5}
    assert p["clocks_mhz"]["gpu"]["median"] == 1109.25 and p["missing"] == ["no EMC clock (BPMP debugfs needs root)"]
    rows = list(csv.DictReader(cs.open()))
    assert float(rows[-1]["power_w_mean"]) == pytest.approx(2.76424, abs=1e-4) and rows[-1]["throttled"] == "False"
    assert rows[0]["power_w_mean"] == ""  # power sits on the e2e row


def test_a_box_with_no_sensors_benches_unchanged(synthetic_model, tmp_path, on_box):
    on_box(tmp_path / "empty")
    onnx = synthetic_model[2]
    js, cs = tmp_path / "bench.json", tmp_path / "bench.csv"
    result = invoke(["bench", onnx, onnx, "--warmup", 1, "--iterations", 3, "--threads", 1, "--json", js,
                     "--csv", cs])
    assert result.exit_code == 0, result.output
    assert result.output.count("power: not available") == 1  # once, for two models
    assert "W mean/peak" not in result.output and "mJ/frame" not in result.output
    results = json.loads(js.read_text())["results"]
    assert [r["power"]["available"] for r in results] == [False, False]
    assert all(r["iterations"] == 3 and r["stages"]["e2e"]["count"] == 3 for r in results)
    assert {row["power_w_mean"] for row in csv.DictReader(cs.open())} == {""}
    off = invoke(["bench", onnx, "--warmup", 0, "--iterations", 2, "--no-power", "--no-save"])
    assert off.exit_code == 0 and "power" not in off.output


def test_throttling_during_a_bench_warns_in_the_table(synthetic_model, tmp_path, monkeypatch):
    readings = [{"total_w": 6.0, "clocks_mhz": {"gpu": 1109.0}}, {"total_w": 6.0, "clocks_mhz": {"gpu": 905.0}}]
    monkeypatch.setattr(sources, "open_sources", lambda box, interval_ms, **kw: (Scripted(readings), []))
    results = bench_models([str(synthetic_model[2])], BenchConfig(warmup=0, duration=0.3, threads=1,
                                                                  power_interval=10), show_progress=False)
    p = results[0]["power"]
    assert p["samples"] >= 3, p
    assert p["throttled"] and p["throttle_reasons"] == ["GPU clock fell from 1109 to 905 MHz"]
    with out.capture() as captured:
        out.print(results_table(results))
    assert "WARNING: synthetic-yolov8n-160 was throttled during the timed run (GPU clock fell" in captured.get()
    assert "True" in to_csv(results).splitlines()[-1]


def fake_nvml(powers_mw, reasons):
    """A stand-in for nvidia-ml-py on a desktop GPU: scripted power, an energy counter, one throttle reason."""
    nvml = types.ModuleType("fake_pynvml")
    state = {"reads": 0, "energy": 5_000_000}
    nvml.NVML_TEMPERATURE_GPU, nvml.NVML_CLOCK_SM, nvml.NVML_CLOCK_MEM = 0, 1, 2
    nvml.nvmlInit = nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetHandleByIndex = lambda i: "gpu%d" % i
    nvml.nvmlDeviceGetName = lambda h: b"NVIDIA H200"

    def power(h):
        state["reads"] += 1
        return powers_mw[min(state["reads"], len(powers_mw)) - 1]

    def energy(h):
        state["energy"] += 25_000  # 25 J per reading
        return state["energy"]

    nvml.nvmlDeviceGetPowerUsage = power
    nvml.nvmlDeviceGetTotalEnergyConsumption = energy
    nvml.nvmlDeviceGetTemperature = lambda h, sensor: 61
    nvml.nvmlDeviceGetClockInfo = lambda h, clock: {1: 1980, 2: 3201}[clock]
    nvml.nvmlDeviceGetCurrentClocksEventReasons = lambda h: reasons
    return nvml


def test_desktop_gpu_through_nvml(synthetic_model, tmp_path, monkeypatch, on_box):
    on_box(tmp_path / "pc", nvml=True)  # a PC: no Jetson files, NVML is the source
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([250_000, 310_000, 280_000], reasons=0x1))
    results = bench_models([str(synthetic_model[2])], BenchConfig(warmup=0, iterations=5, threads=1,
                                                                  power_interval=10), show_progress=False)
    p = results[0]["power"]
    assert p["source"] == "nvml" and p["scope"] == "GPU board power (NVML, NVIDIA H200)"
    assert p["total"]["energy_source"] == "NVML energy counter"
    assert p["total"]["energy_j"] == 25.0 * (p["samples"] - 1)  # the counter's difference, not the integral
    assert p["total"]["peak_w"] <= 310.0 and p["temperature_c"]["gpu"] == {"min": 61.0, "max": 61.0}
    assert p["clocks_mhz"]["gpu"]["median"] == 1980.0 and p["clocks_mhz"]["mem"]["min"] == 3201.0
    assert not p["throttled"]  # GPU idle is not a throttle reason
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([250_000], reasons=0x20))
    source = sources.open_nvml()
    assert throttle_reasons([(0.0, source.read()), (0.1, source.read())]) == ["NVML: SW thermal slowdown"]


@pytest.mark.gpu
def test_real_nvml_reads_power():
    pytest.importorskip("pynvml")
    source = sources.open_nvml()
    if source is None:
        pytest.skip("no NVML GPU")
    r = source.read()
    assert r["total_w"] > 0 and r["clocks_mhz"]["gpu"] > 0 and "gpu" in r["temps_c"]


def test_camera_summary_carries_power(synthetic_model, tmp_path, on_box):
    on_box(fake_orin_nano(tmp_path / "orin"))
    js, cs = tmp_path / "camera.json", tmp_path / "camera.csv"
    result = invoke(["camera", "synthetic://?width=320&height=240&fps=60", "--model", synthetic_model[2],
                     "--frames", 6, "--headless", "--engine-iters", 0, "--power-interval", 10, "--json", js,
                     "--csv", cs])
    assert result.exit_code == 0, result.output
    assert "power module input (VDD_IN): mean 16.32 W, peak 16.32 W" in result.output
    assert "hottest gpu 58.6 C" in result.output and "clocks MHz min/median: CPU 1728/1728" in result.output
    (summary,) = json.loads(js.read_text())["results"]
    p = summary["power"]
    assert p["frames"] == 6 and p["energy_per_frame_mj"] == pytest.approx(16.32 * p["duration_s"] * 1e3 / 6, rel=1e-3)
    assert not p["throttled"] and p["clocks_mhz"]["emc"]["min"] == 3199.0
    e2e = [row for row in csv.DictReader(cs.open()) if row["stage"] == "e2e"]
    assert float(e2e[0]["power_w_mean"]) == pytest.approx(16.32)


# --- edgekit report: a column per figure and accuracy vs energy per frame -------------------------------------------
def test_report_shows_power_and_plots_accuracy_vs_energy(tmp_path):
    import cv2

    system = {"hostname": "nx1", "jetson": {"model": "Jetson Xavier NX", "power_mode": "MODE_20W_6CORE"}}
    stages = {s: {"mean": v} for s, v in (("preprocess", 1), ("inference", 20), ("postprocess", 2), ("e2e", 23))}
    power = power_of(trace([5, 7, 7, 5, 5], gpu=[1109, 1109, 905, 905, 905]), frames=12)
    bench = {"kind": "bench", "created_at": "2026-01-01T00:00:00", "system": system, "results": [
        dict(name="m", model="m.engine", sha256="abc", backend="tensorrt", precision="fp16", fps=43.5, trained=True,
             stages=stages, power=power),
        dict(name="n", model="n.engine", sha256="def", backend="tensorrt", precision="fp16", fps=20.0, trained=True,
             stages=dict(stages, e2e={"mean": 50})),  # benched with --no-power
    ]}
    ev = {"kind": "eval", "created_at": "2026-01-01T00:01:00", "system": system, "results": [
        {"name": "m", "model": "m.engine", "sha256": "abc", "backend": "tensorrt", "precision": "fp16",
         "metrics": {"map50_95": 0.5, "map50": 0.7, "recall": 0.6, "precision": 0.8}}]}
    (tmp_path / "b.json").write_text(json.dumps(bench))
    (tmp_path / "e.json").write_text(json.dumps(ev))
    md, png = tmp_path / "r.md", tmp_path / "r.png"
    result = invoke(["report", tmp_path, "--markdown", md, "--plot", png])
    assert result.exit_code == 0, result.output
    lines = md.read_text().splitlines()
    assert lines[2].endswith("| recall | W | mJ/frame |")
    assert "| m (throttled) | - | no | fp16 | tensorrt | local engine | - | - | - | 1.00 | 20.00 | 2.00 | 23.00 | " \
           "43.5 | - | 0.500 | 0.600 | 6.00 | 200.0 |" in md.read_text()
    assert "| n | - | no | fp16 | tensorrt | local engine | - | - | - | 1.00 | 20.00 | 2.00 | 50.00 | 20.0 | - | - | " \
           "- | - | - |" in md.read_text()
    wide = cv2.imread(str(png)).shape[1]
    # without power the plot has one panel (accuracy vs latency) and is about half as wide
    bench["results"][0].pop("power")
    (tmp_path / "b.json").write_text(json.dumps(bench))
    assert invoke(["report", tmp_path, "--plot", png]).exit_code == 0
    assert cv2.imread(str(png)).shape[1] < 0.75 * wide


def test_a_long_run_keeps_bounded_readings_that_still_span_it(monkeypatch):
    for cap in (10, 9):
        monkeypatch.setattr(sampler, "MAX_KEPT", cap)
        s = Sampler(Scripted([{"total_w": float(i)} for i in range(1, 26)]), 0.0)
        for _ in range(25):
            s._sample()
        kept = [r["total_w"] for _, r in s.samples]
        assert s.reads == 25 and len(kept) <= cap and kept == sorted(kept)
        assert kept[0] == 1.0 and kept[-1] == 25.0  # the first and the newest reading are always kept
