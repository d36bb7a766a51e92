"""edgekit info on a faked Jetson filesystem (Xavier NX, JetPack 5.1) and on this PC."""

import json

import pytest
from helpers import invoke

from edgekit import boxinfo


def fake_xavier(root, release="# R35 (release), REVISION: 2.1, GCID: 32413640, BOARD: t186ref, EABI: aarch64"):
    files = {
        "etc/nv_tegra_release": release,
        "proc/device-tree/model": "NVIDIA Jetson Xavier NX Developer Kit\x00",
        "usr/local/cuda/version.json": json.dumps({"cuda": {"name": "CUDA SDK", "version": "11.4.19"}}),
        "usr/include/cudnn_version.h": "#define CUDNN_MAJOR 8\n#define CUDNN_MINOR 6\n#define CUDNN_PATCHLEVEL 0\n",
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "1190400",
        "sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq": "1907200",
        "sys/devices/17000000.gv11b/devfreq/17000000.gv11b/cur_freq": "1109250000",
        "proc/meminfo": "MemTotal:        7765444 kB\nMemFree:  100 kB\nMemAvailable:    5120000 kB\n",
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    for dla in ("15880000.nvdla0", "158c0000.nvdla1"):
        (root / "sys/devices/platform" / dla).mkdir(parents=True)
    return root


def test_xavier_nx_on_jetpack_51(tmp_path):
    info = boxinfo.box_info(fake_xavier(tmp_path))
    assert info["jetson"] and info["model"] == "NVIDIA Jetson Xavier NX Developer Kit"
    assert (info["l4t"], info["jetpack"]) == ("35.2.1", "5.1")
    assert (info["cuda"], info["cudnn"]) == ("11.4.19", "8.6.0")
    assert info["clocks"] == {"cpu_mhz": [1190, 1907], "gpu_mhz": 1109}
    assert info["dla_cores"] == 2
    assert info["memory"] == {"total_mb": 7583, "available_mb": 5000}
    rows = dict(boxinfo.info_rows(info))
    assert rows["L4T / JetPack"] == "35.2.1 / 5.1" and rows["DLA cores"] == "2"


@pytest.mark.parametrize("release, jetpack", [
    ("# R35 (release), REVISION: 4.1, GCID: 1", "5.1.2"),
    ("# R36 (release), REVISION: 4.0, GCID: 1", "6.1/6.2"),
    ("# R32 (release), REVISION: 7.1, GCID: 1", "unknown (L4T 32.7.1)"),
])
def test_jetpack_from_l4t(tmp_path, release, jetpack):
    assert boxinfo.l4t(fake_xavier(tmp_path, release))["jetpack"] == jetpack


def test_plain_pc(tmp_path):
    info = boxinfo.box_info(tmp_path)  # an empty root: nothing Jetson-like
    assert not info["jetson"] and info["l4t"] is None and info["dla_cores"] == 0 and info["power_mode"] is None
    assert dict(boxinfo.info_rows(info))["device"] == "not a Jetson"


def test_info_command_table_and_json():
    table = invoke(["info"])
    assert table.exit_code == 0 and "TensorRT" in table.output and "OpenCV" in table.output
    data = json.loads(invoke(["info", "--json"]).output)
    assert {"jetson", "tensorrt", "cuda", "opencv", "dla_cores", "memory"} <= set(data)
