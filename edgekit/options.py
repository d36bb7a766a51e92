"""Option bundles and helpers every command shares, spelled once (sqlite-utils' ``output_options`` style).

Commands import from here, and ``edgekit.cli`` assembles the commands into the group, so nothing imports
``edgekit.cli`` but the entry point.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from edgekit.outputs import writable_file

DEFAULT_OPSET = 17  # kept equal to edgekit.host.export.DEFAULT_OPSET without importing the host package

# --- numeric types: every number a user types is checked when the command line is parsed ----------------
class FloatRange(click.FloatRange):
    """click's FloatRange, but only for finite numbers: click lets ``nan`` through every bound (each comparison
    with NaN is false) and ``inf`` through every open upper end, so ``--duration nan`` would never end and
    ``--conf nan`` would keep nothing. Every float option in edgekit uses this type (a test walks the CLI)."""

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail("%s is not a finite number" % value, param, ctx)
        return super().convert(number, param, ctx)


POSITIVE_INT = click.IntRange(min=1)
NON_NEGATIVE_INT = click.IntRange(min=0)
POSITIVE_FLOAT = FloatRange(min=0, min_open=True)
NON_NEGATIVE_FLOAT = FloatRange(min=0)
UNIT_INTERVAL = FloatRange(0.0, 1.0)  # confidence and IoU thresholds
FRAME_SIZE = click.IntRange(16, 16384)  # capture width/height in pixels
FRAME_RATE = FloatRange(0, 1000, min_open=True)  # frames per second
PORT = click.IntRange(0, 65535)


def png_path(ctx, param, value):
    """Plots are written as PNG: a --plot path must say so (report.jpg would hold PNG bytes)."""
    if value and not str(value).lower().endswith(".png"):
        raise click.BadParameter("%s: plots are PNG files, give a name ending in .png" % value)
    return writable_file(ctx, param, value)


class ImageSize(click.ParamType):
    """A network input size: a positive multiple of 32 (YOLOv8's largest stride), never silently rounded."""

    name = "imgsz"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            size = value
        else:
            try:
                size = int(str(value), 10)
            except ValueError:
                self.fail("%r is not a whole number" % value, param, ctx)
        if size < 32 or size % 32:
            self.fail("%d is not a positive multiple of 32 (e.g. 320, 640)" % size, param, ctx)
        return size


IMGSZ = ImageSize()


class ParsingOption(click.Option):
    """A click option that sees each occurrence on the command line as it is parsed: subclasses define
    ``parse(value, state, flag, original)`` and call ``original(value, state)`` to store the value."""

    def add_to_parser(self, parser, ctx):
        result = super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = parser._long_opt.get(name) or parser._short_opt.get(name)
            if opt is not None:
                original = opt.process

                def process(value, state, original=original, flag=name):
                    self.parse(value, state, flag, original, ctx)

                opt.process = process
        return result

    def parse(self, value, state, flag, original, ctx) -> None:
        original(value, state)


class ListOption(ParsingOption):
    """An option that takes every value up to the next option: ``--models a.pt b.pt c.pt`` (also repeatable,
    and comma-separated values work too)."""

    def __init__(self, *args, **kwargs):
        kwargs.update(multiple=True, type=click.UNPROCESSED)
        super().__init__(*args, **kwargs)

    def parse(self, value, state, flag, original, ctx) -> None:
        values = [value]
        while state.rargs and not state.rargs[0].startswith("-"):
            values.append(state.rargs.pop(0))
        original(tuple(values), state)

    @staticmethod
    def flatten(value) -> list:
        items = []
        for group in value or ():
            for item in group if isinstance(group, (tuple, list)) else [group]:
                items += [v for v in str(item).replace(",", " ").split() if v]
        return items


class ExclusiveFlag(ParsingOption):
    """Flags that share one destination (``--fp16``/``--int8``/...): two different ones on one command line are an
    error, where click would let the last one win silently."""

    def parse(self, value, state, flag, original, ctx) -> None:
        seen = ctx.meta.setdefault("edgekit.exclusive." + str(self.name), [])
        if flag not in seen:
            seen.append(flag)
        if len(seen) > 1:
            raise click.UsageError("%s: give only one of them" % " and ".join(seen), ctx=ctx)
        original(value, state)


# --- option bundles, spelled once for every command -------------------------------------------------
def bundle(*options):
    """A decorator that adds ``options`` (click.option decorators) in the order given: one spelling per option
    for every command that takes it."""

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


backend_options = bundle(
    click.option("--backend", type=click.Choice(["auto", "onnxruntime", "tensorrt"]), default="auto",
                 show_default=True, help="Inference backend; auto: TensorRT for engines, ONNX Runtime for ONNX."),
    click.option("--threads", type=click.IntRange(min=1), default=None,
                 help="ONNX Runtime intra-op threads  [default: one per physical core]"),
)

trust_weights_option = click.option(
    "--trust-weights", is_flag=True,
    help="Load .pt files by full unpickling, which RUNS CODE FROM THE FILE: only for weights whose author you "
         "trust. Default: ultralytics' restricted loader (weights_only), which refuses anything a checkpoint does "
         "not hold.")

def _save_or_not(ctx, param, value):
    """--no-save with --json/--csv asks for two opposite things: refuse it when the command line is parsed
    (whichever of the three click processes last sees the others). The places the results will go are checked
    here too, so a read-only or full disk is one line before the run, not a traceback after it."""
    from edgekit.outputs import results_folder_problem

    given = dict(ctx.params, **{param.name: value})
    if given.get("no_save") and (given.get("json_path") or given.get("csv_path")):
        raise click.BadParameter("--no-save writes no files, but --json/--csv name one: drop one of them")
    if value and param.name in ("json_path", "csv_path"):
        writable_file(ctx, param, value)
    if all(name in given for name in ("json_path", "csv_path", "no_save")) and not given["no_save"] \
            and not given["json_path"] and not ctx.resilient_parsing:
        from edgekit.bench.report import DEFAULT_DIR

        problem = results_folder_problem(DEFAULT_DIR)
        if problem:
            raise click.UsageError("cannot save results: %s" % problem, ctx=ctx)
    return value


output_options = bundle(
    click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 callback=_save_or_not,
                 help="Write results as JSON here  [default: benchmarks/results/COMMAND-TIME.json]"),
    click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 callback=_save_or_not, help="Also write results as CSV here."),
    click.option("--no-save", is_flag=True, callback=_save_or_not, help="Print the table only; write no files."),
)

source_options = bundle(
    click.option("--width", type=FRAME_SIZE, default=1280, show_default=True,
                 help="Capture width (cameras, synthetic)."),
    click.option("--height", type=FRAME_SIZE, default=720, show_default=True, help="Capture height."),
    click.option("--fps", type=FRAME_RATE, default=30.0, show_default=True,
                 help="Capture frame rate; image folders with --realtime play at it."),
    click.option("--flip", type=click.IntRange(0, 7), default=0, help="CSI camera flip-method (nvvidconv)."),
    click.option("--codec", type=click.Choice(["MJPG", "YUYV"]), default="MJPG", show_default=True,
                 help="USB (V4L2) camera pixel format."),
    click.option("--latency", type=click.IntRange(0, 60000), default=200, show_default=True,
                 help="RTSP jitter buffer (ms)."),
    click.option("--loop", is_flag=True, help="Restart files and image folders at their end."),
    click.option("--realtime", is_flag=True,
                 help="Play files at their frame rate, dropping late frames like a camera (default: every frame)."),
)

power_options = bundle(
    click.option("--power/--no-power", default=True, show_default=True,
                 help="Sample power, temperatures, clocks and throttling during the timed run."),
    click.option("--power-interval", type=click.IntRange(10, 10000), default=100, show_default=True,
                 help="Power sampling interval in ms (tegrastats' --interval)."),
    click.option("--idle", type=NON_NEGATIVE_FLOAT, default=0.0, show_default=True,
                 help="Seconds of idle power baseline before the run (0: none); adds power above idle."),
)


def save_results(document, json_path, csv_text, csv_path, no_save, default_path, writes=None):
    """Write a result document (JSON) and optional CSV atomically; say where.

    A write that fails (the disk filled during the run) does not stop the other: with ``writes`` (an
    :class:`edgekit.outputs.Writes`) the caller ends the command with one line naming what was not written,
    after its other output; without, that line comes here, after both were tried."""
    from edgekit.manifest import write_json_atomic, write_text_atomic
    from edgekit.outputs import Writes

    if no_save:
        return
    mine = writes is None
    writes = writes or Writes()
    path = json_path or default_path
    writes.attempt(path, lambda: write_json_atomic(path, document))
    if csv_path and csv_text is not None:
        writes.attempt(csv_path, lambda: write_text_atomic(csv_path, csv_text))
    if mine:
        writes.finish()


def class_names(ctx, param, value):
    """--track-classes person,car -> ["person", "car"] (checked against the model's names once it is open)."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("expected class names separated by commas, e.g. person,car")
    return names


def _parsed_each(parser: str):
    """A callback for a repeatable option whose values edgekit.vision.count's ``parser`` reads (one line on error)."""
    def callback(ctx, param, values):
        if not values:
            return ()
        from edgekit.vision import count

        try:
            return tuple(getattr(count, parser)(v) for v in values)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


count_lines = _parsed_each("parse_line")  # --count-line X1,Y1,X2,Y2 -> ((x1, y1), (x2, y2)) each
count_zones = _parsed_each("parse_polygon")  # --count-zone X1,Y1,X2,Y2,X3,Y3,... -> [(x, y), ...] each
