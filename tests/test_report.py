"""edgekit report and tradeoff: joined tables, Markdown, the plot, the Pareto front; bad input."""

import json

import cv2
import pytest
from helpers import assert_user_error, invoke

from edgekit.report.join import join_results, load_documents, pareto_front
from edgekit.report.render import COLUMNS


@pytest.mark.parametrize("points, front", [
    ([(10, 0.5), (5, 0.4), (20, 0.6), (15, 0.45)], [1, 0, 2]),
    ([(1, 0.1), (1, 0.3), (2, 0.2)], [1]),
    ([(3, 0.9)], [0]),
])
def test_pareto_front(points, front):
    assert pareto_front(points) == front


def test_tradeoff_writes_report_table_and_plot(synthetic_model, tmp_path):
    data, pt, _ = synthetic_model
    out = tmp_path / "to"
    result = invoke(["tradeoff", "--models", "yolov8n.yaml", pt, "--pruned", pt, "--data", data, "--imgsz", 160,
                     "--iterations", 5, "--warmup", 1, "--threads", 2, "--out", out])
    assert result.exit_code == 0, result.output
    for name in ("bench.json", "eval.json", "report.md", "report.png", "models/yolov8n.onnx",
                 "models/synthetic-yolov8n-pruned.onnx.json"):
        assert (out / name).exists(), name
    md = (out / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "model" not in line]
    assert len(rows) == 3
    by_name = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[1:-1]] for r in rows}
    col = {name: i for i, name in enumerate(COLUMNS)}
    assert by_name["synthetic-yolov8n-pruned"][col["pruned"]] == "yes"
    trained = by_name["synthetic-yolov8n"]
    assert trained[col["pruned"]] == "no" and trained[col["input"]] == "160x160"
    assert float(by_name["synthetic-yolov8n"][col["mAP50-95"]]) > 0.1  # mAP50-95 of the trained model
    assert "yolov8n (untrained)" in by_name
    image = cv2.imread(str(out / "report.png"))
    assert image is not None and image.shape[1] > 600 and image.std() > 5

    # edgekit report re-reads the folder: same table, plus Markdown and plot where asked
    again = invoke(["report", out, "--markdown", tmp_path / "r.md", "--plot", tmp_path / "r.png"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "r.md").read_text() == md and (tmp_path / "r.png").exists()
    assert "mAP50-95" in again.output


def test_report_joins_bench_and_eval_of_the_same_model(tmp_path):
    system = {"hostname": "nx1", "cpu": "ARMv8", "jetson": {"model": "Jetson Xavier NX", "power_mode": "MODE_20W"}}
    bench = {"kind": "bench", "created_at": "2026-01-01T00:00:00", "system": system, "results": [
        {"name": "m", "model": "m.onnx", "sha256": "abc", "backend": "onnxruntime", "precision": "fp32", "fps": 10.0,
         "trained": True, "stages": {s: {"mean": v} for s, v in
                                     (("preprocess", 1), ("inference", 90), ("postprocess", 2), ("e2e", 100))}}]}
    ev = {"kind": "eval", "created_at": "2026-01-01T00:01:00", "system": system, "results": [
        {"name": "m", "model": "m.onnx", "sha256": "abc", "backend": "onnxruntime", "precision": "fp32",
         "metrics": {"map50_95": 0.5, "map50": 0.7, "recall": 0.6, "precision": 0.8}}]}
    (tmp_path / "b.json").write_text(json.dumps(bench))
    (tmp_path / "e.json").write_text(json.dumps(ev))
    (tmp_path / "other.json").write_text('{"not": "a result"}')
    joined = join_results(load_documents([str(tmp_path)]))
    (device,) = joined
    assert device == "Jetson Xavier NX (MODE_20W) @ nx1"
    (row,) = joined[device]
    assert row["latency"]["e2e"] == 100 and row["map50_95"] == 0.5 and row["fps"] == 10.0


def test_report_without_results_is_a_user_error(tmp_path):
    assert_user_error(invoke(["report", tmp_path]), "no bench or eval results")
    assert_user_error(invoke(["report", tmp_path / "missing"]), "not found")


def test_tradeoff_never_swaps_precision(tmp_path):
    data = tmp_path / "data.yaml"
    data.write_text("val: x\nnames: [a]\n")
    assert_user_error(invoke(["tradeoff", "--models", "yolov8n.yaml", "--precisions", "fp16", "int8",
                              "--data", data, "--out", tmp_path / "o"]), "--calib")
    assert_user_error(invoke(["tradeoff", "--models", "yolov8n.yaml", "--precisions", "fp8", "--data", data]),
                      "choose from")
    try:
        import tensorrt  # noqa: F401
    except ImportError:  # FP16 needs a TensorRT engine: without TensorRT that is an error, never an FP32 row
        assert_user_error(invoke(["tradeoff", "--models", "yolov8n.yaml", "--precisions", "fp16",
                                  "--data", data, "--out", tmp_path / "o"]), "fp16", "--precisions fp32")
    assert not (tmp_path / "o").exists()


def test_tradeoff_with_missing_dataset_fails_before_export(tmp_path):
    assert_user_error(invoke(["tradeoff", "--models", "yolov8n.yaml", "--data", tmp_path / "nope.yaml",
                              "--out", tmp_path / "o"]), "not found")
    assert not (tmp_path / "o").exists()
