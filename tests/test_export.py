"""edgekit export: ONNX validity, numerical equality with torch, manifest, atomicity, offline behaviour."""

import json
import time

import numpy as np
import onnx
import pytest
from conftest import TEST_IMGSZ
from helpers import assert_user_error, invoke

from edgekit.host import export as export_mod
from edgekit.manifest import sha256_file


def test_onnx_passes_checker_and_keeps_ultralytics_conventions(yolov8n_onnx):
    proto = onnx.load(str(yolov8n_onnx))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["images"]
    assert [o.name for o in proto.graph.output] == ["output0"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert {"names", "stride", "imgsz", "task"} <= set(meta)
    assert not any(k.startswith("onnxsim.") for k in meta)
    assert proto.opset_import[0].version == 17


def test_onnxruntime_output_equals_torch_forward(yolov8n_pt, yolov8n_onnx):
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    x = np.random.default_rng(0).random((1, 3, TEST_IMGSZ, TEST_IMGSZ), dtype=np.float32)
    model = YOLO(str(yolov8n_pt)).model.float().eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x))[0].numpy()
    session = ort.InferenceSession(str(yolov8n_onnx), providers=["CPUExecutionProvider"])
    (got,) = session.run(["output0"], {"images": x})
    assert got.shape == expected.shape == (1, 84, 2100)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_manifest_fields(yolov8n_pt, yolov8n_onnx):
    manifest = json.loads(yolov8n_onnx.with_name(yolov8n_onnx.name + ".json").read_text())
    assert manifest["sha256"] == sha256_file(yolov8n_onnx)
    assert manifest["source"] == {"weights": str(yolov8n_pt), "sha256": sha256_file(yolov8n_pt)}
    assert manifest["params"] == 3157200  # YOLOv8n, 80 classes, before Conv+BN fusion
    assert manifest["gflops"] == pytest.approx(8.9 / 4, abs=0.05)  # YOLOv8n: 8.9 GFLOPs at 640, 1/4 at 320
    assert manifest["imgsz"] == [TEST_IMGSZ, TEST_IMGSZ] and manifest["batch"] == 1 and manifest["opset"] == 17
    assert manifest["inputs"] == [{"name": "images", "shape": [1, 3, 320, 320], "dtype": "float32"}]
    assert manifest["outputs"] == [{"name": "output0", "shape": [1, 84, 2100], "dtype": "float32"}]
    assert len(manifest["names"]) == 80
    assert manifest["trained"] is False and manifest["weights_label"].startswith("untrained")
    for package in ("ultralytics", "torch", "onnx", "onnxsim"):
        assert manifest["versions"][package]


def test_yaml_export_is_labelled_untrained(tmp_path):
    path = export_mod.export(weights="yolov8n.yaml", imgsz=64, out=str(tmp_path))
    manifest = json.loads((tmp_path / "yolov8n-64.onnx.json").read_text())
    assert path.name == "yolov8n-64.onnx"
    assert manifest["trained"] is False
    assert manifest["weights_label"] == "untrained (random init from yolov8n.yaml)"


def test_dynamic_export_runs_other_batches(tmp_path, yolov8n_pt):
    from edgekit.runtime import open_runner

    path = export_mod.export(weights=str(yolov8n_pt), imgsz=64, dynamic=True, out=str(tmp_path))
    assert path.name == "yolov8n-64-dynamic.onnx"
    with open_runner(path) as runner:
        assert runner.static_batch is None
        (out,) = runner.infer(np.zeros((3, 3, 64, 64), np.float32))
    assert out.shape == (3, 84, 84)


@pytest.mark.parametrize("step", ["simplify_and_check", "build_manifest"])
def test_interrupted_export_leaves_no_file(tmp_path, monkeypatch, step):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_mod, step, interrupt)
    with pytest.raises(KeyboardInterrupt):
        export_mod.export(weights="yolov8n.yaml", imgsz=64, out=str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # no ONNX, no manifest, no temp files or folders


def test_missing_weights_fail_fast_offline(tmp_path):
    start = time.perf_counter()
    result = invoke(["export", "--weights", tmp_path / "yolov8m.pt", "--out", tmp_path])
    elapsed = time.perf_counter() - start
    assert_user_error(result, "yolov8m.pt not found", "--weights yolov8m.yaml", str(tmp_path))
    assert result.exit_code == 2
    assert elapsed < 5, "a missing file must not wait on the network"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--weights", "model.onnx"], "expected yolov8 weights"),
        (["--weights", "yolov8n.yaml", "--imgsz", "100"], "multiple of 32"),
        (["--weights", "yolov8n.yaml", "--opset", "19"], "--opset 19"),
        (["--weights", "yolov8n.yaml", "--batch", "0"], "'--batch': 0 is not in the range"),
        (["--weights", "no-such-model.yaml"], "no built-in model of that name"),
        (["--weights", "yolov8n.yaml", "--batch", "2", "--dynamic"], "--batch 2 is a static batch"),
        (["--weights", "yolov8n.yaml", "--conf", "nan", "--trt-nms"], "not a finite number"),
    ],
)
def test_bad_export_arguments(tmp_path, args, fragment):
    assert_user_error(invoke(["export", "--out", tmp_path, *args]), fragment)


def test_corrupt_checkpoint_is_a_user_error(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    assert_user_error(invoke(["export", "--weights", bad, "--out", tmp_path]), "cannot load yolov8 model")


@pytest.mark.parametrize(
    "imgsz, batch, dynamic, name",
    [(640, 1, False, "m.onnx"), (320, 1, False, "m-320.onnx"), (640, 4, False, "m-b4.onnx"),
     (640, 4, True, "m-dynamic.onnx")],
)
def test_onnx_name(imgsz, batch, dynamic, name):
    assert export_mod.onnx_name("m", imgsz, batch, dynamic) == name


@pytest.mark.yolov8m
def test_yolov8m_export_matches_reference_size(tmp_path):
    """The reference experiment's baseline: 25.9M params, 79.3 GFLOPs at 640."""
    export_mod.export(weights="yolov8m.yaml", imgsz=640, out=str(tmp_path))
    manifest = json.loads((tmp_path / "yolov8m.onnx.json").read_text())
    assert round(manifest["params"] / 1e6, 1) == 25.9
    assert round(manifest["gflops"], 1) == 79.3
    assert manifest["outputs"][0]["shape"] == [1, 84, 8400]
