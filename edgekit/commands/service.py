"""edgekit service: the field demo (edgekit camera) as a systemd unit."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def service():
    """The field demo (edgekit camera) as a systemd service: starts at boot, restarts, logs to the journal."""


@service.command("install")
@click.option("--source", required=True, help="Camera or stream URI, e.g. csi://0, /dev/video0, rtsp://...")
@click.option("--model", required=True, help="Engine (or ONNX) to run.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Web stream port (edgekit camera --serve).")
@click.option("--name", default="edgekit-camera", show_default=True, help="Unit name.")
@click.option("--user", default=None, help="User the demo runs as  [default: you, also under sudo]")
@click.option("--unit-dir", default=None, help="Write the unit here instead of /etc/systemd/system (no start).")
@click.option("--no-start", is_flag=True, help="Write the unit only; do not enable or start it.")
@click.option("--print", "print_only", is_flag=True, help="Print the unit and write nothing.")
@click.argument("camera_args", nargs=-1, type=click.UNPROCESSED)
def service_install(source, model, port, name, user, unit_dir, no_start, print_only, camera_args):
    """Write, enable and start the unit; extra args after -- go to edgekit camera (e.g. -- --conf 0.4)."""
    from edgekit import service as svc

    if print_only:
        click.echo(svc.render(source, str(Path(model).expanduser().resolve()), port, name, user,
                              extra=list(camera_args)), nl=False)
        return
    click.echo(str(svc.install(source, model, port, name, user, unit_dir, start=not no_start,
                               extra=list(camera_args))))


@service.command("uninstall")
@click.option("--name", default="edgekit-camera", show_default=True)
@click.option("--unit-dir", default=None, help="Where the unit was written (default /etc/systemd/system).")
def service_uninstall(name, unit_dir):
    """Stop, disable and remove the unit."""
    from edgekit import service as svc

    click.echo(str(svc.uninstall(name, unit_dir)))


COMMANDS = [service]
