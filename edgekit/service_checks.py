"""What ``edgekit service install`` checks before it writes a unit, so that a unit never crash-loops at boot.

A unit that restarts on failure and stops after ``StartLimitBurst`` tries is a box that is dead in the field
with nobody watching: every argument the unit will run with is checked now, the way the command will read it.
The source URI is parsed by the grammar ``edgekit camera`` uses, the unit's full command line by the real
``camera``/``serve`` command's own parser (click), contradictions (``--serve --source``, options the unit sets
itself given again after ``--``) are refused, and a token file must hold a token and be readable by its owner only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from edgekit.errors import EdgekitError
from edgekit.serve.access import is_loopback  # edgekit serve's own rule: a token unless only loopback listens

HELP_OPTIONS = ("-h", "--help")
NEW_TOKEN = "echo EDGEKIT_TOKEN=$(openssl rand -hex 16) > %s"

# Options the unit sets itself, by the command's parameter name: given again after -- they would contradict it.
RESERVED = {
    "camera": {"model": "the unit sets it: use service install --model",
               "serve": "the unit sets it: use service install --port",
               "host": "the unit sets it: use service install --host",
               "display": "a service has no display: the unit runs --headless",
               "json_path": "the unit runs --no-save: a service keeps no result files",
               "csv_path": "the unit runs --no-save: a service keeps no result files"},
    "serve": {"host": "the unit sets it: use service install --host",
              "port": "the unit sets it: use service install --port",
              "drain_timeout": "the unit sets 15 s, inside systemd's 30 s stop timeout",
              "token": "a token in the unit file is readable by every user: use --token-file",
              "no_token": "use service install --no-token"},
}


def check_kind(source: Optional[str], serve: bool, host: Optional[str], token_file: Optional[str], no_token: bool,
               port: int) -> None:
    """Refuse what contradicts itself: the camera demo and the server take different options."""
    if serve and source:
        raise EdgekitError("--source is for the camera demo; --serve installs edgekit serve, which takes its images "
                           "over HTTP: drop --source or --serve")
    if not serve and not source:
        raise EdgekitError("give --source (the camera demo's camera or stream), or --serve for the inference server")
    if not serve and (token_file or no_token):
        raise EdgekitError("%s is for --serve (edgekit serve's token); the camera demo's stream has no token"
                           % ("--token-file" if token_file else "--no-token"))
    if token_file and no_token:
        raise EdgekitError("--token-file and --no-token ask for opposite things: give one")
    if serve and host and not is_loopback(host) and not token_file and not no_token:
        raise EdgekitError("--serve --host %s: anyone who reaches %s:%d could use the server; add --token-file FILE "
                           "(%s; chmod 600 FILE), or --no-token to serve it open"
                           % (host, host, port, NEW_TOKEN % "FILE"))


def check_token_file(token_file: str) -> Path:
    """The token file as an absolute path (systemd needs one), once it is private and holds a token."""
    path = Path(token_file).expanduser()
    if not path.is_file():
        raise EdgekitError("--token-file %s not found: write one with %s; chmod 600 %s"
                           % (token_file, NEW_TOKEN % token_file, token_file))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise EdgekitError("--token-file %s can be read by other users (mode %03o): chmod 600 %s"
                           % (token_file, mode, token_file))
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgekitError("cannot read --token-file %s (%s): run as its owner (sudo ...)"
                           % (token_file, getattr(exc, "strerror", None) or exc)) from exc
    if not token_in(text):
        raise EdgekitError("--token-file %s has no EDGEKIT_TOKEN=... line with a value, so the server would run "
                           "without a token: %s" % (token_file, NEW_TOKEN % token_file))
    return path.resolve()


def token_in(text: str) -> Optional[str]:
    """EDGEKIT_TOKEN's value as systemd's EnvironmentFile= reads it (comments skipped, quotes dropped, the last
    assignment wins), or None when it is missing or empty."""
    value = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, eq, rest = line.partition("=")
        if eq and key.strip() == "EDGEKIT_TOKEN":
            rest = rest.strip()
            if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\"":
                rest = rest[1:-1]
            value = rest.strip()
    return value or None


def check_source(source: str) -> str:
    """The camera demo's source as the unit should name it: parsed by edgekit camera's URI grammar; a file,
    image or folder must exist and becomes absolute (the unit runs in the model's folder)."""
    from edgekit.video.uri import parse_uri

    try:
        spec = parse_uri(source)
    except EdgekitError as exc:
        raise EdgekitError("--source %s" % exc) from exc
    if spec.kind == "v4l2" and not Path(spec.location).exists():
        raise EdgekitError("--source %s: no such camera now (ls /dev/video*): plug it in before installing, or the "
                           "unit would restart until it gives up" % source)
    if spec.kind != "file":
        return source
    path = Path(spec.location).expanduser()
    if not path.exists():
        raise EdgekitError("--source %s not found: give the video, image or folder the demo should play, or a "
                           "camera (csi://0, /dev/video0, rtsp://...)" % source)
    return source if source == str(path) and path.is_absolute() else os.path.abspath(str(path))


def command_params(kind: str) -> Dict[str, Any]:
    """The click parameters of ``edgekit KIND`` (camera or serve), by name."""
    from edgekit.cli import cli

    return {param.name: param for param in cli.commands[kind].params}


def check_extra(kind: str, extra: List[str]) -> None:
    """Arguments after -- must not set again what the unit sets (click would silently take the last one)."""
    params = command_params(kind)
    for token in extra:
        if token == "--":  # what follows is positional
            return
        if token in HELP_OPTIONS:
            raise EdgekitError("-- %s: the unit would print help and stop; see edgekit %s --help" % (token, kind))
        for name, why in RESERVED[kind].items():
            param = params.get(name)
            names = list(param.opts) + list(param.secondary_opts) if param is not None else []
            if token in names or any(token.startswith(n + "=") for n in names if n.startswith("--")):
                raise EdgekitError("-- %s: %s" % (token.split("=")[0], why))


def check_command_line(kind: str, args: List[str], workdir: str) -> None:
    """Parse ``edgekit ARGS`` exactly as the unit will at boot (click, resilient parsing off, relative paths from
    the unit's WorkingDirectory); a refusal is one line naming the bad argument."""
    import click

    from edgekit.cli import cli

    here = os.getcwd()
    os.chdir(workdir)
    try:
        parent = cli.make_context("edgekit", list(args))
        command = cli.get_command(parent, args[0])
        ctx = command.make_context(args[0], list(args[1:]), parent=parent)
        sources = ctx.params.get("sources") or ()
        ctx.close()
        if len(sources) > 1:
            raise EdgekitError("the unit runs one source (--source %s); %s after -- would be another: a unit with "
                               "several sources is not made by service install yet (run edgekit camera SRC1 SRC2 ... "
                               "yourself)" % (sources[0], " ".join(sources[1:])))
    except (click.ClickException, EdgekitError) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        raise EdgekitError("the unit would fail at every start: edgekit %s refuses its arguments: %s (fix the "
                           "arguments after --; see edgekit %s --help)" % (kind, message, kind)) from exc
    except (click.exceptions.Exit, click.Abort) as exc:
        raise EdgekitError("the unit would stop at once: edgekit %s exits on these arguments (see edgekit %s "
                           "--help)" % (kind, kind)) from exc
    finally:
        os.chdir(here)


def check_host(host: Optional[str]) -> None:
    """--host must be an address this box can listen on (0.0.0.0, 127.0.0.1 or one of its own), or the unit
    fails at every start; the check binds an ephemeral port, so a running service on --port does not matter."""
    from edgekit.serve.access import check_bind

    if host:
        try:
            check_bind(host, 0)
        except EdgekitError as exc:
            raise EdgekitError("--host %s: the unit could not listen there: %s" % (host, exc)) from exc


def absolute_paths(kind: str, extra: List[str]) -> List[str]:
    """Files named after -- (``--record demo.mp4``, ``--log frames.jsonl``) made absolute from the folder
    install runs in: the unit runs in the model's folder, where a relative path would land elsewhere."""
    import click

    path_options = {opt for param in command_params(kind).values() if isinstance(param, click.Option)
                    and isinstance(param.type, click.Path) for opt in param.opts}
    out: List[str] = []
    for i, token in enumerate(extra):
        name, eq, value = token.partition("=")
        if eq and name in path_options:
            token = "%s=%s" % (name, os.path.abspath(value))
        elif i and extra[i - 1] in path_options and not token.startswith("-"):
            token = os.path.abspath(token)
        out.append(token)
    return out
