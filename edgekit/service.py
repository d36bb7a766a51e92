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
from typing import List, Optional, Tuple

from edgekit import service_checks as checks
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


def camera_command(source: str, model: str, port: int, python: str, extra: Optional[List[str]] = None,
                   host: str = "0.0.0.0") -> List[str]:
    # a field demo is watched from other machines: the unit says so explicitly (camera's default is 127.0.0.1)
    return [python, "-m", "edgekit", "camera", source, "--model", model, "--headless", "--serve", str(port),
            "--host", host, "--no-save"] + list(extra or [])


def serve_command(model: str, port: int, host: str, python: str, extra: Optional[List[str]] = None,
                  no_token: bool = False) -> List[str]:
    """edgekit serve for a unit: SIGTERM (systemd's stop) drains within --drain-timeout, before TimeoutStopSec.
    ``no_token`` is passed on as --no-token where edgekit serve has that option."""
    open_ok = ["--no-token"] if no_token and "no_token" in checks.command_params("serve") else []
    return [python, "-m", "edgekit", "serve", model, "--host", host, "--port", str(port), "--drain-timeout", "15"] + \
        open_ok + list(extra or [])


def default_user() -> str:
    """Who the demo runs as: the user who typed ``sudo edgekit service install``, not root."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def unit_command(source: str, model: str, port: int = 8080, python: Optional[str] = None,
                 extra: Optional[List[str]] = None, serve: bool = False, host: Optional[str] = None,
                 no_token: bool = False) -> List[str]:
    """The unit's ExecStart as a list: ``edgekit camera`` (host 0.0.0.0 by default) or ``edgekit serve``
    (127.0.0.1 by default)."""
    if serve:
        return serve_command(model, port, host or "127.0.0.1", python or sys.executable, extra, no_token)
    return camera_command(source, model, port, python or sys.executable, extra, host or "0.0.0.0")


def render(source: str, model: str, port: int = 8080, name: str = DEFAULT_NAME, user: Optional[str] = None,
           workdir: Optional[str] = None, python: Optional[str] = None, extra: Optional[List[str]] = None,
           serve: bool = False, host: Optional[str] = None, token_file: Optional[str] = None,
           no_token: bool = False) -> str:
    """The unit text: the camera demo on ``source``, or with ``serve`` the inference server on HOST:PORT (its
    token, if any, comes from ``token_file``, a root-readable EnvironmentFile with EDGEKIT_TOKEN=...).
    Only formats: :func:`plan` makes the checks."""
    if not 0 < port < 65536:
        raise EdgekitError("--port %d: give a TCP port 1..65535" % port)
    if not name.replace("-", "").replace("_", "").replace("@", "").isalnum():
        raise EdgekitError("--name %r: use letters, digits, '-' and '_' (a systemd unit name)" % name)
    command = unit_command(source, model, port, python, extra, serve, host, no_token)
    if serve:
        description = "edgekit inference server: %s on %s:%d" % (Path(model).name.replace("%", "%%"),
                                                                  host or "127.0.0.1", port)
    else:
        description = "edgekit field demo: %s on %s" % (Path(model).name.replace("%", "%%"),  # systemd specifiers
                                                        source.replace("%", "%%"))
    return UNIT.format(
        name=name, description=description, user=user or default_user(),
        environment_file="EnvironmentFile=%s\n" % token_file if token_file else "",
        stop_timeout=30 if serve else 20,
        workdir=workdir or str(model_location(model).parent),
        exec_start=" ".join(shlex.quote(part) for part in command).replace("%", "%%"),
    )


def plan(source: Optional[str], model: str, port: int = 8080, name: str = DEFAULT_NAME, user: Optional[str] = None,
         unit_dir: Optional[str] = None, extra: Optional[List[str]] = None, serve: bool = False,
         host: Optional[str] = None, token_file: Optional[str] = None, no_token: bool = False,
         python: Optional[str] = None) -> Tuple[Path, str]:
    """Every check the install makes, then where the unit goes and its text: ``--print`` shows this text, and
    install writes it. The unit's command line is parsed as ``edgekit camera``/``serve`` will parse it at boot,
    so a unit that would only crash-loop is refused here, before anything is written."""
    extra = list(extra or [])
    checks.check_kind(source, serve, host, token_file, no_token, port)
    model_path = model_location(model)
    if not model_path.is_file() and not is_store_run(model_path):
        raise EdgekitError("model %s not found: give the engine or ONNX the %s should run"
                           % (model, "server" if serve else "demo"))
    token_path = str(checks.check_token_file(token_file)) if token_file else None
    if not serve:
        source = checks.check_source(source or "")
    kind = "serve" if serve else "camera"
    checks.check_extra(kind, extra)
    checks.check_host(host)
    extra = checks.absolute_paths(kind, extra)
    command = unit_command(source or "", str(model_path), port, python, extra, serve, host, no_token)
    checks.check_command_line(kind, command[3:], str(model_path.parent))
    text = render(source or "", str(model_path), port, name, user, python=python, extra=extra, serve=serve,
                  host=host, token_file=token_path, no_token=no_token)
    return (Path(unit_dir) if unit_dir else SYSTEM_UNIT_DIR) / (name + ".service"), text


def is_store_run(path: Path) -> bool:
    return path.is_dir() and (path / "run.json").is_file()


def model_location(model: str) -> Path:
    """The model path the unit runs: absolute, and for a model-store run folder (HOME/store/current) not resolved
    through the symlink, so the unit runs whatever ``current`` names at each (re)start, in HOME/store."""
    path = Path(os.path.abspath(os.path.expanduser(str(model))))
    return path if is_store_run(path) else path.resolve()


def install(source: Optional[str], model: str, port: int = 8080, name: str = DEFAULT_NAME,
            user: Optional[str] = None, unit_dir: Optional[str] = None, start: bool = True,
            extra: Optional[List[str]] = None, serve: bool = False, host: Optional[str] = None,
            token_file: Optional[str] = None, no_token: bool = False) -> Path:
    """Write NAME.service (atomically) and, for the system unit folder, enable and start it."""
    path, text = plan(source, model, port, name, user, unit_dir, extra, serve, host, token_file, no_token)
    problem = folder_problem(path.parent)
    if problem:
        raise EdgekitError(problem)
    write_text_atomic(path, text)
    info("wrote %s" % path)
    if start and path.parent == SYSTEM_UNIT_DIR:
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", name + ".service")
        info("started %s: journalctl -u %s -f; %s at http://THIS-BOX:%d/%s"
             % (name, name, "server" if serve else "stream", port, "v1/detect" if serve else ""))
    return path


def folder_problem(folder: Path) -> Optional[str]:
    """Why the unit cannot be written into ``folder``, or None; root is the advice only where root would help."""
    from edgekit.outputs import writable_problem

    if not folder.is_dir():
        return "cannot write to %s: %s; give --unit-dir an existing folder" % (
            folder, "it is a file, not a folder" if folder.exists() else "no such folder")
    problem = writable_problem(folder, folder=True)
    if problem is None:
        return None
    if os.geteuid() != 0 and not os.access(str(folder), os.W_OK) and "Read-only" not in problem:
        return ("cannot write to %s: run as root (sudo %s -m edgekit service install ...) or give --unit-dir"
                % (folder, sys.executable))
    return "%s: give --unit-dir another folder" % problem


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
