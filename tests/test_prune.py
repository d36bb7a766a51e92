"""edgekit prune on a YOLOv8n trained on the synthetic set: budget met, fine-tune, save/restore, export, measure."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import assert_user_error, invoke

PRUNE_ARGS = ["--imgsz", 64, "--batch", 4, "--score-images", 8, "--iterations", 5, "--threads", 2]


@pytest.fixture(scope="session")
def pruned_run(synthetic_model, tmp_path_factory):
    data, pt, _ = synthetic_model
    root = tmp_path_factory.mktemp("prune")
    js = root / "prune.json"
    result = invoke(["prune", "--weights", pt, "--data", data, "--finetune-epochs", 1, "--out", root / "engines",
                     "--cache", root / "cache", "--json", js, *PRUNE_ARGS])
    assert result.exit_code == 0, result.output
    return json.loads(js.read_text()), result.output, root, data, pt


def test_pruned_model_is_within_the_flops_budget(pruned_run):
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    doc, output, _, _, pt = pruned_run
    tuned = YOLO(doc["prune"]["checkpoint"]).model.float()
    base = YOLO(str(pt)).model.float()
    # counted independently of ModelOpt, with ultralytics' thop-based counter at the pruning size
    assert get_flops(tuned, 64) <= 0.66 * get_flops(base, 64) + 1e-6
    assert doc["prune"]["after"]["params"] < doc["prune"]["before"]["params"]
    m = doc["measured"]
    assert m["flops_reduction"] >= 0.34 and m["latency_per_flops_reduction"] is not None
    for name in ("baseline", "pruned"):
        assert m["rows"][name]["latency_ms"] > 0 and 0 <= m["rows"][name]["map50_95"] <= 1
    assert "latency reduction / FLOPs reduction" in output and "mAP50-95" in output


def test_pruned_onnx_matches_torch_and_records_the_pruning(pruned_run):
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    doc, _, _, _, _ = pruned_run
    manifest = json.loads(open(doc["prune"]["pruned"] + ".json").read())
    assert manifest["pruned"] is True and manifest["prune"]["constraints"] == {"flops": "66%"}
    assert manifest["prune"]["after"]["params"] == manifest["params"]
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    model = YOLO(doc["prune"]["checkpoint"]).model.float().eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x))[0].numpy()
    (got,) = ort.InferenceSession(doc["prune"]["pruned"], providers=["CPUExecutionProvider"]).run(None, {"images": x})
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_modelopt_state_restores_the_same_model_and_search_resumes(pruned_run):
    import torch
    from ultralytics import YOLO

    from edgekit.host import prune as p

    doc, _, root, data, pt = pruned_run
    restored = p.restore_modelopt(str(pt), p.Path(doc["prune"]["modelopt_state"])).eval()
    assert sum(q.numel() for q in restored.parameters()) == doc["prune"]["after"]["params"]

    # the same search again: resumed from its checkpoint, same subnet, and much faster than a fresh search
    train_loader, val_loader, _, cfg = p.loaders(str(data), 64, 4, 8)
    checkpoint = next((root / "cache").glob("fastnas-*.pth"))
    t0 = time.perf_counter()
    again = p.fastnas(YOLO(str(pt)).model, {"flops": "66%"}, 64, train_loader, p.loss_score(val_loader, cfg), 50,
                      checkpoint)
    resumed = time.perf_counter() - t0
    assert sum(q.numel() for q in again.parameters()) == doc["prune"]["after"]["params"]
    x = torch.rand(1, 3, 64, 64)
    again.eval()
    with torch.no_grad():
        a, b = restored(x)[0], again(x)[0]
    assert a.shape == b.shape
    assert resumed < 60, "a resumed search must not redo the candidate evaluations"


def test_pruned_checkpoint_needs_no_modelopt(pruned_run, tmp_path):
    doc, _, _, _, _ = pruned_run
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'modelopt': raise ImportError('modelopt blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from edgekit.host.export import export\n"
        "print(export(weights=sys.argv[1], imgsz=64, out=sys.argv[2]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, doc["prune"]["checkpoint"], str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(tmp_path.glob("*.onnx"))


@pytest.mark.parametrize("args, fragment", [
    (["--flops", "abc"], "'--flops': abc: use a percentage"), (["--flops", "120%"], "below 100%"),
    (["--flops", "50%", "--params", "50%"], "not both"), (["--calib-batches", 10], ">= 50"),
])
def test_bad_budgets(synthetic_model, tmp_path, args, fragment):
    data, pt, _ = synthetic_model
    assert_user_error(invoke(["prune", "--weights", pt, "--data", data, "--out", tmp_path, *args]), fragment)


def test_unreachable_budget_says_what_is_reachable(synthetic_model, tmp_path):
    data, pt, _ = synthetic_model
    assert_user_error(invoke(["prune", "--weights", pt, "--data", data, "--flops", "1%", "--finetune-epochs", 0,
                              "--cache", tmp_path, "--out", tmp_path, *PRUNE_ARGS]),
                      "cannot meet --flops 1%", "use a budget of at least")
    assert not list(tmp_path.glob("*.onnx"))


def test_pruning_untrained_weights_stays_labelled_untrained(synthetic_model, tmp_path):
    data, _, _ = synthetic_model
    from edgekit.host.prune import prune

    result = prune("yolov8n.yaml", str(data), imgsz=64, finetune_epochs=0, batch=4, score_images=8,
                   out=str(tmp_path / "engines"), cache=str(tmp_path / "cache"))
    manifest = json.loads(open(result["pruned"] + ".json").read())
    assert manifest["pruned"] is True and manifest["trained"] is False
    assert manifest["weights_label"].startswith("untrained")


def test_missing_data_and_non_detection_weights(synthetic_model, tmp_path):
    data, pt, _ = synthetic_model
    assert_user_error(invoke(["prune", "--weights", pt, "--data", tmp_path / "nope.yaml", "--cache", tmp_path]),
                      "nope.yaml not found")
    assert_user_error(invoke(["prune", "--weights", "yolov8n-cls.yaml", "--data", data, "--cache", tmp_path,
                              *PRUNE_ARGS]), "classify model")


def test_pruned_onnx_passes_edgekit_build_checks_like_the_baseline(pruned_run):
    """Everything edgekit build checks before TensorRT (ONNX validity, single input, static batch, size, opset)
    holds for the pruned ONNX as for the baseline's; the TensorRT build itself needs a GPU (tests marked gpu)."""
    from edgekit.runtime.tensorrt.plan import BuildRequest
    from edgekit.runtime.tensorrt.prepare import prepare
    from edgekit.runtime.tensorrt.qdq import max_opset, opset

    doc, _, _, _, _ = pruned_run
    for path in (doc["prune"]["baseline"], doc["prune"]["pruned"]):
        prepared = prepare(path, BuildRequest(precision="fp16"))
        assert prepared.facts.static_batch == 1 and not prepared.facts.qdq and prepared.imgsz == (64, 64)
        assert opset(prepared.proto) <= max_opset("8.5.2.2")
