"""edgekit service: the field demo (edgekit camera) or the inference server (edgekit serve) as a systemd unit."""

from __future__ import annotations

import click


@click.group()
def service():
    """The field demo (edgekit camera), or with --serve the inference server (edgekit serve), as a systemd
    service: starts at boot, restarts on failure, logs to the journal."""


@service.command("install")
@click.option("--source", default=None, help="Camera or stream URI, e.g. csi://0, /dev/video0, rtsp://...")
@click.option("--serve", "as_server", is_flag=True,
              help="Install edgekit serve (the box as an inference server) instead of the camera demo.")
@click.option("--host", default=None,
              help="Address to bind  [default: 127.0.0.1 with --serve; 0.0.0.0 for the camera demo's web stream]")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="--serve: EnvironmentFile holding EDGEKIT_TOKEN=... (chmod 600), so the token is not in the unit; "
                   "needed for a --host other than loopback.")
@click.option("--no-token", is_flag=True, help="--serve: serve a network --host with no token (anyone may use it).")
@click.option("--model", required=True, help="Engine (or ONNX) to run.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Web stream port (edgekit camera --serve), or the server's port with --serve.")
@click.option("--name", default=None, help="Unit name  [default: edgekit-camera, edgekit-serve with --serve]")
@click.option("--user", default=None, help="User the demo runs as  [default: you, also under sudo]")
@click.option("--unit-dir", default=None, help="Write the unit here instead of /etc/systemd/system (no start).")
@click.option("--no-start", is_flag=True, help="Write the unit only; do not enable or start it.")
@click.option("--print", "print_only", is_flag=True,
              help="Make every check, print the unit that would be written, and write nothing.")
@click.argument("camera_args", nargs=-1, type=click.UNPROCESSED)
def service_install(source, as_server, host, token_file, no_token, model, port, name, user, unit_dir, no_start,
                    print_only, camera_args):
    """Write, enable and start the unit; extra args after -- go to edgekit camera or serve (e.g. -- --conf 0.4).

    Everything the unit will run with is checked first, as edgekit camera/serve will read it at boot."""
    from edgekit import service as svc
    from edgekit.log import warn
    from edgekit.serve.access import is_loopback

    name = name or (svc.SERVE_NAME if as_server else svc.DEFAULT_NAME)
    request = dict(extra=list(camera_args), serve=as_server, host=host, token_file=token_file, no_token=no_token)
    if print_only:
        path, text = svc.plan(source, model, port, name, user, unit_dir, **request)
        problem = svc.folder_problem(path.parent)
        if problem:  # --print writes nothing: say it, but still show the unit
            warn("installing it: %s" % problem)
        click.echo(text, nl=False)
    else:
        click.echo(str(svc.install(source, model, port, name, user, unit_dir, start=not no_start, **request)))
    if no_token and host and not is_loopback(host):
        warn("--no-token: the server will answer anyone who reaches %s:%d" % (host, port))


@service.command("uninstall")
@click.option("--name", default="edgekit-camera", show_default=True, help="Unit name (edgekit-serve for --serve).")
@click.option("--unit-dir", default=None, help="Where the unit was written (default /etc/systemd/system).")
def service_uninstall(name, unit_dir):
    """Stop, disable and remove the unit."""
    from edgekit import service as svc

    click.echo(str(svc.uninstall(name, unit_dir)))


COMMANDS = [service]
