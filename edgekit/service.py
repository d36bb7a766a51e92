"""``edgekit service``: the field demo (``edgekit camera``), or the box as an inference server
(``edgekit serve``, with ``--serve``), as a systemd service that starts at boot, restarts on failure and logs
to the journal (``journalctl -u edgekit-camera -f``).

``render`` makes the unit text (``jetson/systemd/edgekit-camera.service`` is one, rendered with example values);
``install`` writes it atomically and enables it; ``uninstall`` stops, disables and removes it.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from edgekit.errors import EdgekitError
from edgekit.log import info
from edgekit.manifest import write_text_atomic

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_NAME = "edgekit-camera"
SERVE_NAME = "edgekit-serve"

UNIT = """\
# Written by `edgekit service install`; remove with `edgekit service uninstall --name {name}`.
[Unit]
Description={description}
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=300
StartLimitBurst=20

[Service]
Type=simple
User={user}
SupplementaryGroups=video
WorkingDirectory={workdir}
Environment=PYTHONUNBUFFERED=1
{environment_file}ExecStart={exec_start}
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec={stop_timeout}
StandardOutput=journal
StandardError=journal
SyslogIdentifier={name}

[Install]
WantedBy=multi-user.target
"""


def camera_command(source: str, model: str, port: int, python: str, extra: Optional[List[str]] = None) -> List[str]:
    # a field demo is watched from other machines: the unit says so explicitly (camera's default is 127.0.0.1)
    return [python, "-m", "edgekit", "camera", source, "--model", model, "--headless", "--serve", str(port),
            "--host", "0.0.0.0", "--no-save"] + list(extra or [])


def serve_command(model: str, port: int, host: str, python: str, extra: Optional[List[str]] = None) -> List[str]:
    """edgekit serve for a unit: SIGTERM (systemd's stop) drains within --drain-timeout, before TimeoutStopSec."""
    return [python, "-m", "edgekit", "serve", model, "--host", host, "--port", str(port), "--drain-timeout", "15"] + \
        list(extra or [])


def default_user() -> str:
    """Who the demo runs as: the user who typed ``sudo edgekit service install``, not root."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def render(source: str, model: str, port: int = 8080, name: str = DEFAULT_NAME, user: Optional[str] = None,
           workdir: Optional[str] = None, python: Optional[str] = None, extra: Optional[List[str]] = None,
           serve: bool = False, host: str = "127.0.0.1", token_file: Optional[str] = None) -> str:
    """The unit text: the camera demo on ``source``, or with ``serve`` the inference server on HOST:PORT (its
    token, if any, comes from ``token_file``, a root-readable EnvironmentFile with EDGEKIT_TOKEN=...)."""
    if not 0 < port < 65536:
        raise EdgekitError("--port %d: give a TCP port 1..65535" % port)
    if not name.replace("-", "").replace("_", "").replace("@", "").isalnum():
        raise EdgekitError("--name %r: use letters, digits, '-' and '_' (a systemd unit name)" % name)
    if serve:
        command = serve_command(model, port, host, python or sys.executable, extra)
        description = "edgekit inference server: %s on %s:%d" % (Path(model).name, host, port)
    else:
        command = camera_command(source, model, port, python or sys.executable, extra)
        description = "edgekit field demo: %s on %s" % (Path(model).name, source.replace("%", "%%"))
    return UNIT.format(
        name=name, description=description, user=user or default_user(),
        environment_file="EnvironmentFile=%s\n" % token_file if token_file else "",
        stop_timeout=30 if serve else 20,
        workdir=workdir or str(Path(model).resolve().parent),
        exec_start=" ".join(shlex.quote(part) for part in command).replace("%", "%%"),
    )


def install(source: str, model: str, port: int = 8080, name: str = DEFAULT_NAME, user: Optional[str] = None,
            unit_dir: Optional[str] = None, start: bool = True, extra: Optional[List[str]] = None,
            serve: bool = False, host: str = "127.0.0.1", token_file: Optional[str] = None) -> Path:
    """Write NAME.service (atomically) and, for the system unit folder, enable and start it."""
    model_path = Path(model).expanduser().resolve()
    if not model_path.is_file():
        raise EdgekitError("model %s not found: give the engine or ONNX the demo should run" % model)
    folder = Path(unit_dir) if unit_dir else SYSTEM_UNIT_DIR
    if not folder.is_dir() or not os.access(str(folder), os.W_OK):
        raise EdgekitError("cannot write to %s: run as root (sudo %s -m edgekit service install ...) or give "
                           "--unit-dir" % (folder, sys.executable))
    if token_file and not Path(token_file).is_file():
        raise EdgekitError("--token-file %s not found: write EDGEKIT_TOKEN=... into it (chmod 600)" % token_file)
    text = render(source, str(model_path), port, name, user, extra=extra, serve=serve, host=host,
                  token_file=str(Path(token_file).resolve()) if token_file else None)
    path = write_text_atomic(folder / (name + ".service"), text)
    info("wrote %s" % path)
    if start and folder == SYSTEM_UNIT_DIR:
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", name + ".service")
        info("started %s: journalctl -u %s -f; %s at http://THIS-BOX:%d/%s"
             % (name, name, "server" if serve else "stream", port, "v1/detect" if serve else ""))
    return path


def uninstall(name: str = DEFAULT_NAME, unit_dir: Optional[str] = None, stop: bool = True) -> Path:
    folder = Path(unit_dir) if unit_dir else SYSTEM_UNIT_DIR
    path = folder / (name + ".service")
    if not path.exists():
        raise EdgekitError("%s not found: nothing to uninstall (installed units: %s)"
                           % (path, ", ".join(p.stem for p in folder.glob("edgekit*.service")) or "none"))
    if stop and folder == SYSTEM_UNIT_DIR:
        _systemctl("disable", "--now", name + ".service")
    path.unlink()
    if stop and folder == SYSTEM_UNIT_DIR:
        _systemctl("daemon-reload")
    info("removed %s" % path)
    return path


def _systemctl(*args: str) -> None:
    if not shutil.which("systemctl"):
        raise EdgekitError("systemctl not found: this box does not run systemd; start the demo with edgekit camera")
    done = subprocess.run(["systemctl"] + list(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EdgekitError("systemctl %s failed: %s" % (" ".join(args), (done.stderr or done.stdout).strip()[:300]))
