"""edgekit's command line: the group and its error handling; it only assembles the commands.

The commands themselves are thin (parse options, call the library, print) and live in ``edgekit/commands/``
by area: host (export, prune, quantize, tradeoff, demo), device (bench, camera, info, eval, compare, report),
tensorrt (build, inspect), service, serve (and the remote bench), models (the model store on a box).
Heavy modules (torch, ultralytics, onnxruntime) are imported inside the
commands that need them, so ``edgekit --help`` and every device command work without torch.
"""

from __future__ import annotations

import click

from edgekit import __version__
from edgekit.commands import device, host, models, serve, service, tensorrt
from edgekit.errors import EdgekitError


class EdgekitGroup(click.Group):
    """Turns :class:`EdgekitError` and bad command lines into one line on stderr and exit code 2, never a
    traceback (click's own usage errors take three lines: usage, hint, error)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgekitError as exc:
            click.echo("error: %s" % one_line(str(exc)), err=True)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:  # options and arguments are parsed here, inside the group's invoke
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            click.echo("error: %s (see %s --help)" % (one_line(exc.format_message()), where), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:  # click would print "Aborted!" and exit 1; bench and camera stop on their own
            click.echo("error: stopped by Ctrl-C before %s finished; no output was half-written"
                       % " ".join([ctx.command_path] + ([ctx.invoked_subcommand] if ctx.invoked_subcommand else [])),
                       err=True)
            ctx.exit(130)


def one_line(text: str) -> str:
    """Messages are one line whatever they quote (journald and grep read them)."""
    return " ".join(text.split())


@click.group(cls=EdgekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
def cli():
    """YOLO detectors (YOLOv8, YOLO11, YOLO26) from the workstation to NVIDIA Jetson, with honest numbers.

    Host: export, prune, quantize, tradeoff, demo.
    Device: info, build, inspect, bench, camera, streams, eval, compare, report, serve (TensorRT, or ONNX
    Runtime anywhere). edgekit bench http://BOX:8080 benches a running edgekit serve.
    Fleet: models (the box's model store: add, build, gate, activate, health, rollback), service.
    Anywhere: make-dataset. Every command and option: docs/commands/ (make docs builds the site).
    """


# The commands live in edgekit/commands/ by area (shared option bundles in edgekit/options.py).
for _module in (host, device, tensorrt, service, serve, models):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main():
    cli(prog_name="edgekit")


if __name__ == "__main__":
    main()
