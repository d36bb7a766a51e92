"""jetson/: setup.sh on faked boxes and for real on this PC, the fleet playbook for real against localhost
(one good host, one broken), and the field demo's systemd unit checked by systemd-analyze."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.service import render
from tests.helpers import assert_user_error, invoke

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "jetson" / "setup.sh"
PLAYBOOK_DIR = REPO / "jetson" / "ansible"


def run_setup(*args, root=None, env=None, timeout=600):
    full_env = dict(os.environ, PYTHON=sys.executable, **(env or {}))
    if root is not None:
        full_env["EDGEKIT_ROOT"] = str(root)
    return subprocess.run(["bash", str(SETUP)] + [str(a) for a in args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def fake_jetson(tmp_path, release="# R35 (release), REVISION: 2.1, GCID: 32413640, BOARD: t186ref", cuda=False,
                tensorrt=None):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nv_tegra_release").write_text(release + "\n")
    (root / "proc" / "device-tree").mkdir(parents=True)
    (root / "proc" / "device-tree" / "model").write_bytes(b"NVIDIA Jetson Xavier NX Developer Kit\x00")
    if cuda:
        (root / "usr/local/cuda/bin").mkdir(parents=True)
        (root / "usr/local/cuda/include").mkdir(parents=True)
        (root / "usr/local/cuda/bin/nvcc").write_text("#!/bin/sh\n")
        (root / "usr/local/cuda/bin/nvcc").chmod(0o755)
        (root / "usr/local/cuda/include/cuda.h").write_text("")
    env = {}
    if tensorrt:  # what JetPack's python3-libnvinfer puts on the system path, as far as setup.sh probes it
        site = tmp_path / "site" / "tensorrt"
        site.mkdir(parents=True)
        (site / "__init__.py").write_text("__version__ = %r\n" % tensorrt)
        env["PYTHONPATH"] = str(site.parent)
    return root, env


@pytest.mark.parametrize("kwargs, args, code, fragments", [
    (dict(), ["--check"], 3, ["python3-libnvinfer", "--pc"]),
    (dict(release="# R32 (release), REVISION: 7.1"), ["--check"], 3, ["JetPack 4", "JetPack 5.1+"]),
    (dict(tensorrt="8.5.2.2"), ["--check"], 3, ["/usr/local/cuda", "nvidia-jetpack"]),
    (dict(), ["--bogus"], 2, ["unknown option"]),
])
def test_setup_checks_say_what_is_missing(tmp_path, kwargs, args, code, fragments):
    root, env = fake_jetson(tmp_path, **kwargs)
    done = run_setup(*args, root=root, env=env)
    assert done.returncode == code, done.stdout + done.stderr
    for fragment in fragments:
        assert fragment in done.stderr
    assert "Traceback" not in done.stderr


def test_setup_check_passes_on_a_ready_xavier_nx(tmp_path):
    root, env = fake_jetson(tmp_path, cuda=True, tensorrt="8.5.2.2")
    done = run_setup("--check", root=root, env=env)
    assert done.returncode == 0, done.stderr
    assert "Xavier NX Developer Kit, L4T R35.2.1 (JetPack 5.1)" in done.stdout
    assert "TensorRT 8.5.2.2" in done.stdout and "nothing changed" in done.stdout


def test_setup_refuses_a_pc_without_pc_flag(tmp_path):
    done = run_setup("--check", root=tmp_path)
    assert done.returncode == 3 and "not a Jetson" in done.stderr and "--pc" in done.stderr
    assert run_setup("--pc", "--check", root=tmp_path).returncode == 0


def test_setup_outside_a_checkout_needs_a_source(tmp_path):
    """A box gets setup.sh alone (the playbook copies it): without --source there is nothing right to install, and
    the PyPI name edgekit is another project's, so it says so instead of installing that."""
    alone = tmp_path / "setup.sh"
    shutil.copy(SETUP, alone)
    done = subprocess.run(["bash", str(alone), "--pc", "--venv", str(tmp_path / "venv")], capture_output=True,
                          text=True, env=dict(os.environ, PYTHON=sys.executable), timeout=60)
    assert done.returncode == 2 and "give --source" in done.stderr and "PyPI" in done.stderr, done.stderr
    assert not (tmp_path / "venv").exists()  # refused before anything was made
    assert subprocess.run(["bash", str(alone), "--pc", "--check"], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="session")
def pc_venv(tmp_path_factory):
    """edgekit installed by setup.sh --pc from this checkout into a fresh venv (what a plain PC user runs)."""
    work = tmp_path_factory.mktemp("setup")
    source = work / "edgekit-src"  # a copy: pip builds in the source tree, and the checkout stays clean
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "__pycache__", "benchmarks", "engines", "tests", "runs"))
    venv = work / "venv"
    done = run_setup("--pc", "--venv", venv, "--source", source)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installed edgekit" in done.stdout and (venv / "bin" / "edgekit").exists()
    return venv, source


def test_setup_installs_once_then_leaves_it_alone(pc_venv):
    pc_venv, source = pc_venv
    again = run_setup("--pc", "--venv", pc_venv, "--source", source)
    assert again.returncode == 0 and "already installed" in again.stdout, again.stdout + again.stderr
    info = subprocess.run([str(pc_venv / "bin" / "edgekit"), "info", "--json"], capture_output=True, text=True)
    assert info.returncode == 0 and "edgekit" in json.loads(info.stdout)


# --- the fleet playbook, for real, against localhost ---------------------------------------------------------------
def playbook(inventory, *args):
    exe = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which("ansible-playbook")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(inventory.parent / "tmp"),
               ANSIBLE_HOME=str(inventory.parent / "ansible-home"))
    return subprocess.run([exe, "-i", str(inventory), "fleet.yml"] + [str(a) for a in args], cwd=str(PLAYBOOK_DIR),
                          capture_output=True, text=True, env=env, timeout=600)


def recap(output, host):
    line = [x for x in output.splitlines() if x.startswith(host + " ") and "ok=" in x][-1]
    return dict(item.split("=") for item in line.split(":", 1)[1].split())


@pytest.fixture
def ssh_host(tmp_path):
    """A second 'box': sshd on a loopback port with a throwaway key, so the playbook also runs over real SSH.
    Needs root and openssh-server (make test installs it where it may); None when not available."""
    import socket
    import time

    sshd = "/usr/sbin/sshd"
    if os.geteuid() != 0 or not os.path.exists(sshd) or not shutil.which("ssh"):
        yield None
        return
    d = tmp_path / "ssh"
    d.mkdir()
    for key in ("hostkey", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    shutil.copy(d / "id.pub", d / "authorized_keys")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text("\n".join([
        "Port %d" % port, "ListenAddress 127.0.0.1", "HostKey %s/hostkey" % d,
        "AuthorizedKeysFile %s/authorized_keys" % d, "PidFile %s/sshd.pid" % d, "UsePAM no", "StrictModes no",
        "PasswordAuthentication no",
        "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp", ""]))
    os.makedirs("/run/sshd", exist_ok=True)
    subprocess.run([sshd, "-f", str(d / "sshd_config"), "-E", str(d / "log")], check=True)
    for _ in range(50):
        if (d / "sshd.pid").exists():
            break
        time.sleep(0.1)
    yield {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": port, "ansible_user": "root",
           "ansible_ssh_private_key_file": str(d / "id"),
           "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}
    os.kill(int((d / "sshd.pid").read_text()), 15)


@pytest.mark.skipif(not shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
                    and not shutil.which("ansible-playbook"), reason="ansible-core not installed (dev extra)")
def test_fleet_playbook_good_and_broken_host(pc_venv, yolov8n_onnx, tmp_path, ssh_host):
    venv, source = pc_venv
    results = tmp_path / "fleet"
    inventory = tmp_path / "inventory.yml"
    installed = {"edgekit_install": True, "edgekit_venv": str(venv), "edgekit_source": str(source)}
    hosts = {"fleet": {
        "hosts": {
            "good": dict(installed, edgekit_home=str(tmp_path / "good"), ansible_connection="local"),
            "broken": {"edgekit_home": str(tmp_path / "broken"), "edgekit_install": False,
                       "edgekit_bin": "/nonexistent/edgekit", "ansible_connection": "local"},
            "nosource": {"edgekit_home": str(tmp_path / "nosource"), "ansible_connection": "local"},  # install, from?
        },
        "vars": {"ansible_python_interpreter": sys.executable,
                 "edgekit_backend": "onnxruntime", "edgekit_model": str(yolov8n_onnx),
                 "edgekit_bench_args": "--iterations 3 --warmup 1 --threads 2", "edgekit_results": str(results)},
    }}
    if ssh_host:  # the same good setup, reached over SSH like a real box
        hosts["fleet"]["hosts"]["viassh"] = dict(installed, edgekit_home=str(tmp_path / "viassh"), **ssh_host)
    inventory.write_text(json.dumps(hosts))
    extra = ["-e", "edgekit_controller_bin=%s" % (Path(sys.executable).parent / "edgekit"),
             "-e", "edgekit_report=%s" % results]
    first = playbook(inventory, *extra)
    out = first.stdout + first.stderr
    assert first.returncode != 0, out  # a host failed: the run says so ...
    assert "failed hosts: broken, nosource" in out and "edgekit not found at /nonexistent/edgekit" in out
    assert "edgekit_source is not set" in out
    assert "good: ok" in out  # ... and the good host finished
    bench = json.loads((results / "good" / "bench-good.json").read_text())
    assert bench["results"][0]["backend"] == "onnxruntime" and bench["results"][0]["iterations"] == 3
    assert json.loads((results / "good" / "info.json").read_text())["edgekit"]
    assert "onnxruntime" in (results / "fleet.md").read_text()
    assert recap(out, "broken")["rescued"] == "1"
    if ssh_host:
        assert "viassh: ok" in out and (results / "viassh" / "bench-viassh.json").exists(), out

    second = playbook(inventory, "--tags", "install,copy", *extra)
    for host in ["good"] + (["viassh"] if ssh_host else []):  # installed and copied already: nothing to change
        assert recap(second.stdout, host)["changed"] == "0", second.stdout
    check = playbook(inventory, "--check", "--limit", "good,localhost", *extra)  # broken, nosource: would fail it
    assert check.returncode == 0, check.stdout + check.stderr


# --- the field demo as a service ------------------------------------------------------------------------------------
def test_unit_example_is_what_edgekit_writes():
    expected = render("csi://0", "/home/nvidia/edgekit/engines/yolov8n-fp16-sm72-trt8.5.2.engine", 8080,
                      user="nvidia", python="/home/nvidia/.edgekit/venv/bin/python")
    assert (REPO / "jetson" / "systemd" / "edgekit-camera.service").read_text() == expected


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_service_install_verify_uninstall(yolov8n_onnx, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    result = invoke(["service", "install", "--source", "rtsp://cam.local:554/stream", "--model", yolov8n_onnx,
                     "--port", 8090, "--unit-dir", units, "--", "--conf", "0.4"])
    assert result.exit_code == 0, result.output
    unit = units / "edgekit-camera.service"
    text = unit.read_text()
    assert "--serve 8090" in text and "--conf 0.4" in text and "Restart=on-failure" in text
    assert "StandardOutput=journal" in text and "WantedBy=multi-user.target" in text
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert invoke(["service", "uninstall", "--unit-dir", units]).exit_code == 0 and not unit.exists()


def test_service_runs_as_the_user_who_typed_sudo(monkeypatch):
    monkeypatch.setenv("SUDO_USER", "nvidia")
    assert "\nUser=nvidia\n" in render("csi://0", "/m.engine")
    assert "\nUser=jetson\n" in render("csi://0", "/m.engine", user="jetson")


def test_service_errors(yolov8n_onnx, tmp_path):
    assert_user_error(invoke(["service", "install", "--source", "csi://0", "--model", tmp_path / "none.engine",
                              "--unit-dir", tmp_path]), "not found")
    assert_user_error(invoke(["service", "install", "--source", "csi://0", "--model", yolov8n_onnx,
                              "--unit-dir", tmp_path / "missing"]), "cannot write")
    assert_user_error(invoke(["service", "install", "--source", "csi://0", "--model", yolov8n_onnx,
                              "--port", 0, "--unit-dir", tmp_path]), "--port")
    assert_user_error(invoke(["service", "uninstall", "--unit-dir", tmp_path]), "nothing to uninstall")


# --- service install refuses, before writing anything, a unit that would crash-loop at boot -------------------------
@pytest.fixture
def box(tmp_path, monkeypatch):
    """A model file (service checks only that it exists), a private token file, an empty unit folder; cwd here."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"not parsed by service install")
    (tmp_path / "a%b.onnx").write_bytes(b"a name with a systemd specifier in it")
    (tmp_path / "clip.mp4").write_bytes(b"")
    write_token(tmp_path / "serve.env")
    (tmp_path / "units").mkdir()
    return tmp_path


def write_token(path, text="EDGEKIT_TOKEN=abc\n", mode=0o600):
    path.write_text(text)
    path.chmod(mode)
    return path


def install(*args, print_only=False):
    return invoke(["service", "install", "--model", "m.onnx", "--unit-dir", "units", "--no-start"]
                  + (["--print"] if print_only else []) + list(args))


@pytest.mark.parametrize("args, fragment", [
    (["--source", "synthetic://?wdth=3"], "unknown parameter 'wdth'"),
    (["--source", "synthetic://?fps=-1"], "fps=-1"),
    (["--source", "ftp://cam/x"], "unknown source scheme"),
    (["--source", "nosuch.mp4"], "nosuch.mp4 not found"),
    (["--source", "csi://0", "--", "--conf", "5"], "--conf"),
    (["--source", "csi://0", "--", "--bogus-flag", "1"], "--bogus-flag"),
    (["--source", "csi://0", "--", "clip.mp4"], "would be another"),
    (["--source", "csi://0", "--", "--record", "units"], "is a directory"),  # a path, checked from the unit's folder
    (["--source", "csi://0", "--", "--host", "10.0.0.1"], "service install --host"),
    (["--source", "csi://0", "--", "--serve=9000"], "service install --port"),
    (["--source", "csi://0", "--", "--display"], "--headless"),
    (["--source", "csi://0", "--", "--json", "x.json"], "--no-save"),
    (["--source", "csi://0", "--", "--help"], "help"),
    (["--source", "csi://0", "--token-file", "serve.env"], "for --serve"),
    (["--source", "csi://0", "--no-token"], "for --serve"),
    ([], "--source"),
    (["--serve", "--source", "csi://0"], "drop --source or --serve"),
    (["--serve", "--host", "0.0.0.0"], "--no-token"),
    (["--serve", "--host", "0.0.0.0", "--token-file", "serve.env", "--no-token"], "opposite"),
    (["--serve", "--", "--token", "abc"], "use --token-file"),
    (["--serve", "--", "--port", "9"], "service install --port"),
    (["--serve", "--", "--drain-timeout", "60"], "15 s"),
    (["--serve", "--", "--max-batch", "0"], "--max-batch"),
    (["--serve", "--", "--bogus-flag"], "--bogus-flag"),
    (["--serve", "--model", "nosuch.onnx"], "nosuch.onnx not found"),
    (["--serve", "--token-file", "nosuch.env"], "openssl rand"),
    (["--source", "/dev/video99"], "no such camera now"),
    (["--source", "csi://0", "--host", "999.1.1.1"], "--host 999.1.1.1"),
    (["--serve", "--host", "nosuch.invalid", "--no-token"], "--host nosuch.invalid"),
])
@pytest.mark.parametrize("print_only", [False, True])
def test_service_install_refuses_a_unit_that_would_crash_loop(box, args, fragment, print_only):
    assert_user_error(install(*args, print_only=print_only), fragment)
    assert list((box / "units").iterdir()) == []


@pytest.mark.parametrize("text, mode, fragment", [
    ("NOTATOKEN\n", 0o600, "echo EDGEKIT_TOKEN=$(openssl rand -hex 16) > bad.env"),
    ("EDGEKIT_TOKEN=\n", 0o600, "no EDGEKIT_TOKEN"),
    ('EDGEKIT_TOKEN=""\n', 0o600, "no EDGEKIT_TOKEN"),
    ("# EDGEKIT_TOKEN=abc\n", 0o600, "no EDGEKIT_TOKEN"),
    ("EDGEKIT_TOKEN=abc\nEDGEKIT_TOKEN=\n", 0o600, "no EDGEKIT_TOKEN"),  # systemd: the last one wins
    ("EDGEKIT_TOKEN=abc\n", 0o644, "chmod 600 bad.env"),
    ("EDGEKIT_TOKEN=abc\n", 0o640, "chmod 600 bad.env"),
])
def test_service_install_refuses_a_bad_token_file(box, text, mode, fragment):
    write_token(box / "bad.env", text, mode)
    for print_only in (False, True):
        assert_user_error(install("--serve", "--host", "0.0.0.0", "--token-file", "bad.env", print_only=print_only),
                          fragment)
    assert list((box / "units").iterdir()) == []


@pytest.mark.parametrize("text, token", [
    ("EDGEKIT_TOKEN=abc\n", "abc"), ('EDGEKIT_TOKEN="a b"\n', "a b"), (" EDGEKIT_TOKEN = abc \n", "abc"),
    ("; comment\nOTHER=1\nEDGEKIT_TOKEN='abc'\n", "abc"), ("EDGEKIT_TOKEN=''\n", None), ("", None),
])
def test_token_as_systemd_reads_it(text, token):
    from edgekit.service_checks import token_in

    assert token_in(text) == token


@pytest.mark.parametrize("args, fragments", [
    (["--source", "csi://0", "--", "--conf", "0.4"], ["camera csi://0 --model {box}/m.onnx", "--host 0.0.0.0",
                                                      "--no-save --conf 0.4\n"]),
    (["--source", "clip.mp4", "--host", "127.0.0.1"], ["camera {box}/clip.mp4 --model", "--host 127.0.0.1"]),
    (["--source", "synthetic://?width=320&fps=5"], ["'synthetic://?width=320&fps=5'"]),
    (["--serve", "--host", "0.0.0.0", "--token-file", "serve.env"], ["EnvironmentFile={box}/serve.env\n",
                                                                     "--drain-timeout 15\n"]),
    (["--serve", "--host", "0.0.0.0", "--no-token"], ["--host 0.0.0.0", "--drain-timeout 15 --no-token\n"]),
    (["--serve", "--", "--max-batch", "4"], ["--host 127.0.0.1 --port 8080 --drain-timeout 15 --max-batch 4\n"]),
    (["--source", "csi://0", "--", "--log", "f.jsonl", "--record=r.mp4"], ["--log {box}/f.jsonl --record={box}/r.mp4"]),
    (["--source", "csi://0", "--model", "a%b.onnx"], ["Description=edgekit field demo: a%%b.onnx on csi://0\n"]),
])
def test_service_print_is_exactly_what_install_writes(box, args, fragments):
    shown = install(*args, print_only=True)
    assert shown.exit_code == 0, shown.output
    assert list((box / "units").iterdir()) == []
    for fragment in fragments:
        assert fragment.format(box=box) in shown.stdout, shown.stdout
    written = install(*args)
    assert written.exit_code == 0, written.output
    (unit,) = (box / "units").iterdir()
    assert unit.read_text() == shown.stdout
    if shutil.which("systemd-analyze"):
        done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert "EnvironmentFile" not in done.stderr and "ExecStart" not in done.stderr, done.stderr


def test_service_print_shows_the_unit_even_where_it_could_not_be_written(box):
    result = invoke(["service", "install", "--model", "m.onnx", "--source", "csi://0", "--unit-dir", "missing",
                     "--print"])
    assert result.exit_code == 0 and "ExecStart=" in result.stdout, result.output
    assert "cannot write to missing" in result.output
    assert_user_error(invoke(["service", "install", "--model", "m.onnx", "--source", "csi://0", "--unit-dir",
                              "missing"]), "cannot write to missing")
