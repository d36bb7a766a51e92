"""The model store on a box (edgekit.store, edgekit models): content keys, run keys, switch, rollback, gc, plan,
the CLI, bad inputs, and kill -9 at many points of add, build and activate (old or new, never a half)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgekit.errors import EdgekitError
from edgekit.manifest import sha256_file, write_json_atomic
from edgekit.store import Store, run_key
from edgekit.store.keys import KEY_RE
from tests.helpers import assert_user_error, invoke

DEVICE = {"tensorrt": "8.5.2.2", "sm": "8.7", "gpu": "Orin"}
ROOT = Path(__file__).resolve().parent.parent


def fake_onnx(path: Path, size: int = 4096) -> Path:
    """An ONNX model (add checks that it parses as one) holding ``size`` random bytes as its one initializer: each
    call makes another model (another sha256), about ``size`` bytes big. The store never runs it."""
    import onnx
    from onnx import TensorProto, helper

    path.parent.mkdir(parents=True, exist_ok=True)
    weights = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[size], raw_data=os.urandom(size))
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "fake", [],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [size])], initializer=[weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def eval_set(folder: Path, names: str = "[a]") -> Path:
    """A data.yaml evaluation set with its one image (add checks that the set has its data)."""
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "0.jpg").write_bytes(b"jpeg")
    (folder / "data.yaml").write_text("val: images\nnames: %s\n" % names)
    return folder


def standin_build(onnx_path, folder, precision, dla_core, options):
    """What the real build leaves: folder/model.engine and its manifest (no GPU needed)."""
    engine = Path(folder) / "model.engine"
    engine.write_bytes(b"ENGINE-%s-" % precision.encode() + Path(onnx_path).read_bytes()[:64])
    write_json_atomic(str(engine) + ".json", {"kind": "engine", "precision": precision})
    return engine


def failing_build(onnx_path, folder, precision, dla_core, options):
    (Path(folder) / "model.engine").write_bytes(b"half an engine")
    raise EdgekitError("TensorRT could not build it")


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "home", device=DEVICE, build=standin_build)


def added(store, tmp_path, name, **kwargs):
    entry, _ = store.add(fake_onnx(tmp_path / "src" / name), **kwargs)
    return entry["sha256"]


def assert_intact(store, allowed):
    """current names one of ``allowed`` (sha, key); every model and run the store shows is complete."""
    now = store.current()
    assert now is not None and (now["sha256"], now["key"]) in allowed, now
    assert sha256_file(now["model_path"]) == now["model_sha256"]
    for entry in store.entries():
        assert sha256_file(store.model_dir(entry["sha256"]) / "model.onnx") == entry["sha256"]
        for run in entry["runs"]:
            assert sha256_file(run["model_path"]) == run["model_sha256"]


def leftovers(store):
    return [p for pattern in (".tmp-*", ".trash-*", ".*.tmp") for p in store.root.rglob(pattern)]


# ----- adding by content --------------------------------------------------------------------------------------
def test_add_is_idempotent_by_content(store, tmp_path):
    src = fake_onnx(tmp_path / "a.onnx")
    write_json_atomic(str(src) + ".json", {"sha256": sha256_file(src), "kind": "onnx"})
    entry, was_added = store.add(src, version="v1")
    assert was_added and entry["sha256"] == sha256_file(src) and entry["name"] == "a.onnx"
    assert entry["version"] == "v1"
    folder = store.model_dir(entry["sha256"])
    assert sha256_file(folder / "model.onnx") == entry["sha256"]
    assert json.loads((folder / "model.onnx.json").read_text())["kind"] == "onnx"
    assert json.loads((folder / "entry.json").read_text()) == entry
    again, was_added = store.add(src)
    assert not was_added and again == entry
    copy = tmp_path / "renamed.onnx"
    copy.write_bytes(src.read_bytes())
    assert store.add(copy) == (entry, False)  # the same bytes under another name: the same model
    other = added(store, tmp_path, "b.onnx")
    assert other != entry["sha256"] and len(store.entries()) == 2


def test_add_refuses_a_manifest_of_another_file(store, tmp_path):
    src = fake_onnx(tmp_path / "a.onnx")
    write_json_atomic(str(src) + ".json", {"sha256": "0" * 64})
    with pytest.raises(EdgekitError, match="manifest says 000000000000"):
        store.add(src)
    assert not store.root.exists()


def test_add_keeps_the_evaluation_set(store, tmp_path):
    data = eval_set(tmp_path / "eval")
    sha = added(store, tmp_path, "a.onnx", eval_dir=data)
    assert (store.model_dir(sha) / "eval" / "data.yaml").read_text().startswith("val:")
    assert store.entry(sha)["eval"] is True


def test_the_same_model_added_again_with_an_evaluation_set_gets_it(store, tmp_path):
    sha = added(store, tmp_path, "a.onnx")
    assert store.entry(sha)["eval"] is False
    data = eval_set(tmp_path / "eval", names="[b]")
    entry, new = store.add(tmp_path / "src" / "a.onnx", eval_dir=data)
    assert not new and entry["eval"] is True and store.entry(sha)["eval"] is True
    assert "[b]" in (store.model_dir(sha) / "eval" / "data.yaml").read_text()
    assert [p.name for p in store.model_dir(sha).iterdir() if p.name.startswith(".")] == []


# ----- run keys ----------------------------------------------------------------------------------------------
BASE = dict(backend="tensorrt", onnx_sha256="a" * 64, precision="fp16", dla_core=None, device=DEVICE,
            build_options={})


@pytest.mark.parametrize("change", [
    {"onnx_sha256": "b" * 64}, {"device": dict(DEVICE, tensorrt="10.3.0")}, {"device": dict(DEVICE, sm="7.2")},
    {"device": dict(DEVICE, gpu="Xavier")}, {"precision": "int8"}, {"precision": "fp32"}, {"dla_core": 0},
    {"build_options": {"workspace": 1024}},
], ids=lambda c: "-".join(sorted(c)) + "=" + str(list(c.values())[0])[:12])
def test_run_key_changes_with_everything_that_goes_into_the_engine(change):
    key = run_key(**BASE)
    assert key == run_key(**BASE) and KEY_RE.match(key) and key.startswith("trt-fp16-")
    other = run_key(**dict(BASE, **change))
    assert other != key and KEY_RE.match(other)
    if "dla_core" in change:
        assert other.startswith("trt-fp16-dla0-")


def test_ensure_run_builds_once_per_box(store, tmp_path):
    sha = added(store, tmp_path, "a.onnx")
    run, built = store.ensure_run(sha[:8], "tensorrt", "fp16")
    assert built and run["key"].startswith("trt-fp16-") and run["backend"] == "tensorrt"
    assert run["model"] == "model.engine" and run["model_sha256"] == sha256_file(run["model_path"])
    assert (run["tensorrt"], run["sm"], run["gpu"]) == ("8.5.2.2", "8.7", "Orin") and run["name"] == "a.onnx"
    assert store.ensure_run(sha, "tensorrt", "fp16") == (run, False)
    other_box = Store(store.home, device=dict(DEVICE, tensorrt="10.3.0"), build=standin_build)
    run10, built = other_box.ensure_run(sha, "tensorrt", "fp16")
    assert built and run10["key"] != run["key"]
    ort, built = store.ensure_run(sha, "onnxruntime")
    assert built and ort["key"] == "onnxruntime" and ort["model_sha256"] == sha
    assert os.readlink(ort["model_path"]) == "../../model.onnx" and sha256_file(ort["model_path"]) == sha
    assert [r["key"] for r in store.runs(sha)] == sorted(["onnxruntime", run["key"], run10["key"]])
    with pytest.raises(EdgekitError, match="ONNX Runtime runs the ONNX as it is"):
        store.ensure_run(sha, "onnxruntime", "fp16")


def test_a_failed_build_leaves_nothing(store, tmp_path):
    sha = added(store, tmp_path, "a.onnx")
    with pytest.raises(EdgekitError, match="could not build"):
        store.ensure_run(sha, "tensorrt", "int8", build=failing_build, build_options={"calib": str(tmp_path)})
    assert store.runs(sha) == [] and leftovers(store) == []


def test_the_real_build_is_edgekit_builds(store, yolov8n_onnx, monkeypatch):
    """tensorrt_build: prepare (every refusal before TensorRT) then build_engine into the run's temporary folder,
    named model.engine (TensorRT itself replaced: no GPU here)."""
    import types

    from edgekit.store import build as store_build

    calls = []

    def build_engine(prepared, request, out, name, command, speed):
        calls.append((prepared.onnx_path, request.precision, request.dla_core, Path(out), name, command))
        engine = Path(out) / name
        engine.write_bytes(b"engine")
        return engine

    monkeypatch.setitem(sys.modules, "edgekit.runtime.tensorrt.builder", types.SimpleNamespace(
        build_engine=build_engine))
    monkeypatch.setattr("edgekit.lazy.require_tensorrt", lambda building=False: None)
    sha = store.add(yolov8n_onnx)[0]["sha256"]
    with pytest.raises(EdgekitError, match="INT8 needs calibration images"):
        store.ensure_run(sha, "tensorrt", "int8", build=store_build.tensorrt_build)
    assert calls == [] and store.runs(sha) == [] and leftovers(store) == []
    run, built = store.ensure_run(sha, "tensorrt", "fp16", build=store_build.tensorrt_build)
    ((onnx_path, precision, dla, out, name, command),) = calls
    assert onnx_path == store.model_dir(sha) / "model.onnx" and (precision, dla, name) == ("fp16", None, "model.engine")
    assert out.parent == store.model_dir(sha) / "runs" and out.name.startswith(".tmp-trt-fp16-")
    assert command == "edgekit models build %s --fp16" % sha[:12]
    assert built and Path(run["model_path"]).read_bytes() == b"engine"


# ----- switch, rollback, history, gc, plan ------------------------------------------------------------------
def three_runs(store, tmp_path):
    out = []
    for name in ("a.onnx", "b.onnx", "c.onnx"):
        sha = added(store, tmp_path, name)
        out.append((sha, store.ensure_run(sha, "onnxruntime")[0]["key"]))
    return out


def test_activate_rollback_history_previous(store, tmp_path):
    a, b, c = three_runs(store, tmp_path)
    assert store.current() is None and store.previous() is None
    before, after, changed = store.activate(*a)
    assert before is None and changed and (after["sha256"], after["key"]) == a
    assert os.readlink(str(store.link)) == "models/%s/runs/onnxruntime" % a[0]  # relative: the home may move
    assert store.activate(*a)[2] is False  # already current: nothing recorded
    store.activate(*b, reason="new model")
    assert store.previous()["sha256"] == a[0]
    before, after = store.rollback(reason="health failed")
    assert before["sha256"] == b[0] and after["sha256"] == a[0] == store.current()["sha256"]
    assert [(h["sha256"], h["action"], h["reason"]) for h in store.history()] == [
        (a[0], "activate", ""), (b[0], "activate", "new model"), (a[0], "rollback", "health failed")]
    assert store.previous() is None  # a run rolled back from is never an automatic target again ...
    with pytest.raises(EdgekitError, match="nothing to roll back to"):
        store.rollback()
    with pytest.raises(EdgekitError, match="never active on this box"):
        store.rollback(to_sha=c[0])
    store.activate(*c)
    assert store.previous()["sha256"] == a[0]
    assert store.rollback(to_sha=b[0][:10])[1]["sha256"] == b[0]  # ... but --to still reaches it
    store.activate(*c)
    assert store.previous()["sha256"] == b[0]  # active again, then superseded: a target again


def test_a_switch_whose_history_line_was_lost(store, tmp_path):
    """Killed between the symlink and history.json: the symlink is the truth, the line is added later."""
    from edgekit.store.files import switch_symlink

    a, b, c = three_runs(store, tmp_path)
    store.activate(*a)
    switch_symlink(store.link, "models/%s/runs/%s" % b)  # what a kill right after the switch leaves
    assert store.current()["sha256"] == b[0] and store.previous()["sha256"] == a[0]
    store.activate(*c)
    assert [h["sha256"] for h in store.history()] == [a[0], b[0], c[0]]
    assert store.rollback()[1]["sha256"] == b[0]
    switch_symlink(store.link, "models/%s/runs/%s" % c)  # killed again after the switch to c ...
    assert store.activate(*c)[2] is False  # ... and the same command run again writes the line it lost
    assert [(h["sha256"], h["from"]) for h in store.history()[-2:]] == [(b[0], "%s/%s" % c), (c[0], "%s/%s" % b)]


def test_gc_keeps_current_and_the_newest(store, tmp_path):
    runs = [store.ensure_run(added(store, tmp_path, "m%d.onnx" % i), "onnxruntime")[0] for i in range(5)]
    ids = [(r["sha256"], r["key"]) for r in runs]
    for run_id in ids[:4]:
        store.activate(*run_id)
    store.rollback(to_sha=ids[0][0])  # current: the oldest model again
    extra, _ = store.ensure_run(ids[3][0], "tensorrt", "fp16")
    removed = store.gc(keep=2)
    kept = {(e["sha256"], r["key"]) for e in store.entries() for r in e["runs"]}
    assert kept == {ids[0], ids[3], ids[2]}  # current and the two runs active before it
    assert {(r["sha256"], r["key"]) for r in removed} == {(ids[1][0], None), (ids[4][0], None),
                                                           (ids[3][0], extra["key"])}
    assert_intact(store, {ids[0]})
    assert {r["sha256"] for r in store.gc(keep=0)} == {ids[3][0], ids[2][0]}
    assert store.current()["sha256"] == ids[0][0] and len(store.entries()) == 1
    with pytest.raises(EdgekitError, match="--keep -1"):
        store.gc(keep=-1)


def test_plan_says_what_would_change_and_changes_nothing(store, tmp_path):
    src = fake_onnx(tmp_path / "a.onnx")
    doc = store.plan(str(src), "onnxruntime")
    assert doc["changes"] == ["add", "build", "switch"] and doc["current"] is None
    assert not store.root.exists()
    sha = store.add(src)[0]["sha256"]
    assert store.plan(sha, "onnxruntime")["changes"] == ["build", "switch"]
    key = store.plan(sha, "tensorrt", "int8")["key"]
    assert key == store.ensure_run(sha, "tensorrt", "int8")[0]["key"]
    store.activate(sha, key)
    assert store.plan(str(src), "tensorrt", "int8")["changed"] is False
    assert store.plan(sha, "onnxruntime")["changes"] == ["build", "switch"]


def test_refs(store, tmp_path):
    sha = added(store, tmp_path, "a.onnx")
    assert store.resolve(sha[:8].upper()) == sha
    for ref, message in (("abc", "not a model sha256"), ("0123456789", "no model 0123456789"),
                         ("current", "no current model")):
        with pytest.raises(EdgekitError, match=message):
            store.resolve(ref)
    store.ensure_run(sha, "onnxruntime")
    store.ensure_run(sha, "tensorrt", "fp16")
    with pytest.raises(EdgekitError, match="has 2 runs"):
        store.pick_run(sha)
    assert store.pick_run(sha, backend="onnxruntime") == (sha, "onnxruntime")
    with pytest.raises(EdgekitError, match="no run trt-fp32"):
        store.pick_run(sha, precision="fp32")


# ----- the store's folders as models ------------------------------------------------------------------------
def test_a_run_folder_is_a_model(store, tmp_path):
    from edgekit.runtime.loader import check_model_path

    sha = added(store, tmp_path, "a.onnx")
    run, _ = store.ensure_run(sha, "tensorrt", "fp16")
    store.activate(sha, run["key"])
    assert check_model_path(run["path"]) == Path(run["model_path"])
    assert check_model_path(store.link) == store.link / "model.engine"  # not resolved through the symlink
    with pytest.raises(EdgekitError, match="is a folder"):
        check_model_path(tmp_path / "src")
    broken = tmp_path / "broken"
    broken.mkdir()
    for text in ('{"model": "model.engine"}', "{not json"):
        (broken / "run.json").write_text(text)
        with pytest.raises(EdgekitError, match="rebuild the run with edgekit models build"):
            check_model_path(broken)


def test_service_runs_whatever_current_names(store, tmp_path):
    from edgekit import service

    sha = added(store, tmp_path, "a.onnx")
    store.activate(sha, store.ensure_run(sha, "onnxruntime")[0]["key"])
    _, text = service.plan(None, str(store.link), serve=True, unit_dir=str(tmp_path))
    assert "edgekit serve %s " % store.link in text and "WorkingDirectory=%s\n" % store.root in text


# ----- the CLI -------------------------------------------------------------------------------------------------
def test_cli_round_trip(tmp_path):
    home = tmp_path / "home"
    a, b = fake_onnx(tmp_path / "a.onnx"), fake_onnx(tmp_path / "b.onnx")
    result = invoke(["models", "add", a, "--home", home, "--version", "1.0"])
    assert result.exit_code == 0, result.output
    sha_a = result.stdout.strip()
    assert sha_a == sha256_file(a) and "added a.onnx" in result.stderr
    assert invoke(["models", "add", a, "--home", home]).stderr.startswith("already in the store")
    doc = json.loads(invoke(["models", "add", b, "--home", home, "--json"]).stdout)
    sha_b = doc["entry"]["sha256"]
    for sha in (sha_a, sha_b):
        result = invoke(["models", "build", sha[:8], "--backend", "onnxruntime", "--home", home])
        assert result.stdout.strip() == str(home / "store" / "models" / sha / "runs" / "onnxruntime")
    assert "up to date" in invoke(["models", "build", sha_a[:8], "--backend", "onnxruntime", "--home", home]).stderr
    assert invoke(["models", "plan", b, "--backend", "onnxruntime", "--home", home]).stdout.strip() == \
        "would switch from none"
    assert invoke(["models", "activate", sha_a[:8], "--home", home]).stdout.strip() == \
        "current: %s/onnxruntime (was none)" % sha_a[:12]
    result = invoke(["models", "activate", sha_b, "--key", "onnxruntime", "--reason", "v2", "--home", home, "--json"])
    assert json.loads(result.stdout)["after"]["sha256"] == sha_b
    listing = invoke(["models", "list", "--home", home]).stdout
    assert re.search(r"^%s\s+a.onnx\s+1.0 .*  onnxruntime$" % sha_a[:12], listing, re.M), listing
    assert re.search(r"^%s\s+b.onnx\s+- .*  \*onnxruntime$" % sha_b[:12], listing, re.M), listing
    status = json.loads(invoke(["models", "status", "--home", home, "--json"]).stdout)
    assert (status["current"]["sha256"], status["previous"]["sha256"]) == (sha_b, sha_a)
    assert status["history"][-1]["reason"] == "v2"
    assert "current: %s" % sha_a[:12] in invoke(["models", "rollback", "--home", home]).stdout
    assert "up to date" in invoke(["models", "plan", "current", "--backend", "onnxruntime", "--home", home]).stdout
    result = invoke(["models", "gc", "--keep", "0", "--home", home, "--json"])
    assert json.loads(result.stdout) == [{"sha256": sha_b, "key": None}]


@pytest.mark.parametrize("args, message", [
    (["add", "{tmp}/missing.onnx"], "missing.onnx not found"),
    (["add", "{tmp}/garbage.onnx"], "is not an ONNX model"),
    (["add", "{tmp}/a.onnx", "--eval", "{tmp}"], "has no data.yaml or COCO json"),
    (["add", "{tmp}/notes.txt"], "give an ONNX file"),
    (["add", "{tmp}/empty.onnx"], "empty"),
    (["add", "{tmp}/a.onnx", "--eval", "{tmp}/nope"], "--eval"),
    (["activate", "xyz"], "not a model sha256"),
    (["activate", "0123abcd"], "no model 0123abcd"),
    (["activate", "current"], "no current model"),
    (["build", "0123abcd", "--fp16", "--int8"], "--fp16 and --int8"),
    (["rollback"], "nothing to roll back to"),
    (["gc", "--keep", "-1"], "--keep"),
    (["plan", "{tmp}/missing.onnx"], "not found"),
    (["status", "--last", "x"], "--last"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "garbage.onnx").write_text("this is a text file, not a model\n" * 50)
    (tmp_path / "empty.onnx").write_bytes(b"")
    fake_onnx(tmp_path / "a.onnx")
    home = tmp_path / "home"
    result = invoke(["models"] + [a.format(tmp=tmp_path) for a in args] + ["--home", home])
    assert_user_error(result, message)
    assert result.exit_code == 2 and not home.exists()


def test_bad_input_with_a_store(store, tmp_path):
    sha = added(store, tmp_path, "a.onnx")
    before = sorted(p.name for p in store.root.rglob("*"))
    for args, message in ((["build", sha, "--backend", "onnxruntime", "--fp16"], "ONNX Runtime runs the ONNX"),
                          (["activate", sha], "no run on this box yet"),
                          (["activate", sha, "--key", "bogus"], "not a store run key"),
                          (["activate", sha, "--key", "onnxruntime"], "no run onnxruntime"),
                          (["rollback", "--to", sha], "never active")):
        result = invoke(["models"] + args + ["--home", store.home])
        assert_user_error(result, message)
        assert result.exit_code == 2
    assert sorted(p.name for p in store.root.rglob("*")) == before


def test_cli_in_a_real_process(tmp_path):
    src = fake_onnx(tmp_path / "a.onnx")
    env = dict(os.environ, EDGEKIT_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "edgekit", "models", "add", str(src), "--json"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["entry"]["sha256"] == sha256_file(src)
    assert (tmp_path / "home" / "store" / "models" / sha256_file(src) / "model.onnx").is_file()


# ----- checked inputs, repairs, verify, gates, history ------------------------------------------------------
def coco_set(folder: Path, doc=None, images=True) -> Path:
    folder.mkdir(parents=True)
    (folder / "instances.json").write_text(json.dumps({"images": [], "annotations": []} if doc is None else doc))
    if images:
        (folder / "images").mkdir()
        (folder / "images" / "0.jpg").write_bytes(b"jpeg")
    return folder


@pytest.mark.parametrize("make, message", [
    (lambda d: d.mkdir(), "has no data.yaml or COCO json"),
    (lambda d: (d.mkdir(), (d / "data.yaml").write_text("val: images\n")), "data.yaml has no names:"),
    (lambda d: (d.mkdir(), (d / "data.yaml").write_text("names: [a]\n")), "names no val:, test: or train:"),
    (lambda d: (d.mkdir(), (d / "data.yaml").write_text("val: images\nnames: [a]\n")),
     "data.yaml's val: images is not there"),
    (lambda d: (d.mkdir(), (d / "data.yaml").write_text("val: [\n")), "data.yaml is not valid YAML"),
    (lambda d: coco_set(d, images=False), "instances.json has no images/ folder"),
    (lambda d: coco_set(d, doc={"images": []}), "instances.json is not a COCO json (no annotations list)"),
    (lambda d: (d.mkdir(), (d / "a.yaml").write_text("x"), (d / "b.yaml").write_text("x")), "holds 2 *.yaml"),
], ids=["empty", "no-names", "no-split", "no-images", "bad-yaml", "coco-no-images", "not-coco", "two-yaml"])
def test_add_refuses_an_eval_folder_without_an_evaluation_set(store, tmp_path, make, message):
    folder = tmp_path / "evalset"
    make(folder)
    src = fake_onnx(tmp_path / "a.onnx")
    with pytest.raises(EdgekitError, match=re.escape(message)) as caught:
        store.add(src, eval_dir=folder)
    assert str(caught.value).startswith("--eval %s" % folder) and "\n" not in str(caught.value)
    assert not store.root.exists()


def test_an_evaluation_set_is_checked_before_it_replaces_the_one_kept(store, tmp_path):
    good = eval_set(tmp_path / "good")
    sha = added(store, tmp_path, "a.onnx", eval_dir=good)
    with pytest.raises(EdgekitError, match="has no data.yaml"):
        store.add(tmp_path / "src" / "a.onnx", eval_dir=(tmp_path / "empty").mkdir() or tmp_path / "empty")
    assert (store.model_dir(sha) / "eval" / "data.yaml").is_file() and store.entry(sha)["eval"] is True
    coco = coco_set(tmp_path / "coco")
    report = store.add_report(tmp_path / "src" / "a.onnx", eval_dir=coco)
    assert report["changes"] == ["%s: evaluation set replaced" % sha[:12]]
    assert sorted(p.name for p in (store.model_dir(sha) / "eval").iterdir()) == ["images", "instances.json"]


def test_add_refuses_what_is_not_an_onnx_model(store, tmp_path):
    for name, content in (("text.onnx", b"hello, this is not a model\n" * 40), ("random.onnx", os.urandom(5000)),
                          ("cut.onnx", fake_onnx(tmp_path / "whole.onnx").read_bytes()[:3000])):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(EdgekitError, match="is not an ONNX model"):
            store.add(tmp_path / name)
    with pytest.raises(EdgekitError, match="nowhere.onnx not found"):
        store.add(tmp_path / "nowhere.onnx")
    assert not store.root.exists()


def test_add_again_sets_the_version_and_says_so(store, tmp_path):
    sha = added(store, tmp_path, "a.onnx", version="1.0")
    report = store.add_report(tmp_path / "src" / "a.onnx", version="2.0")
    assert report["changes"] == ["%s: version 1.0 -> 2.0" % sha[:12]] and report["entry"]["version"] == "2.0"
    assert store.entry(sha)["version"] == "2.0" and leftovers(store) == []
    assert store.add_report(tmp_path / "src" / "a.onnx", version="2.0")["changes"] == []
    assert store.add(tmp_path / "src" / "a.onnx")[0]["version"] == "2.0"  # no --version: kept
    result = invoke(["models", "add", tmp_path / "src" / "a.onnx", "--version", "3", "--home", store.home])
    assert result.exit_code == 0 and "version 2.0 -> 3" in result.stderr, result.output
    assert re.search(r"^%s\s+a.onnx\s+3 " % sha[:12], invoke(["models", "list", "--home", store.home]).stdout, re.M)


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip"])
def test_add_again_repairs_a_damaged_model(store, tmp_path, damage):
    src = fake_onnx(tmp_path / "a.onnx")
    write_json_atomic(str(src) + ".json", {"sha256": sha256_file(src), "kind": "onnx"})
    sha = store.add(src)[0]["sha256"]
    stored = store.model_dir(sha) / "model.onnx"
    ort = store.ensure_run(sha, "onnxruntime")[0]
    store.activate(sha, "onnxruntime")
    if damage == "delete":
        stored.unlink()
        (store.model_dir(sha) / "model.onnx.json").unlink()
    elif damage == "truncate":
        stored.write_bytes(stored.read_bytes()[:100])
    else:
        data = bytearray(stored.read_bytes())
        data[-1] ^= 0xFF
        stored.write_bytes(bytes(data))
    if damage != "flip":  # a glance sees it: the run is not built, nothing builds on the damaged ONNX
        assert not store.has_run(sha, "onnxruntime") and store.current() is None
        assert "edgekit models add MODEL.onnx" in invoke(["models", "status", "--home", store.home]).stdout
        assert "(damaged: model.onnx" in invoke(["models", "list", "--home", store.home]).stdout
        for backend in ("onnxruntime", "tensorrt"):
            with pytest.raises(EdgekitError, match="model %s is damaged in the store" % sha[:12]):
                store.ensure_run(sha, backend)
    result = invoke(["models", "add", src, "--home", store.home])
    assert result.exit_code == 0 and result.stdout.strip() == sha, result.output
    assert "repaired %s: its stored copy was damaged (model.onnx " % sha[:12] in result.stderr
    assert sha256_file(stored) == sha and (store.model_dir(sha) / "model.onnx.json").is_file()
    assert leftovers(store) == [] and store.ensure_run(sha, "onnxruntime") == (ort, False)
    assert_intact(store, {(sha, "onnxruntime")})
    assert "already in the store" in invoke(["models", "add", src, "--home", store.home]).stderr


@pytest.mark.parametrize("damage", ["delete", "truncate", "folder"])
def test_build_builds_a_damaged_run_again(store, tmp_path, damage):
    sha = added(store, tmp_path, "a.onnx")
    run, _ = store.ensure_run(sha, "tensorrt", "fp16")
    assert run["model_size"] == os.path.getsize(run["model_path"])
    store.activate(sha, run["key"])
    engine = Path(run["model_path"])
    stale = Path(run["path"]) / "stale.txt"  # the old folder goes, not only its engine
    stale.write_text("x")
    if damage == "delete":
        engine.unlink()
    elif damage == "truncate":
        engine.write_bytes(engine.read_bytes()[:10])
    else:
        os.unlink(str(Path(run["path"]) / "model.engine"))
        engine.mkdir()
    assert not store.has_run(sha, run["key"]) and store.current() is None
    assert store.current_problem().startswith("%s/%s: model.engine" % (sha[:12], run["key"]))
    with pytest.raises(EdgekitError, match="run %s of model %s is damaged" % (run["key"], sha[:12])):
        store.activate(sha, run["key"])
    assert store.plan(sha, "tensorrt", "fp16")["changes"] == ["build", "switch"]
    health = invoke(["models", "health", "--url", "http://127.0.0.1:1", "--home", store.home])
    assert_user_error(health, "the current run is damaged", "build it again: edgekit models build %s --fp16" % sha[:12])
    again, built = store.ensure_run(sha, "tensorrt", "fp16")
    assert built and again["key"] == run["key"] and not stale.exists() and leftovers(store) == []
    assert_intact(store, {(sha, run["key"])})  # current names the same run folder: running again
    assert store.ensure_run(sha, "tensorrt", "fp16")[1] is False


def test_runs_built_before_their_size_was_recorded_are_still_checked(store, tmp_path):
    sha = added(store, tmp_path, "a.onnx")
    for backend in ("onnxruntime", "tensorrt"):
        run, _ = store.ensure_run(sha, backend)
        doc = json.loads((Path(run["path"]) / "run.json").read_text())
        del doc["model_size"]
        write_json_atomic(Path(run["path"]) / "run.json", doc)
        assert store.has_run(sha, run["key"])
    engine = Path(store.runs(sha)[1]["model_path"])
    engine.write_bytes(b"")
    assert not store.has_run(sha, store.runs(sha)[1]["key"])  # empty: damaged whatever run.json says
    os.unlink(str(store.model_dir(sha) / "runs" / "onnxruntime" / "model.onnx"))
    assert not store.has_run(sha, "onnxruntime") and store.ensure_run(sha, "onnxruntime")[1] is True


def test_verify_rehashes_everything(store, tmp_path):
    a, b = added(store, tmp_path, "a.onnx"), added(store, tmp_path, "b.onnx")
    trt = store.ensure_run(a, "tensorrt", "fp16")[0]
    store.ensure_run(a, "onnxruntime")
    store.ensure_run(b, "onnxruntime")
    result = invoke(["models", "verify", "--home", store.home])
    assert result.exit_code == 0 and result.stdout.strip() == "store intact: 2 models, 3 runs", result.output
    # damaged in content only, the size kept: a glance cannot see it, verify does
    engine = Path(trt["model_path"])
    engine.write_bytes(engine.read_bytes()[::-1])
    onnx_b = store.model_dir(b) / "model.onnx"
    data = bytearray(onnx_b.read_bytes())
    data[-1] ^= 0xFF
    onnx_b.write_bytes(bytes(data))
    assert store.has_run(a, trt["key"]) and store.has_run(b, "onnxruntime")
    result = invoke(["models", "verify", "--home", store.home])
    assert result.exit_code == 1
    assert_user_error(result, "2 problem(s)")
    lines = sorted(result.stdout.splitlines(), key=lambda line: not line.startswith(a[:12]))
    assert len(lines) == 2, lines  # b's ONNX Runtime run links to b's ONNX: one line, the model's
    assert lines[0].startswith("%s/%s: model.engine has sha256" % (a[:12], trt["key"]))
    assert "edgekit models build %s --fp16" % a[:12] in lines[0]
    assert lines[1].startswith("%s: model.onnx has sha256" % b[:12]) and "edgekit models add" in lines[1]
    doc = json.loads(invoke(["models", "verify", "--json", "--home", store.home]).stdout)
    assert (doc["models"], doc["runs"], doc["intact"]) == (2, 3, False)
    assert sorted((p["sha256"], p["key"] or "") for p in doc["problems"]) == sorted([(a, trt["key"]), (b, "")])
    store.add(tmp_path / "src" / "b.onnx")
    os.unlink(trt["model_path"])
    assert store.ensure_run(a, "tensorrt", "fp16")[1] is True
    assert invoke(["models", "verify", "--home", store.home]).exit_code == 0
    empty = invoke(["models", "verify", "--home", tmp_path / "nothing"])
    assert empty.stdout.strip() == "store intact: 0 models, 0 runs" and not (tmp_path / "nothing").exists()


def test_activating_a_run_that_failed_its_gates_warns(store, tmp_path):
    a, b = [(added(store, tmp_path, n), "onnxruntime") for n in ("a.onnx", "b.onnx")]
    for sha, _ in (a, b):
        store.ensure_run(sha, "onnxruntime")
    write_json_atomic(store.run_dir(*b) / "gates.json", {"passed": False, "failed": "speed", "gates": {}})
    write_json_atomic(store.run_dir(*a) / "gates.json", {"passed": True, "failed": None, "gates": {}})
    result = invoke(["models", "activate", a[0][:12], "--home", store.home])
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    result = invoke(["models", "activate", b[0][:12], "--home", store.home])
    assert result.exit_code == 0 and store.current()["sha256"] == b[0], result.output
    (warning,) = [line for line in result.stderr.splitlines() if "warning" in line]
    assert "%s/onnxruntime failed its speed gate" % b[0][:12] in warning and "made current as asked" in warning
    store.activate(*a)
    result = invoke(["models", "rollback", "--to", b[0][:12], "--home", store.home])
    assert result.exit_code == 0 and "failed its speed gate" in result.stderr, result.output
    assert store.current()["sha256"] == b[0]


def test_history_says_which_run_each_switch_came_from(store, tmp_path):
    a, b, c = three_runs(store, tmp_path)
    store.activate(*a)
    store.activate(*b)
    store.rollback(reason="health-failed")
    assert [h["from"] for h in store.history()] == [None, "%s/%s" % a, "%s/%s" % b]
    status = invoke(["models", "status", "--home", store.home]).stdout
    assert "rollback %s/onnxruntime (from %s/onnxruntime) health-failed" % (a[0][:12], b[0][:12]) in status
    old = json.loads(store.history_path.read_text())  # written before "from" was recorded
    for entry in old["activations"]:
        del entry["from"]
    write_json_atomic(store.history_path, old)
    status = invoke(["models", "status", "--home", store.home])
    assert status.exit_code == 0 and "(from" not in status.stdout and "health-failed" in status.stdout
    store.activate(*c)
    assert store.history()[-1]["from"] == "%s/%s" % a and store.previous()["sha256"] == a[0]


def test_nothing_to_roll_back_to_says_why_and_what_to_do(store, tmp_path):
    a, b, c = three_runs(store, tmp_path)
    store.activate(*a)
    store.activate(*b)
    store.rollback()
    with pytest.raises(EdgekitError) as caught:
        store.rollback()
    message = str(caught.value)
    assert "runs rolled back from are skipped" in message and "edgekit models rollback --to SHA" in message
    assert "still in the store: %s" % b[0][:12] in message and a[0][:12] not in message
    store.gc(keep=0)
    with pytest.raises(EdgekitError, match="none of the history's other models is still in the store"):
        store.rollback()


# ----- kill -9 at many points -----------------------------------------------------------------------------
EDGEKIT = [sys.executable, "-m", "edgekit", "models"]
SLOW_BUILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edgekit.store import Store

    def slow_build(onnx_path, folder, precision, dla_core, options):
        engine = Path(folder) / "model.engine"
        with open(str(engine), "wb") as f:
            for _ in range(25):
                f.write(b"e" * 40000)
                f.flush()
                time.sleep(0.01)
        return engine

    Store(sys.argv[1], device=%r, build=slow_build).ensure_run(sys.argv[2], "tensorrt", "fp16")
""" % (DEVICE,))


def run_killed(args, delay, started=None):
    """Start ``args`` and kill -9 it ``delay`` seconds later, or that long after ``started()`` turned true."""
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while started is not None and not started() and proc.poll() is None:
        time.sleep(0.001)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return proc.returncode


def duration(args):
    t0 = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return time.perf_counter() - t0


def box(tmp_path, name):
    """A store with one model current (the old one)."""
    store = Store(tmp_path / name, device=DEVICE, build=standin_build)
    sha = added(store, tmp_path, "old.onnx")
    store.activate(sha, store.ensure_run(sha, "onnxruntime")[0]["key"])
    return store, (sha, "onnxruntime")


def delays(total, points=10):
    return [total * (i + 0.5) / points for i in range(points)]


def test_kill_during_add(tmp_path):
    big = fake_onnx(tmp_path / "big.onnx", 48 << 20)  # large enough that the copy takes a while
    sha = sha256_file(big)
    total = duration(EDGEKIT + ["add", str(big), "--home", str(tmp_path / "ref")])
    # a spread over the whole command, and a spread over its copy (from when its temporary folder appears)
    points = [(d, False) for d in delays(total, 4)] + [(d, True) for d in delays(total / 5, 8)]
    caught_mid_copy = 0
    for i, (delay, after_copy_starts) in enumerate(points):
        store, old = box(tmp_path, "box%d" % i)
        # the copy has started when a second folder appears beside the old model's
        copying = (lambda models=store.models: len(os.listdir(str(models))) > 1) if after_copy_starts else None
        run_killed(EDGEKIT + ["add", str(big), "--home", str(store.home)], delay, copying)
        caught_mid_copy += bool(leftovers(store))
        assert_intact(store, {old})
        assert {e["sha256"] for e in store.entries()} in ({old[0]}, {old[0], sha})
        result = invoke(["models", "add", big, "--home", store.home])
        assert result.exit_code == 0 and result.stdout.strip() == sha, result.output
        assert_intact(store, {old})
        assert leftovers(store) == []
    print("add: %d of %d kills left a half-made copy behind" % (caught_mid_copy, len(points)))
    assert caught_mid_copy >= 2, "kills did not land during the copy: the test did not test it"


def test_kill_during_build(tmp_path):
    store, old = box(tmp_path, "box")
    sha = added(store, tmp_path, "new.onnx")
    script = [sys.executable, "-c", SLOW_BUILD, str(store.home), sha]
    ref = Store(tmp_path / "ref", device=DEVICE)
    ref.add(tmp_path / "src" / "new.onnx")
    caught_mid_build = 0
    for delay in delays(duration([sys.executable, "-c", SLOW_BUILD, str(ref.home), sha])):
        assert store.runs(sha) == []
        run_killed(script, delay)
        caught_mid_build += bool(leftovers(store))
        assert_intact(store, {old})
        runs = store.runs(sha)
        assert runs == [] or (len(runs) == 1 and os.path.getsize(runs[0]["model_path"]) == 25 * 40000)
        subprocess.run(script, cwd=ROOT, check=True, timeout=60)  # the same command again completes
        (run,) = store.runs(sha)
        assert os.path.getsize(run["model_path"]) == 25 * 40000 and leftovers(store) == []
        store.activate(sha, run["key"])
        assert_intact(store, {(sha, run["key"])})
        store.activate(*old)
        store.gc(keep=0)  # back to the new model without an engine
        store.add(tmp_path / "src" / "new.onnx")
    print("build: %d of 10 kills left a half-made build behind" % caught_mid_build)
    assert caught_mid_build, "no kill landed during the build"


def test_kill_during_activate(tmp_path):
    store, old = box(tmp_path, "box")
    new = (added(store, tmp_path, "new.onnx"), "onnxruntime")
    store.ensure_run(new[0], "onnxruntime")
    args = EDGEKIT + ["activate", new[0], "--key", "onnxruntime", "--home", str(store.home)]
    total = duration(args)
    store.activate(*old)
    seen = set()
    for delay in delays(total, 12):
        run_killed(args, delay)
        assert_intact(store, {old, new})
        seen.add((store.current()["sha256"], store.current()["key"]))
        result = invoke(["models", "activate", new[0], "--key", "onnxruntime", "--home", store.home])
        assert result.exit_code == 0, result.output
        assert_intact(store, {new})
        assert store.history()[-1]["sha256"] == new[0] and store.previous()["sha256"] == old[0]
        assert leftovers(store) == []
        store.activate(*old)
    assert old in seen
