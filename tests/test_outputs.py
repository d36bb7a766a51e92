"""Output places are checked before the slow part; a write that fails late never loses the results.

A read-only or full disk used to be a traceback after the whole run (bench --json, eval --json, report --markdown,
export --out ...). Nothing here needs root or a real full disk: a folder that is a file, a disk_usage of zero
and a refused temporary file stand in for them; the late failure is a real ENOSPC from os.replace.
"""

import errno
import os
from types import SimpleNamespace

import click
import pytest
from helpers import assert_user_error, invoke

from edgekit import outputs
from edgekit.cli import cli
from edgekit.commands.serve import remote_bench
from edgekit.manifest import WriteError, write_text_atomic

# One command line per command that writes a file, with the option that names the place; the required
# arguments are placeholders (options are checked when the command line is parsed, before they are opened).
OUTPUT_OPTIONS = [
    (["bench", "m.onnx"], "--json"), (["bench", "m.onnx"], "--csv"),
    (["bench", "http://127.0.0.1:9"], "--json"), (["bench", "http://127.0.0.1:9"], "--plot"),
    (["streams", "m.onnx"], "--json"), (["streams", "m.onnx"], "--csv"), (["streams", "m.onnx"], "--plot"),
    (["camera", "synthetic://", "--model", "m.onnx"], "--json"),
    (["camera", "synthetic://", "--model", "m.onnx"], "--record"),
    (["camera", "synthetic://", "--model", "m.onnx"], "--log"),
    (["eval", "m.onnx", "--data", "d.yaml"], "--json"), (["compare", "a.onnx", "b.onnx"], "--csv"),
    (["report"], "--markdown"), (["report"], "--plot"),
    (["export"], "--out"), (["quantize", "m.onnx"], "--out"), (["build", "m.onnx"], "--out"),
    (["prune", "--data", "d.yaml"], "--out"), (["prune", "--data", "d.yaml"], "--json"),
    (["tradeoff"], "--out"), (["make-dataset"], None), (["demo"], "--out"),
    (["models", "summary", "records"], "--markdown"),
]
FOLDER_OPTIONS = {"--out", None}


def _target(tmp_path, option, base):
    name = {"--plot": "p.png", "--record": "r.mp4", "--log": "f.jsonl", "--csv": "r.csv", "--markdown": "r.md"}
    return base / "sub" if option in FOLDER_OPTIONS else base / name.get(option, "r.json")


def _args(command, option, target):
    return [*command, target] if option is None else [*command, option, target]


@pytest.fixture(params=["parent is a file", "read-only", "full"])
def bad_place(request, tmp_path, monkeypatch):
    """A folder no file can go into, and the words the one-line error must have."""
    base = tmp_path / "out"
    if request.param == "parent is a file":
        base.write_text("a file where a folder should be")
        return base, "is a file"
    base.mkdir()

    def refused(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    if request.param == "read-only":
        monkeypatch.setattr(outputs.tempfile, "TemporaryFile", refused)
        return base, "read-only file system"
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: SimpleNamespace(total=1 << 30, free=4096))
    return base, "is full"


@pytest.mark.parametrize("command, option", OUTPUT_OPTIONS, ids=["%s %s" % (c[0], o) for c, o in OUTPUT_OPTIONS])
def test_unwritable_output_places_are_refused_before_the_run(command, option, bad_place, tmp_path):
    base, words = bad_place
    target = _target(tmp_path, option, base)
    result = invoke(_args(command, option, target))
    assert result.exit_code == 2
    assert_user_error(result, str(target), words)
    assert not list(base.parent.glob("**/*.tmp")) and not (base.is_dir() and list(base.iterdir()))


def _walk(group=cli):
    for command in group.commands.values():
        yield from _walk(command) if isinstance(command, click.Group) else [command]
    if group is cli:
        yield remote_bench


def test_every_output_option_is_checked():
    """An option that names an output place has a check: the table above cannot miss a new one silently."""
    places = {"--json", "--csv", "--markdown", "--plot", "--record", "--log", "--out"}
    unchecked = ["%s %s" % (c.name, p.opts[0]) for c in _walk() for p in c.params
                 if isinstance(p, click.Option) and not p.is_flag and p.opts[0] in places and p.callback is None]
    assert not unchecked
    covered = {(name, o) for c, o in OUTPUT_OPTIONS for name in c[:2]}  # a group's command: its own name
    for command in _walk():
        for p in command.params:
            if isinstance(p, click.Option) and p.opts[0] in places - {"--csv", "--json"}:
                assert (command.name, p.opts[0]) in covered or command is remote_bench, (command.name, p.opts)


def test_a_recording_needs_room_before_the_run(tmp_path, monkeypatch):
    """camera stops a recording below 200 MB free; a disk already below that is refused when parsed."""
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: SimpleNamespace(total=1 << 30, free=50 * 10 ** 6))
    args = ["camera", "synthetic://", "--model", "m.onnx", "--no-save"]
    assert_user_error(invoke(args + ["--record", tmp_path / "r.mp4"]), "--record", "50 MB free", "needs 200 MB")
    assert_user_error(invoke(args + ["--log", tmp_path / "f.jsonl"]), "model m.onnx not found")  # logs fit


@pytest.mark.parametrize("name", ["rec", "rec.txt", "rec.jpg"])
def test_a_recording_needs_a_video_name(tmp_path, name):
    assert_user_error(invoke(["camera", "synthetic://", "--model", "m.onnx", "--record", tmp_path / name]),
                      "--record", ".mp4, .avi")


def test_default_results_folder_is_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks").write_text("a file")
    assert_user_error(invoke(["bench", "m.onnx"]), "cannot save results", "--no-save")
    # --no-save or --json elsewhere needs no results folder: the run goes on to the model (missing here)
    assert_user_error(invoke(["bench", "m.onnx", "--no-save"]), "not found")
    assert_user_error(invoke(["bench", "m.onnx", "--json", tmp_path / "r.json"]), "not found")


@pytest.fixture
def disk_fills_for(monkeypatch):
    """os.replace fails with ENOSPC for file names ending in one of the given suffixes (the disk filled late)."""
    real = os.replace

    def arm(*suffixes):
        def replace(src, dst):
            if str(dst).endswith(suffixes):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(src, dst)

        monkeypatch.setattr("edgekit.manifest.os.replace", replace)

    return arm


def test_atomic_write_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, disk_fills_for):
    disk_fills_for(".json")
    with pytest.raises(WriteError, match="could not write .*r.json: No space left on device"):
        write_text_atomic(tmp_path / "r.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_bench_keeps_its_results_when_the_json_cannot_be_written(yolov8n_onnx, tmp_path, disk_fills_for):
    js, cs = tmp_path / "b.json", tmp_path / "b.csv"
    disk_fills_for(".json")
    result = invoke(["bench", yolov8n_onnx, "--warmup", 0, "--iterations", 2, "--threads", 1, "--no-power",
                     "--json", js, "--csv", cs])
    assert "e2e" in result.output and "FPS" in result.output  # the table came first
    assert cs.exists() and "wrote %s" % cs in result.output  # the other output is kept
    assert_user_error(result, "could not write %s" % js, "no space left", "results above are complete")
    assert not js.exists() and not list(tmp_path.glob(".*.tmp"))


def test_camera_keeps_its_summary_and_recording_line(yolov8n_onnx, tmp_path, disk_fills_for):
    js, cs = tmp_path / "c.json", tmp_path / "c.csv"
    disk_fills_for(".json")
    result = invoke(["camera", "synthetic://?width=160&height=128&fps=0", "--model", yolov8n_onnx, "--frames", 3,
                     "--headless", "--engine-iters", 0, "--no-power", "--json", js, "--csv", cs])
    assert "loop FPS" in result.output and cs.exists()
    assert_user_error(result, "could not write %s" % js)


def test_report_prints_its_table_when_the_markdown_cannot_be_written(yolov8n_onnx, tmp_path, disk_fills_for):
    res = tmp_path / "res"
    ran = invoke(["bench", yolov8n_onnx, "--warmup", 0, "--iterations", 2, "--threads", 1, "--no-power",
                  "--json", res / "b.json"])
    assert ran.exit_code == 0, ran.output
    disk_fills_for(".md")
    result = invoke(["report", res, "--markdown", tmp_path / "r.md"])
    assert yolov8n_onnx.stem in result.output
    assert_user_error(result, "could not write %s" % (tmp_path / "r.md"))


def test_make_dataset_on_a_disk_that_fills_leaves_nothing(tmp_path, monkeypatch):
    real = type(tmp_path).write_text
    calls = []

    def write_text(self, *args, **kwargs):
        calls.append(self)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "write_text", write_text)
    result = invoke(["make-dataset", tmp_path / "ds", "--train", 4, "--val", 2])
    assert_user_error(result, "could not write %s" % (tmp_path / "ds"), "no space left")
    assert not (tmp_path / "ds").exists()


def test_export_on_a_disk_that_fills_is_one_line(tmp_path, monkeypatch):
    import onnx

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx, "save", full)
    result = invoke(["export", "--weights", "yolov8n.yaml", "--imgsz", 64, "--out", tmp_path / "out"])
    assert_user_error(result, "could not write %s" % (tmp_path / "out" / "yolov8n-64.onnx"), "no space left")
    assert list((tmp_path / "out").iterdir()) == []
