"""The INT8 accuracy gate (edgekit build/quantize --accuracy-data --max-map-drop), without a GPU.

The gate's evaluation is real (the trained synthetic YOLOv8n on ONNX Runtime, on the synthetic val split). For
edgekit build, a stand-in builder writes an ONNX under the engine's name and the gate runs it on ONNX Runtime, so
the flow (staged engine -> measure -> keep or refuse, --if-changed) runs for real; only TensorRT is missing.
For edgekit quantize, ModelOpt quantizes for real: on the calibration folder the candidate passes, on copies of one
flat frame it collapses and is refused.
"""

import json
import re
import shutil
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

import edgekit.lazy
from edgekit.errors import EdgekitError
from edgekit.eval import gate
from edgekit.manifest import sha256_file, write_json_atomic
from edgekit.runtime.tensorrt.calib import CalibrationSet
from edgekit.runtime.tensorrt.calib_check import FEW_IMAGES, calibration_warnings, sameness
from tests.helpers import assert_user_error, invoke, noisy_copy


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("edgekit-cache")


@pytest.fixture(autouse=True)
def own_cache(cache_dir, monkeypatch):
    """Reference figures are cached under EDGEKIT_CACHE: one folder for this module, never the user's."""
    monkeypatch.setenv("EDGEKIT_CACHE", str(cache_dir))


@pytest.fixture(scope="module")
def models(synthetic_model, tmp_path_factory):
    """(data.yaml, the float ONNX, a copy whose conv weights carry 30% noise: mAP50-95 ~0.10 instead of ~0.36)."""
    data, _, fp32 = synthetic_model
    folder = tmp_path_factory.mktemp("models")
    broken = noisy_copy(fp32, folder / "broken.onnx")
    return data, fp32, broken


# --- options: checked when the command line is read, before any build or ModelOpt -----------------------------
@pytest.fixture(scope="module")
def other_classes(synthetic_model, tmp_path_factory):
    data = synthetic_model[0]
    path = tmp_path_factory.mktemp("other") / "data.yaml"
    path.write_text("path: %s\nval: images/val\nnames: [person, car]\n" % data.parent)
    return path


@pytest.mark.parametrize("args, fragments", [
    (["--max-map-drop", "1"], ["--max-map-drop 1 needs --accuracy-data"]),
    (["--accuracy-split", "train"], ["--accuracy-split goes with --accuracy-data"]),
    (["--accuracy-data", "missing.yaml"], ["--accuracy-data", "missing.yaml not found"]),
    (["--accuracy-data", "."], ["--accuracy-data . is a folder"]),
    (["--accuracy-data", "{data}", "--accuracy-split", "nope"], ["no split 'nope'", "--accuracy-split"]),
    (["--accuracy-data", "{other}"], ["cannot gate this model", "3 classes", "the dataset 2"]),
    (["--accuracy-data", "{data}", "--max-map-drop", "-1"], ["--max-map-drop"]),
])
@pytest.mark.parametrize("command", [["build", "{onnx}", "--fp16"], ["quantize", "{onnx}", "--calib", "{calib}"]])
def test_gate_options_are_checked_before_anything_runs(command, args, fragments, models, other_classes,
                                                       synthetic_calib, tmp_path, monkeypatch):
    data, fp32, _ = models
    monkeypatch.chdir(tmp_path)
    values = {"data": data, "other": other_classes, "onnx": fp32, "calib": synthetic_calib}
    result = invoke([str(a).format(**values) for a in command + args] + ["--out", tmp_path / "out"])
    assert_user_error(result, *fragments)
    assert result.exit_code == 2  # a bad command line; a refused model exits 1
    assert "Traceback" not in result.output and not list(tmp_path.rglob("*.onnx")) + list(tmp_path.rglob("*.engine"))


# --- the reference: the float ONNX a Q/DQ (or FP16) ONNX was made from, when it is here unchanged --------------
def _derived(tmp_path, source, name="m-int8-qdq.onnx"):
    path = tmp_path / name
    path.write_bytes(b"qdq model")
    write_json_atomic(str(path) + ".json", {"precision": "int8", "derived_from": {"file": str(source),
                                                                               "sha256": sha256_file(source)}})
    return path


def test_reference_is_the_float_onnx_when_it_is_here_unchanged(tmp_path, monkeypatch):
    fp32 = tmp_path / "m.onnx"
    fp32.write_bytes(b"float model")
    assert gate.reference_for(fp32) == (fp32, None)  # a float ONNX is its own reference
    assert gate.reference_for(_derived(tmp_path, fp32)) == (fp32, None)
    tuned = _derived(tmp_path, fp32, "m-tuned.onnx")  # derived, but not by quantize: a model of its own
    write_json_atomic(str(tuned) + ".json", dict(json.loads(Path(str(tuned) + ".json").read_text()), precision="fp32"))
    assert gate.reference_for(tuned) == (tuned, None)
    elsewhere = tmp_path / "device"  # copied to the device with both files; quantize's path was the host's
    elsewhere.mkdir()
    shutil.copy(str(fp32), str(elsewhere / "m.onnx"))
    moved = _derived(tmp_path, fp32)
    shutil.move(str(moved), str(elsewhere / moved.name))
    shutil.move(str(moved) + ".json", str(elsewhere / (moved.name + ".json")))
    monkeypatch.chdir(elsewhere)
    fp32.unlink()
    assert gate.reference_for(elsewhere / moved.name) == (elsewhere / "m.onnx", None)


def test_reference_falls_back_to_the_model_itself_and_says_why(tmp_path):
    fp32 = tmp_path / "m.onnx"
    fp32.write_bytes(b"float model")
    qdq = _derived(tmp_path, fp32)
    fp32.write_bytes(b"another float model")
    path, note = gate.reference_for(qdq)
    assert path == qdq and "changed since" in note and "leaves out the quantization" in note
    fp32.unlink()
    path, note = gate.reference_for(qdq)
    assert path == qdq and "is not here" in note and "copy the float ONNX beside it" in note


def test_an_existing_record_answers_a_request_only_on_the_same_data_within_the_limit(models):
    data = models[0]
    request = gate.gate_request(str(data), max_drop=1.0)
    record = {"data_fingerprint": request.fingerprint, "drop_points": 0.4, "data": str(data)}
    assert gate.covers(record, request) is None
    assert "never measured" in gate.covers(None, request)
    assert "over" not in gate.covers(dict(record, drop_points=1.5), request) and "more than --max-map-drop 1" in \
        gate.covers(dict(record, drop_points=1.5), request)
    assert "other data" in gate.covers(record, gate.gate_request(str(data), split="train", max_drop=1.0))
    assert gate.covers(dict(record, drop_points=9.0), gate.gate_request(str(data))) is None  # measure only


# --- edgekit build: a stand-in builder, the gate for real on ONNX Runtime --------------------------------------
@pytest.fixture
def fake_build(monkeypatch):
    """edgekit build without TensorRT: ``engine["content"]`` (an ONNX) is written under the engine's name with a
    manifest as builder.build_engine writes one, into ``stage`` when given; the gate runs it on ONNX Runtime."""
    from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner

    engine = {"content": None, "builds": []}

    def build_engine(prepared, request, out="engines", name=None, stage=None, command=None, **_):
        label = request.precision or "fp16"
        target = Path(stage or out) / (name or "%s-%s-sm90-trt8.5.3.engine" % (prepared.onnx_path.stem, label))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(str(engine["content"]), str(target))
        write_json_atomic(str(target) + ".json", {
            "kind": "tensorrt-engine", "file": target.name, "sha256": sha256_file(target),
            "engine_bytes": target.stat().st_size, "tensorrt": "8.5.3.1", "sm": "9.0", "gpu": "Fake GPU",
            "dla_core": None, "precision": label, "onnx": str(prepared.onnx_path),
            "onnx_sha256": prepared.onnx_manifest["sha256"], "names": prepared.onnx_manifest.get("names"),
            "imgsz": list(prepared.imgsz), "calibration_images": None, "command": command})
        engine["builds"].append(target)
        return target

    builder = types.ModuleType("edgekit.runtime.tensorrt.builder")
    builder.build_engine = build_engine
    builder.device_facts = lambda gpu=0: {"tensorrt": "8.5.3.1", "sm": "9.0", "gpu": "Fake GPU"}
    monkeypatch.setitem(sys.modules, "edgekit.runtime.tensorrt.builder", builder)
    monkeypatch.setattr(edgekit.lazy, "require_tensorrt", lambda building=False: None)
    monkeypatch.setattr(gate, "open_model", lambda path, backend, gpu=0: OnnxRuntimeRunner(path, threads=2))
    return engine


def _accuracy(engine):
    return json.loads(Path(str(engine) + ".json").read_text())["accuracy"]


def _no_stage_left(out):
    return not list(Path(out).glob(".edgekit-gate-*")) and not list(Path(out).glob("*.tmp"))


def test_build_keeps_an_engine_within_the_limit_with_both_maps_in_its_manifest(models, fake_build, tmp_path):
    data, fp32, _ = models
    fake_build["content"] = fp32  # an engine that computes what the ONNX computes: nothing lost
    out = tmp_path / "out"
    result = invoke(["build", fp32, "--fp16", "--out", out, "--accuracy-data", data, "--max-map-drop", "0.5"])
    assert result.exit_code == 0, result.output
    engine = out / fake_build["builds"][0].name
    assert result.output.strip().splitlines()[-1] == str(engine) and engine.is_file() and _no_stage_left(out)
    accuracy = _accuracy(engine)
    assert accuracy["passed"] is True and accuracy["drop_points"] == 0.0 and accuracy["max_drop_points"] == 0.5
    assert accuracy["candidate"]["model"] == str(engine) and accuracy["reference"]["model"] == str(fp32)
    assert accuracy["reference"]["backend"] == "onnxruntime" and accuracy["reference"]["sha256"] == sha256_file(fp32)
    assert accuracy["images"] == 48 and accuracy["split"] == "val" and accuracy["data"] == str(data)
    assert 0.2 < accuracy["candidate"]["map50_95"] == accuracy["reference"]["map50_95"]
    assert "map50_95_small" in accuracy["candidate"]  # by object size, where eval has it (None: no small objects)
    line = next(x for x in result.output.splitlines() if x.startswith("accuracy on"))
    assert "%.3f" % accuracy["candidate"]["map50_95"] in line and "limit 0.5: passed" in line
    assert "--accuracy-data %s --max-map-drop 0.5" % data in json.loads(
        Path(str(engine) + ".json").read_text())["command"]  # a rebuild elsewhere keeps its gate


def test_build_refuses_an_engine_that_loses_more_and_keeps_nothing_of_it(models, fake_build, tmp_path):
    data, fp32, broken = models
    out = tmp_path / "out"
    fake_build["content"] = broken
    result = invoke(["build", fp32, "--fp16", "--out", out, "--accuracy-data", data, "--max-map-drop", "2"])
    assert_user_error(result, "points lost, more than --max-map-drop 2", "not kept", "--fp32")
    assert result.exit_code == 1  # a failed check; 2 is a bad command line
    error = next(x for x in result.output.splitlines() if x.startswith("error:"))
    measured = [float(v) for v in re.findall(r"mAP50-95 (0\.\d+) on .* vs (0\.\d+) for", error)[0]]
    assert measured[0] < 0.2 < measured[1], error  # both numbers, the engine's first
    assert not list(out.glob("*.engine*")) and _no_stage_left(out)


def test_a_refusal_leaves_an_earlier_engine_under_that_name_as_it_was(models, fake_build, tmp_path):
    data, fp32, broken = models
    out = tmp_path / "out"
    fake_build["content"] = fp32
    assert invoke(["build", fp32, "--fp16", "--out", out]).exit_code == 0  # an earlier build, no gate
    earlier = fake_build["builds"][0]
    before = earlier.read_bytes(), Path(str(earlier) + ".json").read_text()
    fake_build["content"] = broken
    result = invoke(["build", fp32, "--fp16", "--out", out, "--accuracy-data", data, "--max-map-drop", "2"])
    assert_user_error(result, "%s from an earlier build is left as it was" % earlier.name)
    assert (earlier.read_bytes(), Path(str(earlier) + ".json").read_text()) == before and _no_stage_left(out)


def test_without_a_limit_the_drop_is_measured_recorded_and_warned_about(models, fake_build, tmp_path):
    data, fp32, broken = models
    fake_build["content"] = broken
    result = invoke(["build", fp32, "--fp16", "--out", tmp_path, "--accuracy-data", data])
    assert result.exit_code == 0, result.output
    accuracy = _accuracy(result.output.strip().splitlines()[-1])
    assert accuracy["passed"] is None and accuracy["max_drop_points"] is None and accuracy["drop_points"] > 10
    assert "no --max-map-drop given, so it is kept" in " ".join(result.output.split())


def test_the_reference_of_a_derived_onnx_is_the_float_model_it_names(models, fake_build, tmp_path):
    """An FP16/Q/DQ ONNX from edgekit quantize names its float source: the drop covers both steps."""
    data, fp32, _ = models
    derived = tmp_path / "m-fp16.onnx"
    shutil.copy(str(fp32), str(derived))
    manifest = json.loads(Path(str(fp32) + ".json").read_text())
    write_json_atomic(str(derived) + ".json", dict(manifest, precision="fp16", derived_from={
        "file": str(fp32), "sha256": sha256_file(fp32)}))
    fake_build["content"] = fp32
    result = invoke(["build", derived, "--fp16", "--out", tmp_path / "out", "--accuracy-data", data])
    assert result.exit_code == 0, result.output
    assert _accuracy(result.output.strip().splitlines()[-1])["reference"]["model"] == str(fp32)


def test_if_changed_never_skips_a_gate_that_was_not_run(models, fake_build, tmp_path):
    data, fp32, _ = models
    out = tmp_path / "out"
    fake_build["content"] = fp32
    base = ["build", fp32, "--fp16", "--out", out, "--if-changed"]
    gated = base + ["--accuracy-data", data, "--max-map-drop", "1"]
    assert invoke(base).exit_code == 0 and len(fake_build["builds"]) == 1
    result = invoke(gated)  # the engine is current, but was never measured: built again, with the gate
    assert result.exit_code == 0 and len(fake_build["builds"]) == 2, result.output
    assert "never measured: building it again with the gate" in " ".join(result.output.split())
    result = invoke(gated)
    assert "up to date" in result.output and len(fake_build["builds"]) == 2  # measured on this data, within 1
    assert invoke(base).exit_code == 0 and len(fake_build["builds"]) == 2  # no gate asked: the gated one is current
    result = invoke(gated[:-4] + ["--accuracy-data", data, "--accuracy-split", "train", "--max-map-drop", "1"])
    assert "measured on other data" in " ".join(result.output.split()) and len(fake_build["builds"]) == 3
    assert _accuracy(out / fake_build["builds"][0].name)["split"] == "train" and _no_stage_left(out)


def test_ctrl_c_while_measuring_leaves_nothing(models, fake_build, tmp_path, monkeypatch):
    from edgekit.eval import gated_build
    from edgekit.runtime.tensorrt.plan import BuildRequest
    from edgekit.runtime.tensorrt.prepare import prepare

    data, fp32, _ = models
    fake_build["content"] = fp32

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gated_build, "run_gate", interrupted)
    request = BuildRequest(precision="fp16")
    with pytest.raises(KeyboardInterrupt):
        gated_build.build_gated(prepare(fp32, request), request, gate.gate_request(str(data), max_drop=1.0),
                                out=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_gate_that_cannot_measure_keeps_the_build_unverified(models, fake_build, tmp_path, monkeypatch):
    """A crash while measuring (not a refusal) never costs the build: the engine is kept as NAME.unverified
    with its manifest, never under its final name, and the error says where."""
    from edgekit.eval import gated_build
    from edgekit.runtime.tensorrt.plan import BuildRequest
    from edgekit.runtime.tensorrt.prepare import prepare

    data, fp32, _ = models
    fake_build["content"] = fp32

    def broken(*args, **kwargs):
        raise ValueError("array of sample points is empty")

    monkeypatch.setattr(gated_build, "run_gate", broken)
    request = BuildRequest(precision="fp16")
    with pytest.raises(EdgekitError) as err:
        gated_build.build_gated(prepare(fp32, request), request, gate.gate_request(str(data), max_drop=1.0),
                                out=str(tmp_path))
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert len(kept) == 2 and kept[0].endswith(".unverified") and kept[1] == kept[0] + ".json", kept
    assert "could not be measured (array of sample points is empty): kept unverified as" in str(err.value)
    assert kept[0] in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("manifest, fragment", [
    ({"nms": {"in_graph": True}}, "EfficientNMS_TRT"),
    ({}, "static batch of 4"),
])
def test_models_the_gate_cannot_measure_are_refused_before_the_build(models, manifest, fragment):
    from edgekit.eval.gated_build import check_gate
    from edgekit.runtime.tensorrt.plan import ModelFacts

    prepared = types.SimpleNamespace(onnx_manifest=manifest, proto=onnx.ModelProto(), onnx_path=Path("m.onnx"),
                                     facts=ModelFacts(static_batch=1 if manifest else 4))
    with pytest.raises(EdgekitError, match=fragment):
        check_gate(prepared, gate.gate_request(str(models[0])))


# --- how many images calibrated, and are they all alike ---------------------------------------------------------
def _frames(folder, pictures, offsets=(0,), noise=0.0):
    """``pictures`` random textures, each written once per brightness offset (plus sensor noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    count = 0
    for _ in range(pictures):
        base = rng.integers(60, 190, (96, 128, 3)).astype(np.float32)
        for offset in offsets:
            image = base + offset + noise * rng.standard_normal(base.shape)
            cv2.imwrite(str(folder / ("%03d.png" % count)), np.clip(image, 0, 255).astype(np.uint8))
            count += 1
    return folder


@pytest.mark.parametrize("frames, warned", [
    (dict(pictures=12), []),  # twelve different pictures: only the count is said
    (dict(pictures=1, offsets=[0] * 12), ["only 1 different picture"]),  # one frame repeated
    (dict(pictures=1, offsets=[0] * 12, noise=3.0), ["only 1 different picture"]),  # ... with sensor noise
    (dict(pictures=1, offsets=[0, 2.2, 4.4]), ["nearly identical"]),  # one scene, light changing a little
])
def test_calibration_images_all_alike_are_said_in_one_line(tmp_path, frames, warned, capsys):
    calib = CalibrationSet.from_folder(_frames(tmp_path / "c", **frames), 1, (64, 64))
    lines = capsys.readouterr().err.splitlines()
    assert len(calib.warnings) == 1 + len(warned) and all(w in " ".join(calib.warnings) for w in warned)
    assert "only %d images calibrate" % calib.used in calib.warnings[0]
    assert sum(line.startswith("warning:") for line in lines) == len(calib.warnings)


def test_the_count_is_the_images_that_calibrate_not_the_folder(tmp_path):
    calib = CalibrationSet.from_folder(_frames(tmp_path / "c", 10), 2, (64, 64), max_batches=3)
    record = calib.record()
    assert record["images"] == 6 and record["folder_images"] == 10 and record["batches"] == 3
    assert record["distinct"] == 6 and "only 6 images calibrate" in record["warnings"][0]
    assert calibration_warnings(FEW_IMAGES, "f", sameness([])) == []  # enough, and nothing to compare


def test_engine_manifest_says_how_many_images_calibrated_it():
    from edgekit.runtime.tensorrt.manifest import calibration_images
    from edgekit.runtime.tensorrt.plan import BuildPlan

    assert calibration_images(BuildPlan("int8", quantization="calibrated"), {"images": 512}, {}) == 512
    qdq = BuildPlan("int8", quantization="qdq")
    assert calibration_images(qdq, None, {"calibration": {"images": 300}}) == 300
    assert calibration_images(qdq, None, {"quantization": {"images": 64}}) == 64  # made before 'calibration'
    assert calibration_images(qdq, None, {}) is None and calibration_images(BuildPlan("fp16"), None, {}) is None


# --- where the record shows: bench's caption, eval's and bench's results, serve's /v1/info ---------------------
def test_bench_caption_and_serve_info_show_the_gate(tmp_path):
    from edgekit.bench.report import gate_lines

    record = {"data": "/data/coco/data.yaml", "candidate": {"map50_95": 0.512}, "reference": {"map50_95": 0.518},
              "drop_points": 0.6, "max_drop_points": 1.0, "passed": True}
    assert gate_lines([{"name": "m-int8", "accuracy_gate": record}, {"name": "m", "accuracy_gate": None}]) == \
        "accuracy gate m-int8: mAP50-95 0.512 vs ONNX 0.518 (-0.6 pts, limit 1) on coco/data.yaml"
    serve = pytest.importorskip("edgekit.serve.server")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    assert serve.accuracy_gate(str(engine)) is None
    write_json_atomic(str(engine) + ".json", {"accuracy": record})
    assert serve.accuracy_gate(str(engine)) == record


# --- edgekit quantize: ModelOpt for real, the gate on ONNX Runtime -------------------------------------------------
@pytest.fixture(scope="module")
def gated_qdq(models, synthetic_calib, tmp_path_factory):
    pytest.importorskip("modelopt.onnx.quantization", reason="ModelOpt's ONNX quantization deps (export extra)")
    data, fp32, _ = models
    out = tmp_path_factory.mktemp("gated")
    result = invoke(["quantize", fp32, "--calib", synthetic_calib, "--images", 24, "--out", out,
                     "--accuracy-data", data, "--max-map-drop", 10])  # the existing quantize test allows 20%
    assert result.exit_code == 0, result.output
    return out / (fp32.stem + "-int8-qdq.onnx"), result.output


def test_quantize_within_the_limit_records_the_gate_and_the_calibration(gated_qdq, models):
    path, output = gated_qdq
    manifest = json.loads(Path(str(path) + ".json").read_text())
    accuracy = manifest["accuracy"]
    assert accuracy["passed"] is True and accuracy["drop_points"] <= 10 and accuracy["max_drop_points"] == 10
    assert accuracy["candidate"]["precision"] == "int8" and accuracy["candidate"]["model"] == str(path)
    assert accuracy["reference"]["model"] == str(models[1]) and accuracy["reference"]["precision"] == "fp32"
    assert manifest["calibration"]["images"] == 24 and manifest["calibration"]["distinct"] == 24
    flat = " ".join(output.split())
    assert "only 24 images calibrate" in flat and "INT8 calibrated on 24 images" in flat
    assert "limit 10: passed" in flat


def test_quantize_on_copies_of_one_flat_frame_is_refused_and_writes_nothing(models, tmp_path):
    pytest.importorskip("modelopt.onnx.quantization", reason="ModelOpt's ONNX quantization deps (export extra)")
    data, fp32, _ = models
    calib = tmp_path / "flat"
    calib.mkdir()
    for i in range(4):
        cv2.imwrite(str(calib / ("%d.png" % i)), np.full((240, 320, 3), 20, np.uint8))
    earlier = tmp_path / "out" / "m.onnx"
    earlier.parent.mkdir()
    earlier.write_bytes(b"an earlier model")
    result = invoke(["quantize", fp32, "--calib", calib, "--out", earlier.parent, "--name", "m.onnx",
                     "--accuracy-data", data, "--max-map-drop", 2])
    assert_user_error(result, "points lost, more than --max-map-drop 2", "m.onnx from an earlier run is left")
    assert result.exit_code == 1 and "only 1 different picture" in " ".join(result.output.split())
    error = next(x for x in result.output.splitlines() if x.startswith("error:"))
    cand, ref = [float(v) for v in re.findall(r"mAP50-95 (0\.\d+) on .* vs (0\.\d+) for", error)[0]]
    assert cand < ref - 0.02, error
    assert earlier.read_bytes() == b"an earlier model" and sorted(p.name for p in earlier.parent.iterdir()) == \
        ["m.onnx"]


def test_bench_eval_and_inspect_of_a_gated_model_show_the_record(gated_qdq, models, tmp_path):
    path, _ = gated_qdq
    result = invoke(["bench", path, "--warmup", 0, "--iterations", 2, "--json", tmp_path / "b.json"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "accuracy gate %s: mAP50-95" % path.stem in text and "limit 10) on ds/data.yaml (val)" in text
    bench = json.loads((tmp_path / "b.json").read_text())["results"][0]
    assert bench["accuracy_gate"]["passed"] is True
    result = invoke(["eval", path, "--data", models[0], "--json", tmp_path / "e.json"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e.json").read_text())["results"][0]["accuracy_gate"] == bench["accuracy_gate"]
    from edgekit.runtime.tensorrt.inspect import _short

    assert invoke(["inspect", path]).exit_code == 0  # its table has an accuracy row (wrapped at 80 columns):
    manifest = json.loads(Path(str(path) + ".json").read_text())
    assert _short("accuracy", manifest["accuracy"]).endswith("(limit 10: passed)")
    assert _short("calibration", manifest["calibration"]).startswith("24 images (24 batches of 1, 24 distinct)")


# --- on a GPU: the gate measures a real engine on TensorRT ----------------------------------------------------------
def _pseudo_labelled(model, frames, folder, limit=32, conf=0.5):
    """A data.yaml whose labels are the float model's own confident detections on ``frames`` (ONNX Runtime): the GPU
    machine has frames but no torch to train or label, and a correct engine must score as its ONNX does on them."""
    from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner
    from edgekit.vision.pipeline import Pipeline

    (folder / "images" / "val").mkdir(parents=True)
    (folder / "labels" / "val").mkdir(parents=True)
    with OnnxRuntimeRunner(model) as runner:
        pipe = Pipeline(runner, conf=conf)
        for path in sorted(p for p in Path(frames).iterdir() if p.suffix.lower() in (".jpg", ".png"))[:limit]:
            frame = cv2.imread(str(path))
            blob, boxes = pipe.preprocess([frame])
            dets = pipe.postprocess(runner.infer(blob), boxes)[0]
            h, w = frame.shape[:2]
            shutil.copy(str(path), str(folder / "images" / "val" / path.name))
            lines = ["%d %.6f %.6f %.6f %.6f" % (c, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
                     for (x1, y1, x2, y2), c in zip(np.clip(dets.xyxy, 0, [w, h, w, h]), dets.class_id)]
            (folder / "labels" / "val" / (path.stem + ".txt")).write_text("\n".join(lines) + "\n")
        names = [runner.info.names[k] for k in sorted(runner.info.names)]
    (folder / "data.yaml").write_text("path: %s\nval: images/val\nnames: %s\n" % (folder, json.dumps(names)))
    return folder / "data.yaml"


@pytest.mark.gpu
def test_fp16_gate_measures_the_engine_on_tensorrt(tmp_path):
    """``pytest -m gpu tests/test_gate.py``: the check's FP16 engine (built once, reused) measured by the gate on
    TensorRT against its ONNX on ONNX Runtime; the build-time flow around it is the CPU tests' above."""
    from tests.gpu_assets import load_assets
    from tests.test_tensorrt_gpu import engine_for, report

    assets, missing = load_assets()
    if missing:
        pytest.skip("; ".join(missing))
    engine = Path(engine_for(assets, "fp16"))
    request = gate.gate_request(str(_pseudo_labelled(assets.model, assets.val, tmp_path / "pseudo")), max_drop=2.0)
    record = gate.run_gate(engine, assets.model, request, label=str(engine))
    print(gate.result_line(record))
    report("gate-fp16", record)
    assert record["candidate"]["backend"] == "tensorrt" and record["reference"]["backend"] == "onnxruntime"
    assert record["reference"]["map50_95"] > 0.5 and record["passed"] is True, gate.result_line(record)
