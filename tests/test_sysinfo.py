"""System info recorded with every result: Jetson model and power mode when on a Jetson."""

from edgekit import sysinfo

FAKE = {
    "/etc/nv_tegra_release": "# R35 (release), REVISION: 2.1, GCID: 32413640, BOARD: t186ref, EABI: aarch64",
    "/proc/device-tree/model": "NVIDIA Jetson Xavier NX Developer Kit",
}


def test_jetson_info_from_device_files(monkeypatch):
    monkeypatch.setattr(sysinfo, "_read", FAKE.get)
    monkeypatch.setattr(sysinfo, "_run", lambda cmd, timeout=3.0: "NV Power Mode: MODE_20W_6CORE\n8")
    info = sysinfo.jetson_info()
    assert info == {
        "model": "NVIDIA Jetson Xavier NX Developer Kit",
        "l4t": FAKE["/etc/nv_tegra_release"],
        "power_mode": "MODE_20W_6CORE",
    }


def test_not_a_jetson(monkeypatch):
    monkeypatch.setattr(sysinfo, "_read", lambda path: None)
    assert sysinfo.jetson_info() is None


def test_system_info_fields():
    info = sysinfo.system_info()
    assert info["cpu_count"] >= 1 and info["python"] and info["cpu"]
    assert "onnxruntime" in info["versions"]
