"""edgekit info on faked Jetson filesystems (Xavier NX on JetPack 5.1, Orin Nano on JetPack 6) and on this PC."""

import json

import pytest
from fake_boxes import fake_orin_nano, fake_xavier_nx
from helpers import invoke

from edgekit import boxinfo
from edgekit.box import Box
from edgekit.power import live


def test_xavier_nx_on_jetpack_51(tmp_path):
    info = boxinfo.box_info(fake_xavier_nx(tmp_path))
    assert info["jetson"] and info["model"] == "NVIDIA Jetson Xavier NX Developer Kit"
    assert (info["l4t"], info["jetpack"]) == ("35.2.1", "5.1")
    assert (info["cuda"], info["cudnn"]) == ("11.4.19", "8.6.0")
    assert info["power_mode"] == "MODE_20W_6CORE"  # /var/lib/nvpmodel/status pmode:0008 named by nvpmodel.conf
    assert info["clocks"] == {"cpu_mhz": [1190, 1907], "gpu_mhz": 1109, "emc_mhz": None}  # EMC: debugfs, root
    assert info["dla_cores"] == 2
    assert info["memory"] == {"total_mb": 7583, "available_mb": 5000}
    rows = dict(boxinfo.info_rows(info))
    assert rows["L4T / JetPack"] == "35.2.1 / 5.1" and rows["DLA cores"] == "2"
    assert rows["power mode"] == "MODE_20W_6CORE" and rows["clocks (MHz)"] == "CPU 1190-1907, GPU 1109, EMC -"


def test_orin_nano_on_jetpack_6(tmp_path):
    info = boxinfo.box_info(fake_orin_nano(tmp_path))
    assert info["jetson"] and info["model"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert (info["l4t"], info["jetpack"]) == ("36.4.0", "6.1/6.2")
    assert info["power_mode"] == "MAXN_SUPER"
    assert info["clocks"] == {"cpu_mhz": [1728] * 6, "gpu_mhz": 1020, "emc_mhz": 3199}
    assert info["dla_cores"] == 0


@pytest.mark.parametrize("release, jetpack", [
    ("# R35 (release), REVISION: 4.1, GCID: 1", "5.1.2"),
    ("# R36 (release), REVISION: 4.0, GCID: 1", "6.1/6.2"),
    ("# R32 (release), REVISION: 7.1, GCID: 1", "unknown (L4T 32.7.1)"),
])
def test_jetpack_from_l4t(tmp_path, release, jetpack):
    assert boxinfo.l4t(fake_xavier_nx(tmp_path, release))["jetpack"] == jetpack


def test_power_mode_from_nvpmodel_when_its_files_are_missing(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R35 (release), REVISION: 2.1, GCID: 1")
    asked = []
    box = Box(tmp_path, run=lambda cmd: asked.append(cmd) or "NVPM WARN: fan mode is not set!\n"
                                                              "NV Power Mode: MODE_10W_DESKTOP\n5")
    assert box.power_mode() == "MODE_10W_DESKTOP" and asked == [["nvpmodel", "-q"]]
    assert Box(tmp_path).power_mode() is None  # a fake root never runs the real nvpmodel


def test_plain_pc(tmp_path):
    info = boxinfo.box_info(tmp_path)  # an empty root: nothing Jetson-like
    assert not info["jetson"] and info["l4t"] is None and info["dla_cores"] == 0 and info["power_mode"] is None
    assert dict(boxinfo.info_rows(info))["device"] == "not a Jetson"


def test_info_command_table_and_json():
    import onnxruntime

    table = invoke(["info"])
    assert table.exit_code == 0 and "TensorRT" in table.output and "OpenCV" in table.output
    assert "ONNX Runtime" in table.output and onnxruntime.__version__ in table.output  # the backend on a PC
    data = json.loads(invoke(["info", "--json"]).output)
    assert {"jetson", "tensorrt", "onnxruntime", "cuda", "opencv", "dla_cores", "memory"} <= set(data)
    assert data["onnxruntime"] == {"version": onnxruntime.__version__,
                                   "providers": onnxruntime.get_available_providers()}


@pytest.mark.parametrize("ort, row", [
    ({"version": "1.18.0", "providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                         "CPUExecutionProvider"]}, "1.18.0 (providers: TensorRT, CUDA, CPU)"),
    ({"version": "1.32.0", "providers": ["CPUExecutionProvider"]}, "1.32.0 (providers: CPU)"),
    ({"version": None, "providers": []}, "-"),
])
def test_onnxruntime_row(tmp_path, ort, row):
    info = dict(boxinfo.box_info(tmp_path), onnxruntime=ort)
    assert dict(boxinfo.info_rows(info))["ONNX Runtime"] == row


class Lines:
    """A stand-in for the stdout console: not a terminal, keeps what is printed."""

    is_terminal = False

    def __init__(self):
        self.lines = []

    def out(self, text):
        self.lines.append(text)


def test_watch_shows_rails_temperatures_and_clocks(tmp_path):
    console = Lines()
    shown = live.watch(interval_ms=10, count=2, box=Box(fake_orin_nano(tmp_path)), console=console,
                       nvml_module="no_such_nvml")
    assert shown == 2 and len(console.lines) == 2
    line = console.lines[0]
    for part in ("power total 16.32 W", "VDD_IN 16.32 W", "VDD_CPU_GPU_CV 7.11 W", "VDD_SOC 3.12 W",
                 "temp gpu 58.6 C", "temp tj 58.3 C", "clock GPU 1020 MHz (max 1020)", "clock EMC 3199 MHz",
                 "events oc3 0", "throttling since start none"):
        assert part in line, line
    assert "cv0" not in line  # -256 C: no such sensor on an Orin Nano


def test_watch_json_lines_and_a_box_with_nothing(tmp_path):
    console = Lines()
    live.watch(interval_ms=10, count=1, as_json=True, box=Box(fake_xavier_nx(tmp_path)), console=console,
               nvml_module="no_such_nvml")
    (doc,) = [json.loads(line) for line in console.lines]
    assert doc["total_w"] == pytest.approx(2.76424) and doc["temps_c"]["gpu"] == 45.5 and "pmic" not in doc["temps_c"]
    empty = Lines()
    assert live.watch(interval_ms=10, count=1, box=Box(tmp_path / "empty"), console=empty,
                      nvml_module="no_such_nvml") == 0 and not empty.lines


def test_info_watch_command_on_this_machine():
    result = invoke(["info", "--watch", "--count", 1, "--interval", 10])
    assert result.exit_code == 0, result.output
    assert invoke(["info", "--watch", "--interval", 1]).exit_code == 2  # below 10 ms: refused at parse time


def test_watch_table_on_a_terminal(tmp_path):
    from rich.console import Console

    from edgekit.power.sources import SysfsSource

    reading = SysfsSource(Box(fake_xavier_nx(tmp_path))).read()
    console = Console(record=True, width=120)
    console.print(live.table(reading, ["GPU clock fell from 1109 to 905 MHz"], "watch"))
    text = console.export_text()
    for part in ("power total", "2.76 W", "VDD_CPU_GPU_CV", "temp gpu", "45.5 C", "clock GPU", "1109 MHz (max 1109)",
                 "GPU clock fell from 1109 to 905 MHz"):
        assert part in text, text
