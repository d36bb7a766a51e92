"""edgekit models gate / health: the checks of a roll-out on the box (edgekit.rollout.gates / .health).

``gate`` before a switch (speed against the current run, accuracy against the run's own ONNX); ``health`` after
the restart (the service runs exactly the current run). Both exit 1 on a failed check with one line that names it
and its numbers, 2 on a bad command line.
"""

from __future__ import annotations

import json

import click

from edgekit.commands.models import build_options, home_option, run_options
from edgekit.options import NON_NEGATIVE_FLOAT, NON_NEGATIVE_INT, POSITIVE_FLOAT, POSITIVE_INT
from edgekit.rollout.gates import DEFAULT_MAX_MAP_DROP, DEFAULT_MIN_SPEED_RATIO
from edgekit.rollout.health import DEFAULT_TIMEOUT, KINDS


def _json_place(ctx, param, value):
    """A FILE is checked before anything is measured (as every output option is); "-" is stdout."""
    from edgekit.outputs import writable_file

    return value if value == "-" else writable_file(ctx, param, value)


def json_out_option(what: str):
    return click.option("--json", "json_out", is_flag=False, flag_value="-", default=None, metavar="[FILE]",
                        callback=_json_place, help="Write %s as JSON to FILE; --json alone prints it on stdout." % what)


def _write_json(doc, json_out) -> None:
    if json_out is None:
        return
    if json_out == "-":
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    from edgekit.manifest import write_json_atomic

    write_json_atomic(json_out, doc)


@click.command("gate")
@click.argument("ref", metavar="SHA")
@click.option("--key", default=None, help="Run key (edgekit models list)  [default: the model's only run]")
@run_options
@click.option("--min-fps", type=NON_NEGATIVE_FLOAT, default=0.0, show_default=True,
              help="FPS floor, end to end on this box (0: none).")
@click.option("--min-speed-ratio", type=NON_NEGATIVE_FLOAT, default=DEFAULT_MIN_SPEED_RATIO, show_default=True,
              help="At least this share of the current run's FPS, measured beside it (no current run: passes).")
@click.option("--max-map-drop", type=NON_NEGATIVE_FLOAT, default=DEFAULT_MAX_MAP_DROP, show_default=True,
              help="Points of mAP50-95 the run may lose against its own ONNX on the model's evaluation set.")
@click.option("--iterations", type=POSITIVE_INT, default=100, show_default=True,
              help="Timed iterations per model, all rounds together.")
@click.option("--rounds", type=POSITIVE_INT, default=5, show_default=True,
              help="Interleaved rounds (candidate, current, current, candidate, ...).")
@click.option("--warmup", type=NON_NEGATIVE_INT, default=10, show_default=True,
              help="Untimed iterations before each model's first round.")
@click.option("--threads", type=POSITIVE_INT, default=None,
              help="ONNX Runtime intra-op threads  [default: one per physical core]")
@click.option("--source", default=None, metavar="FRAMES",
              help="Frames to time: an image, a folder, a video or synthetic://?width=W&height=H  "
              "[default: synthetic 1280x720]")
@json_out_option("the record")
@home_option
def gate_cmd(ref, key, backend, precision, dla_core, calib, gpu_fallback, min_fps, min_speed_ratio, max_map_drop,
             iterations, rounds, warmup, threads, source, json_out, home):
    """Measure the gates of a run of model SHA on this box before it may become current: speed beside the
    current run (interleaved rounds, same frames) and accuracy against its own ONNX on the evaluation set the
    model shipped with. Writes the run's gates.json; exit 1 when a gate fails."""
    from pathlib import Path

    from edgekit.eval.gate import GateRefused
    from edgekit.rollout import gates
    from edgekit.rollout.speed import SpeedConfig
    from edgekit.store import Store

    store = Store(home)
    sha, key = store.pick_run(ref, key, backend, precision, dla_core,
                              {k: v for k, v in build_options(calib, gpu_fallback).items() if v})
    config = gates.GateConfig(min_fps=min_fps, min_ratio=min_speed_ratio, max_drop=max_map_drop, speed=SpeedConfig(
        iterations=iterations, rounds=rounds, warmup=warmup, threads=threads, source=source))
    record = gates.run_gates(store, sha, key, config, show_progress=True)
    for line in gates.lines(record):
        click.echo(line, err=json_out == "-")
    _write_json(record, json_out)
    if not record["passed"]:
        raise GateRefused(gates.failure_message(record, str(Path(store.run_dir(sha, key)) / gates.GATES_FILE)))
    click.echo("gates passed: %s/%s" % (sha[:12], key), err=True)


@click.command("health")
@click.option("--url", required=True, help="The service: serve's or camera --serve's address, e.g. "
              "http://127.0.0.1:8080")
@click.option("--kind", type=click.Choice(KINDS), default="serve", show_default=True,
              help="serve: /readyz 200; camera: /stats.json with frames flowing. Both: running the current run.")
@click.option("--timeout", type=POSITIVE_FLOAT, default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds to wait for the service to be healthy.")
@json_out_option("the result")
@home_option
def health_cmd(url, kind, timeout, json_out, home):
    """Wait until the service at --url runs exactly the store's current run and is healthy; exit 1 after
    --timeout seconds with what it answered (e.g. the old model: it was not restarted)."""
    from edgekit.errors import EdgekitError
    from edgekit.rollout import health
    from edgekit.store import Store

    health.check_url(url)  # a bad address is a bad command line, before the store is read
    store = Store(home)
    current = store.current()
    if current is None:
        damaged = store.current_problem()
        raise EdgekitError("the current run is damaged: %s" % damaged if damaged else "no current model in %s: "
                           "activate one with edgekit models activate SHA" % store.root)
    record = health.wait_healthy(url, current["model_sha256"], kind, timeout)
    record["current"] = {"sha256": current["sha256"], "key": current["key"], "name": current.get("name"),
                         "version": current.get("version")}
    _write_json(record, json_out)
    if not record["healthy"]:
        raise health.Unhealthy(health.result_line(record))
    click.echo(health.result_line(record), err=json_out == "-")
