"""edgekit service: the field demo (edgekit camera) or the inference server (edgekit serve) as a systemd unit."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def service():
    """The field demo (edgekit camera), or with --serve the inference server (edgekit serve), as a systemd
    service: starts at boot, restarts on failure, logs to the journal."""


@service.command("install")
@click.option("--source", default=None, help="Camera or stream URI, e.g. csi://0, /dev/video0, rtsp://...")
@click.option("--serve", "as_server", is_flag=True,
              help="Install edgekit serve (the box as an inference server) instead of the camera demo.")
@click.option("--host", default="127.0.0.1", show_default=True, help="--serve: address to bind (0.0.0.0: network).")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="--serve: EnvironmentFile holding EDGEKIT_TOKEN=... (chmod 600), so the token is not in the unit.")
@click.option("--model", required=True, help="Engine (or ONNX) to run.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Web stream port (edgekit camera --serve), or the server's port with --serve.")
@click.option("--name", default=None, help="Unit name  [default: edgekit-camera, edgekit-serve with --serve]")
@click.option("--user", default=None, help="User the demo runs as  [default: you, also under sudo]")
@click.option("--unit-dir", default=None, help="Write the unit here instead of /etc/systemd/system (no start).")
@click.option("--no-start", is_flag=True, help="Write the unit only; do not enable or start it.")
@click.option("--print", "print_only", is_flag=True, help="Print the unit and write nothing.")
@click.argument("camera_args", nargs=-1, type=click.UNPROCESSED)
def service_install(source, as_server, host, token_file, model, port, name, user, unit_dir, no_start, print_only,
                    camera_args):
    """Write, enable and start the unit; extra args after -- go to edgekit camera or serve (e.g. -- --conf 0.4)."""
    from edgekit import service as svc
    from edgekit.errors import EdgekitError
    from edgekit.log import warn

    if not as_server and not source:
        raise EdgekitError("give --source (the camera demo's camera or stream), or --serve for the inference server")
    name = name or (svc.SERVE_NAME if as_server else svc.DEFAULT_NAME)
    if as_server and host not in ("127.0.0.1", "localhost", "::1") and not token_file:
        warn("the server will answer anyone who reaches %s:%d: add --token-file (EDGEKIT_TOKEN=...)" % (host, port))
    kind = dict(serve=as_server, host=host)
    if print_only:
        click.echo(svc.render(source or "", str(Path(model).expanduser().resolve()), port, name, user,
                              extra=list(camera_args), token_file=token_file, **kind), nl=False)
        return
    click.echo(str(svc.install(source or "", model, port, name, user, unit_dir, start=not no_start,
                               extra=list(camera_args), token_file=token_file, **kind)))


@service.command("uninstall")
@click.option("--name", default="edgekit-camera", show_default=True, help="Unit name (edgekit-serve for --serve).")
@click.option("--unit-dir", default=None, help="Where the unit was written (default /etc/systemd/system).")
def service_uninstall(name, unit_dir):
    """Stop, disable and remove the unit."""
    from edgekit import service as svc

    click.echo(str(svc.uninstall(name, unit_dir)))


COMMANDS = [service]
