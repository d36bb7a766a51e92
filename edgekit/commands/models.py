"""edgekit models: the model store on this box (edgekit.store): add, build, activate, rollback, gc, plan, status,
verify.

Thin commands over :class:`edgekit.store.Store`; the option bundles here (``home_option``, ``json_option``,
``run_options``) are shared with the gate/health/summary commands added to the group below.
"""

from __future__ import annotations

import json

import click

from edgekit.options import ExclusiveFlag, bundle

home_option = click.option("--home", default=None, metavar="DIR", envvar="EDGEKIT_HOME", show_envvar=True,
                           help="edgekit home; the store is HOME/store  [default: ~/edgekit]")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
run_options = bundle(
    click.option("--backend", type=click.Choice(["tensorrt", "onnxruntime"]), default=None,
                 help="tensorrt (an engine built on this box) or onnxruntime (the ONNX itself)  [default: tensorrt]"),
    click.option("--fp32", "precision", flag_value="fp32", cls=ExclusiveFlag, help="TensorRT FP32."),
    click.option("--fp16", "precision", flag_value="fp16", cls=ExclusiveFlag, help="TensorRT FP16 (the default)."),
    click.option("--int8", "precision", flag_value="int8", cls=ExclusiveFlag,
                 help="TensorRT INT8: a Q/DQ model, or calibrated with --calib."),
    click.option("--best", "precision", flag_value="best", cls=ExclusiveFlag, help="TensorRT INT8 + FP16."),
    click.option("--dla", "dla_core", type=click.IntRange(min=0), default=None, help="Build for DLA core N."),
    click.option("--calib", default=None, metavar="DIR", help="Calibration images for --int8/--best (float ONNX)."),
    click.option("--allow-gpu-fallback", "gpu_fallback", is_flag=True,
                 help="With --dla: layers DLA cannot run go to the GPU."),
)


def build_options(calib, gpu_fallback):
    return {"calib": calib, "gpu_fallback": gpu_fallback}


def echo_json(doc) -> None:
    click.echo(json.dumps(doc, indent=2, default=str))


def short(run) -> str:
    return "%s/%s" % (run["sha256"][:12], run["key"]) if run else "none"


@click.group("models")
def models():
    """The model store on this box: ONNX models by content, engines keyed by what went into them, one current
    run switched atomically, history and rollback (HOME/store; run services on HOME/store/current)."""


@models.command("list")
@home_option
@json_option
def list_cmd(home, as_json):
    """Models in the store and their runs (* marks current)."""
    from edgekit.store import Store

    entries = Store(home).entries()
    if as_json:
        echo_json(entries)
        return
    if not entries:
        click.echo("no models in %s: add one with edgekit models add MODEL.onnx" % Store(home).root, err=True)
    for entry in entries:
        runs = " ".join(("*" if run["current"] else "") + run["key"] + (" (damaged: %s)" % run["problem"]
                                                                        if run.get("problem") else "")
                        for run in entry["runs"]) or "(not built)"
        damaged = "  (damaged: %s; edgekit models add it again)" % entry["problem"] if entry.get("problem") else ""
        click.echo("%s  %-24s %-10s %s  %s%s" % (entry["sha256"][:12], entry["name"], entry.get("version") or "-",
                                                 entry["added"], runs, damaged))


@models.command("add")
@click.argument("onnx_path", metavar="MODEL.onnx")
@click.option("--eval", "eval_dir", default=None, metavar="DIR",
              help="Small evaluation set shipped with the model (data.yaml folder or COCO json + images).")
@click.option("--version", default=None, help="Version label  [default: the manifest's]")
@home_option
@json_option
def add_cmd(onnx_path, eval_dir, version, home, as_json):
    """Copy an ONNX (+ its manifest) into the store by content; prints its sha256. Adding it again checks the
    stored copy (copied again when missing or damaged: 'repaired') and applies --eval and --version."""
    from edgekit.store import Store

    report = Store(home).add_report(onnx_path, eval_dir=eval_dir, version=version)
    entry = report["entry"]
    if as_json:
        echo_json(report)
        return
    click.echo("%s %s" % ("added" if report["added"] else "already in the store:", entry["name"]), err=True)
    for change in report["changes"]:
        click.echo(change, err=True)
    click.echo(entry["sha256"])


@models.command("build")
@click.argument("ref", metavar="SHA")
@run_options
@home_option
@json_option
def build_cmd(ref, backend, precision, dla_core, calib, gpu_fallback, home, as_json):
    """Build the run of model SHA on this box (TensorRT engine, or ONNX Runtime); prints its folder. A run
    already built for this TensorRT, GPU, precision and options is 'up to date'."""
    from edgekit.store import Store

    run, built = Store(home).ensure_run(ref, backend or "tensorrt", precision, dla_core,
                                        build_options=build_options(calib, gpu_fallback))
    if as_json:
        echo_json(dict(run, built=built))
        return
    click.echo("%s %s" % ("built" if built else "up to date:", short(run)), err=True)
    click.echo(run["path"])


@models.command("activate")
@click.argument("ref", metavar="SHA")
@click.option("--key", default=None, help="Run key (edgekit models list)  [default: the model's only run]")
@run_options
@click.option("--reason", default="", help="Recorded in the history.")
@home_option
@json_option
def activate_cmd(ref, key, backend, precision, dla_core, calib, gpu_fallback, reason, home, as_json):
    """Switch current to a run of model SHA (atomically); restart the service to run it."""
    from edgekit.store import Store

    store = Store(home)
    sha, key = store.pick_run(ref, key, backend, precision, dla_core, {k: v for k, v in build_options(
        calib, gpu_fallback).items() if v})
    before, after, changed = store.activate(sha, key, reason=reason)
    _switched(before, after, changed, as_json)


@models.command("rollback")
@click.option("--to", "to_sha", default=None, metavar="SHA", help="Go back to this model  [default: the previous]")
@click.option("--reason", default="", help="Recorded in the history.")
@home_option
@json_option
def rollback_cmd(to_sha, reason, home, as_json):
    """Switch current back to the previous run (or to model --to); restart the service to run it."""
    from edgekit.store import Store

    before, after = Store(home).rollback(to_sha, reason=reason)
    _switched(before, after, before is None or before["path"] != after["path"], as_json)


def _switched(before, after, changed, as_json) -> None:
    if as_json:
        echo_json({"before": before, "after": after, "changed": changed})
        return
    click.echo("current: %s (%s)" % (short(after), "was %s" % short(before) if changed else "unchanged"))


@models.command("gc")
@click.option("--keep", type=click.IntRange(min=0), default=3, show_default=True,
              help="Keep the N runs active before current, for rollback (current is always kept).")
@home_option
@json_option
def gc_cmd(keep, home, as_json):
    """Delete runs and models that are neither current nor among the --keep runs active before it."""
    from edgekit.store import Store

    removed = Store(home).gc(keep)
    if as_json:
        echo_json(removed)
        return
    for item in removed:
        click.echo("removed %s" % (item["sha256"][:12] + ("/" + item["key"] if item["key"] else " (model)")))
    click.echo("%d removed" % len(removed), err=True)


@models.command("plan")
@click.argument("ref", metavar="SHA|MODEL.onnx")
@run_options
@home_option
@json_option
def plan_cmd(ref, backend, precision, dla_core, calib, gpu_fallback, home, as_json):
    """What add + build + activate would change on this box, changing nothing (the playbook's --check)."""
    from edgekit.store import Store

    doc = Store(home).plan(ref, backend or "tensorrt", precision, dla_core,
                           build_options=build_options(calib, gpu_fallback))
    if as_json:
        echo_json(doc)
        return
    now = doc["current"]
    if not doc["changed"]:
        click.echo("up to date: %s/%s is current" % (doc["sha256"][:12], doc["key"]))
        return
    steps = [("add %s" % doc["sha256"][:12]) if doc["add"] else "", ("build %s" % doc["key"]) if doc["build"] else "",
             ("switch from %s" % ("%s/%s" % (now["sha256"][:12], now["key"]) if now else "none"))
             if doc["switch"] else ""]
    click.echo("would %s" % ", ".join(s for s in steps if s))


@models.command("status")
@click.option("--last", type=click.IntRange(min=0), default=5, show_default=True, help="History entries shown.")
@home_option
@json_option
def status_cmd(last, home, as_json):
    """Current run, the rollback target, and recent history."""
    from edgekit.store import Store

    store = Store(home)
    doc = {"root": str(store.root), "current": store.current(), "previous": store.previous(),
           "history": store.history()}
    if as_json:
        echo_json(doc)
        return
    for label in ("current", "previous"):
        run = doc[label]
        click.echo("%-9s %s" % (label + ":", "%s  %s %s" % (short(run), run.get("name") or "", run.get("version")
                                                            or "") if run else "none"))
    damaged = store.current_problem()
    if damaged:
        click.echo("damaged:  %s" % damaged)
    for entry in doc["history"][-last:] if last else []:
        came = (entry.get("from") or "").partition("/")  # entries written before "from" was recorded have none
        came = " (from %s/%s)" % (came[0][:12], came[2]) if came[0] else ""
        click.echo(("  %s %-8s %s/%s%s %s" % (entry["at"], entry["action"], entry["sha256"][:12], entry["key"], came,
                                              entry.get("reason") or "")).rstrip())


@models.command("verify")
@home_option
@json_option
def verify_cmd(home, as_json):
    """Re-hash every stored ONNX and run model file against entry.json / run.json: one line per problem and exit
    1 when any (with what repairs it), else 'store intact'."""
    from edgekit.store import Store
    from edgekit.store.integrity import StoreDamaged, problem_line

    doc = Store(home).verify()
    if as_json:
        echo_json(doc)
    else:
        for item in doc["problems"]:
            click.echo(problem_line(item))
    if doc["problems"]:
        raise StoreDamaged("%d problem(s) in %s: repair each as its line says, then edgekit models verify again"
                           % (len(doc["problems"]), doc["root"]))
    if not as_json:
        click.echo("store intact: %d models, %d runs" % (doc["models"], doc["runs"]))


# gate and health (a roll-out's checks on the box) and summary (the fleet table, on the controller) live beside
# this group and use its option bundles, so they join it here, after those are defined
from edgekit.commands.models_checks import gate_cmd, health_cmd  # noqa: E402
from edgekit.commands.models_summary import summary_cmd  # noqa: E402

for _command in (gate_cmd, health_cmd, summary_cmd):
    models.add_command(_command)

COMMANDS = [models]
