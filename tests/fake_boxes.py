"""Faked Jetson filesystems, laid out as the real boards lay them out (sysfs folders, symlinks, label files).

Xavier NX on JetPack 5.1 (L4T R35.2.1): one INA3221 at I2C 7-0040 (hwmon), channels VDD_IN, VDD_CPU_GPU_CV, VDD_SOC
and the 'sum of shunt voltages' channel 7 (alumet's Jetson plugin README and jtop's logs on a Xavier NX devkit);
thermal zones CPU/GPU/AUX/AO-therm, PMIC-Die, thermal-fan-est; GPU devfreq 17000000.gv11b; no EMC clock without
root (BPMP debugfs).
Orin Nano on JetPack 6.1 (L4T R36.4): INA3221 at I2C 1-0040 with VDD_IN, VDD_CPU_GPU_CV, VDD_SOC (upstream
tegra234-p3767.dtsi), soctherm_oc over-current counters, thermal zones cpu/gpu/cv0-2/soc0-2/tj-thermal (cv zones
read -256 C on a Nano: it has no DLA), GPU devfreq 17000000.gpu under bus@0, EMC from BPMP debugfs (run as root).
AGX Orin: two INA3221 (1-0040: VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0; 1-0041: NC, VDDQ_VDD2_1V8AO, NC; upstream
tegra234-p3701.dtsi): there is no VDD_IN, so the total is the sum of the rails.

The recorded tegrastats lines are public ones from those boards (Xavier NX JetPack 5.1.2; Orin Nano JetPack 6).
"""

import json
import os

XAVIER_NX_TEGRASTATS = (
    "07-09-2024 13:31:31 RAM 3168/6851MB (lfb 2x4MB) SWAP 161/3426MB (cached 0MB) "
    "CPU [23%@1397,17%@1192,16%@1190,13%@1190,23%@1190,10%@1190] EMC_FREQ 2%@204 GR3D_FREQ 0%@[114] "
    "VIC_FREQ 115 APE 150 AUX@45C CPU@46.5C thermal@45.6C AO@45C GPU@45.5C PMIC@50C "
    "VDD_IN 2763mW/2846mW VDD_CPU_GPU_CV 650mW/670mW VDD_SOC 650mW/711mW")
ORIN_NANO_TEGRASTATS = (
    "10-08-2026 04:35:02 RAM 6712/7620MB (lfb 12x4MB) SWAP 369/3810MB (cached 8MB) "
    "CPU [38%@1497,2%@729,1%@729,0%@729,1%@729,0%@729] EMC_FREQ 61%@2133 GR3D_FREQ 99%@[612] "
    "NVDEC off NVJPG off VIC off OFA off APE 200 cpu@57.125C soc2@55.093C soc0@56.625C gpu@58.625C tj@58.312C "
    "soc1@55.937C VDD_IN 16321mW/11204mW VDD_CPU_GPU_CV 7104mW/4944mW VDD_SOC 3120mW/3659mW")


def write(root, files):
    for path, text in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(str(text))


def link(root, link_path, target):
    """A relative symlink inside the fake root, as sysfs has them (class/hwmon/hwmonN -> ../../devices/...)."""
    p = root / link_path
    p.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(root / target, p.parent), p)


def ina3221(root, device, hwmon, channels):
    """channels: [(label, mV, mA)], numbered from 1; the 'sum of shunt voltages' channel 7 as the driver has it."""
    d = "%s/hwmon/%s" % (device, hwmon)
    files = {d + "/name": "ina3221", d + "/in7_label": "sum of shunt voltages", d + "/in7_input": "1200"}
    for n, (label, mv, ma) in enumerate(channels, 1):
        files.update({"%s/in%d_label" % (d, n): label, "%s/in%d_input" % (d, n): mv,
                      "%s/curr%d_input" % (d, n): ma, "%s/curr%d_crit" % (d, n): 7784})
    write(root, files)
    link(root, "sys/class/hwmon/" + hwmon, d)
    link(root, "sys/bus/i2c/drivers/ina3221/" + device.rsplit("/", 1)[1], device)


def zones(root, temps):
    for i, (kind, milli) in enumerate(temps):
        write(root, {"sys/devices/virtual/thermal/thermal_zone%d/type" % i: kind,
                     "sys/devices/virtual/thermal/thermal_zone%d/temp" % i: milli})
        link(root, "sys/class/thermal/thermal_zone%d" % i, "sys/devices/virtual/thermal/thermal_zone%d" % i)


def cpus(root, khz, max_khz):
    for i, cur in enumerate(khz):
        write(root, {"sys/devices/system/cpu/cpu%d/cpufreq/scaling_cur_freq" % i: cur,
                     "sys/devices/system/cpu/cpu%d/cpufreq/scaling_max_freq" % i: max_khz})


def fake_xavier_nx(root, release="# R35 (release), REVISION: 2.1, GCID: 32413640, BOARD: t186ref, EABI: aarch64"):
    write(root, {
        "etc/nv_tegra_release": release,
        "proc/device-tree/model": "NVIDIA Jetson Xavier NX Developer Kit\x00",
        "etc/nvpmodel.conf": "< POWER_MODEL ID=0 NAME=MODE_15W_2CORE >\nCPU_ONLINE CORE_0 1\n"
                             "< POWER_MODEL ID=8 NAME=MODE_20W_6CORE >\nCPU_ONLINE CORE_0 1\n< PM_CONFIG DEFAULT=8 >\n",
        "var/lib/nvpmodel/status": "pmode:0008 fmode:cool",
        "usr/local/cuda/version.json": json.dumps({"cuda": {"name": "CUDA SDK", "version": "11.4.19"}}),
        "usr/include/cudnn_version.h": "#define CUDNN_MAJOR 8\n#define CUDNN_MINOR 6\n#define CUDNN_PATCHLEVEL 0\n",
        "sys/devices/17000000.gv11b/devfreq/17000000.gv11b/cur_freq": "1109250000",
        "sys/devices/17000000.gv11b/devfreq/17000000.gv11b/max_freq": "1109250000",
        "sys/devices/platform/pwm-fan/hwmon/hwmon5/name": "pwmfan",
        "proc/meminfo": "MemTotal:        7765444 kB\nMemFree:  100 kB\nMemAvailable:    5120000 kB\n",
    })
    link(root, "sys/class/hwmon/hwmon5", "sys/devices/platform/pwm-fan/hwmon/hwmon5")
    ina3221(root, "sys/devices/platform/c250000.i2c/i2c-7/7-0040", "hwmon6",
            [("VDD_IN", 5072, 545), ("VDD_CPU_GPU_CV", 5064, 128), ("VDD_SOC", 5064, 129)])
    zones(root, [("CPU-therm", 46500), ("GPU-therm", 45500), ("AUX-therm", 45000), ("AO-therm", 45000),
                 ("PMIC-Die", 50000), ("thermal-fan-est", 45600)])
    cpus(root, [1190400, 1907200], 1907200)
    for dla in ("15880000.nvdla0", "158c0000.nvdla1"):
        (root / "sys/devices/platform" / dla).mkdir(parents=True)
    return root


def fake_orin_nano(root):
    gpu = "sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu"
    oc = "sys/devices/platform/soctherm-oc-event/hwmon/hwmon3"
    write(root, {
        "etc/nv_tegra_release": "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
                                "DATE: Fri Sep 13 04:36:44 UTC 2024",
        "proc/device-tree/model": "NVIDIA Jetson Orin Nano Developer Kit\x00",
        "etc/nvpmodel.conf": "< POWER_MODEL ID=0 NAME=15W >\n< POWER_MODEL ID=1 NAME=25W >\n"
                             "< POWER_MODEL ID=2 NAME=MAXN_SUPER >\n< POWER_MODEL ID=3 NAME=7W >\n",
        "var/lib/nvpmodel/status": "pmode:0002",
        gpu + "/cur_freq": "1020000000", gpu + "/max_freq": "1020000000", gpu + "/min_freq": "306000000",
        oc + "/name": "soctherm_oc", oc + "/oc1_event_cnt": "0", oc + "/oc2_event_cnt": "0",
        oc + "/oc3_event_cnt": "0", oc + "/oc1_throt_en": "1",
        "sys/kernel/debug/bpmp/debug/clk/emc/rate": "3199000000",
    })
    link(root, "sys/class/devfreq/17000000.gpu", gpu)
    link(root, "sys/class/hwmon/hwmon3", oc)
    ina3221(root, "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040", "hwmon1",
            [("VDD_IN", 5000, 3264), ("VDD_CPU_GPU_CV", 5000, 1421), ("VDD_SOC", 5000, 624)])
    zones(root, [("cpu-thermal", 57125), ("gpu-thermal", 58625), ("cv0-thermal", -256000), ("cv1-thermal", -256000),
                 ("cv2-thermal", -256000), ("soc0-thermal", 56625), ("soc1-thermal", 55937), ("soc2-thermal", 55093),
                 ("tj-thermal", 58312)])
    cpus(root, [1728000] * 6, 1728000)
    return root


def fake_agx_orin_rails(root):
    write(root, {"etc/nv_tegra_release": "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic"})
    ina3221(root, "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040", "hwmon3",
            [("VDD_GPU_SOC", 843, 6170), ("VDD_CPU_CV", 780, 3437), ("VIN_SYS_5V0", 4968, 953)])
    ina3221(root, "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0041", "hwmon4",
            [("NC", 0, 0), ("VDDQ_VDD2_1V8AO", 1800, 341), ("NC", 0, 0)])
    return root
