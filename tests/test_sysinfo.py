"""System info recorded with every result: Jetson model and power mode when on a Jetson (read through Box)."""

from fake_boxes import fake_orin_nano, fake_xavier_nx

from edgekit import sysinfo
from edgekit.box import Box


def test_jetson_info_from_device_files(tmp_path):
    info = sysinfo.jetson_info(Box(fake_xavier_nx(tmp_path)))
    assert info == {
        "model": "NVIDIA Jetson Xavier NX Developer Kit",
        "l4t": "# R35 (release), REVISION: 2.1, GCID: 32413640, BOARD: t186ref, EABI: aarch64",
        "power_mode": "MODE_20W_6CORE",
    }


def test_orin_on_jetpack_6_and_the_same_facts_as_edgekit_info(tmp_path):
    from edgekit.boxinfo import box_info

    box = Box(fake_orin_nano(tmp_path))
    info, full = sysinfo.jetson_info(box), box_info(box)
    assert info["model"] == full["model"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert info["power_mode"] == full["power_mode"] == "MAXN_SUPER"
    assert info["l4t"].startswith("# R36 (release), REVISION: 4.0")
    assert sysinfo.system_info(box)["jetson"] == info


def test_nvpmodel_output_when_the_mode_files_are_absent(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("NVIDIA Jetson Xavier NX Developer Kit")
    box = Box(tmp_path, run=lambda cmd: "NV Power Mode: MODE_20W_6CORE\n8")
    assert sysinfo.jetson_info(box) == {"model": "NVIDIA Jetson Xavier NX Developer Kit", "l4t": None,
                                        "power_mode": "MODE_20W_6CORE"}


def test_not_a_jetson(tmp_path):
    assert sysinfo.jetson_info(Box(tmp_path)) is None


def test_system_info_fields():
    info = sysinfo.system_info()
    assert info["cpu_count"] >= 1 and info["python"] and info["cpu"]
    assert "onnxruntime" in info["versions"]
