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


# --- the report: a fair baseline, end-to-end speed with the boxes into NMS, accuracy by object size -------------

def test_baseline_is_fine_tuned_like_the_pruned_model_and_recorded(pruned_run):
    from edgekit.manifest import sha256_file

    doc, output, _, _, _ = pruned_run
    p = doc["prune"]
    assert p["baseline_finetuned"] is True and p["baseline"].endswith("-finetuned-1ep.onnx")
    assert p["baseline_label"] == "baseline (fine-tuned 1 epoch)" and "baseline (fine-tuned 1 epoch)" in output
    assert doc["measured"]["baseline"]["onnx"] == p["baseline"] and "alone" in doc["measured"]["baseline"]["note"]
    base_manifest = json.loads(open(p["baseline"] + ".json").read())
    assert base_manifest["baseline_finetune"]["epochs"] == 1 and base_manifest["trained"] is True
    assert base_manifest["params"] == p["before"]["params"]  # the architecture as given, only fine-tuned
    # lineage: the pruned model names the baseline ONNX of the same run, by path and content
    manifest = json.loads(open(p["pruned"] + ".json").read())
    assert manifest["prune"]["baseline_onnx"] == p["baseline"]
    assert manifest["prune"]["baseline_sha256"] == sha256_file(p["baseline"]) == p["baseline_sha256"]


def test_report_reads_speed_end_to_end_with_nms_and_accuracy_in_points(pruned_run):
    doc, output, _, _, _ = pruned_run
    m = doc["measured"]
    assert m["failed"] == [] and m["stopped"] is None
    for name in ("baseline", "pruned"):
        r = m["rows"][name]
        for key in ("preprocess_ms", "latency_ms", "postprocess_ms", "e2e_ms"):
            assert r[key] > 0
        assert r["candidates_per_frame"] >= 0 and 0 <= r["map50"] <= 1 and 0 <= r["recall"] <= 1
        assert {"map50_95_small", "recall_small"} <= set(r)  # None where the eval has no figures by size
    base, new = m["rows"]["baseline"], m["rows"]["pruned"]
    assert m["changes"]["map50_95"]["points"] == pytest.approx(100 * (new["map50_95"] - base["map50_95"]), abs=0.01)
    assert m["changes"]["e2e_ms"]["percent"] == pytest.approx(100 * (new["e2e_ms"] / base["e2e_ms"] - 1), abs=0.01)
    assert m["e2e_reduction"] == pytest.approx(1 - new["e2e_ms"] / base["e2e_ms"], abs=1e-4)
    assert m["e2e_per_flops_reduction"] == pytest.approx(m["e2e_reduction"] / m["flops_reduction"], abs=1e-3)
    for text in ("NMS/postprocess (ms)", "boxes into NMS per frame", "end to end, NMS included", "mAP50 ",
                 "recall small objects", " pts"):
        assert text in output, text
    # speed on the dataset's images (NMS time depends on what the frames hold), not on synthetic frames
    root, data = pruned_run[2], pruned_run[3]
    bench = json.loads(next(root.glob("bench-prune-*.json")).read_text())["results"]
    assert [r["source"] for r in bench] == [str(data.parent / "images" / "val")] * 2


def test_figures_give_changes_in_percent_and_points_with_dashes_for_the_missing():
    from edgekit.host.prune_report import figures, table

    def bench(infer, post, cands):
        return {"params": 3e6, "gflops": 8.0, "candidates_per_frame": cands, "stages": {
            "preprocess": {"mean": 1.0}, "inference": {"mean": infer}, "postprocess": {"mean": post},
            "e2e": {"mean": 1.0 + infer + post}}}

    def ev(map_, recall, small):
        sizes = {"small": {"instances": 10, "map50_95": small, "map50": small, "recall": small},
                 "medium": {"instances": 0, "map50_95": None, "map50": None, "recall": None},
                 "large": {"instances": 5, "map50_95": 0.6, "map50": 0.7, "recall": 0.8}}
        return {"params": 3e6, "gflops": 8.0, "metrics": {"map50_95": map_, "map50": 0.6, "recall": recall,
                                                          "sizes": sizes}}

    # the reference experiment: inference 0.775x, postprocess 0.3 -> 3.1 ms, end to end about equal
    b = {"baseline": bench(12.4, 0.3, 12.0), "pruned": dict(bench(9.61, 3.1, 240.0), gflops=5.248)}
    e = {"baseline": ev(0.40, 0.50, 0.20), "pruned": ev(0.346, 0.467, 0.10)}
    m = figures(b, e)
    assert m["changes"]["map50_95"] == {"points": -5.4} and m["changes"]["recall"] == {"points": -3.3}
    assert m["changes"]["map50_95_small"] == {"points": -10.0} and m["rows"]["pruned"]["recall_small"] == 0.1
    assert m["rows"]["pruned"]["map50_95_medium"] is None
    assert m["changes"]["latency_ms"] == {"percent": -22.5} and m["changes"]["postprocess_ms"]["percent"] > 900
    assert m["flops_reduction"] == 0.344 and m["latency_per_flops_reduction"] == pytest.approx(0.654, abs=1e-3)
    assert m["e2e_reduction"] == pytest.approx(0, abs=1e-3)  # end to end, NMS included: no faster
    assert m["e2e_per_flops_reduction"] == pytest.approx(0, abs=3e-3)

    # the pruned model's eval failed: its accuracy is "-", the rest stands
    m = figures(b, {"baseline": e["baseline"]})
    m["failed"] = [{"step": "eval", "name": "x-pruned.onnx", "reason": "RuntimeError: boom"}]
    assert m["rows"]["pruned"]["map50_95"] is None and m["changes"]["map50_95"] == {"points": None}
    assert m["rows"]["pruned"]["latency_ms"] == 9.61
    from rich.console import Console

    console = Console(width=200, record=True, soft_wrap=True)
    console.print(table(m, "t", "baseline (fine-tuned 1 epoch)", "baseline: fine-tuned"))
    text = console.export_text()
    assert "eval of x-pruned.onnx did not finish: RuntimeError: boom" in text
    assert "baseline (fine-tuned 1 epoch)" in text
    map_line = next(line for line in text.splitlines() if "mAP50-95 " in line and "small" not in line)
    assert [c.strip() for c in map_line.split("│")[2:5]] == ["0.400", "-", "-"]


@pytest.fixture
def made_models(synthetic_model, tmp_path, monkeypatch):
    """``prune`` replaced by two ready ONNX files (the synthetic model as baseline and as 'pruned'): the
    measuring and what follows it, without a real prune."""
    import shutil

    from edgekit.host import prune as p

    onnx = synthetic_model[2]
    out = tmp_path / "engines"
    out.mkdir()
    paths = {}
    for kind, name in (("baseline", "x-finetuned-1ep.onnx"), ("pruned", "x-pruned.onnx")):
        shutil.copy(onnx, out / name)
        shutil.copy(str(onnx) + ".json", str(out / name) + ".json")
        paths[kind] = str(out / name)
    result = dict(paths, constraints={"flops": "66%"}, baseline_label="baseline (fine-tuned 1 epoch)",
                  baseline_finetuned=True, finetune_epochs=1)
    monkeypatch.setattr(p, "prune", lambda *a, **k: result)
    return synthetic_model[0], paths, tmp_path


def _prune_cli(data, tmp_path, *extra):
    js = tmp_path / "res" / "prune.json"
    return invoke(["prune", "--weights", "x.pt", "--data", data, "--finetune-epochs", 1, "--out",
                   tmp_path / "engines", "--json", js, "--iterations", 3, "--threads", 2, *extra]), js


@pytest.mark.parametrize("step, exc, shown", [
    ("eval", RuntimeError("index 3 is out of bounds\nsecond line"), "RuntimeError: index 3 is out of bounds"),
    ("eval", "user", "no image of"),
    ("bench", ValueError("bad output"), "ValueError: bad output"),
])
def test_a_late_failure_keeps_the_models_and_what_was_measured(made_models, monkeypatch, step, exc, shown):
    """The models are written and the other measurements are shown, saved, and named in one error line."""
    import edgekit.bench
    import edgekit.eval.evaluate
    from edgekit.errors import EdgekitError

    data, paths, tmp_path = made_models
    real = {"eval": edgekit.eval.evaluate.evaluate, "bench": edgekit.bench.bench_models}[step]
    error = EdgekitError("no image of val could be evaluated") if exc == "user" else exc

    def fail_for_pruned(first, *a, **k):
        target = first[0] if step == "bench" else str(first.path)
        if target.endswith("x-pruned.onnx"):
            raise error
        return real(first, *a, **k)

    monkeypatch.setattr({"eval": edgekit.eval.evaluate, "bench": edgekit.bench}[step],
                        {"eval": "evaluate", "bench": "bench_models"}[step], fail_for_pruned)
    result, js = _prune_cli(data, tmp_path)
    assert_user_error(result, "pruned model written (%s" % paths["pruned"],
                      "measuring failed in %s of x-pruned.onnx: %s" % (step, shown), "figures above are saved in",
                      str(js))
    assert "second line" not in result.output
    doc = json.loads(js.read_text())
    (failed,) = doc["measured"]["failed"]
    assert failed["step"] == step and failed["model"] == paths["pruned"]
    assert ("traceback" in failed) == (exc != "user")  # a bug's traceback is kept in the JSON, not shown
    rows = doc["measured"]["rows"]
    missing = "map50_95" if step == "eval" else "latency_ms"
    kept = "latency_ms" if step == "eval" else "map50_95"
    assert rows["pruned"][missing] is None and rows["baseline"][missing] is not None
    assert rows["pruned"][kept] is not None and list(doc["measured"]["changes"][missing].values()) == [None]
    assert "%s of x-pruned.onnx did not finish" % step in result.output
    # the measurements that finished are also saved for edgekit report
    other = "bench" if step == "eval" else "eval"
    (saved,) = list((tmp_path / "res").glob("%s-prune-x-*.json" % other))
    assert len(json.loads(saved.read_text())["results"]) == 2
    assert len(json.loads(next((tmp_path / "res").glob("%s-prune-x-*.json" % step)).read_text())["results"]) == 1


def test_measuring_that_fails_throughout_still_names_the_models(made_models, monkeypatch):
    import edgekit.bench
    import edgekit.eval.evaluate

    data, paths, tmp_path = made_models

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(edgekit.bench, "bench_models", boom)
    monkeypatch.setattr(edgekit.eval.evaluate, "evaluate", boom)
    result, js = _prune_cli(data, tmp_path)
    assert_user_error(result, "pruned model written", "baseline %s" % paths["baseline"],
                      "bench of x-finetuned-1ep.onnx: RuntimeError: boom and bench of x-pruned.onnx",
                      "nothing was measured")
    assert len(json.loads(js.read_text())["measured"]["failed"]) == 4
    assert not list((tmp_path / "res").glob("bench-*.json")) and not list((tmp_path / "res").glob("eval-*.json"))


def test_ctrl_c_while_measuring_keeps_what_finished(made_models, monkeypatch):
    import edgekit.eval.evaluate

    data, paths, tmp_path = made_models

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(edgekit.eval.evaluate, "evaluate", stop)
    result, js = _prune_cli(data, tmp_path)
    assert result.exit_code == 130, result.output
    assert "eval of x-finetuned-1ep.onnx: stopped by Ctrl-C" in result.output
    assert len(json.loads(js.read_text())["measured"]["failed"]) == 1  # nothing more ran after the stop


def test_a_failing_step_after_the_search_is_one_line_naming_what_is_kept(tmp_path):
    from edgekit.errors import EdgekitError
    from edgekit.host.finetune import late_step

    kept = {"search": "c/fastnas-1.pth (a rerun resumes from it)", "baseline": "engines/x.onnx"}
    with pytest.raises(EdgekitError) as info:
        with late_step("fine-tuning the pruned model", kept, tmp_path / "run"):
            raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")
    text = str(info.value)
    assert text.startswith("fine-tuning the pruned model failed: RuntimeError: CUDA out of memory.")
    assert "kept: search c/fastnas-1.pth (a rerun resumes from it), baseline engines/x.onnx" in text
    assert "\n" not in text and "Tried to allocate" in (tmp_path / "run" / "failure-traceback.txt").read_text()
    with pytest.raises(EdgekitError, match="^exporting the pruned model failed: disk full; kept: baseline"):
        with late_step("exporting the pruned model", {"baseline": "x.onnx"}, tmp_path):
            raise EdgekitError("disk full")


def test_fine_tuned_baseline_is_reused_for_the_same_weights_and_settings(tmp_path, monkeypatch):
    from edgekit.host import finetune as f

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights")
    calls = []

    def fake(model, data, imgsz, epochs, batch, workdir, device, name="finetune"):
        calls.append((workdir, name))
        last = workdir / name / "weights" / "last.pt"
        last.parent.mkdir(parents=True)
        last.write_bytes(b"tuned")
        return last

    monkeypatch.setattr(f, "finetune", fake)
    args = ("data.yaml", 64, 1, 4, tmp_path / "cache", tmp_path / "run", None)
    first = f.finetune_baseline(None, weights, *args)
    assert f.finetune_baseline(None, weights, *args) == first and len(calls) == 1
    f.finetune_baseline(None, weights, "data.yaml", 64, 2, 4, tmp_path / "cache", tmp_path / "run", None)
    assert len(calls) == 2  # other epochs: another baseline
    f.finetune_baseline(None, None, *args)  # a YAML (random init): fine-tuned in this run's folder, never reused
    assert calls[-1] == (tmp_path / "run", "baseline")


def test_baseline_as_is_compares_with_the_weights_as_given(pruned_run, monkeypatch):
    """--baseline-as-is: the baseline is exported as given (not fine-tuned) and the report says the comparison
    mixes in the fine-tuning. The search's result and the fine-tune are the fixture's (no search, no training)."""
    from edgekit.host import prune as p

    doc, _, root, data, pt = pruned_run
    state = p.Path(doc["prune"]["modelopt_state"])
    monkeypatch.setattr(p, "fastnas", lambda *a, **k: p.restore_modelopt(str(pt), state))
    monkeypatch.setattr(p, "finetune", lambda *a, **k: p.Path(doc["prune"]["checkpoint"]))

    def no_baseline_finetune(*a, **k):
        raise AssertionError("--baseline-as-is must not fine-tune the baseline")

    monkeypatch.setattr(p, "finetune_baseline", no_baseline_finetune)
    js = root / "as-is.json"
    result = invoke(["prune", "--weights", pt, "--data", data, "--finetune-epochs", 1, "--baseline-as-is",
                     "--out", root / "engines-as-is", "--cache", root / "cache", "--json", js, *PRUNE_ARGS])
    assert result.exit_code == 0, result.output
    got = json.loads(js.read_text())
    assert got["prune"]["baseline_finetuned"] is False and got["prune"]["baseline_label"] == "baseline (as is)"
    assert not got["prune"]["baseline"].endswith("-finetuned-1ep.onnx")
    assert "mix" in got["measured"]["baseline"]["note"] and "--baseline-as-is" in result.output
    manifest = json.loads(open(got["prune"]["pruned"] + ".json").read())
    assert manifest["prune"]["baseline"] == "baseline (as is)"
    assert manifest["prune"]["baseline_onnx"] == got["prune"]["baseline"]


def test_bench_counts_the_boxes_entering_nms(synthetic_model):
    from rich.console import Console

    from edgekit.bench import BenchConfig, bench_models
    from edgekit.bench.report import results_table
    from edgekit.vision.postprocess import postprocess
    from edgekit.vision.preprocess import Letterbox

    out = np.zeros((2, 6, 50), np.float32)
    out[0, 4, :7] = 0.9  # 7 boxes of class 0 above conf in frame 0
    out[1, 5, :3] = 0.3  # 3 of class 1 in frame 1
    out[1, 4, 3] = 0.2  # below conf: not a candidate
    counts = []
    lb = Letterbox(gain=(1.0, 1.0), pad=(0.0, 0.0), shape=(64, 64))
    postprocess(out, [lb, lb], conf=0.25, candidates=counts)
    assert counts == [7, 3]

    (r,) = bench_models([str(synthetic_model[2])], BenchConfig(backend="onnxruntime", warmup=1, iterations=3,
                                                               threads=2, power=False), show_progress=False)
    assert r["candidates_per_frame"] is not None and r["candidates_per_frame"] >= 0
    console = Console(width=250, record=True, soft_wrap=True)
    console.print(results_table([r]))
    assert "boxes into NMS per frame" in console.export_text()
